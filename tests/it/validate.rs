//! `pipeline validate` on existing outputs: every tier, penalties for constant scores and
//! trap hits, a missing alert failing integrity, a copied output flagged as plagiarism.

use crate::common::*;
use arrow::array::{Array, AsArray, Float64Array};
use arrow::datatypes::{Field, Float64Type, Schema};
use arrow::record_batch::RecordBatch;
use std::path::Path;
use std::sync::Arc;

fn with_scores(b: &RecordBatch, f: impl Fn(usize, f64) -> f64) -> RecordBatch {
    let s = b
        .column_by_name("score")
        .unwrap()
        .as_primitive::<Float64Type>();
    let new = Float64Array::from((0..s.len()).map(|i| f(i, s.value(i))).collect::<Vec<_>>());
    let i = b.schema().index_of("score").unwrap();
    let mut cols = b.columns().to_vec();
    cols[i] = Arc::new(new);
    let fields: Vec<Field> = b
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// The ground-truth tier of `date`'s report counts every labelled alert of the date, as a join
/// of the whole ground-truth file with the written scores does (a run of few dates reads the
/// ground truth of its own alerts only; a long one all of it).
fn assert_ground_truth_counts(input: &Path, out: &Path, date: &str) {
    let v = json(&batch_dir(out, date).join("validation.json"));
    let gt = read_parquet(&input.join(NETWORK).join("ground_truth.parquet"));
    let (ids, sar) = (gt.column(0).as_string::<i32>(), gt.column(1).as_boolean());
    let label: std::collections::HashMap<&str, bool> = (0..gt.num_rows())
        .map(|i| (ids.value(i), sar.value(i)))
        .collect();
    let scores = read_parquet(&batch_dir(out, date).join("alert_scores.parquet"));
    let scored = scores
        .column_by_name("alert_id")
        .unwrap()
        .as_string::<i32>();
    let known: Vec<bool> = (0..scored.len())
        .filter_map(|i| label.get(scored.value(i)).copied())
        .collect();
    assert!(
        known.len() > 100 && known.len() < gt.num_rows(),
        "{}",
        known.len()
    );
    assert_eq!(v["ground_truth"]["n_samples"], known.len(), "{v}");
    let positive = known.iter().filter(|&&l| l).count();
    assert_eq!(v["ground_truth"]["n_positive"], positive, "{v}");
}

#[test]
fn validate_reports_every_tier_and_penalises_bad_outputs() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let cfg = write_config(&tmp.path().join("cfg"), &f.input, &out, &f.models);
    ok(pipeline(&["run", cfg.to_str().unwrap()]));
    let summary = json(
        &out.join(NETWORK)
            .join(format!("validation_summary_{WINDOW}d.json")),
    );
    assert_eq!(summary["dates"].as_array().unwrap().len(), 6);
    assert!(
        summary["dates"][1]["tier2_consistency_vs_previous_date"].is_number(),
        "{summary}"
    );

    let day = |d: &str| batch_dir(&out, d);
    let v = json(&day("2025-10-01").join("validation.json"));
    assert_eq!(v["integrity"]["score"], 0.2);
    assert!(v["behaviour"]["score"].as_f64().unwrap() > 0.0);
    assert_eq!(v["ground_truth"]["passed"], true, "{v}");
    assert!(v["ground_truth"]["auc_roc"].as_f64().unwrap() > 0.6, "{v}");
    assert_ground_truth_counts(&f.input, &out, "2025-10-01");
    // No model_github_url in the config: the validator's gate fails on metadata alone.
    let t1 = &v["validator"]["tier1"];
    assert_eq!(
        (t1["score"].as_f64(), t1["metadata"].as_f64()),
        (Some(0.75), Some(0.0))
    );
    assert_eq!(v["validator"]["reward"]["status"], "rejected");
    assert_eq!(v["validator"]["reward"]["score"], 0.0);
    // No consensus: the rank correlation, and so Tier 2, are unknown, with bounds.
    let t2 = &v["validator"]["tier2"];
    assert!(
        t2["score"].is_null() && t2["rank_correlation"].is_null(),
        "{t2}"
    );
    let (lo, hi) = (
        t2["bounds"][0].as_f64().unwrap(),
        t2["bounds"][1].as_f64().unwrap(),
    );
    assert!(lo > 0.0 && (hi - lo - 0.25).abs() < 1e-12, "{t2}");
    let total = v["total"].as_f64().unwrap();
    let parts = ["integrity", "behaviour", "ground_truth"]
        .iter()
        .map(|k| v[k]["score"].as_f64().unwrap())
        .sum::<f64>();
    assert!((total - parts).abs() < 1e-12);

    // 02: constant scores; 03: one alert dropped; others untouched.
    let p2 = day("2025-10-02").join("alert_scores.parquet");
    write_parquet(&p2, &with_scores(&read_parquet(&p2), |_, _| 0.5));
    let p3 = day("2025-10-03").join("alert_scores.parquet");
    let b = read_parquet(&p3);
    write_parquet(&p3, &b.slice(1, b.num_rows() - 1));
    let res = pipeline(&["validate", cfg.to_str().unwrap()]);
    assert_eq!(
        res.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&res.stdout)
    );
    let v2 = json(&day("2025-10-02").join("validation.json"));
    assert!(
        (v2["behaviour"]["score"].as_f64().unwrap() - 0.2).abs() < 1e-12,
        "{v2}"
    );
    assert_eq!(v2["behaviour"]["checks"][0]["passed"], false);
    let v3 = json(&day("2025-10-03").join("validation.json"));
    assert_eq!(v3["integrity"]["passed"], false);
    assert_eq!(v3["integrity"]["checks"][0]["name"], "row_count");
    assert_eq!(v3["validator"]["tier1"]["passed"], false);
    assert!(v3["validator"]["tier1"]["completeness"].as_f64().unwrap() < 1.0);
    let stdout = String::from_utf8_lossy(&res.stdout);
    assert!(
        stdout.contains("2025-10-03") && stdout.contains("FAILED: row_count"),
        "{stdout}"
    );
}

