//! `pipeline fetch` and the fetch stage against a real S3-compatible server (moto, installed by
//! scripts/setup.sh) that each test starts on loopback, with generated batches uploaded to it.

use crate::common::*;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BUCKET: &str = "data-pipeline";

/// moto's standalone S3 server on a free loopback port, killed on drop.
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m moto.server (scripts/setup.sh installs moto[server])");
        let mut moto = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while http(port, "GET / HTTP/1.1").is_none() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto server exited with {status} (is moto[server] installed? run scripts/setup.sh)");
            }
            assert!(
                Instant::now() < deadline,
                "moto server did not answer on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // A public bucket, like the subnet's: moto (>= 5.1) refuses anonymous requests otherwise.
        let created = http(
            port,
            &format!("PUT /{BUCKET} HTTP/1.1\r\nx-amz-acl: public-read-write"),
        )
        .unwrap();
        assert!(
            created.starts_with("HTTP/1.1 200"),
            "create bucket: {created}"
        );
        moto
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn store(&self) -> impl ObjectStore {
        AmazonS3Builder::new()
            .with_bucket_name(BUCKET)
            .with_endpoint(self.endpoint())
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_skip_signature(true)
            .build()
            .unwrap()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request without a body; the response's head, or `None` if nothing answers.
fn http(port: u16, request_line: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "{request_line}\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    (!out.is_empty()).then_some(out)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

/// Uploads the fixture's batches of `dates` under `snapshots/` and its labels under `address-labels/`.
fn upload(moto: &Moto, dates: &[&str]) {
    let store = moto.store();
    let f = fixture();
    runtime().block_on(async {
        for d in dates {
            let dir = batch_dir(&f.input, d);
            for e in std::fs::read_dir(&dir).unwrap() {
                let p = e.unwrap().path();
                let key = format!(
                    "snapshots/{NETWORK}/{d}/{WINDOW}/{}",
                    p.file_name().unwrap().to_str().unwrap()
                );
                put(&store, &key, std::fs::read(&p).unwrap()).await;
            }
        }
        let labels = std::fs::read(f.input.join(NETWORK).join("address_labels.parquet")).unwrap();
        put(
            &store,
            &format!("address-labels/{NETWORK}_address_labels.parquet"),
            labels,
        )
        .await;
    });
}

async fn put(store: &impl ObjectStore, key: &str, bytes: Vec<u8>) {
    store
        .put(&Key::from(key), PutPayload::from(bytes))
        .await
        .unwrap_or_else(|e| panic!("upload {key}: {e}"));
}

/// `pipeline` with the S3 environment of a local server and no credentials (anonymous).
fn pipeline_s3(endpoint: &str, args: &[&str]) -> Output {
    pipeline_s3_env(endpoint, args, &[])
}

/// [`pipeline_s3`] with more environment variables.
fn pipeline_s3_env(endpoint: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let out = Command::new(bin())
        .args(args)
        .envs(env.iter().copied())
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("run pipeline");
    if std::env::var_os("TEST_VERBOSE").is_some() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    }
    out
}

/// A run config in `tmp/cfg` with input `tmp/input` (empty) and `source` set.
fn config(tmp: &Path, source: &str) -> (PathBuf, PathBuf) {
    let f = fixture();
    let input = tmp.join("input");
    let cfg = write_config(&tmp.join("cfg"), &input, &tmp.join("out"), &f.models);
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        format!("{text}source = {source:?}\nfetch_concurrency = 4\n"),
    )
    .unwrap();
    (cfg, input)
}

/// [`config`] in a new temporary directory, with the moto bucket as `source`.
fn s3_config() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let (cfg, input) = config(tmp.path(), &format!("s3://{BUCKET}/snapshots"));
    (tmp, cfg, input)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn day(i: u64) -> String {
    (chrono::NaiveDate::parse_from_str(FIRST, "%Y-%m-%d").unwrap() + chrono::Days::new(i))
        .format("%Y-%m-%d")
        .to_string()
}

/// Files whose names mark them as temporary, anywhere under `dir`.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    snapshot(dir)
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| p.to_string_lossy().contains(".tmp-"))
        .collect()
}

