//! Incremental reruns, crash safety, the run lock and multi-process runs, through the CLI on
//! generated data.

use crate::common::*;
use arrow::array::{ArrayRef, AsArray, Float64Array};
use arrow::datatypes::Float64Type;
use arrow::record_batch::RecordBatch;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const DATES: [&str; 6] = [
    "2025-10-01",
    "2025-10-02",
    "2025-10-03",
    "2025-10-04",
    "2025-10-05",
    "2025-10-06",
];

/// A private copy of the fixture's input and models with a run config over them.
struct Setup {
    _tmp: tempfile::TempDir,
    input: PathBuf,
    models: PathBuf,
    out: PathBuf,
    cfg: PathBuf,
}

fn setup() -> Setup {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("input");
    let models = tmp.path().join("models");
    copy_tree(&f.input, &input);
    copy_tree(&f.models, &models);
    let out = tmp.path().join("out");
    let cfg = write_config(&tmp.path().join("cfg"), &input, &out, &models);
    Setup {
        _tmp: tmp,
        input,
        models,
        out,
        cfg,
    }
}

fn run(s: &Setup, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["run", s.cfg.to_str().unwrap()];
    args.extend_from_slice(extra);
    pipeline(&args)
}

/// Stage → run id of the output each stage of `date` last produced.
fn run_ids(out: &Path, date: &str) -> BTreeMap<String, String> {
    let p = out.join(format!(".state/{NETWORK}/{WINDOW}/dates/{date}.json"));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
    v["stages"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, r)| (k.clone(), r["run_id"].as_str().unwrap().to_string()))
        .collect()
}

fn all_run_ids(out: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    DATES
        .iter()
        .map(|d| (d.to_string(), run_ids(out, d)))
        .collect()
}

/// (date, stage) pairs whose output was made by a different run in `after` than in `before`.
fn recomputed(
    before: &BTreeMap<String, BTreeMap<String, String>>,
    after: &BTreeMap<String, BTreeMap<String, String>>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (d, stages) in after {
        for (s, id) in stages {
            if before.get(d).and_then(|b| b.get(s)) != Some(id) {
                out.push((d.clone(), s.clone()));
            }
        }
    }
    out
}

/// The (date, stage) pairs a `--dry-run --format json` plan says will run.
fn planned(stdout: &[u8]) -> Vec<(String, String)> {
    let plan: serde_json::Value = serde_json::from_slice(stdout).unwrap();
    let mut out = Vec::new();
    for d in plan.as_array().unwrap() {
        for s in d["run"].as_array().unwrap() {
            out.push((
                d["date"].as_str().unwrap().to_string(),
                s.as_str().unwrap().to_string(),
            ));
        }
    }
    out.sort();
    out
}

fn pairs(dates: &[&str], stages: &[&str]) -> Vec<(String, String)> {
    let mut v: Vec<_> = dates
        .iter()
        .flat_map(|d| stages.iter().map(move |s| (d.to_string(), s.to_string())))
        .collect();
    v.sort();
    v
}

/// Checks that `--dry-run` announces exactly `expect`, then runs and checks that exactly
/// `expect` was recomputed.
fn expect_rerun(s: &Setup, expect: Vec<(String, String)>) {
    let before = all_run_ids(&s.out);
    let dry = ok(run(s, &["--dry-run", "--format", "json"]));
    assert_eq!(
        planned(&dry.stdout),
        expect,
        "dry run:\n{}",
        String::from_utf8_lossy(&dry.stdout)
    );
    assert_eq!(
        all_run_ids(&s.out),
        before,
        "a dry run must not change anything"
    );
    ok(run(s, &[]));
    let mut got = recomputed(&before, &all_run_ids(&s.out));
    got.sort();
    assert_eq!(got, expect, "what ran differs from the plan");
}

const ALL: [&str; 9] = [
    "fetch",
    "decode",
    "features",
    "score",
    "rank",
    "cluster_score",
    "write",
    "validate",
    "submit",
];

