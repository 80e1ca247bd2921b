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
use rustc_hash::FxHashMap as HashMap;
use serde::{Deserialize, Serialize};
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
    // The scores come in the matrix's order when score ran on the same matrix (always, in a
    // run); otherwise each alert's score is looked up by its id.
    let same_order = sid.len() == ids.len() && (0..ids.len()).all(|i| sid.value(i) == ids.value(i));
    let score: Vec<f64> = if same_order {
        (0..ids.len()).map(|i| sc.value(i)).collect()
    } else {
        let score_of: HashMap<&str, f64> = (0..sid.len())
            .map(|i| (sid.value(i), sc.value(i)))
            .collect();
        (0..ids.len())
            .map(|i| score_of.get(ids.value(i)).copied().unwrap_or(f64::NAN))
            .collect()
    };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::ArrowBatch;
    use arrow::array::ArrayRef;
    use arrow::record_batch::RecordBatch;

    fn ranked(model: &Model, matrix: &RecordBatch, scores: RecordBatch) -> RecordBatch {
        let tables = Tables::from([
            (Table::Matrix, ArrowBatch(matrix.clone())),
            (Table::AlertScores, ArrowBatch(scores)),
        ]);
        let input = StageInput {
            date: chrono::NaiveDate::from_ymd_opt(2025, 10, 1).unwrap(),
            tables: &tables,
            timings: &Default::default(),
            observer: &super::super::LogObserver,
        };
        run(model, &input).unwrap()[&Table::AlertRankings].0.clone()
    }

    #[test]
    fn rankings_do_not_depend_on_the_order_of_the_scores() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("trained_models");
        let path = Model::resolve(&dir, ModelKind::AlertRanker, "latest").unwrap();
        let model = Model::load(&path, ModelKind::AlertRanker).unwrap();
        let n = 200;
        let ids: Vec<String> = (0..n).map(|i| format!("alert-{i:03}")).collect();
        let mut cols: Vec<(&str, ArrayRef)> =
            vec![("alert_id", Arc::new(StringArray::from(ids.clone())))];
        let names = ModelKind::AlertRanker.feature_names();
        for (f, name) in names.iter().enumerate() {
            let v = (0..n).map(|i| ((i * 37 + f * 11) % 23) as f64 / 7.0);
            cols.push((name, Arc::new(Float64Array::from_iter_values(v))));
        }
        let matrix = make_batch(cols).unwrap();
        // Few distinct scores, so the ties between relevances fall to them and then to ids.
        let score = |i: usize| (i % 5) as f64 / 4.0;
        let scores = |order: &[usize]| {
            make_batch(vec![
                (
                    "alert_id",
                    Arc::new(StringArray::from_iter_values(
                        order.iter().map(|&i| &ids[i]),
                    )) as ArrayRef,
                ),
                (
                    "score",
                    Arc::new(Float64Array::from_iter_values(
                        order.iter().map(|&i| score(i)),
                    )),
                ),
            ])
            .unwrap()
        };
        let in_order: Vec<usize> = (0..n).collect();
        let shuffled: Vec<usize> = (0..n).map(|i| (i * 73) % n).collect();
        let a = ranked(&model, &matrix, scores(&in_order));
        let b = ranked(&model, &matrix, scores(&shuffled));
        assert_eq!(a, b);
        let s = a
            .column_by_name("score")
            .unwrap()
            .as_primitive::<Float64Type>();
        assert!(
            s.iter().all(|v| v.is_some_and(|v| !v.is_nan())),
            "every alert has its score"
        );
    }
}
