//! score: the binary alert scorer applied to every alert of the matrix.

use super::{table, StageInput};
use crate::batch::{ArrowBatch, Tables};
use crate::config::ModelParams;
use crate::features::row_major;
use crate::model::Model;
use crate::stages::decode::make_batch;
use anyhow::{bail, Result};
use arrow::array::{Float64Array, StringArray};
use arrow::record_batch::RecordBatch;
use std::sync::Arc;
use std::time::Instant;

/// Scores rows of `t` (keyed by `id_col`) into `{id_col, score, model_version, latency_ms,
/// explain_json}`. `latency_ms` is the prediction time per row; `explain_json` holds the top-5
/// SHAP contributions when `explain` is on, else "".
pub fn score_table(
    model: &Model,
    t: &RecordBatch,
    id_col: &str,
    explain: bool,
) -> Result<RecordBatch> {
    let start = Instant::now();
    let x = row_major(t, &model.meta.feature_names)?;
    let scores = model.predict(&x)?;
    let n = t.num_rows();
    let per_row = start.elapsed().as_secs_f64() * 1e3 / n.max(1) as f64;
    if let Some(s) = scores.iter().find(|s| !(0.0..=1.0).contains(*s)) {
        bail!(
            "{}: produced score {s} outside [0, 1]; is it a binary model?",
            model.path.display()
        );
    }
    let explain_json = if explain {
        model.explain(&x, &scores)?
    } else {
        vec![String::new(); n]
    };
    make_batch(vec![
        (id_col, t.column_by_name(id_col).expect("id column").clone()),
        ("score", Arc::new(Float64Array::from(scores))),
        (
            "model_version",
            Arc::new(StringArray::from(vec![model.version(); n])),
        ),
        ("latency_ms", Arc::new(Float64Array::from(vec![per_row; n]))),
        ("explain_json", Arc::new(StringArray::from(explain_json))),
    ])
}

/// Produces `alert_scores`.
pub fn run(model: &Model, p: &ModelParams, input: &StageInput) -> Result<Tables> {
    let m = table(input.tables, "matrix")?;
    Ok(Tables::from([(
        "alert_scores".to_string(),
        ArrowBatch(score_table(model, m, "alert_id", p.explain)?),
    )]))
}
