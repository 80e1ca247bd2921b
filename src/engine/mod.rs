//! The engine: builds one timely dataflow from the pipeline graph and runs dates through it.
//!
//! Each stage becomes a timely operator. A stage with several inputs gathers, per date, one
//! message from each input before it runs. Each worker takes the next date from a shared queue
//! (dates are split between processes by position), feeds it into the graph at the date's
//! timestamp (its day number, [`order::time`]) and waits for it to leave before taking
//! another, so the dates in flight never exceed the workers and memory stays flat however long
//! the backfill. A date is planned as it enters ([`plans`]): when the stage that brings its
//! input in place (fetch) is done with it, or at its first stage. Every stage of a date then
//! does what the date's [`DatePlan`](crate::plan::DatePlan) says: run (and cache its tables),
//! load its tables from the cache, or nothing.
//! A stage's work for a date runs on a thread of its own ([`jobs`]), so stages whose inputs are
//! ready together (score and cluster_score) run side by side. A stage that produces a day's
//! large tables waits while as many dates as it allows hold theirs ([`gate`]); one that must see
//! the dates in order waits until the frontier at the end of the graph has passed every
//! earlier date, in every process ([`order`]).
//! A failed date carries its error downstream and never touches its output directory.

use crate::batch::{DateMsg, Table, Tables};
use crate::error::{DateError, ErrorKind};
use crate::plan::record;
use crate::stages::{check_output, Context, Kind, Observer, StageInput};
use crate::state::{CacheWriter, StageRecord, StateStore};
use anyhow::{anyhow, Result};
use chrono::NaiveDate;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Concatenate, Input, Inspect, Probe};
use timely::dataflow::ProbeHandle;
use timely::dataflow::{InputHandle, StreamVec};
use timely::scheduling::SyncActivator;

mod gate;
mod jobs;
mod order;
mod plans;
mod retry;
use gate::Gate;
use jobs::Jobs;
use order::DateOrder;
use plans::Plans;
pub use retry::{guarded, is_transient, retry_transient};

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
    pub dates: Vec<(NaiveDate, Result<(), DateError>)>,
    /// Per stage (in pipeline order): name, kind and totals.
    pub stages: Vec<(String, &'static Kind, StageStat)>,
}

impl RunReport {
    /// The dates that failed.
    pub fn failed(&self) -> Vec<&(NaiveDate, Result<(), DateError>)> {
        self.dates.iter().filter(|d| d.1.is_err()).collect()
    }

    /// Adds the dates and stage totals of another run of the same pipeline.
    pub fn merge(&mut self, other: RunReport) {
        self.dates.extend(other.dates);
        if self.stages.is_empty() {
            self.stages = other.stages;
            return;
        }
        for ((_, _, a), (_, _, b)) in self.stages.iter_mut().zip(other.stages) {
            a.dates += b.dates;
            a.rows_in += b.rows_in;
            a.rows += b.rows;
            a.ms += b.ms;
        }
    }
}

/// How the run's workers are laid out.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// Worker threads per process.
    pub workers: usize,
    /// This process's index.
    pub process: usize,
    /// `host:port` of every process (empty for a single process).
    pub addresses: Vec<String>,
}

impl Cluster {
    /// One process with `workers` threads.
    pub fn local(workers: usize) -> Self {
        Self {
            workers: workers.max(1),
            process: 0,
            addresses: Vec::new(),
        }
    }

    /// The number of processes.
    pub fn processes(&self) -> usize {
        self.addresses.len().max(1)
    }

    fn timely(&self) -> timely::Config {
        if self.addresses.len() <= 1 {
            return timely::Config::process(self.workers);
        }
        timely::Config {
            communication: timely::CommunicationConfig::Cluster {
                threads: self.workers,
                process: self.process,
                addresses: self.addresses.clone(),
                report: false,
                zerocopy: false,
            },
            worker: timely::WorkerConfig::default(),
        }
    }
}

/// The longest a worker with nothing to do sleeps before it looks again (it wakes at once
/// when a message or progress update reaches it).
pub const IDLE: Duration = Duration::from_millis(20);

type Stats = Arc<Mutex<BTreeMap<String, StageStat>>>;

/// Each date and its outcome.
type Outcomes = Vec<(NaiveDate, Result<(), DateError>)>;

/// What the workers share.
struct Shared {
    ctx: Arc<Context>,
    store: StateStore,
    run_id: String,
    dates: Vec<NaiveDate>,
    plans: Plans,
    next: AtomicUsize,
    observer: Arc<dyn Observer>,
    cache: CacheWriter,
    order: DateOrder,
    gate: Gate,
    /// Per stage: how many stages read the large tables it produces.
    large_readers: Vec<usize>,
    /// Per stage: whether it reads large tables.
    reads_large: Vec<bool>,
}

