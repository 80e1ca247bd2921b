//! cluster_score: each cluster's member alerts (through related_alert_ids) aggregated into
//! cluster features, scored by the binary cluster scorer. Every cluster gets a score.

use super::score::{score_table, ModelParams};
use super::{output, table, Context, Kind, Stage, StageInput};
use crate::batch::{Table, Tables};
use crate::calibration::Calibration;
use crate::config::StageSpec;
use crate::features::{build_cluster_matrix, cluster_memberships};
use crate::model::{Model, ModelKind};
use anyhow::Result;
use serde::{Deserialize, Serialize};

/// The cluster_score stage kind.
pub const KIND: Kind = Kind {
    name: "cluster_score",
    consumes: &[Table::Matrix, Table::Clusters],
    produces: &[Table::ClusterScores],
    fails_as: crate::error::ErrorKind::Model,
    parse: super::parse::<ClusterScore>,
    span: |stage, date| tracing::debug_span!("cluster_score", stage = %stage, %date),
};

/// A cluster_score stage: the cluster scorer with its [`ModelParams`].
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(transparent)]
pub struct ClusterScore(pub ModelParams);

impl Stage for ClusterScore {
    fn run(&self, ctx: &Context, stage: &StageSpec, input: &StageInput) -> Result<Tables> {
        run(ctx.model(stage)?, &self.0, input)
    }

    fn params_json(&self) -> serde_json::Value {
        serde_json::json!(self.0)
    }

    fn model(&self) -> Option<(ModelKind, &str)> {
        Some((ModelKind::ClusterScorer, &self.0.model))
    }
}

/// Produces `cluster_scores` (`cluster_id, score, model_version, latency_ms, explain_json`).
pub fn run(model: &Model, p: &ModelParams, input: &StageInput) -> Result<Tables> {
    let (clusters, matrix) = (
        table(input.tables, Table::Clusters)?,
        table(input.tables, Table::Matrix)?,
    );
    let cm = build_cluster_matrix(clusters, matrix, &cluster_memberships(clusters, matrix)?)?;
    Ok(output(
        Table::ClusterScores,
        score_table(model, &cm, "cluster_id", p.explain, Calibration::None)?,
    ))
}
