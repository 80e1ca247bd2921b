//! `pipeline compare`: A/B comparison of two output trees (two models) on the same batches.
//!
//! Each side is judged date by date with every validation tier; the ground-truth AUC of the
//! two is compared on the alerts labelled in both, with a 95% confidence interval for the
//! difference from a seeded paired bootstrap. The report is written as `report.json`,
//! `report.md` and a self-contained `report.html` with SVG plots.

use crate::config::RunConfig;
use crate::labels::Labels;
use crate::metrics::{auc_roc, pr_curve, roc_curve};
use crate::stages::validate::ValidateParams;
use crate::stages::validate::{judge, read_scores, BatchFacts, Knowledge};
use anyhow::{anyhow, Context, Result};
use chrono::NaiveDate;
use plotters::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What to compare.
pub struct CompareOptions {
    /// Output root of model A.
    pub a: PathBuf,
    /// Output root of model B.
    pub b: PathBuf,
    /// Directory for report.json, report.md and report.html.
    pub report: PathBuf,
    /// Bootstrap resamples for the AUC difference.
    pub bootstrap: usize,
    /// Seed of the bootstrap.
    pub seed: u64,
    /// Ground truth to judge by, instead of the input's `ground_truth.parquet`.
    pub ground_truth: Option<PathBuf>,
}

/// One side's labelled scores over all dates, keyed by alert_id.
type Side = HashMap<String, f64>;

/// The comparison's verdict on ground-truth AUC.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verdict {
    /// AUC of A on the alerts labelled and scored by both.
    pub auc_a: Option<f64>,
    /// AUC of B on the same alerts.
    pub auc_b: Option<f64>,
    /// AUC(A) − AUC(B).
    pub difference: Option<f64>,
    /// 95% paired-bootstrap interval of the difference.
    pub ci95: Option<(f64, f64)>,
    /// `a`, `b` or `tie`.
    pub winner: String,
    /// Whether the interval excludes 0.
    pub significant: bool,
    /// Labelled alerts compared.
    pub n: usize,
}

/// Paired bootstrap of AUC(a) − AUC(b) over labelled alerts (resampled with replacement).
pub fn auc_difference(a: &[f64], b: &[f64], y: &[bool], resamples: usize, seed: u64) -> Verdict {
    let auc_a = auc_roc(a, y);
    let auc_b = auc_roc(b, y);
    let difference = auc_a.zip(auc_b).map(|(x, z)| x - z);
    let mut diffs = Vec::with_capacity(resamples);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = y.len();
    if difference.is_some() {
        let (mut ra, mut rb, mut ry) = (vec![0.0; n], vec![0.0; n], vec![false; n]);
        for _ in 0..resamples {
            for k in 0..n {
                let i = rng.gen_range(0..n);
                ra[k] = a[i];
                rb[k] = b[i];
                ry[k] = y[i];
            }
            if let (Some(x), Some(z)) = (auc_roc(&ra, &ry), auc_roc(&rb, &ry)) {
                diffs.push(x - z);
            }
        }
    }
    diffs.sort_by(f64::total_cmp);
    let ci95 = (diffs.len() >= 20).then(|| {
        let q = |p: f64| diffs[((diffs.len() - 1) as f64 * p).round() as usize];
        (q(0.025), q(0.975))
    });
    let significant = ci95.is_some_and(|(lo, hi)| lo > 0.0 || hi < 0.0);
    let winner = match difference {
        Some(d) if d > 0.0 => "a",
        Some(d) if d < 0.0 => "b",
        _ => "tie",
    };
    Verdict {
        auc_a,
        auc_b,
        difference,
        ci95,
        winner: winner.into(),
        significant,
        n,
    }
}

