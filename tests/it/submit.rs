//! Submitting to the subnet validator, against a stand-in that checks rows with its schema and
//! stores them as it does (tests/mock_validator.py): a clean submission through `pipeline run`,
//! a rerun that sends nothing, a changed model, a refused row, 5xx answers and a connection
//! dropped after the validator stored a chunk — every row stored exactly once — and the submit
//! stage of `pipeline run` failing its dates while the validator is down.

use crate::common::*;
use arrow::array::AsArray;
use serde_json::Value;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

const DATES: [&str; 2] = ["2025-10-01", "2025-10-02"];
const URL: &str = "https://github.com/example/aml-pipeline";

/// The validator stand-in on a free loopback port, killed on drop.
struct Validator {
    child: Child,
    port: u16,
}

impl Validator {
    fn start(args: &[&str]) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mock_validator.py");
        let (child, line) = spawn_with_banner(Command::new("python3").arg(script).args(args));
        let port = line.trim().strip_prefix("port ").unwrap().parse().unwrap();
        Self { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The stored rows and the number of POSTs received.
    fn stored(&self) -> (Vec<Value>, u64) {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "GET /_rows HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        let v: Value = serde_json::from_str(raw.split_once("\r\n\r\n").unwrap().1).unwrap();
        (
            v["rows"].as_array().unwrap().clone(),
            v["posts"].as_u64().unwrap(),
        )
    }
}

impl Drop for Validator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A run config over the fixture's first two dates, with the GitHub URL and `extra` keys.
fn setup(tmp: &Path, extra: &str) -> (PathBuf, PathBuf) {
    let f = fixture();
    let out = tmp.join("out");
    let cfg = write_config(&tmp.join("cfg"), &f.input, &out, &f.models);
    add_submitter(&cfg, extra);
    (cfg, out)
}

/// Appends the GitHub URL, the submitter and `extra` keys to a run config.
fn add_submitter(cfg: &Path, extra: &str) {
    let mut text = std::fs::read_to_string(cfg).unwrap();
    text.push_str(&format!(
        "\nmodel_github_url = {URL:?}\nsubmitter_id = \"miner-7\"\n{extra}\n"
    ));
    std::fs::write(cfg, text).unwrap();
}

/// Runs the pipeline over both dates.
fn run_both(cfg: &Path) -> std::process::Output {
    ok(pipeline(&[
        "run",
        cfg.to_str().unwrap(),
        "--dates",
        &dates(),
    ]))
}

fn dates() -> String {
    format!("{}..{}", DATES[0], DATES[1])
}

/// `alert_id`s of a date's written scores.
fn alert_ids(out: &Path, date: &str) -> Vec<String> {
    let b = read_parquet(&batch_dir(out, date).join("alert_scores.parquet"));
    b.column_by_name("alert_id")
        .unwrap()
        .as_string::<i32>()
        .iter()
        .map(|v| v.unwrap().to_string())
        .collect()
}

/// Every alert of both dates stored exactly once, with the scores as written.
fn assert_stored_once(v: &Validator, out: &Path) {
    let (rows, _) = v.stored();
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    for r in &rows {
        let key = (
            r["processing_date"].as_str().unwrap().to_string(),
            r["alert_id"].as_str().unwrap().to_string(),
        );
        *seen.entry(key).or_default() += 1;
        assert_eq!(r["model_github_url"], URL);
        assert_eq!(r["submitter_id"], "miner-7");
        assert_eq!(r["window_days"], WINDOW);
    }
    let mut want = 0;
    for d in DATES {
        let scores = scores_by_id(out, d);
        for id in alert_ids(out, d) {
            want += 1;
            assert_eq!(seen.get(&(d.to_string(), id.clone())), Some(&1), "{d} {id}");
            let row = rows
                .iter()
                .find(|r| r["alert_id"] == id.as_str() && r["processing_date"] == d)
                .unwrap();
            assert_eq!(
                row["score"].as_f64().unwrap().to_bits(),
                scores[&id].to_bits()
            );
        }
    }
    assert_eq!(rows.len(), want, "rows stored beyond the alerts");
}

fn submit(cfg: &Path, v: &Validator, extra: &[&str]) -> std::process::Output {
    let (url, dates) = (v.url(), dates());
    let args = [
        &[
            "submit",
            cfg.to_str().unwrap(),
            "--dates",
            &dates,
            "--validator-url",
            &url,
        ][..],
        extra,
    ]
    .concat();
    pipeline_within(&args, 120)
}

#[test]
fn a_run_submits_once_and_a_rerun_sends_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let v = Validator::start(&[]);
    let (cfg, out) = setup(
        tmp.path(),
        &format!("validator_url = {:?}\nrows_per_request = 150", v.url()),
    );
    let res = run_both(&cfg);
    let stdout = String::from_utf8_lossy(&res.stdout);
    assert!(
        stdout.contains(&format!("submit {}: ", DATES[0])),
        "{stdout}"
    );
    assert_stored_once(&v, &out);
    let posts = v.stored().1;
    let n: usize = DATES.iter().map(|d| alert_ids(&out, d).len()).sum();
    assert_eq!(
        posts as usize,
        DATES
            .iter()
            .map(|d| alert_ids(&out, d).len().div_ceil(150))
            .sum::<usize>(),
        "{n} rows"
    );