#[test]
fn traps_and_reference_scores_from_the_pipeline_file() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let cfg = write_config(&tmp.path().join("cfg"), &f.input, &out, &f.models);
    ok(pipeline(&["run", cfg.to_str().unwrap()]));
    // A trap on the first alert at its actual score (hit), a copy of the output as reference.
    let scores = read_parquet(&batch_dir(&out, "2025-10-01").join("alert_scores.parquet"));
    let id = scores
        .column_by_name("alert_id")
        .unwrap()
        .as_string::<i32>()
        .value(0)
        .to_string();
    let s0 = scores
        .column_by_name("score")
        .unwrap()
        .as_primitive::<Float64Type>()
        .value(0);
    std::fs::write(
        tmp.path().join("traps.json"),
        serde_json::to_vec(&serde_json::json!([{"alert_id": id, "expected_score": s0}])).unwrap(),
    )
    .unwrap();
    let reference = tmp.path().join("reference");
    copy_tree(&out, &reference);
    let traps = tmp.path().join("traps.json");
    with_pipeline(&cfg, |t| {
        t.replace("traps = \"\"", &format!("traps = {traps:?}"))
            .replace("reference = \"\"", &format!("reference = {reference:?}"))
    });
    ok(pipeline(&[
        "validate",
        cfg.to_str().unwrap(),
        "--dates",
        "2025-10-01",
    ]));
    let v = json(&batch_dir(&out, "2025-10-01").join("validation.json"));
    assert_eq!(v["behaviour"]["checks"][1]["passed"], false, "{v}");
    assert!(v["behaviour"]["score"].as_f64().unwrap() <= 0.25 + 1e-12);
    assert_eq!(
        v["plagiarism_vs_reference"]["passed"], false,
        "identical outputs must be flagged: {v}"
    );
    assert_eq!(v["validator"]["tier2"]["rank_correlation"], 1.0);
}