/// Compares the two trees over `dates` and writes the report; returns the verdict.
pub fn compare(cfg: &RunConfig, dates: &[NaiveDate], opts: &CompareOptions) -> Result<Verdict> {
    let mut labels = Labels::load(&cfg.input, &cfg.network)?;
    if let Some(gt) = &opts.ground_truth {
        labels.alerts = Labels::ground_truth(gt, None)?;
    }
    let params = ValidateParams::default();
    let known = Knowledge {
        ground_truth: labels.alerts.clone(),
        address_labels: Labels::validator_rows(
            &cfg.labels_dir().join(crate::layout::ADDRESS_LABELS),
            None,
        )?,
        traps: Vec::new(),
    };
    let mut per_date = Vec::new();
    let (mut side_a, mut side_b): (Side, Side) = (HashMap::new(), HashMap::new());
    let (mut all_a, mut all_b) = (Vec::new(), Vec::new());
    let decode = &crate::stages::decode::KIND;
    let ctx = crate::stages::prefix_context(cfg, decode, crate::stages::History::prepared())?;
    for &date in dates {
        let t = crate::stages::run_prefix(&ctx, date, decode)
            .with_context(|| format!("date {date}"))?;
        let facts = BatchFacts::from_tables(&t)?;
        let mut row = serde_json::Map::new();
        row.insert("processing_date".into(), json!(date.to_string()));
        for (name, root, side, all) in [
            ("a", &opts.a, &mut side_a, &mut all_a),
            ("b", &opts.b, &mut side_b, &mut all_b),
        ] {
            let mut c = cfg.clone();
            c.output = root.clone();
            let scores_path = c.output_dir(date).join(crate::layout::ALERT_SCORES);
            if !scores_path.exists() {
                row.insert(
                    name.into(),
                    json!({ "missing": scores_path.display().to_string() }),
                );
                continue;
            }
            let (report, failures) = judge(&params, &c, &known, date, &facts, None)?;
            row.insert(
                name.into(),
                json!({
                    "total": report.total, "integrity": report.integrity.score,
                    "behaviour": report.behaviour.score, "ground_truth": report.ground_truth.score,
                    "auc_roc": report.ground_truth.auc_roc, "tier1": report.validator.tier1.score,
                    "tier2": report.validator.tier2.score,
                    "tier3a_auc": report.validator.tier3a.auc,
                    "reward": report.validator.reward.score, "failures": failures,
                }),
            );
            for r in read_scores(&scores_path)?.rows() {
                if let Some(s) = r.score {
                    all.push(s);
                    if labels.alerts.contains_key(r.alert_id) {
                        side.insert(r.alert_id.to_string(), s);
                    }
                }
            }
        }
        per_date.push(serde_json::Value::Object(row));
    }
    let mut ids: Vec<&String> = side_a.keys().filter(|k| side_b.contains_key(*k)).collect();
    ids.sort();
    let a: Vec<f64> = ids.iter().map(|k| side_a[*k]).collect();
    let b: Vec<f64> = ids.iter().map(|k| side_b[*k]).collect();
    let y: Vec<bool> = ids.iter().map(|k| labels.alerts[*k]).collect();
    let verdict = auc_difference(&a, &b, &y, opts.bootstrap, opts.seed);
    std::fs::create_dir_all(&opts.report)
        .with_context(|| format!("cannot create {}", opts.report.display()))?;
    let report = json!({
        "a": opts.a.display().to_string(), "b": opts.b.display().to_string(),
        "network": cfg.network, "window_days": cfg.window_days,
        "dates": per_date, "verdict": verdict, "bootstrap_resamples": opts.bootstrap,
    });
    crate::io::write_json(&opts.report.join("report.json"), &report)?;
    let md = markdown(&report, &verdict);
    crate::io::write_atomic(&opts.report.join("report.md"), |w| {
        Ok(std::io::Write::write_all(w, md.as_bytes())?)
    })?;
    let html = html(&report, &verdict, (&a, &b, &y), (&all_a, &all_b))?;
    crate::io::write_atomic(&opts.report.join("report.html"), |w| {
        Ok(std::io::Write::write_all(w, html.as_bytes())?)
    })?;
    Ok(verdict)
}

