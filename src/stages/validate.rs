//! validate: the miner template's integrity tier, run on the files as written and the
//! batch's alerts, plus structural checks of the rankings and cluster scores. The result is
//! written to `validation.json`; a failed check fails the date.

use super::{table, Context, StageInput};
use crate::batch::{ArrowBatch, Tables};
use crate::config::ValidateParams;
use crate::contract::column;
use crate::io::{write_json, ParquetSource};
use crate::stages::decode::make_batch;
use anyhow::{bail, Result};
use arrow::array::{Array, AsArray, BooleanArray, StringArray};
use arrow::datatypes::{Float64Type, Int32Type};
use arrow::record_batch::RecordBatch;
use serde::Serialize;
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;

/// One named check and its outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Check name, e.g. `row_count`.
    pub name: &'static str,
    /// Whether it passed.
    pub passed: bool,
    /// What was found.
    pub detail: String,
}

fn ids(b: &RecordBatch, name: &str) -> Vec<String> {
    column(b, name).map_or_else(Vec::new, |c| {
        c.as_string::<i32>()
            .iter()
            .map(|v| v.unwrap_or_default().to_owned())
            .collect()
    })
}

/// The integrity tier (fail-fast, in the template's order): row count, required columns,
/// scores in [0, 1], mean latency, equal alert_id sets, then no duplicate ids.
pub fn integrity(scores: &RecordBatch, alert_ids: &[String], max_latency_ms: f64) -> Vec<Check> {
    let mut out = Vec::new();
    let mut push = |name, passed, detail: String| {
        out.push(Check {
            name,
            passed,
            detail,
        });
        passed
    };
    if !push(
        "row_count",
        scores.num_rows() == alert_ids.len(),
        format!(
            "{} output rows for {} alerts",
            scores.num_rows(),
            alert_ids.len()
        ),
    ) {
        return out;
    }
    let missing: Vec<&str> = ["alert_id", "score", "model_version", "latency_ms"]
        .into_iter()
        .filter(|c| column(scores, c).is_none())
        .collect();
    if !push(
        "required_columns",
        missing.is_empty(),
        format!("missing: {missing:?}"),
    ) {
        return out;
    }
    let s = scores.column_by_name("score").unwrap();
    let bad = s.as_primitive_opt::<Float64Type>().map(|s| {
        (0..s.len())
            .filter(|&i| s.is_null(i) || !(0.0..=1.0).contains(&s.value(i)))
            .count()
    });
    if !push(
        "score_range",
        bad == Some(0),
        format!("{} scores outside [0, 1] or null", bad.unwrap_or(s.len())),
    ) {
        return out;
    }
    let lat = scores
        .column_by_name("latency_ms")
        .unwrap()
        .as_primitive_opt::<Float64Type>()
        .map(|l| {
            let v: Vec<f64> = l.iter().flatten().collect();
            if v.is_empty() {
                0.0
            } else {
                v.iter().sum::<f64>() / v.len() as f64
            }
        });
    if !push(
        "mean_latency",
        lat.is_some_and(|l| l <= max_latency_ms),
        format!("mean latency_ms {:?} (limit {max_latency_ms})", lat),
    ) {
        return out;
    }
    let got = ids(scores, "alert_id");
    let a: HashSet<&String> = got.iter().collect();
    let b: HashSet<&String> = alert_ids.iter().collect();
    if !push(
        "alert_id_sets",
        a == b,
        format!(
            "{} ids missing from output, {} unknown ids",
            b.difference(&a).count(),
            a.difference(&b).count()
        ),
    ) {
        return out;
    }
    push(
        "unique_alert_ids",
        a.len() == got.len(),
        format!("{} duplicate ids", got.len() - a.len()),
    );
    out
}

/// Rankings are a permutation of 1..N over the alerts; every cluster has one score.
pub fn structure(
    rankings: &RecordBatch,
    clusters: &RecordBatch,
    alert_ids: &[String],
    cluster_ids: &[String],
) -> Vec<Check> {
    let mut ranks: Vec<i32> = column(rankings, "rank")
        .and_then(|c| c.as_primitive_opt::<Int32Type>())
        .map_or_else(Vec::new, |r| r.iter().flatten().collect());
    ranks.sort_unstable();
    let perm =
        ranks.len() == alert_ids.len() && ranks.iter().enumerate().all(|(i, &r)| r == i as i32 + 1);
    let ranked: HashSet<String> = ids(rankings, "alert_id").into_iter().collect();
    let all_ranked =
        ranked.len() == alert_ids.len() && alert_ids.iter().all(|a| ranked.contains(a));
    let scored: HashSet<String> = ids(clusters, "cluster_id").into_iter().collect();
    let all_scored =
        scored.len() == cluster_ids.len() && cluster_ids.iter().all(|c| scored.contains(c));
    vec![
        Check {
            name: "ranks_permutation",
            passed: perm && all_ranked,
            detail: format!("{} ranks for {} alerts", ranks.len(), alert_ids.len()),
        },
        Check {
            name: "clusters_scored",
            passed: all_scored && clusters.num_rows() == cluster_ids.len(),
            detail: format!(
                "{} cluster scores for {} clusters",
                clusters.num_rows(),
                cluster_ids.len()
            ),
        },
    ]
}

