//! Bad input fails only its own date, with a message naming the file, the column and what was
//! expected; the failed date's previous outputs stay untouched and the other dates complete.

mod common;

use arrow::array::{Array, ArrayRef, AsArray, Int16Array, StringArray};
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;
use common::*;
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

#[test]
fn each_bad_input_fails_its_date_alone() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("input");
    copy_tree(&f.input, &input);
    let out = tmp.path().join("out");
    let cfg = write_config(&tmp.path().join("cfg"), &input, &out, &f.models);
    ok(pipeline(&["run", cfg.to_str().unwrap()]));
    let before = snapshot(&out);

    let d = |day: u32| batch_dir(&input, &format!("2025-10-{day:02}"));
    // 01: a missing file.
    std::fs::remove_file(d(1).join("clusters.parquet")).unwrap();
    // 02: a truncated Parquet file (checksums refreshed so the decoder sees it).
    let p = d(2).join("alerts.parquet");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    refresh_meta(&d(2));
    // 03: a missing required column.
    edit(&d(3), "alerts.parquet", |b| {
        drop_columns(&b, &["alert_confidence_score"])
    });
    // 04: a column of the wrong type.
    edit(&d(4), "alerts.parquet", |b| {
        let n = b.num_rows();
        replace_column(
            &b,
            "volume_usd",
            Arc::new(StringArray::from(vec!["12.5"; n])),
        )
    });
    // 05: a checksum mismatch.
    let p = d(5).join("money_flows.parquet");
    let mut bytes = std::fs::read(&p).unwrap();
    bytes.push(0);
    std::fs::write(&p, bytes).unwrap();
    // 06: duplicate alert ids.
    edit(&d(6), "alerts.parquet", |b| {
        let ids = b.column_by_name("alert_id").unwrap().as_string::<i32>();
        let mut v: Vec<String> = ids.iter().map(|s| s.unwrap().to_string()).collect();
        v[1] = v[0].clone();
        replace_column(&b, "alert_id", Arc::new(StringArray::from(v)))
    });

    let res = pipeline(&["run", cfg.to_str().unwrap()]);
    assert_eq!(
        res.status.code(),
        Some(1),
        "a failed date must make the run fail"
    );
    let err = String::from_utf8_lossy(&res.stderr).to_string();
    let line = |day: u32| {
        err.lines()
            .find(|l| l.contains(&format!("2025-10-{day:02}:")))
            .unwrap_or_else(|| panic!("no error for day {day}: {err}"))
            .to_string()
    };
    assert!(
        line(1).contains("clusters.parquet") && line(1).contains("missing file"),
        "{}",
        line(1)
    );
    assert!(
        line(2).contains("alerts.parquet") && line(2).contains("Parquet"),
        "{}",
        line(2)
    );
    assert!(
        line(3).contains("alerts.parquet")
            && line(3).contains("required column `alert_confidence_score` is missing"),
        "{}",
        line(3)
    );
    assert!(
        line(4).contains("column `volume_usd` has type Utf8, expected a number"),
        "{}",
        line(4)
    );
    assert!(
        line(5).contains("money_flows.parquet") && line(5).contains("sha256"),
        "{}",
        line(5)
    );
    assert!(
        line(6).contains("alert_id") && line(6).contains("repeats the value"),
        "{}",
        line(6)
    );
    assert!(err.contains("6 dates failed"), "{err}");

    // Failed dates kept their earlier outputs byte for byte, and nothing temporary is left
    // (the run's validation summary, which covers only completed dates, is rewritten).
    let dates_only = |s: Vec<(std::path::PathBuf, Vec<u8>)>| {
        s.into_iter()
            .filter(|(p, _)| !p.to_string_lossy().contains("validation_summary"))
            .collect::<Vec<_>>()
    };
    assert_eq!(dates_only(snapshot(&out)), dates_only(before));
}

#[test]
fn processing_date_mismatch_names_the_column() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("input");
    copy_tree(&f.input, &input);
    let dir = batch_dir(&input, "2025-10-02");
    edit(&dir, "alerts.parquet", |b| {
        let n = b.num_rows();
        replace_column(
            &b,
            "processing_date",
            Arc::new(StringArray::from(vec!["2025-10-03"; n])),
        )
    });
    let cfg = write_config(
        &tmp.path().join("cfg"),
        &input,
        &tmp.path().join("out"),
        &f.models,
    );
    let res = pipeline(&["run", cfg.to_str().unwrap()]);
    assert_eq!(res.status.code(), Some(1));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains("column `processing_date` holds 2025-10-03")
            && err.contains("is for 2025-10-02"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&res.stdout).contains("5 of 6 dates completed"));
    assert!(!batch_dir(&tmp.path().join("out"), "2025-10-02").exists());
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
