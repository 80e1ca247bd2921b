//! Bad input fails only its own date, with a message naming the file, the column and what was
//! expected; the failed date's previous outputs stay untouched and the other dates complete.
//! The cases are a table: one row per way of damaging a batch and what the error must name.
//! Values upstream should not send but that do not stop a date are accepted and counted, and
//! every Parquet codec pandas/pyarrow write is read.

use crate::common::*;
use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int16Array, ListBuilder, StringArray, StringBuilder,
};
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;
use std::path::Path;
use std::sync::Arc;

fn replace_column(b: &RecordBatch, name: &str, col: ArrayRef) -> RecordBatch {
    let i = b.schema().index_of(name).unwrap();
    let mut fields: Vec<Field> = b
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields[i] = Field::new(name, col.data_type().clone(), true);
    let mut cols = b.columns().to_vec();
    cols[i] = col;
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
}

fn drop_columns(b: &RecordBatch, names: &[&str]) -> RecordBatch {
    let keep: Vec<usize> = (0..b.num_columns())
        .filter(|&i| !names.contains(&b.schema().field(i).name().as_str()))
        .collect();
    b.project(&keep).unwrap()
}

fn edit(dir: &Path, file: &str, f: impl FnOnce(RecordBatch) -> RecordBatch) {
    let p = dir.join(file);
    let b = f(read_parquet(&p));
    write_parquet(&p, &b);
    refresh_meta(dir);
}

/// A way to damage one date's batch directory.
type Damage = fn(&Path);

/// One row per case: its name, how the batch is damaged, and what the date's error must say.
#[rustfmt::skip]
const CASES: &[(&str, Damage, &[&str])] = &[
    ("missing file", |d| rm(d, "clusters.parquet"), &["clusters.parquet", "missing file"]),
    ("truncated Parquet", truncate_alerts, &["alerts.parquet", "Parquet"]),
    ("missing required column", |d| edit(d, "alerts.parquet", |b| drop_columns(&b, &["alert_confidence_score"])), &["alerts.parquet", "required column `alert_confidence_score` is missing"]),
    ("money flows without an end", |d| edit(d, "money_flows.parquet", |b| drop_columns(&b, &["to_address"])), &["money_flows.parquet", "required column `to_address` is missing"]),
    ("wrong column type", |d| edit(d, "alerts.parquet", |b| { let n = b.num_rows(); replace_column(&b, "volume_usd", Arc::new(StringArray::from(vec!["12.5"; n]))) }), &["column `volume_usd` has type Utf8, expected a number"]),
    ("checksum mismatch", append_byte, &["money_flows.parquet", "sha256"]),
    ("duplicate alert ids", |d| edit_ids(d, |v| v[1] = v[0].clone()), &["alerts.parquet", "alert_id", "repeats the value"]),
    ("empty alert id", |d| edit_ids(d, |v| v[3] = String::new()), &["alerts.parquet", "`alert_id` is empty in row 3"]),
    ("processing_date of another day", |d| edit(d, "alerts.parquet", |b| { let n = b.num_rows(); replace_column(&b, "processing_date", Arc::new(StringArray::from(vec!["2024-01-01"; n]))) }), &["column `processing_date` holds 2024-01-01", "but the batch directory is for 2025-10-0"]),
    ("named pipe for alerts.parquet", |d| fifo(d, "alerts.parquet"), &["alerts.parquet", "not a regular file (a named pipe)"]),
    ("named pipe for META.json", |d| fifo(d, "META.json"), &["META.json", "not a regular file (a named pipe)"]),
    ("directory for features.parquet", |d| { rm(d, "features.parquet"); std::fs::create_dir(d.join("features.parquet")).unwrap() }, &["features.parquet", "not a regular file (a directory)"]),
    ("symlink loop for clusters.parquet", |d| { rm(d, "clusters.parquet"); std::os::unix::fs::symlink("clusters.parquet", d.join("clusters.parquet")).unwrap() }, &["clusters.parquet", "symlink loop"]),
    ("missing META.json", |d| rm(d, "META.json"), &["META.json", "missing file", "verify_checksums = false"]),
    ("META.json key outside the batch", |d| edit_meta(d, |m| m["sha256"]["../../../../etc/passwd"] = "00".into()), &["META.json", "\"../../../../etc/passwd\"", "not a plain file name"]),
];

