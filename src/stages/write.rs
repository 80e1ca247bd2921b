//! write: the date's outputs under `{output}/{network}/{date}/{window_days}/`. Every file is
//! first written under a temporary name in the staging directory (outside every date
//! directory); only when all are written are they renamed into
//! place, `processing_metadata.json` last, so a date's outputs appear whole or not at all.

use super::{output, table, Context, Kind, Stage, StageInput};
use crate::batch::{Table, Tables};
use crate::config::StageSpec;
use crate::io::{json_temp, parquet_temp};
use crate::layout;
use crate::model::ModelKind;
use crate::stages::decode::{make_batch, ISSUE_COUNTS};
use anyhow::{Context as _, Result};
use arrow::array::{AsArray, Int64Array, StringArray};
use arrow::datatypes::Int64Type;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;

/// The write stage kind.
pub const KIND: Kind = Kind {
    name: "write",
    consumes: &[
        Table::BatchInfo,
        Table::AlertScores,
        Table::AlertRankings,
        Table::ClusterScores,
    ],
    produces: &[Table::Written],
    fails_as: crate::error::ErrorKind::Output,
    parse: super::parse::<Write>,
    span: |stage, date| tracing::debug_span!("write", stage = %stage, %date),
};

/// A write stage (no parameters).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Write {}

impl Stage for Write {
    fn run(&self, ctx: &Context, _: &StageSpec, input: &StageInput) -> Result<Tables> {
        run(ctx, input)
    }

    fn params_json(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    fn output_files(&self) -> &'static [&'static str] {
        &layout::OUTPUTS
    }
}

/// Writes the outputs; produces `written` (file, rows).
pub fn run(ctx: &Context, input: &StageInput) -> Result<Tables> {
    let dir = ctx.config.output_dir(input.date);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let scores = table(input.tables, Table::AlertScores)?;
    let rankings = table(input.tables, Table::AlertRankings)?;
    let clusters = table(input.tables, Table::ClusterScores)?;
    let info = table(input.tables, Table::BatchInfo)?;
    let count = |name: &str| {
        info.column_by_name(name)
            .map_or(0, |c| c.as_primitive::<Int64Type>().value(0))
    };
    let total: f64 = input.timings.values().sum();
    let mut latencies = serde_json::Map::new();
    for (k, v) in input.timings {
        latencies.insert(k.clone(), json!(v));
    }
    latencies.insert("total".into(), json!(total));
    let meta = json!({
        "processing_date": input.date.format("%Y-%m-%d").to_string(),
        "network": ctx.config.network,
        "window_days": ctx.config.window_days,
        "processed_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "input_counts": {
            "alerts": count("alerts"), "features": count("features"),
            "clusters": count("clusters"), "money_flows": count("money_flows"),
        },
        "input_issues": ISSUE_COUNTS.iter().map(|k| (k.to_string(), json!(count(k)))).collect::<serde_json::Map<_, _>>(),
        "output_counts": {
            "alert_scores": scores.num_rows(), "alert_rankings": rankings.num_rows(),
            "cluster_scores": clusters.num_rows(),
        },
        "latencies_ms": latencies,
        "model_versions": {
            "alert_scorer": ctx.model_version(ModelKind::AlertScorer),
            "alert_ranker": ctx.model_version(ModelKind::AlertRanker),
            "cluster_scorer": ctx.model_version(ModelKind::ClusterScorer),
        },
        "status": "COMPLETED",
        "error_message": null,
    });
    let staging = layout::staging(&ctx.config.output);
    std::fs::create_dir_all(&staging)
        .with_context(|| format!("cannot create {}", staging.display()))?;
    // The three Parquet files are encoded side by side; none is visible before all are written.
    let temp = |i: usize, batch| parquet_temp(&staging, &dir.join(layout::OUTPUTS[i]), batch);
    let (scores_file, rankings_file, clusters_file) = std::thread::scope(|s| {
        let scores_file = s.spawn(|| temp(0, scores));
        let clusters_file = s.spawn(|| temp(2, clusters));
        let rankings_file = temp(1, rankings);
        let join = crate::background::joined;
        (join(scores_file), rankings_file, join(clusters_file))
    });
    let files = [
        scores_file?,
        rankings_file?,
        clusters_file?,
        json_temp(&staging, &dir.join(layout::OUTPUTS[3]), &meta)?,
    ];
    for f in files {
        f.commit()?;
    }
    let rows = [
        scores.num_rows(),
        rankings.num_rows(),
        clusters.num_rows(),
        1,
    ];
    let written = make_batch(vec![
        (
            "file",
            Arc::new(StringArray::from(layout::OUTPUTS.to_vec())),
        ),
        (
            "rows",
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|&r| r as i64))),
        ),
    ])?;
    Ok(output(Table::Written, written))
}
