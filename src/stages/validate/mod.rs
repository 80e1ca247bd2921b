//! validate: judges the files as written against the batch, as the miner template and the
//! subnet validators do (see [`crate::validation`]), plus structural checks of the rankings
//! and cluster scores, and writes `validation.json`. A failed integrity tier, Tier-1 gate or
//! structural check fails the date.
//!
//! Tier 2's consistency part needs the previous date's scores; inside a run that date may still
//! be in flight on another worker, so `validation.json` uses the no-history value (0.7) and the
//! cross-date figure is in the summary written after the run ([`summarize`]).
//!
//! The validator's Tier 1 fails the date only on the outputs' own faults (an alert missing, a
//! score out of range, a duplicate); a missing `model_github_url` makes its gate fail and the
//! expected reward 0, which the report and the run summary say, but the outputs are sound.

mod facts;

use facts::{strings, structure};
pub use facts::{BatchFacts, Submitted};

use super::{output, Context, Kind, Part, Stage, StageInput};
use crate::batch::{Table, Tables};
use crate::config::{RunConfig, StageSpec};
use crate::contract::column;
use crate::io::ParquetSource;
use crate::labels::{LabelMap, Labels};
use crate::layout;
use crate::stages::decode::make_batch;
use crate::state::write_output_json;
use crate::validation::{
    behaviour, ground_truth, integrity, plagiarism, Check, GroundTruth, ScoreTable, Tier, Trap,
};
use crate::validator::{self, AddressGroups, Reward, Tier1, Tier2, Tier3a, TIER3B_UNAVAILABLE};
use anyhow::{bail, Context as _, Result};
use arrow::array::{Array, BooleanArray, StringArray};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The validate stage kind.
pub const KIND: Kind = Kind {
    name: "validate",
    consumes: &[Table::Alerts, Table::Clusters, Table::Written],
    produces: &[Table::Validation],
    fails_as: crate::error::ErrorKind::Validation,
    parse: super::parse::<ValidateParams>,
    span: |stage, date| tracing::debug_span!("validate", stage = %stage, %date),
};

/// Parameters of the validate stage.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ValidateParams {
    /// Upper bound on mean per-alert latency (ms) for the integrity tier.
    pub max_latency_ms: f64,
    /// Pattern traps: a JSON file `[{"alert_id": …, "expected_score": …}, …]` (relative to the
    /// pipeline file), or empty for none.
    pub traps: String,
    /// Reference scores for the validators' Spearman part: an output tree with the same layout
    /// (relative to the pipeline file), or empty for none.
    pub reference: String,
}

impl Default for ValidateParams {
    fn default() -> Self {
        Self {
            max_latency_ms: 100.0,
            traps: String::new(),
            reference: String::new(),
        }
    }
}

impl Stage for ValidateParams {
    fn run(&self, ctx: &Context, _: &StageSpec, input: &StageInput) -> Result<Tables> {
        run(self, ctx, input)
    }

    fn params_json(&self) -> serde_json::Value {
        json!(self)
    }

    /// The labels it judges with, the traps, and the submission settings Tier 1 checks.
    fn common_parts(&self, cfg: &RunConfig) -> Result<Vec<(String, Part)>> {
        let mut parts = Vec::new();
        for (name, file) in [
            ("ground_truth", layout::GROUND_TRUTH),
            ("address_labels", layout::ADDRESS_LABELS),
        ] {
            let path = cfg.labels_dir().join(file);
            if path.exists() {
                parts.push((name.to_string(), Part::File(path)));
            }
        }
        let submission = json!({
            "model_github_url": cfg.model_github_url,
            "first_submission_date": cfg.first_submission_date,
        });
        parts.push(("submission".to_string(), Part::Text(submission.to_string())));
        if let Some(traps) = rel(&cfg.pipeline.path, &self.traps) {
            parts.push(("traps".to_string(), Part::File(traps)));
        }
        Ok(parts)
    }