fn rm(dir: &Path, file: &str) {
    std::fs::remove_file(dir.join(file)).unwrap();
}

fn fifo(dir: &Path, file: &str) {
    rm(dir, file);
    let status = std::process::Command::new("mkfifo")
        .arg(dir.join(file))
        .status()
        .unwrap();
    assert!(status.success());
}

/// A truncated Parquet file, with checksums refreshed so the decoder sees it.
fn truncate_alerts(dir: &Path) {
    let p = dir.join("alerts.parquet");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    refresh_meta(dir);
}

fn append_byte(dir: &Path) {
    let p = dir.join("money_flows.parquet");
    let mut bytes = std::fs::read(&p).unwrap();
    bytes.push(0);
    std::fs::write(&p, bytes).unwrap();
}

fn edit_ids(dir: &Path, f: fn(&mut Vec<String>)) {
    edit(dir, "alerts.parquet", |b| {
        let ids = b.column_by_name("alert_id").unwrap().as_string::<i32>();
        let mut v: Vec<String> = ids.iter().map(|s| s.unwrap().to_string()).collect();
        f(&mut v);
        replace_column(&b, "alert_id", Arc::new(StringArray::from(v)))
    });
}

fn edit_meta(dir: &Path, f: fn(&mut serde_json::Value)) {
    let p = dir.join("META.json");
    let mut meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    f(&mut meta);
    std::fs::write(&p, serde_json::to_vec_pretty(&meta).unwrap()).unwrap();
}

fn date(i: usize) -> String {
    format!("2025-10-{:02}", i + 1)
}

/// Runs the cases in groups: each group damages dates 1..5 of a copy of the fixture that was
/// run once before (so planning meets the damaged files too), leaving the last date as the
/// control. Without and with `--force`, each damaged date fails alone saying what its row
/// says, the control completes, `status` answers, and the failed dates' outputs stay byte for
/// byte, with nothing temporary left.
#[test]
fn each_bad_input_fails_its_date_alone() {
    let f = fixture();
    let total: usize = LAST[8..].parse().unwrap();
    for group in CASES.chunks(total - 1) {
        let tmp = tempfile::tempdir().unwrap();
        let input = tmp.path().join("input");
        copy_tree(&f.input, &input);
        let out = tmp.path().join("out");
        let cfg = write_config(&tmp.path().join("cfg"), &input, &out, &f.models);
        let cfg = cfg.to_str().unwrap();
        ok(pipeline(&["run", cfg]));
        let outputs_of = |i: usize| snapshot(&batch_dir(&out, &date(i)));
        let before: Vec<_> = (0..group.len()).map(outputs_of).collect();
        for (i, (_, damage, _)) in group.iter().enumerate() {
            damage(&batch_dir(&input, &date(i)));
        }
        for extra in [&[][..], &["--force"]] {
            let res = pipeline_within(&[&["run", cfg][..], extra].concat(), 300);
            let err = String::from_utf8_lossy(&res.stderr).to_string();
            assert_eq!(res.status.code(), Some(1), "{extra:?}: {err}");
            for (i, (name, _, expect)) in group.iter().enumerate() {
                let line = err
                    .lines()
                    .find(|l| l.trim_start().starts_with(&format!("{}:", date(i))))
                    .unwrap_or_else(|| panic!("{name}: no error line for {}: {err}", date(i)));
                for want in *expect {
                    assert!(
                        line.contains(want),
                        "{name} {extra:?}: {want:?} not in {line}"
                    );
                }
                assert_eq!(outputs_of(i), before[i], "{name}: outputs changed");
            }
            assert!(
                err.contains(&format!("{} dates failed", group.len())),
                "{err}"
            );
            let stdout = String::from_utf8_lossy(&res.stdout);
            let done = format!("{} of {total} dates completed", total - group.len());
            assert!(stdout.contains(&done), "{stdout}");
        }
        let status = ok(pipeline_within(&["status", cfg], 120));
        let text = String::from_utf8_lossy(&status.stdout);
        let failed = text.lines().filter(|l| l.contains("  failed ")).count();
        assert_eq!(failed, group.len(), "{text}");
        let temps: Vec<_> = snapshot(&out)
            .into_iter()
            .filter(|(p, _)| p.to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(temps.is_empty(), "temporary files left: {}", temps.len());
    }
}

/// Null, NaN, infinite and negative volumes and cluster members that name no alert do not
/// stop a date: they are counted in `processing_metadata.json` and warned about.
#[test]
fn accepted_anomalies_are_counted_and_warned_about() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("input");
    copy_tree(&f.input, &input);
    let day = date(1);
    let dir = batch_dir(&input, &day);
    edit(&dir, "alerts.parquet", |b| {
        let n = b.num_rows();
        let mut v: Vec<Option<f64>> = vec![Some(100.0); n];
        v[0] = None;
        v[1] = Some(f64::NAN);
        v[2] = Some(f64::INFINITY);
        v[3] = Some(-5.0);
        replace_column(&b, "volume_usd", Arc::new(Float64Array::from(v)))
    });
    edit(&dir, "clusters.parquet", |b| {
        let rel = b
            .column_by_name("related_alert_ids")
            .unwrap()
            .as_list::<i32>();
        let mut list = ListBuilder::new(StringBuilder::new());
        for i in 0..rel.len() {
            let ids = rel.value(i);
            for id in ids.as_string::<i32>().iter() {
                list.values().append_option(id);
            }
            if i == 0 {
                list.values().append_value("no-such-alert");
            }
            list.append(true);
        }
        replace_column(&b, "related_alert_ids", Arc::new(list.finish()))
    });
    let out = tmp.path().join("out");
    let cfg = write_config(&tmp.path().join("cfg"), &input, &out, &f.models);
    let res = ok(pipeline(&["run", cfg.to_str().unwrap(), "--dates", &day]));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains("volume_usd_missing") && err.contains("cluster_unknown_alert_ids"),
        "{err}"
    );
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(batch_dir(&out, &day).join("processing_metadata.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        meta["input_issues"],
        serde_json::json!({"volume_usd_missing": 3, "volume_usd_negative": 1, "cluster_unknown_alert_ids": 1})
    );
    let scores = scores_by_id(&out, &day);
    assert!(scores
        .values()
        .all(|s| s.is_finite() && (0.0..=1.0).contains(s)));
}

