//! The `pipeline` command line: argument parsing and the glue from each subcommand to the library.

use crate::config::{DecodeParams, RunConfig, StageKind, StageParams, ValidateParams};
use crate::dates::{available, DateSelection};
use crate::engine::{self, RunReport};
use crate::fetch::{DateOutcome, Fetcher, LabelsOutcome};
use crate::generate::{generate, GenerateOptions};
use crate::labels::Labels;
use crate::model::ModelKind;
use crate::plan::{plan_dates, DatePlan, DateStatus};
use crate::stages::validate::{
    judge, reward_line, summarize, validator_figures, BatchFacts, Knowledge,
};
use crate::stages::Context;
use crate::train::{load_dates, train, write_features, TrainOptions};
use anyhow::{bail, Result};
use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Scores, ranks and validates AML alerts from daily source-of-truth batches.
#[derive(Parser, Debug)]
#[command(name = "pipeline", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the pipeline graph over the selected dates and write scored, ranked, validated outputs.
    Run {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        remote: Remote,
        /// Worker threads (default: the config's `workers`).
        #[arg(long)]
        workers: Option<usize>,
        /// Output root (default: the config's `output`).
        #[arg(long)]
        output: Option<PathBuf>,
        /// Directory of trained models (default: the config's `models`).
        #[arg(long)]
        models: Option<PathBuf>,
        /// Sample the whole run and write a flamegraph (SVG) here.
        #[arg(long)]
        flamegraph: Option<PathBuf>,
        /// Write a Chrome/Perfetto trace (JSON) here: one span per stage, date and worker.
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Recompute every selected date and stage, even those whose outputs are up to date.
        #[arg(long)]
        force: bool,
        /// Print what would run (dates, stages and why) and exit without running it.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Show each date's state: up to date, stale (and why), missing input, or failed (and its error).
    Status {
        #[command(flatten)]
        common: Common,
        /// Output root (default: the config's `output`).
        #[arg(long)]
        output: Option<PathBuf>,
        /// Directory of trained models (default: the config's `models`).
        #[arg(long)]
        models: Option<PathBuf>,
    },
    /// Re-validate existing outputs (all tiers) and write validation.json per date plus a summary.
    Validate {
        #[command(flatten)]
        common: Common,
        /// Output root (default: the config's `output`).
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Compare two output trees (two models) tier by tier and by AUC, with a visual report.
    Compare {
        #[command(flatten)]
        common: Common,
        /// Output root of model A.
        #[arg(long)]
        a: PathBuf,
        /// Output root of model B.
        #[arg(long)]
        b: PathBuf,
        /// Report directory (default: validation_results/{a}_vs_{b}).
        #[arg(long)]
        report: Option<PathBuf>,
        /// Paired-bootstrap resamples for the AUC difference's confidence interval.
        #[arg(long, default_value_t = 1000)]
        bootstrap: usize,
        /// Seed of the bootstrap.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Ground truth (alert_id, is_sar_filed) to judge by, instead of the input's ground_truth.parquet.
        #[arg(long)]
        ground_truth: Option<PathBuf>,
    },
    /// List the installed models with their training period and held-out metrics.
    Models {
        /// Run configuration (TOML), e.g. configs/daily.toml.
        config: PathBuf,
        /// Directory of models (default: the config's `models`).
        #[arg(long)]
        models: Option<PathBuf>,
    },
    /// Install a LightGBM text model trained elsewhere (e.g. in Python) after checking its features.
    InstallModel {
        /// Run configuration (TOML), e.g. configs/daily.toml.
        config: PathBuf,
        /// The LightGBM model file (text format).
        file: PathBuf,
        /// Its role: alert_scorer, alert_ranker or cluster_scorer.
        #[arg(long = "type")]
        kind: String,
        /// Directory of models (default: the config's `models`).
        #[arg(long)]
        models: Option<PathBuf>,
    },
    /// Export the model matrix (one row per alert, with labels where known) as Parquet.
    Features {
        #[command(flatten)]
        common: Common,
        /// The Parquet file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Train LightGBM models on labelled dates and install them in the models directory.
    Train {
        #[command(flatten)]
        common: Common,
        /// Which model: alert_scorer, alert_ranker, cluster_scorer or all.
        #[arg(long, default_value = "all")]
        model: String,
        /// Where to write the models (default: the config's `models`).
        #[arg(long)]
        models: Option<PathBuf>,
        /// Boosting rounds.
        #[arg(long, default_value_t = 200)]
        iterations: usize,
        /// Random seed (same data + same seed = identical model file).
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Random-search trials over LightGBM parameters, scored by cross-validation (0 = defaults).
        #[arg(long, default_value_t = 0)]
        tune: usize,
        /// Instead of installing models, write a Markdown table of held-out alert-scorer quality
        /// per feature set (raw alert and address features versus network, cluster, within-day) to this file.
        #[arg(long)]
        quality_report: Option<PathBuf>,
    },
    /// Mirror batches from object storage (the config's `source`) into the input tree, verified by checksum.
    Fetch {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        remote: Remote,
    },
    /// Query the outputs with SQL (DuckDB). Views: alert_scores, alert_rankings, cluster_scores,
    /// processing_metadata, validation, each over every completed date and with network,
    /// processing_date and window_days columns.
    Query {
        /// Run configuration (TOML), e.g. configs/daily.toml.
        config: PathBuf,
        /// The SQL statement, e.g. "SELECT processing_date, count(*) FROM alert_scores GROUP BY 1".
        sql: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = crate::query::Format::Table)]
        format: crate::query::Format,
        /// Write the result to this file instead of stdout (needed for parquet on a terminal).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Output root (default: the config's `output`).
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Serve the outputs over HTTP (scores, rankings, cluster scores, metadata, validation,
    /// metrics, OpenAPI); dates written meanwhile by `pipeline run` appear without a restart.
    Serve {
        /// Run configuration (TOML), e.g. configs/daily.toml.
        config: PathBuf,
        /// Address to listen on (port 0: any free port, printed at start).
        #[arg(long, default_value = "127.0.0.1:8000")]
        bind: String,
        /// Output root (default: the config's `output`).
        #[arg(long)]
        output: Option<PathBuf>,
        /// Connections open at once; one more is answered 503 and closed.
        #[arg(long, default_value_t = 256)]
        max_connections: usize,
        /// Seconds a client has to send a request's headers before its connection is closed.
        #[arg(long, default_value_t = 10.0)]
        header_timeout: f64,
    },
    /// Write seeded synthetic batches in the upstream format, with planted laundering typologies.
    Generate {
        /// Input root to write into.
        #[arg(long, default_value = "input")]
        out: PathBuf,
        /// Network name.
        #[arg(long, default_value = "torus")]
        network: String,
        /// Dates: YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD.
        #[arg(long)]
        dates: String,
        /// Window of each batch, in days.
        #[arg(long, default_value_t = 195)]
        window_days: u32,
        /// Alerts per date (about 10 feature rows and 40 money flows per alert).
        #[arg(long, default_value_t = 1000)]
        alerts_per_day: usize,
        /// Random seed.
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
}

/// Running one pipeline over several processes (timely's cluster mode). Every process is started
/// with the same arguments and its own `--process`; each takes every N-th selected date.
#[derive(Args, Debug)]
struct ClusterArgs {
    /// Number of processes taking part in the run.
    #[arg(long, short = 'n', default_value_t = 1)]
    processes: usize,
    /// This process's index, from 0 to processes - 1.
    #[arg(long, short = 'p', default_value_t = 0)]
    process: usize,
    /// File with one `host:port` per line, one line per process (default: localhost ports 2101…).
    #[arg(long, short = 'H')]
    hostfile: Option<PathBuf>,
}

impl ClusterArgs {
    fn cluster(&self, workers: usize) -> Result<engine::Cluster> {
        if self.processes == 0 || self.process >= self.processes {
            bail!(
                "--process {} is not in 0..{} (--processes)",
                self.process,
                self.processes
            );
        }
        let mut c = engine::Cluster::local(workers);
        c.process = self.process;
        if self.processes > 1 {
            c.addresses = match &self.hostfile {
                Some(f) => crate::io::read_text(f)
                    .map_err(|e| anyhow::anyhow!("cannot read hostfile {}: {e}", f.display()))?
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(String::from)
                    .collect(),
                None => (0..self.processes)
                    .map(|i| format!("localhost:{}", 2101 + i))
                    .collect(),
            };
            if c.addresses.len() != self.processes {
                bail!(
                    "the hostfile lists {} addresses, but --processes is {}",
                    c.addresses.len(),
                    self.processes
                );
            }
        }
        Ok(c)
    }
}

/// Options shared by the commands that read a run configuration.
#[derive(Args, Debug)]
struct Common {
    /// Run configuration (TOML), e.g. configs/daily.toml.
    config: PathBuf,
    /// Dates: all, latest, YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD (default: the config's `dates`).
    #[arg(long)]
    dates: Option<String>,
    /// Input root (default: the config's `input`).
    #[arg(long)]
    input: Option<PathBuf>,
}

/// Where to fetch batches from; each flag overrides the config key of the same name.
#[derive(Args, Debug)]
struct Remote {
    /// Source of the batches: s3://bucket/prefix, gs://…, az://…, http(s)://…, file://… or a directory.
    #[arg(long)]
    source: Option<String>,
    /// Endpoint of an S3-compatible store (default: AWS_ENDPOINT_URL).
    #[arg(long)]
    endpoint: Option<String>,
    /// Region of the store (default: AWS_REGION).
    #[arg(long)]
    region: Option<String>,
    /// Downloads in flight at once.
    #[arg(long)]
    fetch_concurrency: Option<usize>,
}

impl Remote {
    fn apply(&self, cfg: &mut RunConfig) -> Result<()> {
        if let Some(s) = &self.source {
            cfg.source = Some(s.clone()).filter(|s| !s.is_empty());
        }
        if let Some(e) = &self.endpoint {
            cfg.endpoint = Some(e.clone());
        }
        if let Some(r) = &self.region {
            cfg.region = Some(r.clone());
        }
        if let Some(n) = self.fetch_concurrency {
            if n == 0 {
                bail!("--fetch-concurrency must be at least 1");
            }
            cfg.fetch_concurrency = n;
        }
        Ok(())
    }
}

impl Common {
    fn load(&self) -> Result<(RunConfig, Vec<NaiveDate>)> {
        self.load_from(None)
    }

    /// Like `load`; with `remote`, its flags apply, and if the run has a source, `all` and
    /// `latest` also see the dates at the source.
    fn load_from(&self, remote: Option<&Remote>) -> Result<(RunConfig, Vec<NaiveDate>)> {
        let mut cfg = RunConfig::load(&self.config)?;
        if let Some(i) = &self.input {
            cfg.input = i.clone();
        }
        if let Some(d) = &self.dates {
            cfg.dates = d.parse()?;
        }
        let mut avail = available(&cfg.input, &cfg.network, cfg.window_days)?;
        if let Some(r) = remote {
            r.apply(&mut cfg)?;
            if cfg.source.is_some() && !matches!(cfg.dates, DateSelection::Range(..)) {
                avail.extend(Fetcher::new(&cfg)?.available()?);
                avail.sort();
                avail.dedup();
            }
        }
        let dates = cfg.dates.resolve(&avail);
        if dates.is_empty() {
            bail!(
                "no dates to process: {}{} has no batches for network {} with window {} (generate some with `pipeline generate`)",
                cfg.input.display(),
                cfg.source.as_ref().map(|s| format!(" (nor {s})")).unwrap_or_default(),
                cfg.network,
                cfg.window_days
            );
        }
        Ok((cfg, dates))
    }
}

fn bar(len: usize, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len as u64);
    pb.set_style(
        ProgressStyle::with_template(&format!("{{spinner}} {what} [{{bar:30}}] {{pos}}/{{len}} dates, {{elapsed}} (ETA {{eta}}) {{msg}}"))
            .expect("static template"),
    );
    pb
}

/// Parses arguments and runs the command; the `Ok` value is the process exit code.
pub fn main() -> Result<i32> {
    let cli = Cli::parse();
    let trace = match &cli.command {
        Command::Run { trace, .. } => trace.clone(),
        _ => None,
    };
    let _trace_guard = init_logging(trace.as_deref());
    match cli.command {
        Command::Run {
            common,
            remote,
            workers,
            output,
            models,
            flamegraph,
            trace: _,
            force,
            dry_run,
            cluster,
        } => {
            let (mut cfg, dates) = common.load_from(Some(&remote))?;
            if let Some(o) = output {
                cfg.output = o;
            }
            if let Some(m) = models {
                cfg.models = m;
            }
            let cluster = cluster.cluster(workers.unwrap_or(cfg.workers))?;
            let (n, p) = (cluster.processes(), cluster.process);
            let mine: Vec<NaiveDate> = dates
                .iter()
                .enumerate()
                .filter(|(i, _)| i % n == p)
                .map(|(_, d)| *d)
                .collect();
            let ctx = Arc::new(Context::new(cfg)?);
            let _lock = if dry_run {
                None
            } else {
                Some(crate::state::RunLock::acquire(&ctx.config.output, p)?)
            };
            // With a source, dates are fetched in chunks on a second thread while earlier
            // chunks run; without one (or on a dry run), the run is one chunk.
            let fetching = ctx.config.source.is_some() && !dry_run;
            let chunk_len = if fetching && n == 1 {
                (2 * cluster.workers).max(FETCH_CHUNK_MIN)
            } else {
                mine.len().max(1)
            };
            let multi = indicatif::MultiProgress::new();
            let pb = multi.add(bar(0, "run"));
            let fetcher = if fetching {
                let f = Fetcher::new(&ctx.config)?.with_progress(multi.add(bytes_bar()));
                if let Err(e) = report_labels(&f) {
                    eprintln!("warning: address labels not fetched: {e:#}");
                }
                Some(f)
            } else {
                None
            };
            let start = Instant::now();
            let profiler = flamegraph
                .as_ref()
                .map(|_| {
                    pprof::ProfilerGuardBuilder::default()
                        .frequency(499)
                        .blocklist(&["libc", "libgcc", "pthread", "vdso"])
                        .build()
                })
                .transpose()
                .map_err(|e| anyhow::anyhow!("cannot start the profiler: {e}"))?;
            let run_id = format!(
                "{}-{}",
                chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"),
                std::process::id()
            );
            let (tx, rx) = std::sync::mpsc::sync_channel::<(Vec<NaiveDate>, FetchReport)>(1);
            let mut report = engine::RunReport::default();
            let mut fetched = FetchReport::default();
            std::thread::scope(|scope| -> Result<()> {
                let cfg = &ctx.config;
                // At least one chunk: a process without dates still joins the cluster.
                let mut chunks: Vec<Vec<NaiveDate>> =
                    mine.chunks(chunk_len).map(|c| c.to_vec()).collect();
                if chunks.is_empty() {
                    chunks.push(Vec::new());
                }
                scope.spawn(move || {
                    let mut tried = BTreeSet::new();
                    for chunk in chunks {
                        let got = match &fetcher {
                            Some(f) => fetch_chunk(f, cfg, &chunk, &mut tried),
                            None => FetchReport::default(),
                        };
                        if tx.send((chunk, got)).is_err() {
                            break;
                        }
                    }
                    if let Some(f) = &fetcher {
                        f.progress().finish_and_clear();
                    }
                });
                for (chunk, got) in rx {
                    let plans = plan_dates(cfg, &ctx.model_paths(), &chunk, force)?;
                    pb.suspend(|| print_plan(&plans));
                    if dry_run {
                        return Ok(());
                    }
                    fetched.fetched += got.fetched;
                    let missing: Vec<NaiveDate> = plans
                        .iter()
                        .filter(|p| p.status == DateStatus::MissingInput)
                        .filter(|p| !got.failed.contains_key(&p.date))
                        .filter(|p| !got.missing.contains(&p.date))
                        .map(|p| p.date)
                        .collect();
                    pb.inc_length(plans.iter().filter(|p| !p.run.is_empty()).count() as u64);
                    pb.set_message("preparing the address history");
                    pb.enable_steady_tick(std::time::Duration::from_millis(200));
                    crate::history::prepare(cfg, &history_dates(cfg, &plans))?;
                    pb.set_message("");
                    let unreadable: Vec<(NaiveDate, Result<(), String>)> = plans
                        .iter()
                        .filter_map(|p| match &p.status {
                            DateStatus::Unreadable(e) => Some((p.date, Err(e.clone()))),
                            _ => None,
                        })
                        .collect();
                    let part = engine::run(ctx.clone(), plans, &cluster, &run_id, pb.clone())?;
                    report.merge(part);
                    report.dates.extend(unreadable);
                    for d in missing {
                        let dir = cfg.input_dir(d);
                        report.dates.push((
                            d,
                            Err(format!("missing input: {} does not exist", dir.display())),
                        ));
                    }
                    for (d, e) in &got.failed {
                        report.dates.push((*d, Err(e.clone())));
                    }
                    fetched.missing.extend(got.missing);
                    fetched.failed.extend(got.failed);
                }
                Ok(())
            })?;
            if dry_run {
                return Ok(0);
            }
            pb.finish_and_clear();
            if let (Some(path), Some(guard)) = (&flamegraph, profiler) {
                let report = guard
                    .report()
                    .build()
                    .map_err(|e| anyhow::anyhow!("profiler: {e}"))?;
                crate::io::write_atomic(path, |w| {
                    report
                        .flamegraph(w)
                        .map_err(|e| anyhow::anyhow!("flamegraph: {e}"))
                })?;
                println!("flamegraph: {}", path.display());
            }
            if fetching {
                println!(
                    "fetch: {} dates brought in place from {} ({} missing there, {} failed)",
                    fetched.fetched,
                    ctx.config.source.as_deref().unwrap_or_default(),
                    fetched.missing.len(),
                    fetched.failed.len()
                );
            }
            report.dates.sort_by_key(|d| d.0);
            let ran = report.dates.len();
            print_summary(&report, ran, start.elapsed().as_secs_f64());
            if !fetched.missing.is_empty() {
                let list: Vec<String> = fetched.missing.iter().map(|d| d.to_string()).collect();
                println!(
                    "{} dates missing at the source (not run): {}",
                    list.len(),
                    list.join(", ")
                );
            }
            if p == 0 && ctx.config.pipeline.stage_of(StageKind::Validate).is_some() {
                let done: Vec<NaiveDate> = dates
                    .iter()
                    .copied()
                    .filter(|d| ctx.config.output_dir(*d).join("validation.json").exists())
                    .filter(|d| !report.dates.iter().any(|(x, r)| x == d && r.is_err()))
                    .collect();
                if !done.is_empty() {
                    let (path, reward) = summarize(&ctx.config, &done)?;
                    println!("validation summary: {}", path.display());
                    print_reward(&ctx.config, reward.as_ref());
                }
            }
            Ok(if report.failed().is_empty() { 0 } else { 1 })
        }
        Command::Status {
            common,
            output,
            models,
        } => {
            let (mut cfg, dates) = common.load()?;
            if let Some(o) = output {
                cfg.output = o;
            }
            if let Some(m) = models {
                cfg.models = m;
            }
            let models = crate::stages::model_paths(&cfg)?;
            let plans = plan_dates(&cfg, &models, &dates, false)?;
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for p in &plans {
                let (word, detail) = match &p.status {
                    DateStatus::UpToDate => ("up to date", String::new()),
                    DateStatus::MissingInput => (
                        "missing input",
                        format!("{} does not exist", cfg.input_dir(p.date).display()),
                    ),
                    DateStatus::Failed(e) | DateStatus::Unreadable(e) => ("failed", e.clone()),
                    DateStatus::Stale => ("stale", p.describe()),
                };
                *counts.entry(word).or_default() += 1;
                println!("{}  {word:<13} {detail}", p.date);
            }
            let parts: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
            println!("{} dates: {}", plans.len(), parts.join(", "));
            Ok(0)
        }
        Command::Validate { common, output } => {
            let (mut cfg, dates) = common.load()?;
            if let Some(o) = output {
                cfg.output = o;
            }
            let params = match cfg
                .pipeline
                .stage_of(StageKind::Validate)
                .map(|s| &s.params)
            {
                Some(StageParams::Validate(p)) => p.clone(),
                _ => ValidateParams::default(),
            };
            let known = Knowledge::load(&cfg, &params)?;
            let mut failed = 0;
            for &date in &dates {
                let result = (|| {
                    let t = crate::stages::decode::run(
                        &DecodeParams::default(),
                        &cfg.input_dir(date),
                        date,
                        cfg.window_days,
                    )?;
                    let facts = BatchFacts::from_tables(&t["alerts"].0, &t["clusters"].0);
                    let (report, failures) = judge(&params, &cfg, &known, date, &facts, None)?;
                    crate::state::write_output_json(
                        &cfg.output,
                        &cfg.output_dir(date).join("validation.json"),
                        &report,
                    )?;
                    let (t1, t2, t3a, reward) = validator_figures(&report)?;
                    let t2 = match t2.score {
                        Some(s) => format!("{s:.3}"),
                        None => format!("{:.3}–{:.3}", t2.bounds[0], t2.bounds[1]),
                    };
                    let auc = t3a.auc.map_or("–".to_string(), |a| format!("{a:.3}"));
                    println!(
                        "{date}: template total {:.4} (integrity {}, behaviour {:.3}, ground truth {:.3}); validator tier1 {:.2}, tier2 {t2}, tier3a AUC {auc} × coverage {:.3}, reward {}{}",
                        report["total"].as_f64().unwrap_or(0.0),
                        report["integrity"]["score"],
                        report["behaviour"]["score"].as_f64().unwrap_or(0.0),
                        report["ground_truth"]["score"].as_f64().unwrap_or(0.0),
                        t1.score,
                        t3a.coverage,
                        reward_line(&reward),
                        if failures.is_empty() { String::new() } else { format!("  FAILED: {}", failures.join("; ")) }
                    );
                    anyhow::Ok(failures.is_empty())
                })();
                match result {
                    Ok(true) => {}
                    Ok(false) => failed += 1,
                    Err(e) => {
                        failed += 1;
                        eprintln!("{date}: {}", crate::error::error_text(&e));
                    }
                }
            }
            let (path, reward) = summarize(&cfg, &dates)?;
            println!("validation summary: {}", path.display());
            print_reward(&cfg, reward.as_ref());
            Ok(if failed == 0 { 0 } else { 1 })
        }
        Command::Compare {
            common,
            a,
            b,
            report,
            bootstrap,
            seed,
            ground_truth,
        } => {
            let (cfg, dates) = common.load()?;
            let report = report.unwrap_or_else(|| crate::compare::default_report_dir(&a, &b));
            let opts = crate::compare::CompareOptions {
                a,
                b,
                report: report.clone(),
                bootstrap,
                seed,
                ground_truth,
            };
            let v = crate::compare::compare(&cfg, &dates, &opts)?;
            println!(
                "winner: {} (AUC A {:?}, B {:?}, difference {:?}, 95% CI {:?}, {})",
                v.winner,
                v.auc_a,
                v.auc_b,
                v.difference,
                v.ci95,
                if v.significant {
                    "significant"
                } else {
                    "not significant"
                }
            );
            println!("report: {}", report.join("report.html").display());
            Ok(0)
        }
        Command::Models { config, models } => {
            let cfg = RunConfig::load(&config)?;
            let dir = models.unwrap_or(cfg.models);
            println!(
                "{:<15} {:<13} {:<24} {:<23} {:>7} {:>8} {:>8}  file",
                "model", "version", "created", "trained on", "samples", "auc", "ndcg@10"
            );
            for (path, m) in crate::model::installed(&dir)? {
                let f = |k: &str| {
                    m.metrics[k]
                        .as_f64()
                        .map_or_else(|| "–".to_string(), |v| format!("{v:.4}"))
                };
                println!(
                    "{:<15} {:<13} {:<24} {:<23} {:>7} {:>8} {:>8}  {}",
                    m.model_type.name(),
                    m.version,
                    m.created_at,
                    format!(
                        "{}..{}",
                        m.training_period.start_date, m.training_period.end_date
                    ),
                    m.data_stats.samples,
                    f("auc_roc"),
                    f("ndcg@10"),
                    path.display()
                );
            }
            Ok(0)
        }
        Command::InstallModel {
            config,
            file,
            kind,
            models,
        } => {
            let cfg = RunConfig::load(&config)?;
            let dir = models.unwrap_or(cfg.models.clone());
            let path = crate::model::install(&file, kind.parse()?, &dir, &cfg.network)?;
            println!("installed {}", path.display());
            Ok(0)
        }
        Command::Features { common, out } => {
            let (cfg, dates) = common.load()?;
            let pb = bar(dates.len(), "features");
            let ms = load_dates(&cfg, &dates, &|_| pb.inc(1))?;
            pb.finish_and_clear();
            let labels = Labels::load(&cfg.input, &cfg.network)?;
            let rows = write_features(&ms, &labels, &out)?;
            println!(
                "wrote {rows} rows × {} features to {}",
                crate::features::alert_feature_names().len(),
                out.display()
            );
            Ok(0)
        }
        Command::Train {
            common,
            model,
            models,
            iterations,
            seed,
            tune,
            quality_report,
        } => {
            let (cfg, dates) = common.load()?;
            let kinds = if model == "all" {
                ModelKind::ALL.to_vec()
            } else {
                vec![model.parse()?]
            };
            let pb = bar(dates.len(), "decode");
            let ms = load_dates(&cfg, &dates, &|_| pb.inc(1))?;
            pb.finish_and_clear();
            let labels = Labels::load(&cfg.input, &cfg.network)?;
            let out = models.unwrap_or_else(|| cfg.models.clone());
            if let Some(path) = quality_report {
                let opts = TrainOptions {
                    kinds,
                    iterations,
                    seed,
                    out,
                    tune,
                };
                let table = crate::train::quality_report(&ms, &labels, &opts)?;
                crate::io::write_atomic(&path, |w| {
                    Ok(std::io::Write::write_all(w, table.as_bytes())?)
                })?;
                print!("{table}");
                return Ok(0);
            }
            for p in train(
                &cfg,
                &ms,
                &labels,
                &TrainOptions {
                    kinds,
                    iterations,
                    seed,
                    out,
                    tune,
                },
            )? {
                let meta: crate::model::ModelMeta = serde_json::from_slice(
                    &crate::io::read_regular(&crate::model::meta_path(&p))?,
                )?;
                println!("{}  {}", p.display(), meta.metrics);
            }
            Ok(0)
        }
        Command::Fetch { common, remote } => {
            let (cfg, dates) = common.load_from(Some(&remote))?;
            let fetcher = Fetcher::new(&cfg)?.with_progress(bytes_bar());
            fetch_command(&fetcher, &dates)
        }
        Command::Query {
            config,
            sql,
            format,
            out,
            output,
        } => {
            let cfg = RunConfig::load(&config)?;
            let root = output.unwrap_or(cfg.output);
            query_command(&root, &sql, format, out.as_deref())
        }
        Command::Serve {
            config,
            bind,
            output,
            max_connections,
            header_timeout,
        } => {
            let cfg = RunConfig::load(&config)?;
            if !(header_timeout > 0.0 && header_timeout.is_finite()) {
                anyhow::bail!("--header-timeout must be a positive number of seconds");
            }
            crate::serve::serve(
                crate::serve::ServeConfig {
                    output: output.unwrap_or(cfg.output),
                    network: cfg.network,
                    window_days: cfg.window_days,
                    limits: crate::serve::Limits {
                        max_connections,
                        header_timeout: std::time::Duration::from_secs_f64(header_timeout),
                    },
                    github_url: cfg.model_github_url.clone().unwrap_or_default(),
                    cluster_stage: cfg
                        .pipeline
                        .stage_of(StageKind::ClusterScore)
                        .map(|s| s.name.clone()),
                },
                &bind,
            )?;
            Ok(0)
        }
        Command::Generate {
            out,
            network,
            dates,
            window_days,
            alerts_per_day,
            seed,
        } => {
            let dates = match dates.parse::<DateSelection>()? {
                DateSelection::Range(a, b) => crate::dates::days(a, b),
                _ => bail!("--dates for generate takes YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD"),
            };
            let pb = bar(dates.len(), "generate");
            let opts = GenerateOptions {
                out: out.clone(),
                network,
                dates,
                window_days,
                alerts_per_day,
                seed,
            };
            let s = generate(&opts, &mut |_| pb.inc(1))?;
            pb.finish_and_clear();
            println!(
                "wrote {} dates to {}: {} alerts, {} feature rows, {} clusters, {} money flows, {} labelled addresses, {} ground-truth alerts",
                s.dates, out.display(), s.alerts, s.features, s.clusters, s.money_flows, s.labelled_addresses, s.ground_truth
            );
            Ok(0)
        }
    }
}

/// `pipeline query`: one SQL statement over the output views, printed or written in `format`.
fn query_command(
    root: &std::path::Path,
    sql: &str,
    format: crate::query::Format,
    out: Option<&std::path::Path>,
) -> Result<i32> {
    use std::io::IsTerminal;
    if !root.is_dir() {
        bail!(
            "output root {} does not exist; run `pipeline run` first",
            root.display()
        );
    }
    let catalog = crate::query::Catalog::open(root)?;
    let (schema, batches) = catalog.query(sql)?;
    match out {
        Some(path) => crate::io::write_atomic(path, |w| {
            crate::query::write_result(&schema, &batches, format, w)
        })?,
        None => {
            if format == crate::query::Format::Parquet && std::io::stdout().is_terminal() {
                bail!("--format parquet writes binary data: give --out FILE or redirect stdout");
            }
            let mut stdout = std::io::BufWriter::new(std::io::stdout());
            crate::query::write_result(&schema, &batches, format, &mut stdout)?;
            std::io::Write::flush(&mut stdout)?;
        }
    }
    Ok(0)
}

fn bytes_bar() -> ProgressBar {
    let pb = ProgressBar::new(0);
    pb.set_style(
        ProgressStyle::with_template(
            "{spinner} fetch [{bar:30}] {bytes}/{total_bytes} ({binary_bytes_per_sec}), {msg}, {elapsed}",
        )
        .expect("static template"),
    );
    pb
}

/// What fetching for a run came to, for the dates the run was asked for.
#[derive(Default)]
struct FetchReport {
    /// Dates brought in place (window dates included).
    fetched: usize,
    /// Dates the source has no batch for (reported, not failed).
    missing: BTreeSet<NaiveDate>,
    /// Dates that could not be fetched, with the error.
    failed: BTreeMap<NaiveDate, String>,
}

/// Whether the input tree holds a date's batch whole: META.json and every file it lists.
fn complete_locally(cfg: &RunConfig, date: NaiveDate) -> bool {
    let dir = cfg.input_dir(date);
    let path = dir.join("META.json");
    crate::io::read_regular(&path)
        .ok()
        .and_then(|b| crate::stages::decode::Meta::parse(&b, &path.display().to_string()).ok())
        .is_some_and(|m| !m.sha256.is_empty() && m.sha256.keys().all(|f| dir.join(f).exists()))
}

/// Dates a run with a `source` fetches at once before running them, at least; while a chunk
/// runs, the next one downloads.
const FETCH_CHUNK_MIN: usize = 4;

/// Fetches what one chunk of a run needs and the input tree lacks — its dates and the 30
/// before each, whose alerts feed the address history — skipping dates already tried in this
/// run. Dates already complete cost a directory listing, no request (batches are immutable
/// upstream; `pipeline fetch` re-checks them).
fn fetch_chunk(
    f: &Fetcher,
    cfg: &RunConfig,
    chunk: &[NaiveDate],
    tried: &mut BTreeSet<NaiveDate>,
) -> FetchReport {
    let wanted: BTreeSet<NaiveDate> = chunk.iter().copied().collect();
    let need: Vec<NaiveDate> = chunk
        .iter()
        .flat_map(|&d| crate::history::window_dates(d).chain([d]))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|&d| tried.insert(d) && !complete_locally(cfg, d))
        .collect();
    let mut report = FetchReport::default();
    for (d, o) in f.fetch_dates(&need, |_, _| {}) {
        match o {
            DateOutcome::Complete(_) => report.fetched += 1,
            DateOutcome::Missing if wanted.contains(&d) => {
                report.missing.insert(d);
            }
            DateOutcome::Failed(e) if wanted.contains(&d) => {
                report.failed.insert(d, e);
            }
            DateOutcome::Failed(e) => {
                tracing::warn!(date = %d, "history window date not fetched: {e}")
            }
            DateOutcome::Missing => {}
        }
    }
    report
}

/// Fetches the labels and prints what happened; a labels file missing at the source is fine.
fn report_labels(f: &Fetcher) -> Result<()> {
    match f.fetch_labels()? {
        LabelsOutcome::Downloaded(n) => println!("address labels: downloaded ({n} bytes)"),
        LabelsOutcome::Unchanged => println!("address labels: up to date"),
        LabelsOutcome::Missing => println!("address labels: none at the source"),
    }
    Ok(())
}

/// `pipeline fetch`: every date, then the labels; exit code 1 if a date or the labels failed.
fn fetch_command(f: &Fetcher, dates: &[NaiveDate]) -> Result<i32> {
    let start = Instant::now();
    let pb = f.progress().clone();
    // Above the bar on a terminal; plain lines otherwise (a hidden bar's `println` prints nothing).
    let say = |line: String| pb.suspend(|| println!("{line}"));
    let outcomes = f.fetch_dates(dates, |d, o| match o {
        DateOutcome::Complete(files) => {
            let new: Vec<_> = files.iter().filter(|f| f.downloaded).collect();
            say(format!(
                "{d}: {} files, {} downloaded ({} bytes), {} already present",
                files.len(),
                new.len(),
                new.iter().map(|f| f.bytes).sum::<u64>(),
                files.len() - new.len()
            ))
        }
        DateOutcome::Missing => say(format!("{d}: missing at the source (no META.json)")),
        DateOutcome::Failed(e) => say(format!("✗ {e}")),
    });
    pb.finish_and_clear();
    let count = |p: fn(&DateOutcome) -> bool| outcomes.iter().filter(|(_, o)| p(o)).count();
    let complete = count(|o| matches!(o, DateOutcome::Complete(_)));
    let missing = count(|o| matches!(o, DateOutcome::Missing));
    let failed: Vec<&str> = outcomes
        .iter()
        .filter_map(|(_, o)| match o {
            DateOutcome::Failed(e) => Some(e.as_str()),
            _ => None,
        })
        .collect();
    let bytes: u64 = outcomes
        .iter()
        .filter_map(|(_, o)| match o {
            DateOutcome::Complete(files) => Some(files),
            _ => None,
        })
        .flatten()
        .filter(|f| f.downloaded)
        .map(|f| f.bytes)
        .sum();
    let labels_ok = match report_labels(f) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("✗ address labels: {e:#}");
            false
        }
    };
    println!(
        "{complete} of {} dates complete ({bytes} bytes downloaded from {} in {:.2} s), {missing} missing at the source, {} failed",
        dates.len(),
        f.source(),
        start.elapsed().as_secs_f64(),
        failed.len()
    );
    if !failed.is_empty() {
        eprintln!("{} dates failed:", failed.len());
        for e in &failed {
            eprintln!("  {e}");
        }
    }
    Ok(if failed.is_empty() && labels_ok { 0 } else { 1 })
}