fn mtimes(dir: &Path) -> Vec<(PathBuf, std::time::SystemTime)> {
    snapshot(dir)
        .into_iter()
        .map(|(p, _)| {
            let m = std::fs::metadata(dir.join(&p)).unwrap().modified().unwrap();
            (p, m)
        })
        .collect()
}

#[test]
fn clean_fetch_is_byte_identical_and_a_rerun_downloads_nothing() {
    let moto = Moto::start();
    let dates = [day(0), day(1), day(2)];
    upload(&moto, &dates.iter().map(String::as_str).collect::<Vec<_>>());
    let (_tmp, cfg, input) = s3_config();
    let cfg = cfg.to_str().unwrap();
    let range = format!("{}..{}", dates[0], dates[2]);
    let out = pipeline_s3(&moto.endpoint(), &["fetch", cfg, "--dates", &range]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let f = fixture();
    for d in &dates {
        assert_eq!(
            snapshot(&batch_dir(&input, d)),
            snapshot(&batch_dir(&f.input, d)),
            "{d}: fetched files differ from the source"
        );
    }
    let labels =
        |root: &Path| std::fs::read(root.join(NETWORK).join("address_labels.parquet")).unwrap();
    assert_eq!(labels(&input), labels(&f.input));
    assert!(
        stdout(&out).contains("3 of 3 dates complete"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("address labels: downloaded"));

    // Again, with the dates listed at the source: nothing is downloaded, nothing rewritten.
    let before = mtimes(&input);
    std::thread::sleep(Duration::from_millis(20));
    let out = pipeline_s3(&moto.endpoint(), &["fetch", cfg, "--dates", "all"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let s = stdout(&out);
    assert!(
        s.contains("3 of 3 dates complete (0 bytes downloaded"),
        "{s}"
    );
    assert_eq!(
        s.matches("0 downloaded (0 bytes), 4 already present")
            .count(),
        3,
        "{s}"
    );
    assert!(s.contains("address labels: up to date"), "{s}");
    assert_eq!(mtimes(&input), before, "a rerun rewrote files");
    assert!(temp_files(&input).is_empty());
}

#[test]
fn corrupt_object_fails_its_date_alone_and_leaves_nothing() {
    let moto = Moto::start();
    let dates = [day(0), day(1)];
    upload(&moto, &dates.iter().map(String::as_str).collect::<Vec<_>>());
    // The second date's features are replaced by other bytes: META.json no longer matches.
    let f = fixture();
    let bad = std::fs::read(batch_dir(&f.input, &day(3)).join("features.parquet")).unwrap();
    let store = moto.store();
    runtime().block_on(put(
        &store,
        &format!("snapshots/{NETWORK}/{}/{WINDOW}/features.parquet", dates[1]),
        bad.clone(),
    ));
    let (_tmp, cfg, input) = s3_config();
    let range = format!("{}..{}", dates[0], dates[1]);
    let out = pipeline_s3(
        &moto.endpoint(),
        &["fetch", cfg.to_str().unwrap(), "--dates", &range],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let err = stderr(&out);
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(batch_dir(&f.input, &dates[1]).join("META.json")).unwrap(),
    )
    .unwrap();
    let want = meta["sha256"]["features.parquet"].as_str().unwrap();
    let got = aml_pipeline::io::sha256_bytes(&bad);
    assert!(
        err.contains(&dates[1]) && err.contains("features.parquet"),
        "{err}"
    );
    assert!(err.contains(want) && err.contains(&got), "{err}");
    assert!(
        !batch_dir(&input, &dates[1]).exists(),
        "the failed date left files behind"
    );
    assert!(temp_files(&input).is_empty());
    assert_eq!(
        snapshot(&batch_dir(&input, &dates[0])),
        snapshot(&batch_dir(&f.input, &dates[0]))
    );
}

#[test]
fn temporary_files_of_a_live_process_are_left_alone_and_a_dead_ones_removed() {
    // Two processes fetching the same date (a second `pipeline fetch`, or the processes of one
    // cluster run sharing an input tree, whose history windows overlap) must not delete each
    // other's downloads in progress; a killed fetch's leftovers are garbage.
    let moto = Moto::start();
    upload(&moto, &[&day(0)]);
    let (_tmp, cfg, input) = s3_config();
    let dir = batch_dir(&input, &day(0));
    std::fs::create_dir_all(&dir).unwrap();
    let mut gone = Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    let live = dir.join(format!(".features.parquet.tmp-{}-0", std::process::id()));
    let dead = dir.join(format!(".features.parquet.tmp-{}-0", gone.id()));
    std::fs::write(&live, b"in progress").unwrap();
    std::fs::write(&dead, b"left by a killed fetch").unwrap();
    let out = pipeline_s3(
        &moto.endpoint(),
        &["fetch", cfg.to_str().unwrap(), "--dates", &day(0)],
    );
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(live.exists(), "a live process's download was deleted");
    assert!(!dead.exists(), "a dead process's leftovers were kept");
    let f = fixture();
    for name in ["META.json", "features.parquet", "money_flows.parquet"] {
        assert_eq!(
            std::fs::read(dir.join(name)).unwrap(),
            std::fs::read(batch_dir(&f.input, &day(0)).join(name)).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn a_source_with_a_pipeline_without_fetch_stage_is_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let (cfg, input) = config(tmp.path(), &tmp.path().display().to_string());
    with_pipeline(&cfg, |t| {
        let start = t.find("[[stage]]\nname = \"fetch\"").unwrap();
        let end = start + t[start..].find("\n\n[[stage]]").unwrap() + 2;
        format!("{}{}", &t[..start], &t[end..]).replace("inputs = [\"fetch\"]\n", "")
    });
    let out = pipeline(&["run", cfg.to_str().unwrap(), "--dates", &day(0)]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("the run config sets `source`, but")
            && err.contains("has no fetch stage to bring the batches in"),
        "{err}"
    );
    assert!(!input.exists(), "nothing may be fetched");
}

#[test]
fn a_date_missing_at_the_source_is_reported_not_failed() {
    let moto = Moto::start();
    upload(&moto, &[&day(0)]);
    let (_tmp, cfg, input) = s3_config();
    let range = format!("{}..{}", day(0), day(1));
    let out = pipeline_s3(
        &moto.endpoint(),
        &["fetch", cfg.to_str().unwrap(), "--dates", &range],
    );
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let s = stdout(&out);
    assert!(
        s.contains(&format!("{}: missing at the source", day(1))),
        "{s}"
    );
    assert!(
        s.contains("1 of 2 dates complete") && s.contains("1 missing at the source, 0 failed"),
        "{s}"
    );
    assert!(!batch_dir(&input, &day(1)).exists());
}

#[test]
fn a_listed_object_that_does_not_exist_fails_its_date() {
    let moto = Moto::start();
    upload(&moto, &[&day(0)]);
    let store = moto.store();
    runtime().block_on(async {
        store
            .delete(&Key::from(format!(
                "snapshots/{NETWORK}/{}/{WINDOW}/clusters.parquet",
                day(0)
            )))
            .await
            .unwrap()
    });
    let (_tmp, cfg, input) = s3_config();
    let out = pipeline_s3(
        &moto.endpoint(),
        &["fetch", cfg.to_str().unwrap(), "--dates", &day(0)],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&day(0)) && err.contains("clusters.parquet is listed in META.json, but"),
        "{err}"
    );
    assert!(!batch_dir(&input, &day(0)).exists());
}

/// A loopback proxy in front of `upstream` that answers 503 to its first `failures` requests
/// (closing each such connection) and forwards everything after that, each `delay` late.
struct FlakyProxy {
    port: u16,
    failed: Arc<AtomicUsize>,
}

impl FlakyProxy {
    fn start(upstream: u16, failures: usize, delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let failed = Arc::new(AtomicUsize::new(0));
        let counter = failed.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut client) = conn else { break };
                let counter = counter.clone();
                std::thread::spawn(move || {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        match client.read(&mut byte) {
                            Ok(1) => head.push(byte[0]),
                            _ => return,
                        }
                    }
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    if n < failures {
                        let _ = client.write_all(
                            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        );
                        return;
                    }
                    counter.fetch_sub(1, Ordering::SeqCst);
                    std::thread::sleep(delay);
                    let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                        return;
                    };
                    if server.write_all(&head).is_err() {
                        return;
                    }
                    let (mut c2, mut s2) =
                        (client.try_clone().unwrap(), server.try_clone().unwrap());
                    let up = std::thread::spawn(move || {
                        let _ = std::io::copy(&mut c2, &mut s2);
                        let _ = s2.shutdown(std::net::Shutdown::Write);
                    });
                    let _ = std::io::copy(&mut server, &mut client);
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    let _ = up.join();
                });
            }
        });
        Self { port, failed }
    }
}