    let res = ok(submit(&cfg, &v, &[]));
    assert!(String::from_utf8_lossy(&res.stdout).contains("already submitted"));
    assert_eq!(v.stored().1, posts, "a rerun must send nothing");
    run_both(&cfg);
    assert_eq!(v.stored().1, posts);

    // Another model (here, another repository) changes what would be sent: not sent again
    // without --force, since the validator would keep both submissions.
    let other = [
        "--model-github-url",
        "https://github.com/example/other-model",
    ];
    let res = ok(submit(&cfg, &v, &other));
    assert!(String::from_utf8_lossy(&res.stdout).contains("changed since it was submitted"));
    assert_eq!(v.stored().1, posts);
    ok(submit(&cfg, &v, &[&other[..], &["--force"]].concat()));
    assert_eq!(v.stored().0.len(), 2 * n, "--force sends the day again");

    // A dry run writes the bodies and sends nothing.
    let bodies = tmp.path().join("bodies.jsonl");
    ok(submit(
        &cfg,
        &v,
        &["--force", "--dry-run", bodies.to_str().unwrap()],
    ));
    let text = std::fs::read_to_string(&bodies).unwrap();
    let sent: usize = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["submissions"]
                .as_array()
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(sent, n);
    assert_eq!(v.stored().0.len(), 2 * n);
}

#[test]
fn a_refused_row_fails_only_its_date() {
    let tmp = tempfile::tempdir().unwrap();
    let (cfg, out) = setup(tmp.path(), "");
    run_both(&cfg);
    let bad = alert_ids(&out, DATES[0])[5].clone();
    let v = Validator::start(&["--reject-alert", &bad]);
    let res = submit(&cfg, &v, &[]);
    assert_eq!(res.status.code(), Some(1));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains(&format!("submit {}", DATES[0])) && err.contains("422") && err.contains(&bad),
        "{err}"
    );
    let (rows, _) = v.stored();
    assert!(rows.iter().all(|r| r["processing_date"] == DATES[1]));
    assert_eq!(rows.len(), alert_ids(&out, DATES[1]).len());
}

#[test]
fn lost_answers_are_retried_and_every_row_is_stored_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (cfg, out) = setup(tmp.path(), "rows_per_request = 100");
    run_both(&cfg);
    let retry = ["--retry-delay-ms", "10"];
    // Two 500s first, then the connection dropped right after the third chunk was stored.
    let v = Validator::start(&["--fail-first", "2", "--drop-after-store", "5"]);
    let res = ok(submit(&cfg, &v, &retry));
    assert!(String::from_utf8_lossy(&res.stdout).contains("scores sent"));
    assert_stored_once(&v, &out);
}

