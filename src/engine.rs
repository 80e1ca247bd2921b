//! The engine: builds one timely dataflow from the pipeline graph and runs dates through it.
//!
//! Each stage becomes a timely operator. A stage with several inputs gathers, per date, one
//! message from each input before it runs. Dates are spread round-robin over the workers;
//! each worker feeds its dates one at a time (one timestamp per date) and waits for the
//! date to leave the graph before the next, so memory stays bounded by one date per worker.
//! A failed date carries its error downstream and never touches its output directory.

use crate::batch::{DateMsg, Tables};
use crate::config::StageKind;
use crate::stages::{self, Context, StageInput};
use anyhow::{anyhow, Result};
use chrono::NaiveDate;
use indicatif::ProgressBar;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::{Concatenate, Input, Inspect, Probe};
use timely::dataflow::{InputHandle, ProbeHandle, StreamVec};

/// Rows and time one stage spent over a run.
#[derive(Debug, Clone, Default)]
pub struct StageStat {
    /// Dates processed.
    pub dates: usize,
    /// Rows of the stage's main input table (for decode: the alerts it read).
    pub rows_in: usize,
    /// Rows of the stage's main output table.
    pub rows: usize,
    /// Milliseconds spent, summed over dates.
    pub ms: f64,
}

/// The outcome of a run.
#[derive(Debug, Default)]
pub struct RunReport {
    /// Each date and its error, if it failed; ascending by date.
    pub dates: Vec<(NaiveDate, Result<(), String>)>,
    /// Per stage (in pipeline order): name, kind and totals.
    pub stages: Vec<(String, StageKind, StageStat)>,
}

impl RunReport {
    /// The dates that failed.
    pub fn failed(&self) -> Vec<&(NaiveDate, Result<(), String>)> {
        self.dates.iter().filter(|d| d.1.is_err()).collect()
    }
}

type Stats = Rc<RefCell<BTreeMap<String, StageStat>>>;

/// Each date and its outcome.
type Outcomes = Vec<(NaiveDate, Result<(), String>)>;

/// Runs `dates` through the pipeline with `workers` worker threads.
pub fn run(
    ctx: Arc<Context>,
    dates: Vec<NaiveDate>,
    workers: usize,
    progress: ProgressBar,
) -> Result<RunReport> {
    let dates = Arc::new(dates);
    let ctx2 = ctx.clone();
    let guards = timely::execute(timely::Config::process(workers.max(1)), move |worker| {
        let ctx = ctx2.clone();
        let (index, peers) = (worker.index(), worker.peers());
        let mut input = InputHandle::<u64, CapacityContainerBuilder<Vec<NaiveDate>>>::new();
        let probe = ProbeHandle::new();
        let outcomes: Rc<RefCell<Outcomes>> = Rc::default();
        let stats: Stats = Rc::default();
        worker.dataflow::<u64, _, _>(|scope| {
            let tokens = scope.input_from(&mut input);
            let mut streams: HashMap<String, StreamVec<u64, DateMsg>> = HashMap::new();
            for (pos, spec) in ctx.config.pipeline.stages.iter().enumerate() {
                let source: StreamVec<u64, DateMsg> = if spec.inputs.is_empty() {
                    tokens.clone().unary(Pipeline, "Dates", |_, _| {
                        move |input, output| {
                            input.for_each(|cap, data| {
                                let mut s = output.session(&cap);
                                for date in data.drain(..) {
                                    s.give(DateMsg {
                                        date,
                                        from: String::new(),
                                        body: Ok(Tables::new()),
                                        timings: BTreeMap::new(),
                                    });
                                }
                            })
                        }
                    })
                } else {
                    scope.concatenate(spec.inputs.iter().map(|i| streams[i].clone()))
                };
                let n_inputs = spec.inputs.len().max(1);
                let (ctx, stats) = (ctx.clone(), stats.clone());
                let out = source.unary(Pipeline, &spec.name, move |_, _| {
                    let mut pending: HashMap<NaiveDate, Vec<DateMsg>> = HashMap::new();
                    move |input, output| {
                        input.for_each(|cap, data| {
                            let mut session = output.session(&cap);
                            for msg in data.drain(..) {
                                let date = msg.date;
                                let got = pending.entry(date).or_default();
                                got.push(msg);
                                if got.len() == n_inputs {
                                    let msgs = pending.remove(&date).unwrap_or_default();
                                    session.give(run_stage(&ctx, pos, date, msgs, &stats));
                                }
                            }
                        })
                    }
                });
                streams.insert(spec.name.clone(), out);
            }
            for (k, sink) in ctx.config.pipeline.sinks().into_iter().enumerate() {
                let (outcomes, progress) = (outcomes.clone(), progress.clone());
                streams[&sink.name]
                    .clone()
                    .inspect(move |m: &DateMsg| {
                        if let Err(e) = &m.body {
                            progress.println(format!("✗ {}: {e}", m.date));
                        }
                        if k == 0 {
                            progress.inc(1);
                        }
                        outcomes
                            .borrow_mut()
                            .push((m.date, m.body.as_ref().map(|_| ()).map_err(Clone::clone)));
                    })
                    .probe_with(&probe);
            }
        });
        for (round, date) in dates.iter().enumerate().filter(|(i, _)| i % peers == index) {
            input.send(*date);
            input.advance_to(round as u64 + 1);
            while probe.less_than(input.time()) {
                worker.step();
            }
        }
        input.close();
        while worker.step() {}
        let stats = stats.borrow().clone();
        let outcomes = outcomes.borrow().clone();
        (outcomes, stats)
    })
    .map_err(|e| anyhow!("cannot start {workers} workers: {e}"))?;

    let mut report = RunReport::default();
    let mut totals: BTreeMap<String, StageStat> = BTreeMap::new();
    for r in guards.join() {
        let (outcomes, stats) = r.map_err(|e| anyhow!("a worker failed: {e}"))?;
        report.dates.extend(outcomes);
        for (k, v) in stats {
            let t = totals.entry(k).or_default();
            t.dates += v.dates;
            t.rows_in += v.rows_in;
            t.rows += v.rows;
            t.ms += v.ms;
        }
    }
    // With several sinks a date has one outcome per sink: it failed if any failed.
    report.dates.sort_by_key(|d| (d.0, d.1.is_ok()));
    report.dates.dedup_by_key(|d| d.0);
    report.stages = ctx
        .config
        .pipeline
        .stages
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                s.kind,
                totals.remove(&s.name).unwrap_or_default(),
            )
        })
        .collect();
    Ok(report)
}

