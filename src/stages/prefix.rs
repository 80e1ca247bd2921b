//! Running the first stages of the graph for one date, outside the engine: what `train`,
//! `features`, `compare` and `validate` need of a date (its decoded tables, its matrix), with
//! the pipeline file's parameters, exactly as a run computes them.

use super::{Context, Kind, LogObserver, StageInput};
use crate::background::{Background, Progress};
use crate::batch::Tables;
use crate::config::RunConfig;
use anyhow::{anyhow, Result};
use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// Where feature join finds a date's address history.
pub enum History {
    /// The tables `pipeline run` prepares under the output root ([`crate::history::prepare`]),
    /// on a thread of its own while the first stages run ([`History::start`]).
    Prepared(Mutex<Option<Pass>>),
    /// Tables computed in memory ([`crate::history::in_memory`]), by date.
    InMemory(BTreeMap<NaiveDate, RecordBatch>),
}

/// A history pass under way: its work, and the dates whose tables it has written so far.
#[derive(Clone)]
pub struct Pass {
    work: Arc<Background<()>>,
    written: Arc<Progress<()>>,
}

impl History {
    /// The tables prepared under the output root, with no pass under way.
    pub fn prepared() -> Self {
        Self::Prepared(Mutex::default())
    }

    /// Makes [`History::of`] wait for `work`, the preparation of the dates about to run, until
    /// it has written the date asked for (`written` hears of each).
    pub fn start(&self, work: Background<()>, written: Arc<Progress<()>>) {
        if let Self::Prepared(p) = self {
            let work = Arc::new(work);
            *p.lock().unwrap_or_else(|e| e.into_inner()) = Some(Pass { work, written });
        }
    }

    /// Waits for the pass [`History::start`] began; its error, if it failed.
    pub fn finish(&self) -> Result<()> {
        match self.pass() {
            Some(p) => p.work.get().map(|_| ()),
            None => Ok(()),
        }
    }

    fn pass(&self) -> Option<Pass> {
        match self {
            Self::Prepared(p) => p.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            Self::InMemory(_) => None,
        }
    }

    /// The history table of `date`, once the pass under way has written it; its flow-history
    /// columns only if `flows` ([`crate::history::load`]).
    pub fn of(&self, cfg: &RunConfig, date: NaiveDate, flows: bool) -> Result<RecordBatch> {
        if let Some(p) = self.pass() {
            if p.written.wait(&[date]).is_empty() {
                p.work.get()?;
            }
        }
        match self {
            Self::Prepared(_) => crate::history::load(cfg, date, flows),
            Self::InMemory(m) => m
                .get(&date)
                .cloned()
                .ok_or_else(|| anyhow!("internal: no address history computed for {date}")),
        }
    }
}

/// A context for the prefix of the graph that `until` ends: the models of its stages only.
pub fn prefix_context(cfg: &RunConfig, until: &Kind, history: History) -> Result<Context> {
    let need = prefix_of(cfg, until)?;
    Context::for_stages(cfg.clone(), |s| need.contains(&s.name), history, None)
}

/// The names of the stages `until` depends on, and its own: the prefix of the graph it ends.
fn prefix_of(cfg: &RunConfig, until: &Kind) -> Result<BTreeSet<String>> {
    let p = &cfg.pipeline;
    let end = p.stage_of(until).ok_or_else(|| {
        anyhow!(
            "{}: the pipeline has no {} stage",
            p.path.display(),
            until.name
        )
    })?;
    let mut need = BTreeSet::from([end.name.clone()]);
    for s in p.stages.iter().rev() {
        if need.contains(&s.name) {
            need.extend(s.inputs.iter().cloned());
        }
    }
    Ok(need)
}

/// Runs, for one date, the first stage of kind `until` and every stage it depends on, in graph
/// order; returns all the tables they produced. `ctx` must hold their models
/// ([`prefix_context`]).
pub fn run_prefix(ctx: &Context, date: NaiveDate, until: &Kind) -> Result<Tables> {
    let need = prefix_of(&ctx.config, until)?;
    let mut tables = Tables::new();
    let timings = BTreeMap::new();
    for s in ctx
        .config
        .pipeline
        .stages
        .iter()
        .filter(|s| need.contains(&s.name))
    {
        let input = StageInput {
            date,
            tables: &tables,
            timings: &timings,
            observer: &LogObserver,
        };
        let out = s.stage.run(ctx, s, &input)?;
        super::check_output(s.kind, &out).map_err(|e| {
            anyhow::anyhow!("internal: stage `{}` handed on a wrong table: {e}", s.name)
        })?;
        tables.extend(out);
    }
    Ok(tables)
}
