//! `pipeline serve` on generated outputs (`pipeline query` on the same: [`crate::query`]):
//! every endpoint and shape, pagination, Parquet pages, bad requests (400/404, never 500), path
//! traversal and SQL injection attempts, and a date written while the server runs.

use crate::common::*;
use arrow::array::AsArray;
use arrow::datatypes::Float64Type;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub(crate) const D1: &str = "2025-10-01";
pub(crate) const D2: &str = "2025-10-02";
const D3: &str = "2025-10-03";

/// Outputs of the first two dates, made once and never modified.
pub(crate) struct Outputs {
    _dir: tempfile::TempDir,
    pub(crate) cfg: PathBuf,
    pub(crate) out: PathBuf,
}

/// The shared outputs (also queried by [`crate::query`]).
pub(crate) fn outputs() -> &'static Outputs {
    static O: OnceLock<Outputs> = OnceLock::new();
    O.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let cfg = fixture_config(dir.path());
        ok(pipeline(&[
            "run",
            cfg.to_str().unwrap(),
            "--dates",
            &format!("{D1}..{D2}"),
        ]));
        Outputs {
            out: dir.path().join("out"),
            cfg,
            _dir: dir,
        }
    })
}

/// A `pipeline serve` process on a free loopback port, killed on drop.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(cfg: &Path, output: &Path) -> Self {
        Self::start_with(cfg, output, &[])
    }

    /// A server with `extra` flags.
    fn start_with(cfg: &Path, output: &Path, extra: &[&str]) -> Self {
        let (child, line) = spawn_with_banner(
            Command::new(bin())
                .args(["serve", cfg.to_str().unwrap(), "--bind", "127.0.0.1:0"])
                .args(["--output", output.to_str().unwrap()])
                .args(extra)
                .stderr(Stdio::inherit()),
        );
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no address in the serve banner: {line:?}"));
        Self { child, port }
    }

    /// Sends `method target` verbatim (no client-side normalisation); returns status and body.
    fn request(&self, method: &str, target: &str) -> (u16, Vec<u8>) {
        self.raw(
            format!(
                "{method} {target} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
    }

    /// Sends `bytes` as they are; returns the answer's status and body.
    fn raw(&self, bytes: &[u8]) -> (u16, Vec<u8>) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        // The server may answer and close before it has read everything (a 431, say).
        let _ = s.write_all(bytes);
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a complete HTTP response");
        let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
        let status = head[9..12].parse().unwrap();
        let mut body = raw[split + 4..].to_vec();
        if head.contains("transfer-encoding: chunked") {
            body = dechunk(&body);
        }
        (status, body)
    }

    fn get(&self, target: &str) -> (u16, Vec<u8>) {
        self.request("GET", target)
    }

    /// A 200 JSON response to `GET target`.
    fn json(&self, target: &str) -> Value {
        let (status, body) = self.get(target);
        assert_eq!(status, 200, "{target}: {}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 4 + size..];
    }
}

/// A server over the shared outputs (one per test: a process in a static would outlive the tests).
fn server() -> Server {
    Server::start(&outputs().cfg, &outputs().out)
}

fn ids_and_scores(rows: &Value, id: &str) -> Vec<(String, f64)> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r[id].as_str().unwrap().to_string(),
                r["score"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn every_endpoint_answers_in_the_upstream_shape() {
    let s = server();
    let h = s.json("/health");
    assert_eq!(h["status"], "healthy");
    assert_eq!(h["database_connected"], true);
    assert!(h["timestamp"].is_string() && h["version"].is_string());

    let v = s.json("/version");
    assert_eq!(v["network"], NETWORK);
    assert!(v["commit_hash"].is_string());
    let meta = s.json(&format!("/metadata/{D2}"));
    for k in ["alert_scorer", "alert_ranker", "cluster_scorer"] {
        assert_eq!(v["models"][k], meta["model_versions"][k], "{k}");
    }

    let a = s.json("/dates/available");
    assert_eq!(a["dates"], serde_json::json!([D2, D1]));
    assert_eq!(a["total_count"], 2);
    let l = s.json("/dates/latest");
    assert_eq!(l["latest_date"], D2);
    assert_eq!(l["processed_at"], meta["processed_at"]);

    let sc = s.json(&format!("/scores/alerts/{D1}?limit=100000"));
    let expected = scores_by_id(&outputs().out, D1);
    assert_eq!(sc["processing_date"], D1);
    assert_eq!(
        sc["total_alerts"].as_u64().unwrap() as usize,
        expected.len()
    );
    assert!(sc["model_version"].is_string());
    for k in ["processed_at", "total_latency_ms", "avg_latency_ms"] {
        assert!(!sc["metadata"][k].is_null(), "metadata.{k}");
    }
    let got = ids_and_scores(&sc["scores"], "alert_id");
    assert_eq!(got.len(), expected.len());
    for (id, score) in &got {
        assert_eq!(expected[id].to_bits(), score.to_bits(), "{id}");
    }
    let file = read_parquet(&batch_dir(&outputs().out, D1).join("alert_scores.parquet"));
    let file_ids: Vec<&str> = file
        .column_by_name("alert_id")
        .unwrap()
        .as_string::<i32>()
        .iter()
        .map(|v| v.unwrap())
        .collect();
    let got_ids: Vec<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(got_ids, file_ids, "pages follow the file's order");

    let r = s.json(&format!("/rankings/alerts/{D1}?limit=100000"));
    let ranks: Vec<i64> = r["rankings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["rank"].as_i64().unwrap())
        .collect();
    assert_eq!(ranks, (1..=expected.len() as i64).collect::<Vec<_>>());
    for x in r["rankings"].as_array().unwrap() {
        let id = x["alert_id"].as_str().unwrap();
        assert_eq!(
            x["score"].as_f64().unwrap().to_bits(),
            expected[id].to_bits()
        );
    }

    let c = s.json(&format!("/scores/clusters/{D1}"));
    let clusters = read_parquet(&batch_dir(&outputs().out, D1).join("cluster_scores.parquet"));
    assert_eq!(
        c["total_clusters"].as_u64().unwrap() as usize,
        clusters.num_rows()
    );
    assert_eq!(c["scores"].as_array().unwrap().len(), clusters.num_rows());

    let val = s.json(&format!("/validation/{D1}"));
    let on_disk: Value = serde_json::from_slice(
        &std::fs::read(batch_dir(&outputs().out, D1).join("validation.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(val, on_disk);

    let (status, body) = s.request("POST", "/refresh");
    assert_eq!(status, 200);
    let rf: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(rf["total_count"], 2);

    let (status, body) = s.get("/metrics");
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains("aml_http_requests_total{route=\"/health\",status=\"200\"}"));
    assert!(text.contains("aml_http_request_duration_seconds_bucket"));
    assert!(text.contains("aml_dates_served 2"));

    let api = s.json("/openapi.json");
    for p in [
        "/health",
        "/version",
        "/dates/available",
        "/dates/latest",
        "/scores/alerts/{date}",
        "/rankings/alerts/{date}",
        "/scores/clusters/{date}",
        "/metadata/{date}",
        "/validation/{date}",
        "/refresh",
        "/metrics",
    ] {
        assert!(api["paths"][p].is_object(), "openapi lacks {p}");
    }
}

#[test]
fn pages_cover_every_row_once_and_latest_is_the_newest_date() {
    let s = server();
    let all = ids_and_scores(
        &s.json(&format!("/scores/alerts/{D2}?limit=100000"))["scores"],
        "alert_id",
    );
    let mut paged = Vec::new();
    let mut offset = 0;
    loop {
        let page = s.json(&format!("/scores/alerts/latest?limit=97&offset={offset}"));
        assert_eq!(page["processing_date"], D2);
        let rows = ids_and_scores(&page["scores"], "alert_id");
        if rows.is_empty() {
            break;
        }
        assert!(rows.len() <= 97);
        offset += rows.len();
        paged.extend(rows);
    }
    assert_eq!(paged, all);
    let one = s.json("/dates/available?limit=1&offset=1");
    assert_eq!(one["dates"], serde_json::json!([D1]));
}

#[test]
fn parquet_pages_round_trip() {
    let s = server();
    let json = s.json(&format!("/rankings/alerts/{D1}?limit=50&offset=10"));
    let (status, bytes) = s.get(&format!(
        "/rankings/alerts/{D1}?limit=50&offset=10&format=parquet"
    ));
    assert_eq!(status, 200);
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::from(bytes),
    )
    .unwrap()
    .build()
    .unwrap();
    let mut rows = Vec::new();
    for b in reader {
        let b = b.unwrap();
        let ids = b.column_by_name("alert_id").unwrap().as_string::<i32>();
        let scores = b
            .column_by_name("score")
            .unwrap()
            .as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            rows.push((ids.value(i).to_string(), scores.value(i)));
        }
    }
    assert_eq!(rows.len(), 50);
    assert_eq!(rows, ids_and_scores(&json["rankings"], "alert_id"));
}

#[test]
fn bad_requests_are_400_or_404_with_a_json_body_and_leak_nothing() {
    let s = server();
    let cases = [
        ("/scores/alerts/2024-01-01".to_string(), 404),
        ("/metadata/2024-01-01".to_string(), 404),
        (format!("/scores/alerts/{D1}?network=elsewhere"), 404),
        (format!("/scores/alerts/{D1}?window_days=7"), 404),
        ("/no/such/endpoint".to_string(), 404),
        ("/scores/alerts/2025-13-01".to_string(), 400),
        ("/scores/alerts/yesterday".to_string(), 400),
        (format!("/scores/alerts/{D1}?limit=0"), 400),
        (format!("/scores/alerts/{D1}?limit=abc"), 400),
        (format!("/scores/alerts/{D1}?limit=100001"), 400),
        (format!("/scores/alerts/{D1}?offset=-1"), 400),
        (format!("/scores/alerts/{D1}?format=xml"), 400),
        (format!("/scores/alerts/{D1}?window_days=99999999999"), 400),
        // path traversal
        ("/scores/alerts/..%2F..%2F..%2Fetc%2Fpasswd".to_string(), 400),
        ("/metadata/..%2F..%2F.state".to_string(), 400),
        (format!("/metadata/{D1}?network=..%2F..%2F..%2Fetc"), 400),
        (format!("/metadata/{D1}?network=.state"), 400),
        (format!("/validation/{D1}?network=%2Fetc"), 400),
        ("/scores/alerts/%2e%2e".to_string(), 400),
        // SQL injection
        (format!("/scores/alerts/{D1}'%20OR%20'1'='1"), 400),
        (format!("/scores/alerts/{D1}?network=torus'%3B%20DROP%20TABLE%20x%3B--"), 400),
        (format!("/scores/alerts/{D1}?limit=1%3B%20SELECT%201"), 400),
        (format!("/scores/alerts/{D1}?offset=0)%20UNION%20SELECT%20*%20FROM%20read_csv('%2Fetc%2Fpasswd')--"), 400),
    ];
    for (target, want) in &cases {
        let (status, body) = s.get(target);
        assert_eq!(
            status,
            *want,
            "{target}: {}",
            String::from_utf8_lossy(&body)
        );
        let v: Value = serde_json::from_slice(&body).unwrap_or_else(|_| {
            panic!(
                "{target}: body is not JSON: {}",
                String::from_utf8_lossy(&body)
            )
        });
        assert!(
            v["error"].is_string() && v["detail"].is_string(),
            "{target}: {v}"
        );
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("root:"), "{target} leaked a file: {text}");
    }
    // Raw targets a client would normalise: the router never maps them to files either.
    for target in [
        "/../../etc/passwd",
        "/scores/alerts/../../../etc/passwd",
        "//etc/passwd",
    ] {
        let (status, body) = s.get(target);
        assert!(status == 400 || status == 404, "{target}: {status}");
        assert!(
            !String::from_utf8_lossy(&body).contains("root:"),
            "{target}"
        );
    }
    assert_eq!(
        s.json("/health")["status"],
        "healthy",
        "the server survived"
    );
}

#[test]
fn a_date_written_while_serving_appears_whole_and_never_partially() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    copy_tree(&outputs().out, &out);
    let cfg = write_config(
        &tmp.path().join("cfg"),
        &fixture().input,
        &out,
        &fixture().models,
    );
    let s = Server::start(&cfg, &out);
    let mut run = Command::new(bin())
        .args(["run", cfg.to_str().unwrap(), "--dates", D3])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut missing_seen = 0;
    loop {
        let finished = run.try_wait().unwrap().is_some();
        // Listed first, then fetched: once listed, a date must be served whole.
        let listed = s.json("/dates/available")["dates"]
            .as_array()
            .unwrap()
            .contains(&Value::from(D3));
        let (status, body) = s.get(&format!("/scores/alerts/{D3}?limit=100000"));
        match status {
            404 => {
                missing_seen += 1;
                assert!(!listed, "{D3} was listed, then not served");
                assert!(!finished, "the run finished but {D3} is not served");
            }
            200 => {
                let v: Value = serde_json::from_slice(&body).unwrap();
                let n = v["scores"].as_array().unwrap().len();
                assert_eq!(v["total_alerts"].as_u64().unwrap() as usize, n);
                assert!(n > 0);
                break;
            }
            other => panic!("status {other} while the date was being written"),
        }
        assert!(Instant::now() < deadline, "{D3} never appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(run.wait().unwrap().success());
    assert!(
        missing_seen > 0,
        "the date was served before the run wrote it?"
    );
    assert_eq!(s.json("/dates/latest")["latest_date"], D3);
    let expected = scores_by_id(&out, D3);
    let got = ids_and_scores(
        &s.json(&format!("/scores/alerts/{D3}?limit=100000"))["scores"],
        "alert_id",
    );
    assert_eq!(got.len(), expected.len());
}

/// `{error, detail}` of a JSON error answer with the given status.
fn json_error(status: u16, body: &[u8], want: u16, what: &str) -> Value {
    assert_eq!(status, want, "{what}: {}", String::from_utf8_lossy(body));
    let v: Value = serde_json::from_slice(body).unwrap_or_else(|_| {
        panic!(
            "{what}: body is not JSON: {:?}",
            String::from_utf8_lossy(body)
        )
    });
    assert!(
        v["error"].is_string() && v["detail"].is_string(),
        "{what}: {v}"
    );
    v
}

#[test]
fn every_error_answer_has_a_json_body() {
    let s = server();
    let (st, body) = s.request("POST", "/health");
    json_error(st, &body, 405, "a method the route does not take");
    let long = |n: usize| format!("/scores/alerts/{D1}?network={}", "a".repeat(n));
    let (st, body) = s.get(&long(10_000));
    json_error(st, &body, 414, "a long URI (the router's limit)");
    let (st, body) = s.get(&long(70_000));
    json_error(st, &body, 414, "a very long URI (hyper's own limit)");
    let many: String = (0..150).map(|i| format!("x-h{i}: v\r\n")).collect();
    let req = format!("GET /health HTTP/1.1\r\nHost: x\r\n{many}Connection: close\r\n\r\n");
    let (st, body) = s.raw(req.as_bytes());
    json_error(st, &body, 431, "too many headers");
    let huge = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nx-big: {}\r\nConnection: close\r\n\r\n",
        "b".repeat(600_000)
    );
    let (st, body) = s.raw(huge.as_bytes());
    json_error(st, &body, 431, "a header block over hyper's buffer");
    let (st, body) = s.raw(b"GET /health HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n");
    json_error(st, &body, 400, "a malformed header line");
    let (st, body) = s.raw(b"\x01\x02 nonsense\r\n\r\n");
    json_error(st, &body, 400, "not HTTP at all");
    assert_eq!(
        s.json("/health")["status"],
        "healthy",
        "the server survived"
    );
}

#[test]
fn unreadable_output_files_answer_503_naming_only_the_date_and_file() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    copy_tree(&outputs().out, &out);
    let d1 = batch_dir(&out, D1);
    let d2 = batch_dir(&out, D2);
    for f in [d1.join("alert_scores.parquet"), d1.join("validation.json")] {
        std::fs::remove_file(&f).unwrap();
        assert!(Command::new("mkfifo").arg(&f).status().unwrap().success());
    }
    std::fs::write(d2.join("cluster_scores.parquet"), b"PAR1 not really").unwrap();
    let s = Server::start(&outputs().cfg, &out);
    let cases = [
        (
            format!("/scores/alerts/{D1}"),
            format!("torus/{D1}/195/alert_scores.parquet: not a regular file (a named pipe)"),
        ),
        (
            format!("/validation/{D1}"),
            format!("torus/{D1}/195/validation.json: not a regular file (a named pipe)"),
        ),
        (
            format!("/scores/clusters/{D2}"),
            format!("torus/{D2}/195/cluster_scores.parquet: not a readable Parquet file"),
        ),
    ];
    for (target, detail) in cases {
        let start = Instant::now();
        let (st, body) = s.get(&target);
        let v = json_error(st, &body, 503, &target);
        assert_eq!(v["detail"], detail.as_str(), "{target}");
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{target} took {:?}",
            start.elapsed()
        );
        let text = String::from_utf8_lossy(&body);
        assert!(
            !text.contains(tmp.path().to_str().unwrap()) && !text.contains("SELECT"),
            "{text}"
        );
    }
    // The readable tables of the same dates are still served.
    assert_eq!(
        s.json(&format!("/scores/alerts/{D2}"))["processing_date"],
        D2
    );
    // `query` leaves the named pipe out of its views, saying so, instead of hanging.
    let cfg = outputs().cfg.to_str().unwrap();
    let sql = "SELECT count(*) FROM alert_scores";
    let res = ok(pipeline_within(
        &["query", cfg, "--output", out.to_str().unwrap(), sql],
        60,
    ));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(err.contains("left out of the views"), "{err}");
}

