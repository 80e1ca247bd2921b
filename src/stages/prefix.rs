//! Running the first stages of the graph for one date, outside the engine: what `train`,
//! `features`, `compare` and `validate` need of a date (its decoded tables, its matrix), with
//! the pipeline file's parameters, exactly as a run computes them.

use super::{Context, Kind, LogObserver, StageInput};
use crate::batch::Tables;
use crate::config::RunConfig;
use anyhow::{anyhow, Result};
use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use std::collections::{BTreeMap, BTreeSet};

/// Where feature join finds a date's address history.
pub enum History {
    /// The tables `pipeline run` prepared under the output root ([`crate::history::prepare`]).
    Prepared,
    /// Tables computed in memory ([`crate::history::in_memory`]), by date.
    InMemory(BTreeMap<NaiveDate, RecordBatch>),
}

impl History {
    /// The history table of `date`.
    pub fn of(&self, cfg: &RunConfig, date: NaiveDate) -> Result<RecordBatch> {
        match self {
            Self::Prepared => crate::history::load(cfg, date),
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
    Context::for_stages(cfg.clone(), |s| need.contains(&s.name), history)
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
