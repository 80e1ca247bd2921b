//! End-to-end runs of `pipeline run` on generated data: output schemas and counts,
//! determinism across runs and worker counts, agreement with LightGBM's own predictions.

use crate::common::*;
use arrow::array::AsArray;
use arrow::datatypes::{DataType, Float64Type, Int32Type};
use arrow::record_batch::RecordBatch;
use std::collections::HashSet;
use std::path::Path;

fn run_into(out: &Path, workers: &str) -> std::process::Output {
    let f = fixture();
    let cfg = write_config(&out.join("cfg"), &f.input, &out.join("out"), &f.models);
    pipeline(&["run", cfg.to_str().unwrap(), "--workers", workers])
}

fn schema_of(b: &RecordBatch) -> Vec<(String, DataType)> {
    b.schema()
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect()
}

fn cols(spec: &[(&str, DataType)]) -> Vec<(String, DataType)> {
    spec.iter()
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect()
}

fn strings(b: &RecordBatch, name: &str) -> Vec<String> {
    let c = arrow::compute::cast(b.column_by_name(name).unwrap(), &DataType::Utf8).unwrap();
    c.as_string::<i32>()
        .iter()
        .map(|v| v.unwrap().to_string())
        .collect()
}

#[test]
fn outputs_have_the_contract_schemas_and_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let out = ok(run_into(tmp.path(), "2"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("6 of 6 dates completed"), "{stdout}");
    let f = fixture();
    for day in 1..=6 {
        let date = format!("2025-10-{day:02}");
        let input = batch_dir(&f.input, &date);
        let output = batch_dir(&tmp.path().join("out"), &date);
        let alerts = read_parquet(&input.join("alerts.parquet"));
        let clusters = read_parquet(&input.join("clusters.parquet"));

        let scores = read_parquet(&output.join("alert_scores.parquet"));
        assert_eq!(
            schema_of(&scores),
            cols(&[
                ("alert_id", DataType::Utf8),
                ("score", DataType::Float64),
                ("model_version", DataType::Utf8),
                ("latency_ms", DataType::Float64),
                ("explain_json", DataType::Utf8),
            ])
        );
        assert_eq!(scores.num_rows(), alerts.num_rows());
        let explain = strings(&scores, "explain_json");
        assert!(
            explain.iter().all(|e| e.starts_with("{\"score\":")),
            "explain_json filled"
        );
        let ids: HashSet<String> = strings(&alerts, "alert_id").into_iter().collect();
        assert_eq!(
            strings(&scores, "alert_id")
                .into_iter()
                .collect::<HashSet<_>>(),
            ids
        );
        let s = scores
            .column_by_name("score")
            .unwrap()
            .as_primitive::<Float64Type>();
        assert!(s
            .iter()
            .all(|v| v.is_some_and(|v| (0.0..=1.0).contains(&v))));

        let ranks = read_parquet(&output.join("alert_rankings.parquet"));
        assert_eq!(
            schema_of(&ranks),
            cols(&[
                ("alert_id", DataType::Utf8),
                ("rank", DataType::Int32),
                ("score", DataType::Float64),
                ("model_version", DataType::Utf8),
            ])
        );
        let mut r: Vec<i32> = ranks
            .column_by_name("rank")
            .unwrap()
            .as_primitive::<Int32Type>()
            .values()
            .to_vec();
        r.sort_unstable();
        assert_eq!(r, (1..=alerts.num_rows() as i32).collect::<Vec<_>>());
        assert_eq!(
            strings(&ranks, "alert_id")
                .into_iter()
                .collect::<HashSet<_>>(),
            ids
        );

        let cs = read_parquet(&output.join("cluster_scores.parquet"));
        assert_eq!(
            schema_of(&cs),
            cols(&[
                ("cluster_id", DataType::Utf8),
                ("score", DataType::Float64),
                ("model_version", DataType::Utf8),
                ("latency_ms", DataType::Float64),
                ("explain_json", DataType::Utf8),
            ])
        );
        let cluster_ids: HashSet<String> = if clusters.num_columns() == 0 {
            HashSet::new()
        } else {
            strings(&clusters, "cluster_id").into_iter().collect()
        };
        assert_eq!(
            strings(&cs, "cluster_id")
                .into_iter()
                .collect::<HashSet<_>>(),
            cluster_ids
        );

        let meta: serde_json::Value = serde_json::from_slice(
            &std::fs::read(output.join("processing_metadata.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(meta["status"], "COMPLETED");
        assert_eq!(meta["processing_date"], date.as_str());
        assert_eq!(meta["input_counts"]["alerts"], alerts.num_rows());
        assert_eq!(meta["output_counts"]["cluster_scores"], cluster_ids.len());
        for k in [
            "decode",
            "features",
            "score",
            "rank",
            "cluster_score",
            "total",
        ] {
            assert!(
                meta["latencies_ms"][k].is_number(),
                "latency {k} missing: {meta}"
            );
        }
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(output.join("validation.json")).unwrap())
                .unwrap();
        assert_eq!(v["all_passed"], true, "{v}");
        assert_eq!(v["integrity"]["score"], 0.2);
    }
}

#[test]
fn outputs_are_identical_across_runs_and_worker_counts() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    ok(run_into(a.path(), "1"));
    ok(run_into(b.path(), "2"));
    ok(run_into(c.path(), "2"));
    let va = deterministic_view(&a.path().join("out"));
    assert_eq!(va.len(), 6 * 5 + 1);
    assert!(
        va == deterministic_view(&b.path().join("out")),
        "--workers 1 and 2 differ"
    );
    assert!(
        va == deterministic_view(&c.path().join("out")),
        "two runs differ"
    );
}

#[test]
fn scores_equal_lightgbm_predictions_on_the_exported_matrix() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(
        &tmp.path().join("cfg"),
        &f.input,
        &tmp.path().join("out"),
        &f.models,
    );
    with_calibration(&cfg, "none");
    ok(pipeline(&["run", cfg.to_str().unwrap()]));
    let matrix = tmp.path().join("matrix.parquet");
    ok(pipeline(&[
        "features",
        cfg.to_str().unwrap(),
        "--out",
        matrix.to_str().unwrap(),
    ]));
    let m = read_parquet(&matrix);
    assert!(m.column_by_name("label").is_some());

    // LightGBM itself (through its C API, from the model file) on the exported matrix.
    let model_path = std::fs::read_dir(&f.models)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("alert_scorer_v")
                && p.extension().unwrap() == "txt"
        })
        .unwrap();
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model_path.with_extension("json")).unwrap()).unwrap();
    let names: Vec<String> = meta["feature_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().into())
        .collect();
    let booster = lightgbm3::Booster::from_file(model_path.to_str().unwrap()).unwrap();
    let dates = strings(&m, "processing_date");
    let ids = strings(&m, "alert_id");
    let cols: Vec<_> = names
        .iter()
        .map(|n| {
            m.column_by_name(n)
                .unwrap()
                .as_primitive::<Float64Type>()
                .clone()
        })
        .collect();
    let mut x = Vec::new();
    for r in 0..m.num_rows() {
        x.extend(cols.iter().map(|c| c.value(r)));
    }
    let expected = booster.predict(&x, names.len() as i32, true).unwrap();
    let mut compared = 0;
    for day in 1..=6 {
        let date = format!("2025-10-{day:02}");
        let by_id = scores_by_id(&tmp.path().join("out"), &date);
        for r in 0..m.num_rows() {
            if dates[r] == date {
                assert_eq!(
                    by_id[&ids[r]].to_bits(),
                    expected[r].to_bits(),
                    "alert {}",
                    ids[r]
                );
                compared += 1;
            }
        }
    }
    assert_eq!(compared, m.num_rows());

    // And the Python package, where installed by the set-up script (CI has it).
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lightgbm_predict.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(&model_path)
        .arg(&matrix)
        .arg(tmp.path().join("out"))
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "python cross-check failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("max_abs_diff=0"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn training_is_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = fixture_config(tmp.path());
    let models = |name: &str| {
        let dir = tmp.path().join(name);
        ok(pipeline(&[
            "train",
            cfg.to_str().unwrap(),
            "--models",
            dir.to_str().unwrap(),
            "--iterations",
            "30",
            "--model",
            "alert_ranker",
        ]));
        snapshot(&dir)
            .into_iter()
            .filter(|(p, _)| p.extension().unwrap() == "txt")
            .collect::<Vec<_>>()
    };
    let a = models("a");
    assert_eq!(a.len(), 1);
    assert!(a[0].0.to_string_lossy().starts_with("alert_ranker_v"));
    assert!(
        a == models("b"),
        "same data and seed gave different model files"
    );
}