impl Shared {
    /// The record of a stage that ran in this run, from its planned record.
    fn ran(&self, planned: &StageRecord) -> StageRecord {
        StageRecord {
            run_id: self.run_id.clone(),
            ..planned.clone()
        }
    }
}

/// Runs this process's dates through the pipeline (in a multi-process run, each process passes
/// its own share), each planned as it enters the graph ([`plans`]; `force` reruns every
/// stage); a date with nothing to run passes through without an outcome. `observer` hears of
/// each date as it ends and of what stages report.
pub fn run(
    ctx: Arc<Context>,
    dates: Vec<NaiveDate>,
    force: bool,
    cluster: &Cluster,
    run_id: &str,
    observer: Arc<dyn Observer>,
) -> Result<RunReport> {
    let store = StateStore::new(&ctx.config);
    let stages = &ctx.config.pipeline.stages;
    let large = |ts: &[Table]| ts.iter().any(|t| t.large());
    let reads_large: Vec<bool> = stages.iter().map(|s| large(s.kind.consumes)).collect();
    let large_readers = stages
        .iter()
        .map(|p| {
            let produces = large(p.kind.produces);
            stages
                .iter()
                .zip(&reads_large)
                .filter(|(r, reads)| produces && **reads && r.inputs.contains(&p.name))
                .count()
        })
        .collect();
    let shared = Arc::new(Shared {
        gate: Gate::default(),
        large_readers,
        reads_large,
        cache: CacheWriter::new(store.clone())?,
        order: DateOrder::default(),
        store,
        ctx: ctx.clone(),
        run_id: run_id.to_string(),
        plans: Plans::new(&ctx, force)?,
        dates,
        next: AtomicUsize::new(0),
        observer,
    });
    let sh = shared.clone();
    let guards = timely::execute(cluster.timely(), move |worker| {
        let sh = sh.clone();
        let ctx = sh.ctx.clone();
        let mut input = InputHandle::<u64, CapacityContainerBuilder<Vec<usize>>>::new();
        let outcomes: Rc<RefCell<Outcomes>> = Rc::default();
        let finished: Rc<RefCell<HashMap<NaiveDate, usize>>> = Rc::default();
        let stats: Stats = Arc::default();
        // The frontier after the sinks: the dates that have not left the graph, everywhere.
        let probe = ProbeHandle::new();
        let sinks = ctx.config.pipeline.sinks();
        worker.dataflow::<u64, _, _>(|scope| {
            let tokens = scope.input_from(&mut input);
            let mut streams: HashMap<String, StreamVec<u64, DateMsg>> = HashMap::new();
            let mut edges: HashMap<(String, String), StreamVec<u64, DateMsg>> = HashMap::new();
            let stages = &ctx.config.pipeline.stages;
            for (pos, spec) in stages.iter().enumerate() {
                let source: StreamVec<u64, DateMsg> = if spec.inputs.is_empty() {
                    let sh = sh.clone();
                    tokens.clone().unary(Pipeline, "Dates", |_, _| {
                        move |input, output| {
                            input.for_each(|cap, data| {
                                let mut s = output.session(&cap);
                                for i in data.drain(..) {
                                    s.give(DateMsg {
                                        date: sh.dates[i],
                                        from: String::new(),
                                        body: Ok(Tables::new()),
                                        timings: BTreeMap::new(),
                                        done: BTreeMap::new(),
                                    });
                                }
                            })
                        }
                    })
                } else {
                    let name = &spec.name;
                    scope.concatenate(spec.inputs.iter().map(|i| {
                        edges
                            .remove(&(i.clone(), name.clone()))
                            .expect("stages are sorted so that their inputs come first")
                    }))
                };
                let n_inputs = spec.inputs.len().max(1);
                let (sh, stats) = (sh.clone(), stats.clone());
                let activations = scope.activations();
                let out = source.unary(Pipeline, &spec.name, move |_, info| {
                    let wake =
                        SyncActivator::new(info.address.to_vec(), activations.borrow().sync());
                    let mut jobs = Jobs::new(&sh.ctx.config.pipeline.stages[pos].name, wake);
                    let mut pending: HashMap<NaiveDate, Vec<DateMsg>> = HashMap::new();
                    move |input, output| {
                        input.for_each(|cap, data| {
                            for msg in data.drain(..) {
                                let date = msg.date;
                                let got = pending.entry(date).or_default();
                                got.push(msg);
                                if got.len() == n_inputs {
                                    let msgs = pending.remove(&date).unwrap_or_default();
                                    let (sh, stats) = (sh.clone(), stats.clone());
                                    jobs.start(cap.retain_stamp(0), move || {
                                        let msg = step(&sh, pos, date, msgs, &stats);
                                        if sh.reads_large[pos] {
                                            sh.gate.read(date);
                                        }
                                        msg
                                    });
                                }
                            }
                        });
                        for (caps, msg) in jobs.finished() {
                            output.session(&caps).give(msg);
                        }
                    }
                });
                // One edge per reader, holding only the tables it reads. Created right after
                // the stage, so it is scheduled next: a date's large tables are dropped once
                // their last reader ran, not kept in the channels of readers not yet scheduled.
                for reader in stages.iter().filter(|r| r.inputs.contains(&spec.name)) {
                    let reads = reader.kind.consumes;
                    let edge = out.clone().map(move |mut msg: DateMsg| {
                        if let Ok(tables) = &mut msg.body {
                            tables.retain(|t, _| reads.contains(t));
                        }
                        msg
                    });
                    edges.insert((spec.name.clone(), reader.name.clone()), edge);
                }
                streams.insert(spec.name.clone(), out);
            }
            for sink in &sinks {
                let (outcomes, finished, sh) = (outcomes.clone(), finished.clone(), sh.clone());
                let n_sinks = sinks.len();
                let done_here = streams[&sink.name].clone().inspect(move |m: &DateMsg| {
                    // Up to date, or missing at the source: no outcome, no record.
                    let idle =
                        m.body.is_ok() && sh.plans.made(m.date).is_some_and(|p| p.run.is_empty());
                    if !idle {
                        outcomes.borrow_mut().push((m.date, record_outcome(&sh, m)));
                    }
                    let mut fin = finished.borrow_mut();
                    let seen = fin.entry(m.date).or_default();
                    *seen += 1;
                    if *seen < n_sinks {
                        return;
                    }
                    drop(fin);
                    sh.gate.left(m.date);
                    if idle {
                        sh.observer.date_skipped(m.date);
                        return;
                    }
                    let outcomes = outcomes.borrow();
                    let error = outcomes
                        .iter()
                        .filter(|(d, _)| *d == m.date)
                        .find_map(|(_, r)| r.as_ref().err());
                    sh.observer.date_done(m.date, error);
                });
                done_here.probe_with(&probe);
            }
        });
        let n_sinks = sinks.len();
        // Tells the work waiting for earlier dates how far the end of the graph has got.
        let publish = || {
            sh.order
                .reached(probe.with_frontier(|f| f.iter().min().copied()))
        };
        loop {
            let i = sh.next.fetch_add(1, Ordering::Relaxed);
            let Some(&date) = sh.dates.get(i) else { break };
            input.advance_to(order::time(date));
            input.send(i);
            input.flush();
            while finished.borrow().get(&date).copied().unwrap_or(0) < n_sinks {
                worker.step_or_park(Some(IDLE));
                publish();
            }
        }
        input.close();
        // A worker without dates parks until the others are done, instead of spinning on a
        // core their stages need.
        while worker.step_or_park(Some(IDLE)) {
            publish();
        }
        let stats = stats.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let outcomes = outcomes.borrow().clone();
        (outcomes, stats)
    })
    .map_err(|e| anyhow!("cannot start the workers: {e}"))?;

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
    shared.plans.finish()?;
    Ok(report)
}

