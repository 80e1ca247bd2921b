//! feature_join: alerts ⟕ address features, plus network, cluster, within-day and calendar
//! features, and the address history prepared before the run ([`crate::history`]), into the
//! model matrix (see [`crate::features`]).

use super::{output, Context, DateInput, Kind, Stage, StageInput};
use crate::batch::{Table, Tables};
use crate::config::StageSpec;
use crate::features::build_matrix;
use anyhow::Result;
use serde::{Deserialize, Serialize};

/// The feature_join stage kind.
pub const KIND: Kind = Kind {
    name: "feature_join",
    consumes: &[
        Table::Alerts,
        Table::Features,
        Table::Clusters,
        Table::Flows,
        Table::Network,
    ],
    produces: &[Table::Matrix],
    fails_as: crate::error::ErrorKind::Input,
    parse: super::parse::<FeatureJoin>,
    span: |stage, date| tracing::debug_span!("feature_join", stage = %stage, %date),
};

/// A feature_join stage (no parameters).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureJoin {}

impl Stage for FeatureJoin {
    fn run(&self, ctx: &Context, _: &StageSpec, input: &StageInput) -> Result<Tables> {
        run(ctx, input)
    }

    fn params_json(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    fn date_inputs(&self) -> &'static [DateInput] {
        &[DateInput::AlertHistory]
    }
}

/// Builds the `matrix` table.
pub fn run(ctx: &Context, input: &StageInput) -> Result<Tables> {
    let history = || ctx.history.of(&ctx.config, input.date, ctx.graph_features);
    let m = build_matrix(input.date, input.tables, history, ctx.graph_features)?;
    Ok(output(Table::Matrix, m))
}
