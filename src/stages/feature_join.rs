//! feature_join: alerts ⟕ address features, plus network, cluster, within-day and calendar
//! features, and the address history prepared before the run ([`crate::history`]), into the
//! model matrix (see [`crate::features`]).

use super::{Context, StageInput};
use crate::batch::{ArrowBatch, Tables};
use crate::features::build_matrix;
use anyhow::Result;

/// Builds the `matrix` table.
pub fn run(ctx: &Context, input: &StageInput) -> Result<Tables> {
    let history = crate::history::load(&ctx.config, input.date)?;
    let m = build_matrix(input.date, input.tables, &history)?;
    Ok(Tables::from([("matrix".to_string(), ArrowBatch(m))]))
}
