//! validate: judges the files as written against the batch, as the miner template and the
//! subnet validators do (see [`crate::validation`]), plus structural checks of the rankings
//! and cluster scores, and writes `validation.json`. A failed integrity tier, Tier-1 gate or
//! structural check fails the date.
//!
//! Tier 2's stability part needs the previous date's scores; inside a run that date may still
//! be in flight on another worker, so `validation.json` uses the no-history value (0.7) and the
//! cross-date figure is in the summary written after the run ([`summarize`]).

use super::{table, Context, StageInput};
use crate::batch::{ArrowBatch, Tables};
use crate::config::{RunConfig, ValidateParams};
use crate::contract::column;
use crate::io::ParquetSource;
use crate::stages::decode::make_batch;
use crate::state::write_output_json;
use crate::validation::{
    behaviour, ground_truth, integrity, plagiarism, tier1, tier2, Check, ScoreTable, ScoredAlert,
    Trap,
};
use anyhow::{bail, Context as _, Result};
use arrow::array::{AsArray, BooleanArray, StringArray};
use arrow::datatypes::{Float64Type, Int32Type};
use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Tier 2's stability part without a previous date, as the validators score it.
const NO_HISTORY: f64 = 0.7;

fn strings(b: &RecordBatch, name: &str) -> Vec<String> {
    column(b, name).map_or_else(Vec::new, |c| {
        c.as_string::<i32>()
            .iter()
            .map(|v| v.unwrap_or_default().to_owned())
            .collect()
    })
}

/// Reads an `alert_scores.parquet` as written, tolerating missing columns (reported, not fatal).
pub fn read_scores(path: &Path) -> Result<ScoreTable> {
    let b = ParquetSource::open(path)?.read_all(&[
        "alert_id",
        "score",
        "model_version",
        "latency_ms",
    ])?;
    let missing_columns: Vec<String> = ["alert_id", "score", "model_version", "latency_ms"]
        .iter()
        .filter(|c| column(&b, c).is_none())
        .map(|c| c.to_string())
        .collect();
    let ids = strings(&b, "alert_id");
    let f64s = |name: &str| -> Vec<Option<f64>> {
        column(&b, name)
            .and_then(|c| crate::contract::to_f64(c, "", name).ok())
            .map_or_else(|| vec![None; b.num_rows()], |a| a.iter().collect())
    };
    let score = f64s("score");
    let lat = f64s("latency_ms");
    let ver = strings(&b, "model_version");
    let rows = (0..b.num_rows())
        .map(|i| ScoredAlert {
            alert_id: ids.get(i).cloned().unwrap_or_default(),
            score: score[i],
            model_version: ver.get(i).cloned().unwrap_or_default(),
            latency_ms: lat[i],
        })
        .collect();
    Ok(ScoreTable {
        rows,
        missing_columns,
    })
}

fn score_pairs(t: &ScoreTable) -> Vec<(String, f64)> {
    t.rows
        .iter()
        .filter_map(|r| r.score.map(|s| (r.alert_id.clone(), s)))
        .collect()
}

fn score_map(path: &Path) -> Result<Option<HashMap<String, f64>>> {
    if !path.exists() {
        return Ok(None);
    }
    Ok(Some(score_pairs(&read_scores(path)?).into_iter().collect()))
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
    let ranked: HashSet<String> = strings(rankings, "alert_id").into_iter().collect();
    let all_ranked =
        ranked.len() == alert_ids.len() && alert_ids.iter().all(|a| ranked.contains(a));
    let scored: HashSet<String> = strings(clusters, "cluster_id").into_iter().collect();
    let cluster_scores_ok = column(clusters, "score")
        .and_then(|c| c.as_primitive_opt::<Float64Type>())
        .is_some_and(|s| {
            s.iter()
                .all(|v| v.is_some_and(|v| (0.0..=1.0).contains(&v)))
        });
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
            passed: all_scored && clusters.num_rows() == cluster_ids.len() && cluster_scores_ok,
            detail: format!(
                "{} cluster scores in [0, 1] for {} clusters",
                clusters.num_rows(),
                cluster_ids.len()
            ),
        },
    ]
}

