//! `pipeline query` on the serve tests' outputs ([`crate::serve::outputs`]): counts in every
//! format, the metadata and validation views, and a bad query's error.

use crate::common::*;
use crate::serve::{outputs, D1, D2};
use serde_json::Value;

fn query(args: &[&str]) -> std::process::Output {
    let o = outputs();
    let mut all = vec!["query", o.cfg.to_str().unwrap()];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--output", o.out.to_str().unwrap()]);
    pipeline(&all)
}

#[test]
fn query_counts_match_the_files_in_every_format() {
    let sql = "SELECT processing_date, network, window_days, count(*) AS n FROM alert_scores GROUP BY ALL ORDER BY 1";
    let counts: Vec<usize> = [D1, D2]
        .iter()
        .map(|d| scores_by_id(&outputs().out, d).len())
        .collect();

    let table = String::from_utf8(ok(query(&[sql])).stdout).unwrap();
    assert!(table.contains(&format!("| {D1}")), "{table}");
    assert!(table.contains("(2 rows)"), "{table}");

    let csv = String::from_utf8(ok(query(&[sql, "--format", "csv"])).stdout).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "processing_date,network,window_days,n");
    assert_eq!(lines[1], format!("{D1},{NETWORK},{WINDOW},{}", counts[0]));
    assert_eq!(lines[2], format!("{D2},{NETWORK},{WINDOW},{}", counts[1]));

    let json: Value =
        serde_json::from_slice(&ok(query(&[sql, "--format", "json"])).stdout).unwrap();
    assert_eq!(json[1]["n"].as_u64().unwrap() as usize, counts[1]);

    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("r.parquet");
    ok(query(&[
        sql,
        "--format",
        "parquet",
        "--out",
        file.to_str().unwrap(),
    ]));
    assert_eq!(read_parquet(&file).num_rows(), 2);
}

#[test]
fn query_views_cover_metadata_and_validation() {
    let out = ok(query(&[
        "SELECT m.processing_date, m.output_counts.alert_scores AS n, v.processing_date IS NOT NULL AS validated \
         FROM processing_metadata m LEFT JOIN validation v USING (processing_date) ORDER BY 1",
        "--format",
        "json",
    ]));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(
        v[0]["n"].as_u64().unwrap() as usize,
        scores_by_id(&outputs().out, D1).len()
    );
    assert_eq!(v[0]["validated"], true);
}

#[test]
fn a_bad_query_says_what_is_wrong() {
    let o = query(&["SELEC 1"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("query failed") && err.contains("syntax error"),
        "{err}"
    );
    let o = query(&["SELECT * FROM no_such_view"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("no_such_view"), "{err}");
}
