//! Shared fixture for the integration tests: a generated input tree and models trained on it,
//! made once per test run, plus helpers to run the CLI and read outputs.

use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub const NETWORK: &str = "torus";
pub const WINDOW: u32 = 195;
pub const FIRST: &str = "2025-10-01";
pub const LAST: &str = "2025-10-06";

/// The generated input and trained models, shared by every test (never modified).
pub struct Fixture {
    _dir: tempfile::TempDir,
    pub input: PathBuf,
    pub models: PathBuf,
    pub root: PathBuf,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_pipeline")
}

pub fn pipeline(args: &[&str]) -> Output {
    let out = Command::new(bin())
        .args(args)
        .output()
        .expect("run pipeline");
    if std::env::var_os("TEST_VERBOSE").is_some() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    }
    out
}

/// Like [`pipeline`], but kills the process and fails the test if it runs longer than `secs`
/// (for cases that used to hang forever).
pub fn pipeline_within(args: &[&str], secs: u64) -> Output {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = Command::new(bin())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run pipeline");
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed().as_secs() > secs {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`pipeline {}` did not finish within {secs} s",
                args.join(" ")
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// Starts `cmd` (a server) with its stdout piped; returns it and the first line it printed
/// (its banner, naming the port).
pub fn spawn_with_banner(cmd: &mut Command) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = cmd.stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line)
}

/// The Parquet codecs pyarrow (and so pandas) writes.
pub const CODECS: [&str; 6] = ["snappy", "zstd", "gzip", "brotli", "lz4", "none"];

/// Rewrites Parquet files in place with pyarrow, compressed with `codec`.
pub fn recompress(codec: &str, files: &[String]) {
    let script = "import sys, pyarrow.parquet as pq\n\
                  for f in sys.argv[2:]:\n    pq.write_table(pq.read_table(f), f, compression=sys.argv[1])\n";
    let out = Command::new("python3")
        .args(["-c", script, codec])
        .args(files)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "pyarrow could not write {codec}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "pipeline failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let input = root.join("input");
        let models = root.join("models");
        ok(pipeline(&[
            "generate",
            "--out",
            input.to_str().unwrap(),
            "--network",
            NETWORK,
            "--dates",
            &format!("{FIRST}..{LAST}"),
            "--window-days",
            &WINDOW.to_string(),
            "--alerts-per-day",
            "400",
            "--seed",
            "11",
            "--profile",
            "classic",
        ]));
        let cfg = write_config(&root, &input, &root.join("unused-output"), &models);
        ok(pipeline(&[
            "train",
            cfg.to_str().unwrap(),
            "--dates",
            &format!("{FIRST}..{LAST}"),
            "--iterations",
            "60",
        ]));
        Fixture {
            _dir: dir,
            input,
            models,
            root,
        }
    })
}

/// Writes a run config in `dir` using the repository's pipeline file.
pub fn write_config(dir: &Path, input: &Path, output: &Path, models: &Path) -> PathBuf {
    let pipeline = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/daily.toml");
    let cfg = dir.join("config.toml");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "pipeline = {:?}\nnetwork = {NETWORK:?}\nwindow_days = {WINDOW}\ninput = {:?}\noutput = {:?}\nmodels = {:?}\ndates = \"all\"\nworkers = 2\n",
            pipeline, input, output, models
        ),
    )
    .unwrap();
    cfg
}

/// Points the run config `cfg` at an edited copy of the repository's pipeline file, written
/// beside it as `pipeline.toml`; returns that copy's path (tests may edit it again).
pub fn with_pipeline(cfg: &Path, edit: impl FnOnce(String) -> String) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/daily.toml");
    let pipe = cfg.parent().unwrap().join("pipeline.toml");
    std::fs::write(&pipe, edit(std::fs::read_to_string(repo).unwrap())).unwrap();
    let text: Vec<String> = std::fs::read_to_string(cfg)
        .unwrap()
        .lines()
        .map(|l| match l.starts_with("pipeline =") {
            true => format!("pipeline = {pipe:?}"),
            false => l.to_string(),
        })
        .collect();
    std::fs::write(cfg, text.join("\n")).unwrap();
    pipe
}

/// Points `cfg` at a copy of the repository's pipeline whose score stage applies
/// `calibration` (`none`: LightGBM's probabilities as they are).
pub fn with_calibration(cfg: &Path, calibration: &str) -> PathBuf {
    with_pipeline(cfg, |t| {
        let shipped = "calibration = \"rank_percentile\"";
        assert!(t.contains(shipped), "the shipped pipeline calibrates");
        t.replace(shipped, &format!("calibration = {calibration:?}"))
    })
}

/// A run config in `tmp/cfg` over the fixture's input and models, writing to `tmp/out`.
pub fn fixture_config(tmp: &Path) -> PathBuf {
    let f = fixture();
    write_config(&tmp.join("cfg"), &f.input, &tmp.join("out"), &f.models)
}