/// The batch facts validation needs: alert ids with their addresses, and cluster ids.
pub struct BatchFacts {
    /// Alert ids, in batch order.
    pub alert_ids: Vec<String>,
    /// Address of each alert.
    pub addresses: Vec<String>,
    /// Cluster ids.
    pub cluster_ids: Vec<String>,
}

impl BatchFacts {
    /// From decoded `alerts` and `clusters` tables.
    pub fn from_tables(alerts: &RecordBatch, clusters: &RecordBatch) -> Self {
        Self {
            alert_ids: strings(alerts, "alert_id"),
            addresses: strings(alerts, "address"),
            cluster_ids: strings(clusters, "cluster_id"),
        }
    }
}

fn rel(pipeline: &Path, p: &str) -> Option<PathBuf> {
    (!p.is_empty()).then(|| {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            pipeline.parent().unwrap_or(Path::new(".")).join(p)
        }
    })
}

/// Loads the traps file, if configured.
pub fn load_traps(p: &ValidateParams, cfg: &RunConfig) -> Result<Vec<Trap>> {
    match rel(&cfg.pipeline.path, &p.traps) {
        None => Ok(Vec::new()),
        Some(path) => serde_json::from_slice(
            &crate::io::read_regular(&path)
                .with_context(|| format!("cannot read traps file {}", path.display()))?,
        )
        .with_context(|| {
            format!(
                "{}: expected a JSON list of {{\"alert_id\", \"expected_score\"}}",
                path.display()
            )
        }),
    }
}

/// Judges one date's written outputs; returns the report and the failures that fail the date.
pub fn judge(
    p: &ValidateParams,
    cfg: &RunConfig,
    ground_truth_labels: &HashMap<String, bool>,
    traps: &[Trap],
    date: NaiveDate,
    facts: &BatchFacts,
    previous: Option<&HashMap<String, f64>>,
) -> Result<(serde_json::Value, Vec<String>)> {
    let dir = cfg.output_dir(date);
    let scores = read_scores(&dir.join("alert_scores.parquet"))?;
    let read = |f: &str| {
        ParquetSource::open(&dir.join(f))?.read_all(&["alert_id", "cluster_id", "score", "rank"])
    };
    let rankings = read("alert_rankings.parquet")?;
    let clusters = read("cluster_scores.parquet")?;
    let pairs = score_pairs(&scores);
    let integ = integrity(&scores, &facts.alert_ids, p.max_latency_ms);
    let behav = behaviour(&pairs, traps);
    let gt = ground_truth(&pairs, ground_truth_labels);
    let t1 = tier1(&scores, &facts.alert_ids);
    let reference = match rel(&cfg.pipeline.path, &p.reference) {
        Some(root) => score_map(
            &crate::config::batch_dir(&root, &cfg.network, date, cfg.window_days)
                .join("alert_scores.parquet"),
        )?,
        None => None,
    };
    let address_of: HashMap<String, String> = facts
        .alert_ids
        .iter()
        .cloned()
        .zip(facts.addresses.iter().cloned())
        .collect();
    let (t2, t2_parts) = tier2(&pairs, reference.as_ref(), previous, &address_of);
    let copied = reference.as_ref().map(|r| {
        plagiarism(
            &pairs,
            &r.iter().map(|(k, v)| (k.clone(), *v)).collect::<Vec<_>>(),
        )
    });
    let structural = structure(&rankings, &clusters, &facts.alert_ids, &facts.cluster_ids);
    let total = integ.score + behav.score + gt.score;
    let all_passed = integ.passed && behav.passed && gt.passed;
    let report = json!({
        "processing_date": date.format("%Y-%m-%d").to_string(),
        "total": total,
        "all_passed": all_passed,
        "integrity": integ,
        "behaviour": behav,
        "ground_truth": gt,
        "validator": {
            "tier1": t1,
            "tier2": { "score": t2, "parts": t2_parts, "history": previous.is_some() },
        },
        "plagiarism_vs_reference": copied,
        "structure": { "passed": structural.iter().all(|c| c.passed), "checks": structural },
    });
    let failures: Vec<String> = integ
        .checks
        .iter()
        .chain(&t1.checks)
        .chain(&structural)
        .filter(|c| !c.passed)
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect();
    Ok((report, failures))
}