    fn output_files(&self) -> &'static [&'static str] {
        &[layout::VALIDATION]
    }
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
    let f64s = |name: &str| -> Vec<Option<f64>> {
        column(&b, name)
            .and_then(|c| crate::contract::to_f64(c, "", name).ok())
            .map_or_else(|| vec![None; b.num_rows()], |a| a.iter().collect())
    };
    Ok(ScoreTable::new(
        strings(&b, "alert_id"),
        f64s("score"),
        strings(&b, "model_version"),
        f64s("latency_ms"),
        missing_columns,
    ))
}

fn score_pairs(t: &ScoreTable) -> Vec<(&str, f64)> {
    t.rows()
        .filter_map(|r| r.score.map(|s| (r.alert_id, s)))
        .collect()
}

fn score_map(path: &Path) -> Result<Option<HashMap<String, f64>>> {
    if !path.exists() {
        return Ok(None);
    }
    let scores = read_scores(path)?;
    let pairs = score_pairs(&scores).into_iter();
    Ok(Some(pairs.map(|(k, v)| (k.to_string(), v)).collect()))
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

/// What validation knows beyond a date's outputs and batch: the network's labels and traps.
#[derive(Debug, Default)]
pub struct Knowledge {
    /// Ground truth, `alert_id → is_sar_filed` (the template's ground-truth tier).
    pub ground_truth: LabelMap<bool>,
    /// Address label rows, `address → [illicit, …]` (the validator's Tier 3A).
    pub address_labels: LabelMap<Vec<bool>>,
    /// Pattern traps (the template's behaviour tier).
    pub traps: Vec<Trap>,
}

impl Knowledge {
    /// Reads the labels of `cfg`'s network (either file may be absent) and `p`'s traps; the
    /// ground truth of the alerts of `dates` only, when given ([`Knowledge::with_traps`]).
    pub fn load(cfg: &RunConfig, p: &ValidateParams, dates: Option<&[NaiveDate]>) -> Result<Self> {
        Self::with_traps(cfg, load_traps(p, cfg)?, dates)
    }

    /// Reads the labels of `cfg`'s network (either file may be absent), with `traps`. Given
    /// `dates` (the dates to be judged, their batches in the input tree) with fewer alerts than
    /// a labels file has rows, that file is kept for their alerts (the ground truth) or their
    /// addresses (the address labels) only: both files grow with the network's history, and a
    /// daily run then holds one day's worth of them (a long backfill keeps all: listing its
    /// alerts would cost more).
    pub fn with_traps(
        cfg: &RunConfig,
        traps: Vec<Trap>,
        dates: Option<&[NaiveDate]>,
    ) -> Result<Self> {
        let (gt, al) = (layout::GROUND_TRUTH, layout::ADDRESS_LABELS);
        Ok(Self {
            ground_truth: labels_for(cfg, dates, gt, "alert_id", Labels::ground_truth)?,
            address_labels: labels_for(cfg, dates, al, "address", Labels::validator_rows)?,
            traps,
        })
    }
}

/// The labels file `name` of `cfg`'s network read by `read`: kept for the `column` values of
/// the alerts of `dates` when they are fewer than its rows ([`run_keys`]); empty when absent.
fn labels_for<V: Default>(
    cfg: &RunConfig,
    dates: Option<&[NaiveDate]>,
    name: &str,
    column: &str,
    read: impl FnOnce(&Path, Option<&LabelMap<()>>) -> Result<V>,
) -> Result<V> {
    let path = cfg.labels_dir().join(name);
    if !crate::io::present(&path)? {
        return Ok(V::default());
    }
    let rows = ParquetSource::open(&path)?.num_rows();
    let wanted = dates.and_then(|d| run_keys(cfg, d, column, rows));
    read(&path, wanted.as_ref())
}

/// The values of `column` (`alert_id` or `address`) in the alerts of `dates`, or `None` if they
/// hold `limit` alerts or more (by their files' footers): a labels file with no more rows than
/// that is read whole. A date whose alerts cannot be read adds none, and a null is skipped:
/// decode refuses both, so they are never judged.
fn run_keys(
    cfg: &RunConfig,
    dates: &[NaiveDate],
    column: &str,
    limit: usize,
) -> Option<LabelMap<()>> {
    let paths: Vec<PathBuf> = (dates.iter())
        .map(|&d| cfg.input_dir(d).join("alerts.parquet"))
        .collect();
    let alerts: usize = (paths.iter())
        .filter_map(|p| ParquetSource::open(p).ok())
        .map(|s| s.num_rows())
        .sum();
    if alerts >= limit {
        return None;
    }
    let mut out = LabelMap::with_capacity(alerts, 0);
    for (path, date) in paths.iter().zip(dates) {
        let read = (|| -> Result<()> {
            let f = path.display().to_string();
            for b in ParquetSource::open_with_views(path, &[column])?
                .read(&[column], crate::io::STREAM_ROWS)?
            {
                let b = b?;
                if b.num_columns() == 0 {
                    continue;
                }
                let keys = crate::contract::to_str_view(
                    crate::contract::required(&b, &f, column)?,
                    &f,
                    column,
                )?;
                for k in keys.iter().flatten() {
                    out.insert(k, ());
                }
            }
            Ok(())
        })();
        if let Err(e) = read {
            tracing::debug!(%date, "{column} of the alerts, for the labels, not read: {e:#}");
        }
    }
    Some(out)
}

/// A date's `validation.json`: the miner template's tiers, the subnet validator's figures and
/// the structural checks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The date judged.
    pub processing_date: NaiveDate,
    /// The template's total: integrity + behaviour + ground truth.
    pub total: f64,
    /// Whether the template's three tiers passed.
    pub all_passed: bool,
    /// The template's integrity tier.
    pub integrity: Tier,
    /// The template's behaviour tier.
    pub behaviour: Tier,
    /// The template's ground-truth tier (against the generator's or the fetched labels).
    pub ground_truth: GroundTruth,
    /// What the subnet's validator would compute.
    pub validator: ValidatorFigures,
    /// The plagiarism check against the reference scores, when a reference is configured.
    pub plagiarism_vs_reference: Option<Check>,
    /// Rankings and cluster scores checked against the batch.
    pub structure: Structure,
}