/// `dates_at_once = 0` would let no date decode: refused before any work, naming the stage.
#[test]
fn zero_dates_at_once_is_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = fixture_config(tmp.path());
    with_pipeline(&cfg, |t| {
        assert!(t.contains("dates_at_once = 1 "));
        t.replace("dates_at_once = 1 ", "dates_at_once = 0 ")
    });
    let res = pipeline(&["run", cfg.to_str().unwrap()]);
    assert_eq!(res.status.code(), Some(2));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains("stage `decode`: dates_at_once must be at least 1"),
        "{err}"
    );
    assert!(
        !tmp.path().join("out").join("torus").exists(),
        "nothing written"
    );
}

/// A batch without META.json runs only when the pipeline says `verify_checksums = false`.
#[test]
fn unverified_batches_run_when_asked() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("input");
    copy_tree(&f.input, &input);
    let day = date(2);
    std::fs::remove_file(batch_dir(&input, &day).join("META.json")).unwrap();
    let out = tmp.path().join("out");
    let cfg = write_config(&tmp.path().join("cfg"), &input, &out, &f.models);
    with_pipeline(&cfg, |t| {
        assert!(t.contains("verify_checksums = true"));
        t.replace("verify_checksums = true", "verify_checksums = false")
    });
    let res = ok(pipeline(&["run", cfg.to_str().unwrap(), "--dates", &day]));
    assert!(String::from_utf8_lossy(&res.stderr).contains("checksums not verified"));
    assert!(batch_dir(&out, &day)
        .join("processing_metadata.json")
        .is_file());
}