#[test]
fn models_with_another_feature_order_are_refused() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let models = tmp.path().join("models");
    copy_tree(&f.models, &models);
    let meta_path = std::fs::read_dir(&models)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.to_string_lossy().contains("alert_scorer_v") && p.extension().unwrap() == "json"
        })
        .unwrap();
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
    meta["feature_names"].as_array_mut().unwrap().swap(0, 1);
    std::fs::write(&meta_path, serde_json::to_vec(&meta).unwrap()).unwrap();
    let cfg = write_config(
        &tmp.path().join("cfg"),
        &f.input,
        &tmp.path().join("out"),
        &models,
    );
    let res = pipeline(&["run", cfg.to_str().unwrap()]);
    assert_eq!(res.status.code(), Some(2));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains("feature order mismatch") && err.contains("position 0"),
        "{err}"
    );
    assert!(!tmp.path().join("out").exists());
}

/// The fixture's first date's matrices, computed as `pipeline train` does (config under
/// `{name}-cfg`).
fn first_date_matrix(name: &str) -> aml_pipeline::train::DateMatrix {
    let f = fixture();
    let cfg_path = write_config(
        &f.root.join(format!("{name}-cfg")),
        &f.input,
        &f.root.join(format!("{name}-out")),
        &f.models,
    );
    let cfg = aml_pipeline::config::RunConfig::load(&cfg_path).unwrap();
    aml_pipeline::train::date_matrix(&cfg, aml_pipeline::dates::parse_date(FIRST).unwrap()).unwrap()
}