#[test]
fn transient_server_errors_are_retried() {
    let moto = Moto::start();
    let dates = [day(0), day(1)];
    upload(&moto, &dates.iter().map(String::as_str).collect::<Vec<_>>());
    let proxy = FlakyProxy::start(moto.port, 6, Duration::ZERO);
    let (_tmp, cfg, input) = s3_config();
    let range = format!("{}..{}", dates[0], dates[1]);
    let out = pipeline_s3(
        &format!("http://127.0.0.1:{}", proxy.port),
        &["fetch", cfg.to_str().unwrap(), "--dates", &range],
    );
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(
        proxy.failed.load(Ordering::SeqCst),
        6,
        "the proxy did not fail 6 requests"
    );
    let f = fixture();
    for d in &dates {
        assert_eq!(
            snapshot(&batch_dir(&input, d)),
            snapshot(&batch_dir(&f.input, d))
        );
    }
}

#[test]
fn local_directory_and_file_url_sources() {
    let f = fixture();
    for source in [
        f.input.display().to_string(),
        format!("file://{}", f.input.display()),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let (cfg, input) = config(tmp.path(), &source);
        let out = pipeline(&["fetch", cfg.to_str().unwrap(), "--dates", &day(0)]);
        assert!(
            out.status.success(),
            "{source}: {}\n{}",
            stdout(&out),
            stderr(&out)
        );
        assert_eq!(
            snapshot(&batch_dir(&input, &day(0))),
            snapshot(&batch_dir(&f.input, &day(0)))
        );
        // The fixture has no `address-labels/` beside its snapshots: not an error.
        assert!(stdout(&out).contains("address labels: none at the source"));
    }
}