fn fmt(v: &serde_json::Value) -> String {
    v.as_f64()
        .map_or_else(|| "–".to_string(), |x| format!("{x:.4}"))
}

fn verdict_line(v: &Verdict) -> String {
    match (v.difference, v.ci95) {
        (Some(d), Some((lo, hi))) => format!(
            "Winner: **{}** — AUC A {:.4} vs B {:.4}, difference {d:+.4} (95% CI {lo:+.4} … {hi:+.4}, {}), on {} labelled alerts.",
            v.winner.to_uppercase(),
            v.auc_a.unwrap_or(f64::NAN),
            v.auc_b.unwrap_or(f64::NAN),
            if v.significant { "significant" } else { "not significant" },
            v.n
        ),
        _ => format!("No verdict: {} labelled alerts scored by both, not enough for an AUC with both classes.", v.n),
    }
}

fn markdown(r: &serde_json::Value, v: &Verdict) -> String {
    let mut s = format!(
        "# A/B comparison\n\nA: `{}`\n\nB: `{}`\n\n{}\n\n",
        r["a"].as_str().unwrap_or(""),
        r["b"].as_str().unwrap_or(""),
        verdict_line(v)
    );
    s.push_str("| date | A total | B total | A AUC | B AUC | A tier3A AUC | B tier3A AUC |\n|---|---|---|---|---|---|---|\n");
    for d in r["dates"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            d["processing_date"].as_str().unwrap_or(""),
            fmt(&d["a"]["total"]),
            fmt(&d["b"]["total"]),
            fmt(&d["a"]["auc_roc"]),
            fmt(&d["b"]["auc_roc"]),
            fmt(&d["a"]["tier3a_auc"]),
            fmt(&d["b"]["tier3a_auc"])
        ));
    }
    s
}

/// One line of a plot: legend name, colour and points.
type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

const BLUE: RGBColor = RGBColor(31, 119, 180);
const ORANGE: RGBColor = RGBColor(255, 127, 14);

fn svg_lines(
    title: &str,
    x: &str,
    y: &str,
    series: &[Series],
    xr: (f64, f64),
    yr: (f64, f64),
) -> Result<String> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (520, 380)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("plot: {e}"))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(xr.0..xr.1, yr.0..yr.1)
            .map_err(|e| anyhow!("plot: {e}"))?;
        chart
            .configure_mesh()
            .x_desc(x)
            .y_desc(y)
            .draw()
            .map_err(|e| anyhow!("plot: {e}"))?;
        for (name, color, pts) in series {
            let c = *color;
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
                .map_err(|e| anyhow!("plot: {e}"))?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| anyhow!("plot: {e}"))?;
        root.present().map_err(|e| anyhow!("plot: {e}"))?;
    }
    Ok(buf)
}

fn histogram(a: &[f64], b: &[f64]) -> Result<String> {
    let bins = |v: &[f64]| {
        let mut h = [0usize; 20];
        for &x in v {
            h[((x.clamp(0.0, 1.0) * 20.0) as usize).min(19)] += 1;
        }
        let n = v.len().max(1) as f64;
        h.iter()
            .enumerate()
            .flat_map(|(i, &c)| {
                [
                    (i as f64 / 20.0, c as f64 / n),
                    ((i + 1) as f64 / 20.0, c as f64 / n),
                ]
            })
            .collect::<Vec<_>>()
    };
    let (ha, hb) = (bins(a), bins(b));
    let top = ha.iter().chain(&hb).map(|p| p.1).fold(0.0, f64::max) * 1.1 + 1e-9;
    svg_lines(
        "Score distribution (share of alerts)",
        "score",
        "share",
        &[("A", BLUE, ha), ("B", ORANGE, hb)],
        (0.0, 1.0),
        (0.0, top),
    )
}

