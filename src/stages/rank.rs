//! rank: orders the day's alerts by the lambdarank model; rank 1 is the most urgent.
//! Ties are broken by the scorer's score (higher first), then by alert_id.

use super::score::ModelParams;
use super::{output, table, Context, Kind, Stage, StageInput};
use crate::batch::{Table, Tables};
use crate::config::StageSpec;
use crate::model::{Model, ModelKind};
use crate::stages::decode::make_batch;
use anyhow::Result;
use arrow::array::{Array, AsArray, Float64Array, Int32Array, StringArray};
use arrow::datatypes::Float64Type;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// The rank stage kind.
pub const KIND: Kind = Kind {
    name: "rank",
    consumes: &[Table::Matrix, Table::AlertScores],
    produces: &[Table::AlertRankings],
    fails_as: crate::error::ErrorKind::Model,
    parse: super::parse::<Rank>,
    span: |stage, date| tracing::debug_span!("rank", stage = %stage, %date),
};

/// A rank stage: the lambdarank model named by its [`ModelParams`] (`explain` is not used:
/// rankings carry no explanations).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Rank(pub ModelParams);

impl Stage for Rank {
    fn run(&self, ctx: &Context, stage: &StageSpec, input: &StageInput) -> Result<Tables> {
        run(ctx.model(stage)?, input)
    }

    fn params_json(&self) -> serde_json::Value {
        serde_json::json!(self.0)
    }

    fn model(&self) -> Option<(ModelKind, &str)> {
        Some((ModelKind::AlertRanker, &self.0.model))
    }
}

/// Produces `alert_rankings` (`alert_id, rank, score, model_version`), in rank order.
pub fn run(model: &Model, input: &StageInput) -> Result<Tables> {
    let m = table(input.tables, Table::Matrix)?;
    let s = table(input.tables, Table::AlertScores)?;
    let ids = m
        .column_by_name("alert_id")
        .expect("alert_id")
        .as_string::<i32>();
    let relevance = model.predict_matrix(m)?;
    let sid = s
        .column_by_name("alert_id")
        .expect("alert_id")
        .as_string::<i32>();
    let sc = s
        .column_by_name("score")
        .expect("score")
        .as_primitive::<Float64Type>();
    let score_of: HashMap<&str, f64> = (0..sid.len())
        .map(|i| (sid.value(i), sc.value(i)))
        .collect();
    let score: Vec<f64> = (0..ids.len())
        .map(|i| score_of.get(ids.value(i)).copied().unwrap_or(f64::NAN))
        .collect();
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by(|&a, &b| {
        relevance[b]
            .total_cmp(&relevance[a])
            .then(score[b].total_cmp(&score[a]))
            .then_with(|| ids.value(a).cmp(ids.value(b)))
    });
    let n = order.len();
    let batch = make_batch(vec![
        (
            "alert_id",
            Arc::new(
                order
                    .iter()
                    .map(|&i| Some(ids.value(i)))
                    .collect::<StringArray>(),
            ),
        ),
        ("rank", Arc::new(Int32Array::from_iter_values(1..=n as i32))),
        (
            "score",
            Arc::new(order.iter().map(|&i| score[i]).collect::<Float64Array>()),
        ),
        (
            "model_version",
            Arc::new(StringArray::from(vec![model.version(); n])),
        ),
    ])?;
    Ok(output(Table::AlertRankings, batch))
}