/// Records what a date that reached a sink came to (once its cache files are written) and
/// returns it: its error, or an error recording it.
fn record_outcome(sh: &Shared, m: &DateMsg) -> Result<(), DateError> {
    let mut error = m.body.as_ref().err().cloned();
    let mut done = &m.done;
    let nothing = BTreeMap::new();
    // A stage whose tables could not be cached is not recorded as done.
    if let Err(e) = sh.cache.wait(m.date) {
        let why = format!("cannot write the state cache: {e}");
        error.get_or_insert(DateError::text(ErrorKind::Output, why));
        done = &nothing;
    }
    let saved = record(
        &sh.store,
        m.date,
        done,
        error.as_ref().map(|e| e.message.clone()),
    );
    match (error, saved) {
        (Some(e), _) => Err(e),
        (None, Err(e)) => Err(DateError::text(
            ErrorKind::Output,
            format!(
                "cannot record the run state: {}",
                crate::error::error_text(&e)
            ),
        )),
        (None, Ok(())) => Ok(()),
    }
}

/// Does what the date's plan says for stage `pos`: runs it (and caches its tables), loads its
/// cached tables, or passes an empty message on.
fn step(sh: &Shared, pos: usize, date: NaiveDate, msgs: Vec<DateMsg>, stats: &Stats) -> DateMsg {
    let spec = &sh.ctx.config.pipeline.stages[pos];
    let mut timings = BTreeMap::new();
    let mut done = BTreeMap::new();
    let mut tables = Tables::new();
    let mut failed = None;
    for m in msgs {
        timings.extend(m.timings);
        done.extend(m.done);
        match m.body {
            Ok(t) => tables.extend(t),
            Err(e) => {
                failed.get_or_insert(e);
            }
        }
    }
    let msg = |body, timings, done| DateMsg {
        date,
        from: spec.name.clone(),
        body,
        timings,
        done,
    };
    if let Some(e) = failed {
        return msg(Err(e), timings, done);
    }
    if spec.stage.brings_input() {
        let (body, ms) = run_stage(sh, pos, date, tables, &timings, stats);
        timings.insert(spec.name.clone(), ms);
        let plan = match body.and_then(|_| sh.plans.of(date)) {
            Ok(plan) => plan,
            Err(e) => return msg(Err(e), timings, done),
        };
        if plan.run.contains(&spec.name) {
            done.insert(spec.name.clone(), sh.ran(&plan.records[&spec.name]));
        }
        return msg(Ok(Tables::new()), timings, done);
    }
    let plan = match sh.plans.of(date) {
        Ok(plan) => plan,
        Err(e) => return msg(Err(e), timings, done),
    };
    if plan.run.is_empty() {
        // Up to date, or missing at the source: passes through.
        return msg(Ok(Tables::new()), timings, done);
    }
    let rec = &plan.records[&spec.name];
    if !plan.run.contains(&spec.name) {
        let body = if plan.load.contains(&spec.name) {
            sh.store
                .read_cache(date, &spec.name, &rec.fingerprint, &spec.kind.cached())
                .map_err(|e| {
                    let why = crate::error::error_text(&e);
                    DateError::text(ErrorKind::Output, format!("{why}; delete it and rerun"))
                })
        } else {
            Ok(Tables::new())
        };
        return msg(body, timings, done);
    }
    if spec.stage.in_date_order(&sh.ctx.config) {
        sh.order.wait_before(date);
    }
    let at_once = spec.stage.dates_at_once();
    sh.gate.enter(date, at_once, sh.large_readers[pos]);
    let (body, ms) = run_stage(sh, pos, date, tables, &timings, stats);
    timings.insert(spec.name.clone(), ms);
    if let Ok(t) = &body {
        let keep: Tables = spec
            .kind
            .cached()
            .into_iter()
            .filter_map(|n| t.get(&n).map(|b| (n, b.clone())))
            .collect();
        sh.cache.submit(date, &spec.name, &rec.fingerprint, keep);
    }
    if body.is_ok() {
        done.insert(spec.name.clone(), sh.ran(rec));
    }
    msg(body, timings, done)
}