/// `alert_id → score` of one date's `alert_scores.parquet` under an output root.
pub fn scores_by_id(out: &Path, date: &str) -> std::collections::HashMap<String, f64> {
    use arrow::array::AsArray;
    let s = read_parquet(&batch_dir(out, date).join("alert_scores.parquet"));
    let ids = s.column_by_name("alert_id").unwrap().as_string::<i32>();
    let sc = s
        .column_by_name("score")
        .unwrap()
        .as_primitive::<arrow::datatypes::Float64Type>();
    ids.iter()
        .map(|v| v.unwrap().to_string())
        .zip(sc.values().iter().copied())
        .collect()
}

/// Copies a directory tree.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

pub fn read_parquet(path: &Path) -> RecordBatch {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let r = ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = r.map(|b| b.unwrap()).collect();
    let schema = batches.first().map(|b| b.schema()).unwrap_or_else(|| {
        let f = std::fs::File::open(path).unwrap();
        ParquetRecordBatchReaderBuilder::try_new(f)
            .unwrap()
            .schema()
            .clone()
    });
    arrow::compute::concat_batches(&schema, &batches).unwrap()
}

pub fn write_parquet(path: &Path, batch: &RecordBatch) {
    let f = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(f, batch.schema(), None).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

pub fn batch_dir(root: &Path, date: &str) -> PathBuf {
    root.join(NETWORK).join(date).join(WINDOW.to_string())
}

/// Recomputes META.json's sha256 entries after a test edited a batch on purpose.
pub fn refresh_meta(dir: &Path) {
    use sha2::Digest;
    let p = dir.join("META.json");
    let mut meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    let names: Vec<String> = meta["sha256"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    for name in names {
        if let Ok(bytes) = std::fs::read(dir.join(&name)) {
            meta["sha256"][&name] =
                serde_json::Value::String(hex::encode(sha2::Sha256::digest(&bytes)));
        }
    }
    std::fs::write(&p, serde_json::to_vec_pretty(&meta).unwrap()).unwrap();
}

/// Every file under `dir` with its bytes, sorted by path; the run state (`.state/`) is left out.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    if !dir.exists() {
        return out;
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.file_name().is_some_and(|n| n == ".state") {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

/// Everything but the wall-clock columns (`latency_ms`) and fields (`processed_at`, latencies).
pub fn deterministic_view(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (path, bytes) in snapshot(root) {
        let name = path.to_string_lossy().to_string();
        if name.ends_with(".parquet") {
            let b = read_parquet(&root.join(&path));
            let keep: Vec<usize> = (0..b.num_columns())
                .filter(|&i| b.schema().field(i).name() != "latency_ms")
                .collect();
            let b = b.project(&keep).unwrap();
            let mut buf = Vec::new();
            let mut w = arrow::ipc::writer::StreamWriter::try_new(&mut buf, &b.schema()).unwrap();
            w.write(&b).unwrap();
            w.finish().unwrap();
            drop(w);
            out.push((name, buf));
        } else if name.ends_with("processing_metadata.json") || name.ends_with("validation.json") {
            let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            v.as_object_mut().unwrap().remove("processed_at");
            v.as_object_mut().unwrap().remove("latencies_ms");
            if let Some(checks) = v
                .pointer_mut("/integrity/checks")
                .and_then(|c| c.as_array_mut())
            {
                checks.retain(|c| c["name"] != "mean_latency");
            }
            out.push((name, serde_json::to_vec(&v).unwrap()));
        } else {
            out.push((name, bytes));
        }
    }
    out
}

/// A free TCP port on the loopback interface.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `cfg` as two processes on localhost with `extra` arguments; both must succeed within
/// two minutes (a process that never joins the cluster would leave the other waiting).
pub fn run_two_processes(cfg: &Path, extra: &[&str]) {
    let hosts = cfg.parent().unwrap().join("hosts.txt");
    std::fs::write(
        &hosts,
        format!("127.0.0.1:{}\n127.0.0.1:{}\n", free_port(), free_port()),
    )
    .unwrap();
    let mut children: Vec<_> = (0..2)
        .map(|p| {
            std::process::Command::new(bin())
                .args(["run", cfg.to_str().unwrap(), "--processes", "2"])
                .args(["--process", &p.to_string(), "--hostfile"])
                .arg(&hosts)
                .args(extra)
                .stdout(std::fs::File::create(cfg.with_extension(format!("p{p}.log"))).unwrap())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    for c in &mut children {
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                assert!(status.success(), "a process failed: {status}");
                break;
            }
            if std::time::Instant::now() > deadline {
                for c in &mut children {
                    let _ = c.kill();
                }
                let log = |p: usize| {
                    std::fs::read_to_string(cfg.with_extension(format!("p{p}.log"))).unwrap()
                };
                panic!(
                    "the two processes did not finish within two minutes\n0: {}\n1: {}",
                    log(0),
                    log(1)
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}