/// The subnet validator's tiers and reward for one date.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ValidatorFigures {
    /// The Tier 1 gate.
    pub tier1: Tier1,
    /// Tier 2 (behaviour).
    pub tier2: Tier2,
    /// Tier 3A (AUC against address labels × coverage).
    pub tier3a: Tier3a,
    /// Tier 3B, which cannot be computed here.
    pub tier3b: Unavailable,
    /// The expected reward.
    pub reward: Reward,
    /// The URL the submission carries (Tier 1 needs it).
    pub model_github_url: Option<String>,
}

/// A figure that cannot be computed, and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Unavailable {
    /// Always false.
    pub available: bool,
    /// Why.
    pub why: String,
}

/// The structural checks and whether all passed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Structure {
    /// Whether every check passed.
    pub passed: bool,
    /// The checks.
    pub checks: Vec<Check>,
}

impl Report {
    /// Reads a date's report; `None` when it has none.
    pub fn read(path: &Path) -> Result<Option<Self>> {
        let Some(bytes) = crate::io::read_if_present(path)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes).map(Some).with_context(|| {
            format!(
                "{}: not a validation report of this version; rerun `pipeline validate`",
                path.display()
            )
        })
    }
}

/// Judges one date's written outputs; returns the report and the failures that fail the date.
pub fn judge(
    p: &ValidateParams,
    cfg: &RunConfig,
    known: &Knowledge,
    date: NaiveDate,
    facts: &BatchFacts,
    previous: Option<&HashMap<String, f64>>,
) -> Result<(Report, Vec<String>)> {
    let dir = cfg.output_dir(date);
    // The structural checks read two more files: on a thread of their own beside the tiers.
    std::thread::scope(|s| {
        let structural = s.spawn(|| structure(&dir, facts));
        let scores = read_scores(&dir.join(layout::ALERT_SCORES))?;
        let pairs = score_pairs(&scores);
        let integ = integrity(&scores, &facts.alert_ids, p.max_latency_ms);
        let behav = behaviour(&pairs, &known.traps);
        let gt = ground_truth(&pairs, &known.ground_truth);
        let consensus = match rel(&cfg.pipeline.path, &p.reference) {
            Some(root) => score_map(
                &layout::batch_dir(&root, &cfg.network, date, cfg.window_days)
                    .join(layout::ALERT_SCORES),
            )?,
            None => None,
        };
        let url = cfg.model_github_url.as_deref().unwrap_or("");
        let rows: Vec<validator::Row> = scores
            .rows()
            .map(|r| validator::Row {
                alert_id: r.alert_id,
                score: r.score.unwrap_or(f64::NAN),
                model_version: r.model_version,
                model_github_url: url,
            })
            .collect();
        let submitted = facts.submitted(rows.iter().map(|r| r.alert_id), &pairs);
        let t1 = validator::tier1(&rows, submitted.distinct_rows, facts.alert_ids.len());
        let address_of = facts.addresses_of(&pairs, submitted.scored_in_order);
        let t2 = validator::tier2(&pairs, consensus.as_ref(), previous, &address_of);
        let t3a = validator::tier3a(
            &pairs,
            submitted.distinct_scored,
            &address_of,
            &known.address_labels,
        );
        let days = cfg.first_submission_date.map(|f| (date - f).num_days());
        let reward = validator::reward(&t1, &t2, &t3a, days);
        let copied = consensus.as_ref().map(|r| {
            plagiarism(
                &pairs,
                &r.iter().map(|(k, v)| (k.as_str(), *v)).collect::<Vec<_>>(),
            )
        });
        let structural = structural
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))?;
        let failures = failures(
            &integ,
            &structural,
            &t1,
            rows.is_empty() && facts.alert_ids.is_empty(),
        );
        let report = Report {
            processing_date: date,
            total: integ.score + behav.score + gt.score,
            all_passed: integ.passed && behav.passed && gt.passed,
            integrity: integ,
            behaviour: behav,
            ground_truth: gt,
            validator: ValidatorFigures {
                tier1: t1,
                tier2: t2,
                tier3a: t3a,
                tier3b: Unavailable {
                    available: false,
                    why: TIER3B_UNAVAILABLE.to_string(),
                },
                reward,
                model_github_url: cfg.model_github_url.clone(),
            },
            plagiarism_vs_reference: copied,
            structure: Structure {
                passed: structural.iter().all(|c| c.passed),
                checks: structural,
            },
        };
        Ok((report, failures))
    })
}

