//! cluster_score: each cluster's member alerts (through related_alert_ids) aggregated into
//! cluster features, scored by the binary cluster scorer. Every cluster gets a score.

use super::{table, StageInput};
use crate::batch::{ArrowBatch, Tables};
use crate::config::ModelParams;
use crate::features::{build_cluster_matrix, cluster_memberships};
use crate::model::Model;
use crate::stages::score::score_table;
use anyhow::Result;

/// Produces `cluster_scores` (`cluster_id, score, model_version, latency_ms, explain_json`).
pub fn run(model: &Model, p: &ModelParams, input: &StageInput) -> Result<Tables> {
    let (clusters, matrix) = (
        table(input.tables, "clusters")?,
        table(input.tables, "matrix")?,
    );
    let cm = build_cluster_matrix(clusters, matrix, &cluster_memberships(clusters, matrix)?)?;
    Ok(Tables::from([(
        "cluster_scores".to_string(),
        ArrowBatch(score_table(model, &cm, "cluster_id", p.explain)?),
    )]))
}