/// Validates the written outputs and writes `validation.json`.
pub fn run(p: &ValidateParams, ctx: &Context, input: &StageInput) -> Result<Tables> {
    let facts = BatchFacts::from_tables(
        table(input.tables, "alerts")?,
        table(input.tables, "clusters")?,
    );
    let traps = load_traps(p, &ctx.config)?;
    let (report, failures) = judge(
        p,
        &ctx.config,
        &ctx.ground_truth,
        &traps,
        input.date,
        &facts,
        None,
    )?;
    let dir = ctx.config.output_dir(input.date);
    write_output_json(&ctx.config.output, &dir.join("validation.json"), &report)?;
    if !failures.is_empty() {
        bail!(
            "validation failed for {}: {}",
            dir.display(),
            failures.join("; ")
        );
    }
    let out = make_batch(vec![
        (
            "check",
            Arc::new(StringArray::from(vec!["integrity", "tier1", "structure"])),
        ),
        (
            "passed",
            Arc::new(BooleanArray::from(vec![true, true, true])),
        ),
    ])?;
    Ok(Tables::from([("validation".to_string(), ArrowBatch(out))]))
}

/// Summary across dates, written to `{output}/{network}/validation_summary_{window}d.json`:
/// each date's tiers from its `validation.json`, with Tier 2 recomputed against the previous
/// calendar date's scores where that date has outputs.
pub fn summarize(cfg: &RunConfig, dates: &[NaiveDate]) -> Result<PathBuf> {
    let mut rows = Vec::new();
    let mut totals = Vec::new();
    let mut all = true;
    for &date in dates {
        let dir = cfg.output_dir(date);
        let Ok(bytes) = crate::io::read_regular(&dir.join("validation.json")) else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: not JSON", dir.join("validation.json").display()))?;
        let prev_path = cfg
            .output_dir(date.pred_opt().unwrap_or(date))
            .join("alert_scores.parquet");
        let tier2_score = v["validator"]["tier2"]["score"].as_f64().unwrap_or(0.0);
        let (tier2_score, stability) = match score_map(&prev_path)? {
            Some(prev) => {
                let scores = score_pairs(&read_scores(&dir.join("alert_scores.parquet"))?);
                let (_, parts) = tier2(&scores, None, Some(&prev), &HashMap::new());
                let stability = parts["stability"].as_f64().unwrap_or(NO_HISTORY);
                (
                    tier2_score + 0.25 * (stability - NO_HISTORY),
                    Some(stability),
                )
            }
            None => (tier2_score, None),
        };
        let total = v["total"].as_f64().unwrap_or(0.0);
        totals.push(total);
        all &= v["all_passed"].as_bool().unwrap_or(false);
        rows.push(json!({
            "processing_date": v["processing_date"],
            "total": total,
            "all_passed": v["all_passed"],
            "integrity": v["integrity"]["score"],
            "behaviour": v["behaviour"]["score"],
            "ground_truth": v["ground_truth"]["score"],
            "auc_roc": v["ground_truth"]["auc_roc"],
            "tier1": v["validator"]["tier1"]["score"],
            "tier2": tier2_score,
            "tier2_stability_vs_previous_date": stability,
        }));
    }
    let summary = json!({
        "network": cfg.network,
        "window_days": cfg.window_days,
        "dates": rows,
        "mean_total": if totals.is_empty() { None } else { Some(totals.iter().sum::<f64>() / totals.len() as f64) },
        "all_passed": all && !totals.is_empty(),
    });
    let path = cfg
        .output
        .join(&cfg.network)
        .join(format!("validation_summary_{}d.json", cfg.window_days));
    std::fs::create_dir_all(path.parent().expect("has parent"))?;
    write_output_json(&cfg.output, &path, &summary)?;
    Ok(path)
}
