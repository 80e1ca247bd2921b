//! fetch: the graph's first stage. It lets a date in once its batch and the batches of its
//! history window are in the input tree ([`crate::arrivals`]): downloaded from the run
//! config's `source` when there is one (from the run's start, in date order, while earlier
//! dates run), passed through when the batches are local. The engine plans each date when it
//! leaves this stage, so a fetched date is planned from what was fetched. It produces no
//! tables: the stages after it read the batch from the input tree.

use super::{Context, Kind, Stage, StageInput};
use crate::batch::Tables;
use crate::config::StageSpec;
use anyhow::Result;
use serde::{Deserialize, Serialize};

/// The fetch stage kind.
pub const KIND: Kind = Kind {
    name: "fetch",
    consumes: &[],
    produces: &[],
    fails_as: crate::error::ErrorKind::Input,
    parse: super::parse::<FetchParams>,
    span: |stage, date| tracing::debug_span!("fetch", stage = %stage, %date),
};

/// Parameters of the fetch stage: none. Where to fetch from is the run config's (`source`,
/// `endpoint`, `region`, `fetch_concurrency`): it differs between machines, not pipelines.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FetchParams {}

impl Stage for FetchParams {
    fn run(&self, ctx: &Context, _: &StageSpec, input: &StageInput) -> Result<Tables> {
        ctx.arrivals.wait(input.date)?;
        Ok(Tables::new())
    }

    fn params_json(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    fn brings_input(&self) -> bool {
        true
    }
}