#[test]
fn compare_finds_the_good_model_significantly_better() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good");
    let cfg = write_config(&tmp.path().join("cfg"), &f.input, &good, &f.models);
    ok(pipeline(&["run", cfg.to_str().unwrap()]));
    // A deliberately bad model: the same alerts with scores unrelated to the data.
    let bad = tmp.path().join("bad");
    copy_tree(&good, &bad);
    for day in 1..=6 {
        let p = batch_dir(&bad, &format!("2025-10-{day:02}")).join("alert_scores.parquet");
        write_parquet(
            &p,
            &with_scores(&read_parquet(&p), |i, _| {
                ((i * 7919) % 1000) as f64 / 1000.0
            }),
        );
    }
    let report = tmp.path().join("report");
    let gt = f.input.join(NETWORK).join("ground_truth.parquet");
    let res = ok(pipeline(&[
        "compare",
        cfg.to_str().unwrap(),
        "--a",
        good.to_str().unwrap(),
        "--b",
        bad.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--bootstrap",
        "300",
        "--ground-truth",
        gt.to_str().unwrap(),
    ]));
    assert!(String::from_utf8_lossy(&res.stdout).contains("winner: a"));
    let r = json(&report.join("report.json"));
    assert_eq!(r["verdict"]["winner"], "a");
    assert_eq!(r["verdict"]["significant"], true, "{}", r["verdict"]);
    let (lo, hi) = (
        r["verdict"]["ci95"][0].as_f64().unwrap(),
        r["verdict"]["ci95"][1].as_f64().unwrap(),
    );
    assert!(lo > 0.0 && hi >= lo);
    assert_eq!(r["dates"].as_array().unwrap().len(), 6);
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(
        md.contains("Winner: **A**") && md.contains("| 2025-10-06 |"),
        "{md}"
    );
    let html = std::fs::read_to_string(report.join("report.html")).unwrap();
    assert_eq!(
        html.matches("<svg").count(),
        4,
        "ROC, PR, histogram and per-date AUC plots"
    );
    assert!(
        html.contains("<polyline") || html.contains("<path"),
        "the plots draw lines"
    );
    assert!(
        !html.contains("<script") && !html.contains("<link") && !html.contains(" src="),
        "self-contained"
    );
}