#[test]
fn shap_contributions_add_up_to_the_raw_margin() {
    use aml_pipeline::model::{Model, ModelKind};
    let f = fixture();
    let m = first_date_matrix("shap");
    for (kind, table) in [
        (ModelKind::AlertScorer, &m.alerts),
        (ModelKind::ClusterScorer, &m.clusters),
    ] {
        let model = Model::load(&Model::resolve(&f.models, kind, "latest").unwrap(), kind).unwrap();
        let x = aml_pipeline::features::row_major(table, &model.meta.feature_names).unwrap();
        let contrib = model.contributions(&x).unwrap();
        let margin = model.raw_margin(&x).unwrap();
        let width = model.num_features() + 1;
        assert_eq!(contrib.len(), margin.len() * width);
        for (row, want) in contrib.chunks(width).zip(&margin) {
            let sum: f64 = row.iter().sum();
            assert!(
                (sum - want).abs() <= 1e-9 * want.abs().max(1.0),
                "{sum} vs {want}"
            );
        }
        let scores = model.predict(&x).unwrap();
        let explained = model.explain(&x, &scores).unwrap();
        let e: serde_json::Value = serde_json::from_str(&explained[0]).unwrap();
        assert_eq!(e["score"].as_f64().unwrap(), scores[0]);
        assert_eq!(e["top_features"].as_array().unwrap().len(), 5);
    }
}

#[test]
fn a_matrix_scored_in_row_blocks_scores_as_it_does_whole() {
    use aml_pipeline::model::{Model, ModelKind, ROW_BLOCK};
    let f = fixture();
    let m = first_date_matrix("blocks");
    // Enough copies of the day's matrix for two whole blocks and a part of a third.
    let copies = (2 * ROW_BLOCK + ROW_BLOCK / 3).div_ceil(m.alerts.num_rows());
    let big = arrow::compute::concat_batches(&m.alerts.schema(), &vec![m.alerts.clone(); copies])
        .unwrap();
    let model = Model::load(
        &Model::resolve(&f.models, ModelKind::AlertScorer, "latest").unwrap(),
        ModelKind::AlertScorer,
    )
    .unwrap();
    let x = aml_pipeline::features::row_major(&big, &model.meta.feature_names).unwrap();
    let whole = model.predict(&x).unwrap();
    let blocks = model.predict_matrix(&big).unwrap();
    assert!(big.num_rows() > 2 * ROW_BLOCK && big.num_rows() % ROW_BLOCK != 0);
    assert_eq!(blocks.len(), whole.len());
    for (i, (a, b)) in blocks.iter().zip(&whole).enumerate() {
        assert_eq!(
            a.to_bits(),
            b.to_bits(),
            "row {i}: {a} in blocks, {b} whole"
        );
    }
    // Rows at both sides of each block boundary, and the last.
    let n = big.num_rows();
    let probe: Vec<usize> = [0, ROW_BLOCK - 1, ROW_BLOCK, 2 * ROW_BLOCK, n - 1].into();
    let explained = model.explain_matrix(&big, &whole).unwrap();
    assert_eq!(explained.len(), n);
    let w = model.num_features();
    for i in probe {
        let one = model
            .explain(&x[i * w..(i + 1) * w], &whole[i..=i])
            .unwrap();
        assert_eq!(explained[i], one[0], "row {i}");
    }
}