/// Runs stage `pos` on one date's input tables, retrying transient I/O errors with backoff;
/// returns its tables (or error) and the milliseconds it took.
fn run_stage(
    sh: &Shared,
    pos: usize,
    date: NaiveDate,
    tables: Tables,
    timings: &BTreeMap<String, f64>,
    stats: &Stats,
) -> (Result<Tables, DateError>, f64) {
    let ctx = &sh.ctx;
    let spec = &ctx.config.pipeline.stages[pos];
    // One span per stage and date (on the thread that runs it), named by the stage's kind.
    let span = (spec.kind.span)(&spec.name, date);
    let _span = span.entered();
    let input_rows: BTreeMap<Table, usize> =
        tables.iter().map(|(k, v)| (*k, v.num_rows())).collect();
    let start = Instant::now();
    let input = StageInput {
        date,
        tables: &tables,
        timings,
        observer: sh.observer.as_ref(),
    };
    let body = guarded(&spec.name, spec.kind.fails_as, date, || {
        spec.stage.run(ctx, spec, &input)
    })
    .and_then(|t| {
        check_output(spec.kind, &t).map(|()| t).map_err(|e| {
            let what = format!("stage `{}` handed on a wrong table: {e}", spec.name);
            DateError::text(ErrorKind::Internal, what)
        })
    });
    let ms = start.elapsed().as_secs_f64() * 1e3;
    if let Ok(t) = &body {
        let mut s = stats.lock().unwrap_or_else(|p| p.into_inner());
        let st = s.entry(spec.name.clone()).or_default();
        st.dates += 1;
        st.ms += ms;
        st.rows += spec
            .kind
            .produces
            .first()
            .and_then(|n| t.get(n))
            .map_or(0, |b| b.num_rows());
        if let Some(main_in) = spec.kind.main_input() {
            st.rows_in += input_rows
                .get(&main_in)
                .copied()
                .or_else(|| t.get(&main_in).map(|b| b.num_rows()))
                .unwrap_or(0);
        }
    }
    tracing::debug!(stage = %spec.name, %date, ms, ok = body.is_ok(), "stage done");
    (body, ms)
}