/// Logs to stderr filtered by `RUST_LOG` (default `warn`); with `trace`, also every stage span
/// of this crate into a Chrome trace file, written when the returned guard drops.
fn init_logging(trace: Option<&std::path::Path>) -> Option<tracing_chrome::FlushGuard> {
    use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")));
    let (chrome, guard) =
        match trace {
            Some(path) => {
                let (layer, guard) = tracing_chrome::ChromeLayerBuilder::new()
                    .file(path)
                    .include_args(true)
                    .build();
                (
                    Some(layer.with_filter(
                        Targets::new().with_target("aml_pipeline", LevelFilter::DEBUG),
                    )),
                    Some(guard),
                )
            }
            None => (None, None),
        };
    tracing_subscriber::registry().with(fmt).with(chrome).init();
    guard
}

/// The dates whose plan runs a feature-join stage, and so need their address history.
fn history_dates(cfg: &RunConfig, plans: &[DatePlan]) -> Vec<NaiveDate> {
    let joins: Vec<&str> = cfg
        .pipeline
        .stages
        .iter()
        .filter(|s| s.kind == StageKind::FeatureJoin)
        .map(|s| s.name.as_str())
        .collect();
    plans
        .iter()
        .filter(|p| p.run.iter().any(|r| joins.contains(&r.as_str())))
        .map(|p| p.date)
        .collect()
}