fn html(
    r: &serde_json::Value,
    v: &Verdict,
    labelled: (&[f64], &[f64], &[bool]),
    all: (&[f64], &[f64]),
) -> Result<String> {
    let (a, b, y) = labelled;
    let roc = svg_lines(
        "ROC (alerts with ground truth)",
        "false positive rate",
        "true positive rate",
        &[
            ("A", BLUE, roc_curve(a, y)),
            ("B", ORANGE, roc_curve(b, y)),
            (
                "chance",
                RGBColor(170, 170, 170),
                vec![(0.0, 0.0), (1.0, 1.0)],
            ),
        ],
        (0.0, 1.0),
        (0.0, 1.0),
    )?;
    let pr = svg_lines(
        "Precision-recall",
        "recall",
        "precision",
        &[("A", BLUE, pr_curve(a, y)), ("B", ORANGE, pr_curve(b, y))],
        (0.0, 1.0),
        (0.0, 1.05),
    )?;
    let hist = histogram(all.0, all.1)?;
    let dates = r["dates"].as_array().cloned().unwrap_or_default();
    let per_date = |side: &str| -> Vec<(f64, f64)> {
        dates
            .iter()
            .enumerate()
            .filter_map(|(i, d)| d[side]["auc_roc"].as_f64().map(|x| (i as f64, x)))
            .collect()
    };
    let auc_lines = svg_lines(
        "AUC per date (index in the compared range)",
        "date",
        "AUC",
        &[("A", BLUE, per_date("a")), ("B", ORANGE, per_date("b"))],
        (0.0, (dates.len().max(2) - 1) as f64),
        (0.0, 1.0),
    )?;
    let md = markdown(r, v);
    let rows: String = md
        .lines()
        .skip_while(|l| !l.starts_with("| date"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            if l.starts_with("|---") {
                String::new()
            } else {
                format!(
                    "<tr>{}</tr>",
                    cells
                        .iter()
                        .map(|c| format!("<td>{}</td>", escape(c)))
                        .collect::<String>()
                )
            }
        })
        .collect();
    Ok(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>A/B comparison</title><style>body{{font-family:sans-serif;margin:24px;max-width:1120px}}\
         .plots{{display:grid;grid-template-columns:1fr 1fr;gap:12px}}table{{border-collapse:collapse}}td{{border:1px solid #ccc;padding:3px 8px;text-align:right}}\
         tr:first-child td{{font-weight:bold;background:#f3f3f3}}</style></head><body><h1>A/B comparison</h1>\
         <p>A: <code>{}</code><br>B: <code>{}</code></p><p>{}</p><div class=\"plots\"><div>{roc}</div><div>{pr}</div><div>{hist}</div><div>{auc_lines}</div></div>\
         <h2>Per date</h2><table>{rows}</table></body></html>\n",
        escape(r["a"].as_str().unwrap_or("")),
        escape(r["b"].as_str().unwrap_or("")),
        escape(&verdict_line(v)).replace("**", ""),
    ))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The default report directory for two trees: `validation_results/{a}_vs_{b}`.
pub fn default_report_dir(a: &Path, b: &Path) -> PathBuf {
    let name = |p: &Path| {
        p.file_name()
            .map_or_else(|| "out".to_string(), |n| n.to_string_lossy().into_owned())
    };
    PathBuf::from("validation_results").join(format!("{}_vs_{}", name(a), name(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_finds_a_clear_winner_and_no_difference_between_equals() {
        let n = 400;
        let y: Vec<bool> = (0..n).map(|i| i % 4 == 0).collect();
        let good: Vec<f64> = (0..n)
            .map(|i| {
                if y[i] {
                    0.6 + (i % 7) as f64 / 20.0
                } else {
                    0.2 + (i % 11) as f64 / 20.0
                }
            })
            .collect();
        let bad: Vec<f64> = (0..n).map(|i| ((i * 37) % 101) as f64 / 101.0).collect();
        let v = auc_difference(&good, &bad, &y, 300, 1);
        assert_eq!(v.winner, "a");
        assert!(v.significant, "{v:?}");
        let same = auc_difference(&good, &good, &y, 300, 1);
        assert_eq!(same.winner, "tie");
        assert!(!same.significant);
    }
}