/// Reads the written outputs back, checks them and writes `validation.json`.
pub fn run(p: &ValidateParams, ctx: &Context, input: &StageInput) -> Result<Tables> {
    let dir = ctx.config.output_dir(input.date);
    let alerts = table(input.tables, "alerts")?;
    let clusters_in = table(input.tables, "clusters")?;
    let read = |f: &str| {
        ParquetSource::open(&dir.join(f))?.read_all(&[
            "alert_id",
            "cluster_id",
            "score",
            "model_version",
            "latency_ms",
            "rank",
        ])
    };
    let scores = read("alert_scores.parquet")?;
    let rankings = read("alert_rankings.parquet")?;
    let clusters = read("cluster_scores.parquet")?;
    let alert_ids = ids(alerts, "alert_id");
    let cluster_ids = ids(clusters_in, "cluster_id");
    let integ = integrity(&scores, &alert_ids, p.max_latency_ms);
    let integ_ok = integ.iter().all(|c| c.passed) && integ.len() == 6;
    let structural = structure(&rankings, &clusters, &alert_ids, &cluster_ids);
    let struct_ok = structural.iter().all(|c| c.passed);
    let report = json!({
        "processing_date": input.date.format("%Y-%m-%d").to_string(),
        "integrity": { "passed": integ_ok, "score": if integ_ok { 0.2 } else { 0.0 }, "checks": integ },
        "structure": { "passed": struct_ok, "checks": structural },
        "all_passed": integ_ok && struct_ok,
    });
    write_json(&dir.join("validation.json"), &report)?;
    if !(integ_ok && struct_ok) {
        let failed: Vec<_> = integ
            .iter()
            .chain(&structural)
            .filter(|c| !c.passed)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        bail!(
            "validation failed for {}: {}",
            dir.display(),
            failed.join("; ")
        );
    }
    let out = make_batch(vec![
        (
            "check",
            Arc::new(StringArray::from(
                integ
                    .iter()
                    .chain(&structural)
                    .map(|c| c.name)
                    .collect::<Vec<_>>(),
            )),
        ),
        (
            "passed",
            Arc::new(BooleanArray::from(
                integ
                    .iter()
                    .chain(&structural)
                    .map(|c| c.passed)
                    .collect::<Vec<_>>(),
            )),
        ),
    ])?;
    Ok(Tables::from([("validation".to_string(), ArrowBatch(out))]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Float64Array;

    fn scores(ids: &[&str], s: &[f64], lat: f64) -> RecordBatch {
        make_batch(vec![
            ("alert_id", Arc::new(StringArray::from(ids.to_vec()))),
            ("score", Arc::new(Float64Array::from(s.to_vec()))),
            (
                "model_version",
                Arc::new(StringArray::from(vec!["v"; ids.len()])),
            ),
            (
                "latency_ms",
                Arc::new(Float64Array::from(vec![lat; ids.len()])),
            ),
        ])
        .unwrap()
    }

    #[test]
    fn integrity_checks_fail_fast_in_order() {
        let ids = vec!["a".to_string(), "b".to_string()];
        let ok = integrity(&scores(&["a", "b"], &[0.1, 0.9], 1.0), &ids, 100.0);
        assert!(ok.iter().all(|c| c.passed) && ok.len() == 6);
        let c = integrity(&scores(&["a"], &[0.1], 1.0), &ids, 100.0);
        assert_eq!((c.len(), c[0].passed), (1, false));
        let c = integrity(&scores(&["a", "b"], &[0.1, 1.5], 1.0), &ids, 100.0);
        assert_eq!(c.last().unwrap().name, "score_range");
        assert!(!c.last().unwrap().passed);
        let c = integrity(&scores(&["a", "b"], &[0.1, 0.5], 150.0), &ids, 100.0);
        assert_eq!(
            (c.last().unwrap().name, c.last().unwrap().passed),
            ("mean_latency", false)
        );
        let c = integrity(&scores(&["a", "c"], &[0.1, 0.5], 1.0), &ids, 100.0);
        assert_eq!(
            (c.last().unwrap().name, c.last().unwrap().passed),
            ("alert_id_sets", false)
        );
        let c = integrity(
            &scores(&["a", "a"], &[0.1, 0.5], 1.0),
            &["a".to_string(), "a".to_string()],
            100.0,
        );
        assert_eq!(
            (c.last().unwrap().name, c.last().unwrap().passed),
            ("unique_alert_ids", false)
        );
    }
}