#[test]
fn a_model_trained_in_python_scores_as_python_predicts() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let models = tmp.path().join("models");
    copy_tree(&f.models, &models);
    let out = tmp.path().join("out");
    let cfg = write_config(&tmp.path().join("cfg"), &f.input, &out, &models);
    with_calibration(&cfg, "none");
    let matrix = tmp.path().join("matrix.parquet");
    ok(pipeline(&[
        "features",
        cfg.to_str().unwrap(),
        "--out",
        matrix.to_str().unwrap(),
    ]));
    let model = tmp.path().join("python_model.txt");
    let preds = tmp.path().join("python_preds.parquet");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python_train.py");
    let res = std::process::Command::new("python3")
        .args([&script, &matrix, &model, &preds])
        .output()
        .expect("python3");
    assert!(
        res.status.success(),
        "python training failed: {}",
        String::from_utf8_lossy(&res.stderr)
    );

    // A model with another feature order is refused, naming the position.
    let text = std::fs::read_to_string(&model).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("feature_names="))
        .unwrap();
    let mut names: Vec<&str> = line["feature_names=".len()..].split(' ').collect();
    names.swap(2, 3);
    let shuffled = tmp.path().join("shuffled.txt");
    std::fs::write(
        &shuffled,
        text.replace(line, &format!("feature_names={}", names.join(" "))),
    )
    .unwrap();
    let res = pipeline(&[
        "install-model",
        cfg.to_str().unwrap(),
        shuffled.to_str().unwrap(),
        "--type",
        "alert_scorer",
    ]);
    assert_eq!(res.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&res.stderr).contains("first difference at position 2"));

    ok(pipeline(&[
        "install-model",
        cfg.to_str().unwrap(),
        model.to_str().unwrap(),
        "--type",
        "alert_scorer",
    ]));
    ok(pipeline(&["run", cfg.to_str().unwrap()]));
    let p = read_parquet(&preds);
    let dates = strings(&p, "processing_date");
    let ids = strings(&p, "alert_id");
    let pred = p
        .column_by_name("pred")
        .unwrap()
        .as_primitive::<Float64Type>();
    let mut max_diff = 0.0f64;
    for day in 1..=6 {
        let date = format!("2025-10-{day:02}");
        let by_id = scores_by_id(&out, &date);
        for r in 0..p.num_rows() {
            if dates[r] == date {
                max_diff = max_diff.max((by_id[&ids[r]] - pred.value(r)).abs());
            }
        }
    }
    assert!(
        max_diff <= 1e-12,
        "pipeline vs Python predict: max abs diff {max_diff:e}"
    );
}

#[test]
fn model_metadata_records_version_data_metrics_cv_and_tuning() {
    use sha2::Digest;
    let tmp = tempfile::tempdir().unwrap();
    let cfg = fixture_config(tmp.path());
    let dir = tmp.path().join("tuned");
    ok(pipeline(&[
        "train",
        cfg.to_str().unwrap(),
        "--models",
        dir.to_str().unwrap(),
        "--iterations",
        "40",
        "--model",
        "alert_scorer",
        "--tune",
        "2",
    ]));
    let txt = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().unwrap() == "txt")
        .unwrap();
    let text = std::fs::read(&txt).unwrap();
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(txt.with_extension("json")).unwrap()).unwrap();
    let version = &hex::encode(sha2::Sha256::digest(&text))[..12];
    assert_eq!(m["version"], version);
    assert!(txt
        .to_string_lossy()
        .ends_with(&format!("alert_scorer_v{version}.txt")));
    for k in [
        "model_type",
        "created_at",
        "network",
        "training_period",
        "data_stats",
        "metrics",
        "hyperparameters",
        "feature_names",
        "num_trees",
        "best_iteration",
    ] {
        assert!(!m[k].is_null(), "metadata lacks {k}: {m}");
    }
    assert_eq!(m["training_period"]["start_date"], FIRST);
    assert_eq!(
        m["training_period"]["end_date"], "2025-10-04",
        "the last fifth of the dates is held out"
    );
    assert!(m["data_stats"]["samples"].as_u64().unwrap() > 0);
    for k in [
        "auc_roc",
        "pr_auc",
        "best_f1",
        "best_f1_threshold",
        "precision_at_best_f1",
        "recall_at_best_f1",
        "cv_mean",
        "cv_std",
    ] {
        assert!(
            m["metrics"][k].is_number(),
            "metric {k} missing: {}",
            m["metrics"]
        );
    }
    assert_eq!(m["metrics"]["cv_folds"], 4);
    assert_eq!(
        m["hyperparameters"]["tuning_trials"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        m["feature_names"].as_array().unwrap().len(),
        aml_pipeline::features::alert_feature_names().len()
    );
}