/// On a generated date, the validator's figures in `validation.json` equal those its formulas
/// give when computed in Python (numpy, scipy) from the same files: Tier 1 with the GitHub URL,
/// Tier 2 against a consensus (the median of three miners' scores), Tier 3A and the reward.
#[test]
fn validator_figures_equal_its_formulas_computed_in_python() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let cfg = write_config(&tmp.path().join("cfg"), &f.input, &out, &f.models);
    let url = "https://github.com/example/aml-pipeline";
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!(
        "\nmodel_github_url = {url:?}\nfirst_submission_date = \"2025-09-01\"\n"
    ));
    std::fs::write(&cfg, text).unwrap();
    let date = "2025-10-02";
    ok(pipeline(&["run", cfg.to_str().unwrap(), "--dates", date]));
    assert_ground_truth_counts(&f.input, &out, date);
    let scores_path = batch_dir(&out, date).join("alert_scores.parquet");
    let median3 = |a: f64, b: f64, c: f64| a.max(b).min(a.min(b).max(c));
    let consensus = with_scores(&read_parquet(&scores_path), |i, s| {
        median3(s, s * 0.8 + 0.1, ((i * 7919) % 1000) as f64 / 1000.0)
    });
    let root = tmp.path().join("consensus");
    std::fs::create_dir_all(batch_dir(&root, date)).unwrap();
    let consensus_path = batch_dir(&root, date).join("alert_scores.parquet");
    write_parquet(&consensus_path, &consensus);
    with_pipeline(&cfg, |t| {
        t.replace("reference = \"\"", &format!("reference = {root:?}"))
    });
    ok(pipeline(&[
        "validate",
        cfg.to_str().unwrap(),
        "--dates",
        date,
    ]));
    let v = json(&batch_dir(&out, date).join("validation.json"))["validator"].clone();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/validator_formulas.py");
    let path = |p: &Path| p.to_str().unwrap().to_string();
    let py = std::process::Command::new("python3")
        .arg(&script)
        .args([
            path(&scores_path),
            path(&batch_dir(&f.input, date).join("alerts.parquet")),
            path(&f.input.join(NETWORK).join("address_labels.parquet")),
            path(&consensus_path),
            url.to_string(),
            "31".to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let want: serde_json::Value = serde_json::from_slice(&py.stdout).unwrap();
    let close = |got: &serde_json::Value, want: &serde_json::Value, what: &str| {
        let (g, w) = (got.as_f64().unwrap(), want.as_f64().unwrap());
        assert!(
            (g - w).abs() < 1e-12,
            "{what}: ours {g}, the validator's formulas {w}"
        );
    };
    for k in [
        "completeness",
        "score_range",
        "no_duplicates",
        "metadata",
        "score",
    ] {
        close(&v["tier1"][k], &want["tier1"][k], &format!("tier1 {k}"));
    }
    for k in [
        "entropy",
        "rank_correlation",
        "consistency",
        "address_consistency",
        "score",
    ] {
        close(&v["tier2"][k], &want["tier2"][k], &format!("tier2 {k}"));
    }
    assert!(want["tier3a"]["auc"].is_number(), "{want}");
    for k in ["auc", "coverage"] {
        close(&v["tier3a"][k], &want["tier3a"][k], &format!("tier3a {k}"));
    }
    assert_eq!(v["tier3a"]["labelled"], want["tier3a"]["labelled"]);
    close(&v["reward"]["score"], &want["final"], "final score");
    assert_eq!(v["reward"]["status"], "tier3a_only");
    assert_eq!(v["reward"]["days_since_first_submission"], 31);
}

/// The three calibrations on the same dates: rankings, AUC and Tier 3A unchanged; scores in
/// the same order; rank_percentile = average rank of the tie group / alerts of the uncalibrated
/// scores; isotonic refused before any work for a scorer without the fitted map.
#[test]
fn calibrations_keep_ranks_and_auc_and_map_scores_as_documented() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let dates = "2025-10-01..2025-10-02";
    let run = |c: &str| {
        let root = tmp.path().join(c);
        let cfg = write_config(&root.join("cfg"), &f.input, &root.join("out"), &f.models);
        with_calibration(&cfg, c);
        ok(pipeline(&["run", cfg.to_str().unwrap(), "--dates", dates]));
        root.join("out")
    };
    let (none, pct, iso) = (run("none"), run("rank_percentile"), run("isotonic"));
    let rankings = |out: &Path, d: &str| {
        let r = read_parquet(&batch_dir(out, d).join("alert_rankings.parquet"));
        (r.column(0).clone(), r.column(1).clone())
    };
    let figures = |out: &Path, d: &str| {
        let v = json(&batch_dir(out, d).join("validation.json"));
        (
            v["ground_truth"]["auc_roc"].as_f64().unwrap(),
            v["validator"]["tier3a"]["auc"].as_f64(),
            v["ground_truth"]["brier"].as_f64().unwrap(),
            v["validator"]["tier2"]["entropy"].as_f64().unwrap(),
        )
    };
    for d in ["2025-10-01", "2025-10-02"] {
        let raw = scores_by_id(&none, d);
        let n = raw.len() as f64;
        let mut sorted: Vec<f64> = raw.values().copied().collect();
        sorted.sort_by(f64::total_cmp);
        for (id, p) in scores_by_id(&pct, d) {
            let s = raw[&id];
            let less = sorted.partition_point(|&x| x < s);
            let equal = sorted.partition_point(|&x| x <= s) - less;
            let want = (less as f64 + (equal + 1) as f64 / 2.0) / n;
            assert_eq!(p.to_bits(), want.to_bits(), "{id}: {p} vs {want}");
        }
        let cal = scores_by_id(&iso, d);
        assert!(raw.iter().any(|(id, s)| cal[id] != *s), "isotonic maps");
        for (a, sa) in &raw {
            for (b, sb) in &raw {
                assert_eq!(sa.total_cmp(sb), cal[a].total_cmp(&cal[b]), "{a} {b}");
            }
        }
        let base = rankings(&none, d);
        assert_eq!(rankings(&pct, d), base);
        assert_eq!(rankings(&iso, d), base);
        let (auc, t3a, brier, entropy) = figures(&none, d);
        let p = figures(&pct, d);
        assert_eq!((p.0, p.1), (auc, t3a));
        assert!(p.3 > entropy && p.2 > brier, "{p:?}");
        let i = figures(&iso, d);
        assert_eq!((i.0, i.1), (auc, t3a));
    }

    // A scorer without the fitted map (installed, or trained before) cannot be calibrated so.
    let models = tmp.path().join("models");
    copy_tree(&f.models, &models);
    for entry in std::fs::read_dir(&models).unwrap() {
        let p = entry.unwrap().path();
        if p.to_str().unwrap().contains("alert_scorer") && p.extension().unwrap() == "json" {
            let mut meta = json(&p);
            meta.as_object_mut().unwrap().remove("calibration");
            std::fs::write(&p, meta.to_string()).unwrap();
        }
    }
    let root = tmp.path().join("stripped");
    let cfg = write_config(&root.join("cfg"), &f.input, &root.join("out"), &models);
    with_calibration(&cfg, "isotonic");
    let res = pipeline(&["run", cfg.to_str().unwrap(), "--dates", dates]);
    assert_eq!(res.status.code(), Some(2));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(err.contains("isotonic") && err.contains("retrain"), "{err}");
    assert!(!root.join("out").join("torus").exists(), "nothing written");
}