/// The run summary's line on what the subnet's validator would pay, and what to fix first.
fn print_reward(cfg: &RunConfig, reward: Option<&crate::validator::Reward>) {
    let Some(r) = reward else { return };
    println!("expected reward (mean per date): {}", reward_line(r));
    if cfg.model_github_url.is_none() {
        println!(
            "  the validator's Tier 1 gate fails without a model_github_url: set it in {}",
            cfg.path.display()
        );
    }
}

/// Prints the plan: dates with the same stages to run and the same reason, as ranges.
fn print_plan(plans: &[DatePlan]) {
    let up = plans
        .iter()
        .filter(|p| p.status == DateStatus::UpToDate)
        .count();
    let mut groups: Vec<(NaiveDate, NaiveDate, usize, String)> = Vec::new();
    for p in plans.iter().filter(|p| p.status != DateStatus::UpToDate) {
        let what = p.describe();
        match groups.last_mut() {
            Some(g) if g.3 == what => {
                g.1 = p.date;
                g.2 += 1;
            }
            _ => groups.push((p.date, p.date, 1, what)),
        }
    }
    println!(
        "plan: {} of {} dates to run, {up} up to date",
        plans.iter().filter(|p| !p.run.is_empty()).count(),
        plans.len()
    );
    for (a, b, n, what) in groups {
        if a == b {
            println!("  {a}: {what}");
        } else {
            println!("  {a}..{b} ({n} dates): {what}");
        }
    }
}