#[test]
fn half_sent_requests_are_cut_off_and_connections_are_capped() {
    let s = Server::start_with(&outputs().cfg, &outputs().out, &["--header-timeout", "1"]);
    let mut slow = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let start = Instant::now();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "a half-sent request stayed open {:?}",
        start.elapsed()
    );

    let s = Server::start_with(&outputs().cfg, &outputs().out, &["--max-connections", "2"]);
    let _held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(("127.0.0.1", s.port)).unwrap())
        .collect();
    let (st, body) = s.get("/health");
    let v = json_error(st, &body, 503, "a connection over the cap");
    assert!(
        v["detail"].as_str().unwrap().contains("2 connections"),
        "{v}"
    );
    drop(_held);
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.get("/health").0 != 200 {
        assert!(
            Instant::now() < deadline,
            "the server never took connections again"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn every_codec_pyarrow_writes_is_queried_and_served() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    copy_tree(&outputs().out, &out);
    let mut want = Vec::new();
    for (i, codec) in CODECS.iter().enumerate() {
        let date = [D1, D2][i % 2];
        let file = batch_dir(&out, date).join("alert_scores.parquet");
        recompress(codec, &[file.display().to_string()]);
        let res = Command::new(bin())
            .args([
                "query",
                outputs().cfg.to_str().unwrap(),
                "--output",
                out.to_str().unwrap(),
            ])
            .args([
                "--format",
                "csv",
                "SELECT processing_date, alert_id, score FROM alert_scores ORDER BY 1, 2",
            ])
            .output()
            .unwrap();
        assert!(
            res.status.success(),
            "{codec}: {}",
            String::from_utf8_lossy(&res.stderr)
        );
        want.push(String::from_utf8_lossy(&res.stdout).to_string());
        let s = Server::start(&outputs().cfg, &out);
        let page = s.json(&format!("/scores/alerts/{date}?limit=100000"));
        let n = page["scores"].as_array().unwrap().len();
        assert_eq!(n, read_parquet(&file).num_rows(), "{codec}");
    }
    assert!(want[0].lines().count() > 100, "{}", want[0]);
    for (codec, got) in CODECS.iter().zip(&want) {
        assert!(*got == want[0], "the query over {codec} files differs");
    }
}

/// Every answer parses with the miner template's response models (pydantic, in Python): the
/// whole day without `limit` (a day of more than 1000 alerts here), integer latencies,
/// `github_url`, unknown query parameters ignored; known ones are still checked strictly.
#[test]
fn answers_parse_with_the_template_response_models() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    copy_tree(&outputs().out, &out);
    // D1 grows to three times its alerts (new ids), so the whole day is over 1000 rows.
    let day = batch_dir(&out, D1);
    let b = read_parquet(&day.join("alert_scores.parquet"));
    let copies: Vec<_> = (0..3)
        .map(|k| {
            let ids = b.column_by_name("alert_id").unwrap().as_string::<i32>();
            let ids: arrow::array::StringArray = ids
                .iter()
                .map(|v| Some(format!("{}-{k}", v.unwrap())))
                .collect();
            let mut cols = b.columns().to_vec();
            cols[b.schema().index_of("alert_id").unwrap()] = std::sync::Arc::new(ids);
            arrow::record_batch::RecordBatch::try_new(b.schema(), cols).unwrap()
        })
        .collect();
    let big = arrow::compute::concat_batches(&b.schema(), &copies).unwrap();
    assert!(big.num_rows() > 1000);
    write_parquet(&day.join("alert_scores.parquet"), &big);
    let meta_path = day.join("processing_metadata.json");
    let mut meta: Value = serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
    meta["output_counts"]["alert_scores"] = big.num_rows().into();
    std::fs::write(&meta_path, serde_json::to_vec(&meta).unwrap()).unwrap();

    let mut cfg = std::fs::read_to_string(&outputs().cfg).unwrap();
    cfg.push_str("\nmodel_github_url = \"https://github.com/example/aml-pipeline\"\n");
    let cfg_path = tmp.path().join("config.toml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let s = Server::start(&cfg_path, &out);

    let whole = s.json(&format!("/scores/alerts/{D1}"));
    assert_eq!(whole["scores"].as_array().unwrap().len(), big.num_rows());
    assert_eq!(
        whole["total_alerts"].as_u64().unwrap() as usize,
        big.num_rows()
    );
    assert!(
        whole["metadata"]["total_latency_ms"].is_i64(),
        "{}",
        whole["metadata"]
    );
    let v = s.json("/version?colour=red");
    assert_eq!(v["github_url"], "https://github.com/example/aml-pipeline");
    assert_eq!(
        s.get(&format!("/scores/alerts/{D1}?limit=0&colour=red")).0,
        400
    );
    let paged = s.json(&format!("/scores/alerts/{D1}?limit=10&offset=5&colour=red"));
    assert_eq!(paged["scores"].as_array().unwrap().len(), 10);

    let responses = serde_json::json!({
        "HealthResponse": [s.json("/health")],
        "VersionResponse": [v],
        "DatesAvailableResponse": [s.json("/dates/available")],
        "LatestDateResponse": [s.json("/dates/latest")],
        "AlertScoresResponse": [whole, paged, s.json("/scores/alerts/latest")],
        "AlertRankingsResponse": [s.json(&format!("/rankings/alerts/{D1}")), s.json(&format!("/rankings/alerts/{D2}?limit=3"))],
        "ClusterScoresResponse": [s.json(&format!("/scores/clusters/{D1}")), s.json(&format!("/scores/clusters/{D2}"))],
    });
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/template_models.py");
    let mut py = Command::new("python3")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    py.stdin
        .take()
        .unwrap()
        .write_all(responses.to_string().as_bytes())
        .unwrap();
    let res = py.wait_with_output().unwrap();
    assert!(
        res.status.success(),
        "{}{}",
        String::from_utf8_lossy(&res.stdout),
        String::from_utf8_lossy(&res.stderr)
    );
    assert!(String::from_utf8_lossy(&res.stdout).contains("11 responses parsed"));
}