/// Every codec pyarrow writes (one per date) decodes to the same outputs as the shipped
/// snappy files.
#[test]
fn every_parquet_codec_pyarrow_writes_is_read() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("input");
    copy_tree(&f.input, &input);
    for (i, codec) in CODECS.iter().enumerate() {
        let dir = batch_dir(&input, &date(i));
        let files: Vec<String> = ["alerts", "features", "clusters", "money_flows"]
            .iter()
            .map(|t| dir.join(format!("{t}.parquet")).display().to_string())
            .collect();
        recompress(codec, &files);
        refresh_meta(&dir);
    }
    let run = |input: &Path, out: &Path| {
        let cfg = write_config(&out.with_extension("cfg"), input, out, &f.models);
        ok(pipeline(&["run", cfg.to_str().unwrap()]));
    };
    let (a, b) = (tmp.path().join("codecs"), tmp.path().join("snappy"));
    run(&input, &a);
    run(&f.input, &b);
    assert_eq!(deterministic_view(&a), deterministic_view(&b));
}
#[test]
fn pandas_type_variants_and_empty_tables_are_read() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("input");
    copy_tree(&f.input, &input);
    let dir = batch_dir(&input, "2025-10-03");
    // processing_date as a string, window_days as int16, optional columns dropped.
    edit(&dir, "alerts.parquet", |b| {
        let n = b.num_rows();
        let b = replace_column(
            &b,
            "processing_date",
            Arc::new(StringArray::from(vec!["2025-10-03"; n])),
        );
        let b = replace_column(
            &b,
            "window_days",
            Arc::new(Int16Array::from(vec![WINDOW as i16; n])),
        );
        drop_columns(&b, &["suspected_address_type", "risk_indicators"])
    });
    // A table with no rows, written as pandas does: 0 rows, 0 columns.
    write_parquet(
        &dir.join("clusters.parquet"),
        &RecordBatch::new_empty(Arc::new(Schema::empty())),
    );
    // Feature columns that disappeared upstream.
    edit(&dir, "features.parquet", |b| {
        drop_columns(&b, &["behavioral_anomaly_score", "is_whale", "pagerank"])
    });
    refresh_meta(&dir);
    let out = tmp.path().join("out");
    let cfg = write_config(&tmp.path().join("cfg"), &input, &out, &f.models);
    ok(pipeline(&[
        "run",
        cfg.to_str().unwrap(),
        "--dates",
        "2025-10-03",
    ]));
    let cs = read_parquet(&batch_dir(&out, "2025-10-03").join("cluster_scores.parquet"));
    assert_eq!(cs.num_rows(), 0);
    let s = read_parquet(&batch_dir(&out, "2025-10-03").join("alert_scores.parquet"));
    let alerts = read_parquet(&dir.join("alerts.parquet"));
    assert_eq!(s.num_rows(), alerts.num_rows());
    assert!(s.column_by_name("score").unwrap().null_count() == 0);
}

#[test]
fn invalid_pipeline_graph_is_refused_before_work() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let pipe = tmp.path().join("bad.toml");
    std::fs::write(&pipe, "[[stage]]\nname = \"decode\"\nkind = \"decode\"\n\n[[stage]]\nname = \"s\"\nkind = \"scroe\"\ninputs = [\"decode\"]\n").unwrap();
    let cfg = tmp.path().join("cfg.toml");
    std::fs::write(
        &cfg,
        format!("pipeline = {pipe:?}\nnetwork = \"torus\"\nwindow_days = 195\ninput = {:?}\noutput = {:?}\nmodels = {:?}\n", f.input, tmp.path().join("out"), f.models),
    )
    .unwrap();
    let res = pipeline(&["run", cfg.to_str().unwrap()]);
    assert_eq!(res.status.code(), Some(2));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("unknown kind `scroe`"),
        "{err}"
    );
    assert!(!tmp.path().join("out").exists());

    std::fs::write(&cfg, "pipeline = \"x\"\nnetwork = \"torus\"\nwindow_days = 195\ninput = \"i\"\noutput = \"o\"\nmodels = \"m\"\nwokers = 2\n").unwrap();
    let err =
        String::from_utf8_lossy(&pipeline(&["run", cfg.to_str().unwrap()]).stderr).to_string();
    assert!(err.contains("cfg.toml") && err.contains("wokers"), "{err}");
}