/// What fails a date: the integrity and structural checks that failed, and the Tier 1 figures
/// short of 1 (`empty`: a day without alerts, where they are 0 of 0 and nothing is at fault).
fn failures(integ: &Tier, structural: &[Check], t1: &Tier1, empty: bool) -> Vec<String> {
    let own_faults = [
        (
            "tier1 completeness",
            t1.completeness,
            "of the batch's alerts scored",
        ),
        (
            "tier1 score_range",
            t1.score_range,
            "of the scores in [0, 1]",
        ),
        (
            "tier1 no_duplicates",
            t1.no_duplicates,
            "distinct alert ids per row",
        ),
    ];
    integ
        .checks
        .iter()
        .chain(structural)
        .filter(|c| !c.passed)
        .map(|c| format!("{}: {}", c.name, c.detail))
        .chain(
            own_faults
                .iter()
                .filter(|f| f.1 < 1.0 && !empty)
                .map(|(name, v, what)| format!("{name}: {v:.4} {what}")),
        )
        .collect()
}

/// One line on the expected reward: the score, or its bounds while the consensus is unknown,
/// and why it is what it is.
pub fn reward_line(r: &Reward) -> String {
    let value = match r.score {
        Some(s) => format!("{s:.4}"),
        None => format!(
            "{:.4}–{:.4} (rank correlation unknown: no consensus given, or constant scores)",
            r.bounds[0], r.bounds[1]
        ),
    };
    let days = r.days_since_first_submission.map_or_else(
        || "first_submission_date not set".to_string(),
        |d| format!("day {d}"),
    );
    format!("{value} [{}, {days}]", r.status)
}