#[test]
fn unchanged_inputs_rerun_nothing_and_force_reruns_everything() {
    let s = setup();
    ok(run(&s, &[]));
    expect_rerun(&s, vec![]);
    let out = ok(run(&s, &[]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 of 6 dates to run, 6 up to date"));
    let before = all_run_ids(&s.out);
    ok(run(&s, &["--force", "--dates", "2025-10-02"]));
    assert_eq!(
        recomputed(&before, &all_run_ids(&s.out)),
        pairs(&["2025-10-02"], &ALL)
    );
}

#[test]
fn a_changed_input_file_reruns_its_date_and_those_whose_history_window_holds_it() {
    let s = setup();
    ok(run(&s, &[]));
    let clean = deterministic_view(&s.out);
    let dir = batch_dir(&s.input, "2025-10-03");
    let alerts = read_parquet(&dir.join("alerts.parquet"));
    let i = alerts.schema().index_of("alert_confidence_score").unwrap();
    let col = arrow::compute::cast(alerts.column(i), &arrow::datatypes::DataType::Float64).unwrap();
    let halved: Float64Array = col
        .as_primitive::<Float64Type>()
        .iter()
        .map(|v| v.map(|x| x * 0.5))
        .collect();
    let mut cols: Vec<ArrayRef> = alerts.columns().to_vec();
    cols[i] = Arc::new(halved);
    let schema = Arc::new(arrow::datatypes::Schema::new(
        alerts
            .schema()
            .fields()
            .iter()
            .enumerate()
            .map(|(j, f)| {
                if j == i {
                    arrow::datatypes::Field::new(
                        f.name(),
                        arrow::datatypes::DataType::Float64,
                        true,
                    )
                } else {
                    f.as_ref().clone()
                }
            })
            .collect::<Vec<_>>(),
    ));
    write_parquet(
        &dir.join("alerts.parquet"),
        &RecordBatch::try_new(schema, cols).unwrap(),
    );
    refresh_meta(&dir);
    let status = ok(pipeline(&["status", s.cfg.to_str().unwrap()]));
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("2025-10-03  stale") && text.contains("input alerts.parquet changed"),
        "{text}"
    );
    // The dates after it hold 2025-10-03 in their 30-date history window; the ones before do not.
    for d in ["2025-10-04", "2025-10-05", "2025-10-06"] {
        assert!(
            text.contains(&format!("{d}  stale")) && text.contains("history window changed"),
            "{text}"
        );
    }
    assert!(text.contains("2 up to date"), "{text}");
    // Later dates rerun from decode on: feature_join needs decode's feature and flow tables,
    // which are not cached.
    expect_rerun(
        &s,
        pairs(
            &["2025-10-03", "2025-10-04", "2025-10-05", "2025-10-06"],
            &ALL[1..], // all but fetch, whose fingerprint holds no input
        ),
    );
    let after = deterministic_view(&s.out);
    let other = |v: &[(String, Vec<u8>)]| -> Vec<(String, Vec<u8>)> {
        v.iter()
            .filter(|(n, _)| !n.contains("2025-10-03") && !n.contains("summary"))
            .cloned()
            .collect()
    };
    // Only the confidence score changed, not addresses or volumes: the history is unchanged.
    assert_eq!(other(&clean), other(&after), "other dates' outputs changed");
    assert_ne!(clean, after, "the changed date's outputs did not change");
}

#[test]
fn a_new_model_reruns_its_stage_and_downstream_only_and_matches_a_clean_run() {
    let s = setup();
    ok(run(&s, &[]));
    // A different alert scorer, installed as the newest: `latest` now resolves to it.
    ok(pipeline(&[
        "train",
        s.cfg.to_str().unwrap(),
        "--model",
        "alert_scorer",
        "--iterations",
        "25",
        "--seed",
        "5",
    ]));
    expect_rerun(
        &s,
        pairs(&DATES, &["score", "rank", "write", "validate", "submit"]),
    );
    // Stages fed from the cache give what a clean run with the new model gives.
    let clean = tempfile::tempdir().unwrap();
    let cfg = write_config(clean.path(), &s.input, &clean.path().join("out"), &s.models);
    ok(pipeline(&["run", cfg.to_str().unwrap()]));
    assert!(deterministic_view(&s.out) == deterministic_view(&clean.path().join("out")));
}

#[test]
fn a_changed_parameter_reruns_only_its_stage() {
    let s = setup();
    let pipe = with_pipeline(&s.cfg, |t| t);
    let text = std::fs::read_to_string(&pipe).unwrap();
    ok(run(&s, &[]));
    // How many decoded dates a process holds changes memory, not outputs: nothing reruns.
    assert!(text.contains("dates_at_once = 1 "));
    std::fs::write(
        &pipe,
        text.replace("dates_at_once = 1 ", "dates_at_once = 2 "),
    )
    .unwrap();
    expect_rerun(&s, Vec::new());
    assert!(text.contains("max_latency_ms = 100.0"));
    std::fs::write(
        &pipe,
        text.replace("max_latency_ms = 100.0", "max_latency_ms = 90.0"),
    )
    .unwrap();
    expect_rerun(&s, pairs(&DATES, &["validate", "submit"]));
    let explain_off = text
        .replace("max_latency_ms = 100.0", "max_latency_ms = 90.0")
        .replacen("explain = true ", "explain = false", 1);
    assert_ne!(explain_off, text);
    std::fs::write(&pipe, explain_off).unwrap();
    expect_rerun(
        &s,
        pairs(&DATES, &["score", "rank", "write", "validate", "submit"]),
    );
}

#[test]
fn a_second_run_on_the_same_output_is_refused() {
    let s = setup();
    let _held = aml_pipeline::state::RunLock::acquire(&s.out, 0).unwrap();
    let out = run(&s, &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another `pipeline run`"), "{err}");
    assert!(!batch_dir(&s.out, DATES[0]).exists());
}

/// Files under the output date directories that are not complete outputs.
fn partial_files(out: &Path) -> Vec<PathBuf> {
    let allowed = [
        "alert_scores.parquet",
        "alert_rankings.parquet",
        "cluster_scores.parquet",
        "processing_metadata.json",
        "validation.json",
        "validation_summary_195d.json",
    ];
    snapshot(out)
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| !allowed.contains(&p.file_name().unwrap().to_str().unwrap()))
        .collect()
}

#[test]
fn sigkill_at_any_point_then_rerun_gives_a_clean_runs_outputs() {
    let clean = setup();
    ok(run(&clean, &["--workers", "1"]));
    let want = deterministic_view(&clean.out);
    // Kill when the k-th date's metadata appears (k = 0: as soon as the run starts).
    for k in [0usize, 1, 3, 5] {
        let s = setup();
        let mut child = Command::new(bin())
            .args(["run", s.cfg.to_str().unwrap(), "--workers", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        loop {
            let done = DATES
                .iter()
                .filter(|d| {
                    batch_dir(&s.out, d)
                        .join("processing_metadata.json")
                        .exists()
                })
                .count();
            if done >= k || child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = child.kill(); // SIGKILL
        child.wait().unwrap();
        assert_eq!(partial_files(&s.out), Vec::<PathBuf>::new(), "k = {k}");
        let complete: Vec<&str> = DATES
            .iter()
            .copied()
            .filter(|d| {
                let p = s
                    .out
                    .join(format!(".state/{NETWORK}/{WINDOW}/dates/{d}.json"));
                p.exists() && run_ids(&s.out, d).len() == ALL.len()
            })
            .collect();
        let before: BTreeMap<&str, _> = complete.iter().map(|d| (*d, run_ids(&s.out, d))).collect();
        ok(run(&s, &["--workers", "1"]));
        for d in &complete {
            assert_eq!(run_ids(&s.out, d), before[d], "k = {k}: {d} was recomputed");
        }
        assert!(
            deterministic_view(&s.out) == want,
            "k = {k}: outputs differ"
        );
        assert_eq!(partial_files(&s.out), Vec::<PathBuf>::new());
        let staging = s.out.join(".state/staging");
        assert_eq!(std::fs::read_dir(staging).unwrap().count(), 0);
    }
}

#[test]
fn two_processes_give_the_same_outputs_as_one() {
    let one = setup();
    ok(run(&one, &[]));
    let two = setup();
    run_two_processes(&two.cfg, &[]);
    let (a, b) = (deterministic_view(&one.out), deterministic_view(&two.out));
    let names = |v: &[(String, Vec<u8>)]| v.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&a), names(&b));
    for (x, y) in a.iter().zip(&b) {
        assert!(x == y, "{} differs", x.0);
    }
}

#[test]
fn a_process_without_dates_still_joins_the_cluster() {
    let s = setup();
    run_two_processes(&s.cfg, &["--dates", FIRST]);
    assert!(batch_dir(&s.out, FIRST)
        .join("processing_metadata.json")
        .exists());
}

#[test]
fn a_date_whose_state_cache_cannot_be_written_fails_and_reruns_whole() {
    let s = setup();
    let date = DATES[1];
    // A file where the date's cache directory belongs: its cached tables cannot be written.
    let cache = s
        .out
        .join(format!(".state/{NETWORK}/{WINDOW}/cache/{date}"));
    std::fs::create_dir_all(cache.parent().unwrap()).unwrap();
    std::fs::write(&cache, b"in the way").unwrap();
    let out = run(&s, &["--dates", date]);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("cannot write the state cache"), "{text}");
    let state = s
        .out
        .join(format!(".state/{NETWORK}/{WINDOW}/dates/{date}.json"));
    assert!(
        run_ids(&s.out, date).is_empty(),
        "no stage recorded: {}",
        std::fs::read_to_string(&state).unwrap()
    );
    std::fs::remove_file(&cache).unwrap();
    let both = format!("{}..{date}", DATES[0]);
    ok(run(&s, &["--dates", &both]));
    let (stages, clean) = (run_ids(&s.out, date), run_ids(&s.out, DATES[0]));
    assert!(!clean.is_empty());
    assert_eq!(
        stages.keys().collect::<Vec<_>>(),
        clean.keys().collect::<Vec<_>>(),
        "every stage reran and is recorded"
    );
}

#[test]
fn changed_money_flows_rerun_the_dates_whose_flow_history_holds_them() {
    // The fixture's models use every feature, the flow history's among them.
    let s = setup();
    ok(run(&s, &[]));
    let dir = batch_dir(&s.input, "2025-10-03");
    let flows = read_parquet(&dir.join("money_flows.parquet"));
    let every_other: arrow::array::BooleanArray =
        (0..flows.num_rows()).map(|i| Some(i % 2 == 0)).collect();
    let fewer = arrow::compute::filter_record_batch(&flows, &every_other).unwrap();
    write_parquet(&dir.join("money_flows.parquet"), &fewer);
    refresh_meta(&dir);
    let status = ok(pipeline(&["status", s.cfg.to_str().unwrap()]));
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("2025-10-03  stale") && text.contains("input money_flows.parquet changed"),
        "{text}"
    );
    for d in ["2025-10-04", "2025-10-05", "2025-10-06"] {
        assert!(text.contains(&format!("{d}  stale")), "{text}");
    }
    assert!(
        text.contains("money flows in the 30-date history window changed"),
        "{text}"
    );
    assert!(
        !text.contains("alerts in the 30-date history window changed"),
        "{text}"
    );
    assert!(text.contains("2 up to date"), "{text}");
}