/// The Parquet outputs of a date, without the wall-clock `latency_ms` columns.
fn outputs(root: &Path, date: &str) -> Vec<(String, arrow::record_batch::RecordBatch)> {
    ["alert_scores", "alert_rankings", "cluster_scores"]
        .iter()
        .map(|t| {
            let b = read_parquet(&batch_dir(root, date).join(format!("{t}.parquet")));
            let keep: Vec<usize> = (0..b.num_columns())
                .filter(|&i| b.schema().field(i).name() != "latency_ms")
                .collect();
            (t.to_string(), b.project(&keep).unwrap())
        })
        .collect()
}

#[test]
fn run_with_an_s3_source_matches_the_local_run() {
    // Six dates with one worker, fetched while the graph runs them. The seventh date of the
    // range does not exist at the source.
    let moto = Moto::start();
    let dates: Vec<String> = (0..6).map(day).collect();
    upload(&moto, &dates.iter().map(String::as_str).collect::<Vec<_>>());
    let range = format!("{}..{}", dates[0], day(6));

    let local = tempfile::tempdir().unwrap();
    let local_cfg = fixture_config(local.path());
    let local_range = format!("{}..{}", dates[0], dates[5]);
    ok(pipeline(&[
        "run",
        local_cfg.to_str().unwrap(),
        "--dates",
        &local_range,
        "--workers",
        "1",
    ]));

    let remote = tempfile::tempdir().unwrap();
    let (cfg, input) = config(remote.path(), &format!("s3://{BUCKET}/snapshots"));
    let run_remote = || {
        let args = [
            "run",
            cfg.to_str().unwrap(),
            "--dates",
            &range,
            "--workers",
            "1",
        ];
        let out = pipeline_s3(&moto.endpoint(), &args);
        assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
        out
    };
    let out = run_remote();
    let s = stdout(&out);
    assert!(s.contains("fetch: 6 dates brought in place"), "{s}");
    assert!(
        s.contains(&format!(
            "1 dates missing at the source (not run): {}",
            day(6)
        )),
        "{s}"
    );
    assert!(
        s.contains("plan: 0 of 7 dates to run, 7 to fetch first, 0 up to date"),
        "{s}"
    );
    let f = fixture();
    for d in &dates {
        assert_eq!(
            snapshot(&batch_dir(&input, d)),
            snapshot(&batch_dir(&f.input, d))
        );
        assert_eq!(
            outputs(&remote.path().join("out"), d),
            outputs(&local.path().join("out"), d),
            "{d}: outputs differ"
        );
    }

    // Everything in place: a rerun fetches nothing and runs nothing.
    let out = run_remote();
    assert!(
        stdout(&out).contains("fetch: 0 dates brought in place"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("nothing to do"), "{}", stdout(&out));
}

#[test]
fn the_first_date_decodes_while_later_dates_download() {
    // One download at a time, each request 100 ms late: the fourth date is in place well after
    // the first, which the fetch stage lets into the graph as soon as it (and its window) is.
    let moto = Moto::start();
    let dates: Vec<String> = (0..4).map(day).collect();
    upload(&moto, &dates.iter().map(String::as_str).collect::<Vec<_>>());
    let proxy = FlakyProxy::start(moto.port, 0, Duration::from_millis(100));
    let (_tmp, cfg, input) = s3_config();
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace("fetch_concurrency = 4", "fetch_concurrency = 1"),
    )
    .unwrap();
    let range = format!("{}..{}", dates[0], dates[3]);
    let args = [
        "run",
        cfg.to_str().unwrap(),
        "--dates",
        &range,
        "--workers",
        "1",
    ];
    let endpoint = format!("http://127.0.0.1:{}", proxy.port);
    let out = pipeline_s3_env(&endpoint, &args, &[("RUST_LOG", "aml_pipeline=debug")]);
    let (so, se) = (stdout(&out), without_colours(&stderr(&out)));
    assert!(out.status.success(), "{so}\n{se}");
    assert!(so.contains("4 of 4 dates completed"), "{so}");
    let line = |what: &dyn Fn(&str) -> bool| {
        se.lines()
            .position(what)
            .unwrap_or_else(|| panic!("no such line in:\n{se}"))
    };
    let decoded = line(&|l| {
        l.contains("stage done")
            && l.contains("stage=decode")
            && l.contains(&format!("date={}", dates[0]))
    });
    let last_in_place =
        line(&|l| l.contains("fetched") && l.contains(&format!("date={}", dates[3])));
    assert!(
        decoded < last_in_place,
        "the first date decoded only after the last was fetched:\n{se}"
    );
    let f = fixture();
    for d in &dates {
        assert_eq!(
            snapshot(&batch_dir(&input, d)),
            snapshot(&batch_dir(&f.input, d))
        );
    }
}

/// `text` without ANSI colour sequences (`ESC [ … m`).
fn without_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|&c| c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}