/// Runs stage `pos` on one date, given one message from each of its inputs.
fn run_stage(
    ctx: &Context,
    pos: usize,
    date: NaiveDate,
    msgs: Vec<DateMsg>,
    stats: &Stats,
) -> DateMsg {
    let spec = &ctx.config.pipeline.stages[pos];
    let mut timings = BTreeMap::new();
    let mut tables = Tables::new();
    let mut failed = None;
    for m in msgs {
        timings.extend(m.timings);
        match m.body {
            Ok(t) => tables.extend(t),
            Err(e) => {
                failed.get_or_insert(e);
            }
        }
    }
    if let Some(e) = failed {
        return DateMsg {
            date,
            from: spec.name.clone(),
            body: Err(e),
            timings,
        };
    }
    // One span per stage and date (on the worker's thread), named by the stage's kind.
    let name = &spec.name;
    let span = match spec.kind {
        StageKind::Decode => tracing::debug_span!("decode", stage = %name, %date),
        StageKind::FeatureJoin => tracing::debug_span!("feature_join", stage = %name, %date),
        StageKind::Score => tracing::debug_span!("score", stage = %name, %date),
        StageKind::Rank => tracing::debug_span!("rank", stage = %name, %date),
        StageKind::ClusterScore => tracing::debug_span!("cluster_score", stage = %name, %date),
        StageKind::Write => tracing::debug_span!("write", stage = %name, %date),
        StageKind::Validate => tracing::debug_span!("validate", stage = %name, %date),
    };
    let _span = span.entered();
    let input_rows: BTreeMap<&str, usize> = tables
        .iter()
        .map(|(k, v)| (k.as_str(), v.num_rows()))
        .collect();
    let start = Instant::now();
    let input = StageInput {
        date,
        tables: &tables,
        timings: &timings,
    };
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| stages::run(spec, ctx, &input)))
        .unwrap_or_else(|p| {
            let what = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
            Err(anyhow!(
                "stage `{}` panicked: {}",
                spec.name,
                what.unwrap_or_default()
            ))
        });
    let ms = start.elapsed().as_secs_f64() * 1e3;
    timings.insert(spec.name.clone(), ms);
    let body = result.map_err(|e| format!("{e:#}"));
    if let Ok(t) = &body {
        let mut s = stats.borrow_mut();
        let st = s.entry(spec.name.clone()).or_default();
        st.dates += 1;
        st.ms += ms;
        st.rows += spec
            .kind
            .produces()
            .first()
            .and_then(|n| t.get(*n))
            .map_or(0, |b| b.num_rows());
        let main_in = spec.kind.consumes().first().copied().unwrap_or("alerts");
        st.rows_in += input_rows
            .get(main_in)
            .copied()
            .or_else(|| t.get(main_in).map(|b| b.num_rows()))
            .unwrap_or(0);
    }
    tracing::debug!(stage = %spec.name, %date, ms, ok = body.is_ok(), "stage done");
    DateMsg {
        date,
        from: spec.name.clone(),
        body,
        timings,
    }
}