#[test]
fn quality_report_compares_feature_sets_on_held_out_dates() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = fixture_config(tmp.path());
    let report = tmp.path().join("quality.md");
    ok(pipeline(&[
        "train",
        cfg.to_str().unwrap(),
        "--iterations",
        "20",
        "--quality-report",
        report.to_str().unwrap(),
    ]));
    let md = std::fs::read_to_string(&report).unwrap();
    assert_eq!(
        md.lines()
            .filter(|l| l.starts_with("| ") && !l.starts_with("| feature set"))
            .count(),
        aml_pipeline::train::feature_sets().len(),
        "{md}"
    );
    assert!(
        md.lines().all(|l| !l.contains("| – |")),
        "every set has held-out metrics: {md}"
    );
    assert!(
        snapshot(&tmp.path().join("cfg"))
            .iter()
            .all(|(p, _)| p.extension().unwrap() == "toml"),
        "installs no model"
    );
}

#[test]
fn flamegraph_and_trace_flags_write_their_files() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = fixture_config(tmp.path());
    let (svg, trace) = (tmp.path().join("run.svg"), tmp.path().join("run.json"));
    ok(pipeline(&[
        "run",
        cfg.to_str().unwrap(),
        "--workers",
        "2",
        "--flamegraph",
        svg.to_str().unwrap(),
        "--trace",
        trace.to_str().unwrap(),
    ]));
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    let events: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&trace).unwrap()).unwrap();
    let spans: Vec<&serde_json::Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ph"] == "B" || e["ph"] == "X")
        .collect();
    for kind in [
        "decode",
        "feature_join",
        "score",
        "rank",
        "cluster_score",
        "write",
        "validate",
        "submit",
    ] {
        let n = spans.iter().filter(|e| e["name"] == kind).count();
        assert_eq!(n, 6, "one {kind} span per date");
    }
    // score and cluster_score both follow feature_join: each date's work runs on threads of
    // its own, so they run side by side rather than one after the other on the worker.
    let tid = |kind: &str, date: &serde_json::Value| {
        let e = spans
            .iter()
            .find(|e| e["name"] == kind && e["args"]["date"] == *date)
            .unwrap_or_else(|| panic!("no {kind} span of {date}"));
        e["tid"].clone()
    };
    for e in spans.iter().filter(|e| e["name"] == "score") {
        let date = &e["args"]["date"];
        assert_ne!(tid("score", date), tid("cluster_score", date), "{date}");
    }
    // One decoded date at a time (decode's `dates_at_once = 1`): from a date's decode until
    // its feature join has read the decoded tables, no other date decodes.
    let at = |kind: &str, ph: &str, date: &serde_json::Value| {
        events
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == kind && e["ph"] == ph && e["args"]["date"] == *date)
            .and_then(|e| e["ts"].as_f64())
            .unwrap_or_else(|| panic!("no {kind} {ph} event of {date}"))
    };
    let mut held: Vec<(f64, f64, String)> = spans
        .iter()
        .filter(|e| e["name"] == "decode")
        .map(|e| {
            let date = &e["args"]["date"];
            let end = at("feature_join", "E", date);
            (at("decode", "B", date), end, date.to_string())
        })
        .collect();
    held.sort_by(|a, b| a.0.total_cmp(&b.0));
    for w in held.windows(2) {
        assert!(
            w[1].0 >= w[0].1,
            "{} decoded while {} held its decoded tables",
            w[1].2,
            w[0].2
        );
    }
}