/// A chunk whose answer was lost after the validator stored it, then a rerun: the rerun asks
/// the validator's read-back before sending and does not send that chunk again.
#[test]
fn a_rerun_after_a_lost_answer_does_not_resend_the_stored_chunk() {
    let tmp = tempfile::tempdir().unwrap();
    let (cfg, out) = setup(tmp.path(), "rows_per_request = 100");
    run_both(&cfg);
    // The answer to the second chunk of the later date is lost (the read-back shows only a
    // submitter's latest date, so a lost chunk of an older date could not be told apart).
    let second_of_later = alert_ids(&out, DATES[0]).len().div_ceil(100) + 2;
    let v = Validator::start(&["--drop-after-store", &second_of_later.to_string()]);
    let res = submit(&cfg, &v, &["--attempts", "1"]);
    assert_eq!(res.status.code(), Some(1));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(err.contains(&format!("submit {}", DATES[1])), "{err}");
    ok(submit(&cfg, &v, &[]));
    assert_stored_once(&v, &out);
}

/// A day without alerts validates and has nothing to send.
#[test]
fn a_day_without_alerts_is_valid_and_sends_nothing() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("input");
    copy_tree(&f.input, &input);
    let day = batch_dir(&input, DATES[0]);
    let empty = arrow::record_batch::RecordBatch::new_empty(std::sync::Arc::new(
        arrow::datatypes::Schema::empty(),
    ));
    write_parquet(&day.join("alerts.parquet"), &empty);
    refresh_meta(&day);
    let out = tmp.path().join("out");
    let cfg = write_config(&tmp.path().join("cfg"), &input, &out, &f.models);
    add_submitter(&cfg, "");
    ok(pipeline(&[
        "run",
        cfg.to_str().unwrap(),
        "--dates",
        DATES[0],
    ]));
    let v = Validator::start(&[]);
    let url = v.url();
    let res = ok(pipeline(&[
        "submit",
        cfg.to_str().unwrap(),
        "--dates",
        DATES[0],
        "--validator-url",
        &url,
    ]));
    assert!(String::from_utf8_lossy(&res.stdout).contains("no alerts, nothing to send"));
    assert_eq!(v.stored().1, 0);
}

/// The submit stage of `pipeline run`: a validator that does not answer fails the dates (and
/// only their submission); the next run reruns the submit stage alone and stores every row once.
#[test]
fn a_failed_submission_fails_its_date_and_the_next_run_reruns_only_the_submit_stage() {
    let tmp = tempfile::tempdir().unwrap();
    let v = Validator::start(&["--fail-first", "2"]);
    let (cfg, out) = setup(tmp.path(), &format!("validator_url = {:?}", v.url()));
    with_pipeline(&cfg, |t| {
        assert!(t.contains("attempts = 5"));
        t.replace("attempts = 5", "attempts = 1")
    });
    let args = ["run", cfg.to_str().unwrap(), "--dates", &dates()];
    let res = pipeline(&args);
    assert_eq!(res.status.code(), Some(1));
    let err = String::from_utf8_lossy(&res.stderr);
    for d in DATES {
        assert!(
            err.contains(&format!("of {d} not accepted after 1 attempts")),
            "{err}"
        );
    }
    assert!(err.contains("2 dates failed (2 submission)"), "{err}");
    assert!(v.stored().0.is_empty());
    assert!(!alert_ids(&out, DATES[0]).is_empty(), "outputs written");

    let dry = ok(pipeline(&[&args[..], &["--dry-run"]].concat()));
    let plan = String::from_utf8_lossy(&dry.stdout);
    assert!(
        plan.contains("run submit (") && !plan.contains("decode"),
        "{plan}"
    );
    let res = ok(pipeline(&args));
    assert!(String::from_utf8_lossy(&res.stdout).contains("scores sent"));
    assert_stored_once(&v, &out);
}

/// Two processes, each with its share of the dates, submit them in date order: the validator
/// checks a date's lost chunks by reading back the submitter's latest date, so a later date
/// sent first would hide an earlier one's rows.
#[test]
fn two_processes_submit_their_dates_in_date_order() {
    let tmp = tempfile::tempdir().unwrap();
    let v = Validator::start(&[]);
    let (cfg, out) = setup(
        tmp.path(),
        &format!("validator_url = {:?}\nrows_per_request = 50", v.url()),
    );
    run_two_processes(&cfg, &["--dates", &dates()]);
    assert_stored_once(&v, &out);
    let (rows, _) = v.stored();
    let order: Vec<&str> = rows
        .iter()
        .map(|r| r["processing_date"].as_str().unwrap())
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert!(order == sorted, "rows stored out of date order: {order:?}");
}
