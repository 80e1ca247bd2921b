//! feature_join: alerts ⟕ address features, plus network, cluster, within-day and calendar
//! features, into the model matrix (see [`crate::features`]).

use super::StageInput;
use crate::batch::{ArrowBatch, Tables};
use crate::features::build_matrix;
use anyhow::Result;

/// Builds the `matrix` table.
pub fn run(input: &StageInput) -> Result<Tables> {
    let m = build_matrix(input.date, input.tables)?;
    Ok(Tables::from([("matrix".to_string(), ArrowBatch(m))]))
}