/// Validates the written outputs and writes `validation.json`.
pub fn run(p: &ValidateParams, ctx: &Context, input: &StageInput) -> Result<Tables> {
    let facts = BatchFacts::from_tables(input.tables)?;
    let (report, failures) = judge(
        p,
        &ctx.config,
        ctx.knowledge.get()?,
        input.date,
        &facts,
        None,
    )?;
    let dir = ctx.config.output_dir(input.date);
    write_output_json(&ctx.config.output, &dir.join(layout::VALIDATION), &report)?;
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
    Ok(output(Table::Validation, out))
}

/// Summary across dates, written to `{output}/{network}/validation_summary_{window}d.json`:
/// each date's tiers from its `validation.json`, with the validator's Tier 2 consistency (and
/// so the expected reward) recomputed against the previous calendar date's scores where that
/// date has outputs. Returns its path and the mean expected reward (`None` without dates).
pub fn summarize(cfg: &RunConfig, dates: &[NaiveDate]) -> Result<(PathBuf, Option<Reward>)> {
    let mut rows = Vec::new();
    let mut totals = Vec::new();
    let mut rewards: Vec<Reward> = Vec::new();
    let mut all = true;
    for &date in dates {
        let dir = cfg.output_dir(date);
        let Some(v) = Report::read(&dir.join(layout::VALIDATION))? else {
            continue;
        };
        let ValidatorFigures {
            tier1: t1,
            tier2: mut t2,
            tier3a: t3a,
            mut reward,
            ..
        } = v.validator;
        let prev_path = cfg
            .output_dir(date.pred_opt().unwrap_or(date))
            .join(layout::ALERT_SCORES);
        let mut consistency = None;
        if let Some(prev) = score_map(&prev_path)? {
            let table = read_scores(&dir.join(layout::ALERT_SCORES))?;
            let scores = score_pairs(&table);
            let no_addresses = AddressGroups::new(&scores, |_| None);
            let c = validator::tier2(&scores, None, Some(&prev), &no_addresses).consistency;
            t2 = t2.with_consistency(c);
            reward = validator::reward(&t1, &t2, &t3a, reward.days_since_first_submission);
            consistency = Some(c);
        }
        totals.push(v.total);
        all &= v.all_passed;
        rows.push(json!({
            "processing_date": v.processing_date,
            "total": v.total,
            "all_passed": v.all_passed,
            "integrity": v.integrity.score,
            "behaviour": v.behaviour.score,
            "ground_truth": v.ground_truth.score,
            "auc_roc": v.ground_truth.auc_roc,
            "tier1": t1.score,
            "tier2": t2.score,
            "tier2_bounds": t2.bounds,
            "tier2_consistency_vs_previous_date": consistency,
            "tier3a_auc": t3a.auc,
            "tier3a_coverage": t3a.coverage,
            "reward": reward,
        }));
        rewards.push(reward);
    }
    let mean = mean_reward(&rewards);
    let summary = json!({
        "network": cfg.network,
        "window_days": cfg.window_days,
        "dates": rows,
        "mean_total": if totals.is_empty() { None } else { Some(totals.iter().sum::<f64>() / totals.len() as f64) },
        "all_passed": all && !totals.is_empty(),
        "mean_reward": mean,
    });
    let path = layout::validation_summary(&cfg.output, &cfg.network, cfg.window_days);
    std::fs::create_dir_all(path.parent().expect("has parent"))?;
    write_output_json(&cfg.output, &path, &summary)?;
    Ok((path, mean))
}

/// The mean of several days' rewards: scores and bounds averaged; the status shared by all
/// days, else `mixed`; the days of the last.
fn mean_reward(rewards: &[Reward]) -> Option<Reward> {
    let last = rewards.last()?;
    let n = rewards.len() as f64;
    let mean = |f: &dyn Fn(&Reward) -> f64| rewards.iter().map(f).sum::<f64>() / n;
    let bounds = [mean(&|r| r.bounds[0]), mean(&|r| r.bounds[1])];
    Some(Reward {
        status: if rewards.iter().all(|r| r.status == last.status) {
            last.status.clone()
        } else {
            "mixed".to_string()
        },
        days_since_first_submission: last.days_since_first_submission,
        score: rewards
            .iter()
            .all(|r| r.score.is_some())
            .then_some(bounds[0]),
        bounds,
        tier3: mean(&|r| r.tier3),
    })
}
