//! cluster_score: each cluster's member alerts (through related_alert_ids) aggregated into
//! cluster features, scored by the binary cluster scorer. Every cluster gets a score.

use super::score::{score_table, ModelParams};
use super::{output, table, Context, Kind, Stage, StageInput};
use crate::batch::{Table, Tables};
use crate::calibration::Calibration;
use crate::config::StageSpec;
use crate::features::{cluster_matrix_blocks, cluster_memberships};
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

/// Clusters whose features are built and scored at a time: 32,768 clusters' matrix (265
/// `f64` columns, 69 MB) is made, scored and dropped before the next. A cluster's score and
/// explanation are its own row's, so the blocks change no output; the whole cluster matrix of
/// a 10× day (105K clusters, 224 MB) was held beside the alert matrix. Each block reads every
/// alert column again at its members' rows, which are spread over the day: on the 10× day,
/// blocks of 16,384 took the stage from 0.7–0.8 to 1.3 s, these 0.9–1.0 s.
pub const CLUSTER_BLOCK: usize = 32_768;

/// Produces `cluster_scores` (`cluster_id, score, model_version, latency_ms, explain_json`),
/// [`CLUSTER_BLOCK`] clusters at a time.
pub fn run(model: &Model, p: &ModelParams, input: &StageInput) -> Result<Tables> {
    let (clusters, matrix) = (
        table(input.tables, Table::Clusters)?,
        table(input.tables, Table::Matrix)?,
    );
    let members = cluster_memberships(clusters, matrix)?;
    let scored = cluster_matrix_blocks(clusters, matrix, &members, CLUSTER_BLOCK)
        .map(|cm| score_table(model, &cm?, "cluster_id", p.explain, Calibration::None))
        .collect::<Result<Vec<_>>>()?;
    let scores = arrow::compute::concat_batches(&scored[0].schema(), &scored)?;
    Ok(output(Table::ClusterScores, scores))
}
