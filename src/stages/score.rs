//! score: the binary alert scorer applied to every alert of the matrix.

use super::{output, table, Context, Kind, Stage, StageInput};
use crate::batch::{Table, Tables};
use crate::calibration::Calibration;
use crate::config::StageSpec;
use crate::model::{Model, ModelKind};
use crate::stages::decode::make_batch;
use anyhow::{bail, Context as _, Result};
use arrow::array::{Float64Array, StringArray};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;

/// The score stage kind.
pub const KIND: Kind = Kind {
    name: "score",
    consumes: &[Table::Matrix],
    produces: &[Table::AlertScores],
    fails_as: crate::error::ErrorKind::Model,
    parse: super::parse::<Score>,
    span: |stage, date| tracing::debug_span!("score", stage = %stage, %date),
};

/// Parameters of a stage that applies a model (score, rank, cluster_score).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelParams {
    /// `latest` (newest installed model of the stage's type) or a path to a model file.
    pub model: String,
    /// Write SHAP explanations (`explain_json`) with the scores; off is faster.
    pub explain: bool,
}

impl Default for ModelParams {
    fn default() -> Self {
        Self {
            model: "latest".into(),
            explain: true,
        }
    }
}

/// Parameters of the score stage: the alert scorer's [`ModelParams`] and how its
/// probabilities are mapped before they are written ([`Calibration`]).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Score {
    /// `latest` (newest installed alert scorer) or a path to a model file.
    pub model: String,
    /// Write SHAP explanations (`explain_json`) with the scores; off is faster.
    pub explain: bool,
    /// `none`, `rank_percentile` or `isotonic`; ranks and AUC are the same with each.
    pub calibration: Calibration,
}

impl Default for Score {
    fn default() -> Self {
        let m = ModelParams::default();
        Self {
            model: m.model,
            explain: m.explain,
            calibration: Calibration::default(),
        }
    }
}

impl Stage for Score {
    fn run(&self, ctx: &Context, stage: &StageSpec, input: &StageInput) -> anyhow::Result<Tables> {
        run(ctx.model(stage)?, self, input)
    }

    fn params_json(&self) -> serde_json::Value {
        serde_json::json!(self)
    }

    fn model(&self) -> Option<(ModelKind, &str)> {
        Some((ModelKind::AlertScorer, &self.model))
    }

    /// An isotonic calibration needs a scorer that carries its map.
    fn check(&self, _: &crate::config::RunConfig, model: Option<&Model>) -> anyhow::Result<()> {
        match model {
            Some(m) => self
                .calibration
                .check(m.meta.calibration.as_ref())
                .with_context(|| m.path.display().to_string()),
            None => Ok(()),
        }
    }
}

/// Scores rows of `t` (keyed by `id_col`) into `{id_col, score, model_version, latency_ms,
/// explain_json}`, the model's probabilities mapped by `calibration`. `latency_ms` is the
/// prediction time per row; `explain_json` holds the score and the top-5 SHAP contributions
/// (in the model's raw log-odds) when `explain` is on, else "".
pub fn score_table(
    model: &Model,
    t: &RecordBatch,
    id_col: &str,
    explain: bool,
    calibration: Calibration,
) -> Result<RecordBatch> {
    let start = Instant::now();
    let mut scores = model.predict_matrix(t)?;
    if let Some(s) = scores.iter().find(|s| !(0.0..=1.0).contains(*s)) {
        bail!(
            "{}: produced score {s} outside [0, 1]; is it a binary model?",
            model.path.display()
        );
    }
    calibration
        .apply(&mut scores, model.meta.calibration.as_ref())
        .with_context(|| model.path.display().to_string())?;
    let n = t.num_rows();
    let per_row = start.elapsed().as_secs_f64() * 1e3 / n.max(1) as f64;
    let explain_json = if explain {
        model.explain_matrix(t, &scores)?
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
pub fn run(model: &Model, p: &Score, input: &StageInput) -> Result<Tables> {
    let m = table(input.tables, Table::Matrix)?;
    Ok(output(
        Table::AlertScores,
        score_table(model, m, "alert_id", p.explain, p.calibration)?,
    ))
}