fn print_summary(r: &RunReport, n: usize, secs: f64) {
    if n == 0 {
        println!("nothing to do: every date is up to date ({secs:.2} s)");
        return;
    }
    let total: f64 = r.stages.iter().map(|s| s.2.ms).sum::<f64>().max(1e-9);
    println!(
        "{:<16} {:<14} {:>6} {:>11} {:>11} {:>10} {:>6} {:>12}",
        "stage", "kind", "dates", "rows in", "rows out", "time (s)", "share", "rows/s"
    );
    for (name, kind, s) in &r.stages {
        println!(
            "{:<16} {:<14} {:>6} {:>11} {:>11} {:>10.3} {:>5.1}% {:>12.0}",
            name,
            format!("{kind:?}"),
            s.dates,
            s.rows_in,
            s.rows,
            s.ms / 1e3,
            100.0 * s.ms / total,
            s.rows_in.max(s.rows) as f64 / (s.ms / 1e3).max(1e-9)
        );
    }
    let failed = r.failed();
    println!("{} of {n} dates completed in {secs:.2} s", n - failed.len());
    if !failed.is_empty() {
        eprintln!("{} dates failed:", failed.len());
        for (d, e) in failed {
            eprintln!("  {d}: {}", e.as_ref().unwrap_err());
        }
    }
}
