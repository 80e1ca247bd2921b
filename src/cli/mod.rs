//! The `pipeline` command line: argument parsing and the glue from each subcommand to the library.

use crate::config::RunConfig;
use crate::dates::{available, DateSelection};
use crate::engine::{self, RunReport};
use crate::fetch::{DateOutcome, Fetcher, LabelsOutcome};
use crate::generate::GenerateOptions;
use crate::labels::Labels;
use crate::model::ModelKind;
use crate::plan::{plan_dates, DatePlan, DateStatus};
use crate::stages::validate::{
    judge, reward_line, summarize, BatchFacts, Knowledge, ValidateParams,
};
use crate::stages::Context;
use crate::train::{load_dates, write_features, TrainOptions};
mod compare;
mod fetch;
mod generate;
mod models;
mod query;
mod run;
mod serve;
mod status;
mod submit;
mod train;
mod validate;

use anyhow::{bail, Result};
use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
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
    Run(run::RunArgs),
    /// Show each date's state: up to date, stale (and why), missing input, or failed (and its error).
    Status(status::StatusArgs),
    /// Re-validate existing outputs (all tiers) and write validation.json per date plus a summary.
    Validate(validate::ValidateArgs),
    /// Compare two output trees (two models) tier by tier and by AUC, with a visual report.
    Compare(compare::CompareArgs),
    /// List the installed models with their training period and held-out metrics.
    Models(models::ModelsArgs),
    /// Install a LightGBM text model trained elsewhere (e.g. in Python) after checking its features.
    InstallModel(models::InstallModelArgs),
    /// Export the model matrix (one row per alert, with labels where known) as Parquet.
    Features(train::FeaturesArgs),
    /// Train LightGBM models on labelled dates and install them in the models directory.
    Train(train::TrainArgs),
    /// Mirror batches from object storage (the config's `source`) into the input tree, verified by checksum.
    Fetch(fetch::FetchArgs),
    /// Query the outputs with SQL (DuckDB). Views: alert_scores, alert_rankings, cluster_scores,
    /// processing_metadata, validation, each over every completed date and with network,
    /// processing_date and window_days columns.
    Query(query::QueryArgs),
    /// Serve the outputs over HTTP (scores, rankings, cluster scores, metadata, validation,
    /// metrics, OpenAPI); dates written meanwhile by `pipeline run` appear without a restart.
    Serve(serve::ServeArgs),
    /// Send validated dates' scores to the subnet validator, each date exactly once.
    Submit(submit::SubmitArgs),
    /// Write seeded synthetic batches in the upstream format, with planted laundering typologies.
    Generate(generate::GenerateArgs),
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

/// Flags that override keys of the run config; [`Common::load`] applies each set once,
/// before the dates are resolved.
trait Override {
    /// Sets the keys whose flags were given.
    fn apply(&self, cfg: &mut RunConfig) -> Result<()>;
}

/// `--output`.
#[derive(Args, Debug)]
struct OutputArg {
    /// Output root (default: the config's `output`).
    #[arg(long)]
    output: Option<PathBuf>,
}

impl Override for OutputArg {
    fn apply(&self, cfg: &mut RunConfig) -> Result<()> {
        if let Some(o) = &self.output {
            cfg.output = o.clone();
        }
        Ok(())
    }
}

/// `--models`.
#[derive(Args, Debug)]
struct ModelsArg {
    /// Directory of trained models (default: the config's `models`).
    #[arg(long)]
    models: Option<PathBuf>,
}

impl Override for ModelsArg {
    fn apply(&self, cfg: &mut RunConfig) -> Result<()> {
        if let Some(m) = &self.models {
            cfg.models = m.clone();
        }
        Ok(())
    }
}

impl Override for Remote {
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
    /// Reads the run config, applies these flags and `overrides`, and resolves the dates.
    fn load(&self, overrides: &[&dyn Override]) -> Result<(RunConfig, Vec<NaiveDate>)> {
        self.load_from(None, overrides)
    }

    /// Like `load`; with `remote`, its flags apply too, and if the run has a source, `all` and
    /// `latest` also see the dates at the source.
    fn load_from(
        &self,
        remote: Option<&Remote>,
        overrides: &[&dyn Override],
    ) -> Result<(RunConfig, Vec<NaiveDate>)> {
        let mut cfg = RunConfig::load(&self.config)?;
        if let Some(i) = &self.input {
            cfg.input = i.clone();
        }
        if let Some(d) = &self.dates {
            cfg.dates = d.parse()?;
        }
        for o in overrides {
            o.apply(&mut cfg)?;
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
        Command::Run(a) => a.trace.clone(),
        _ => None,
    };
    let _trace_guard = init_logging(trace.as_deref());
    match cli.command {
        Command::Run(a) => run::run(a),
        Command::Status(a) => status::status(a),
        Command::Validate(a) => validate::validate(a),
        Command::Compare(a) => compare::compare(a),
        Command::Models(a) => models::models(a),
        Command::InstallModel(a) => models::install_model(a),
        Command::Features(a) => train::features(a),
        Command::Train(a) => train::train(a),
        Command::Fetch(a) => fetch::fetch(a),
        Command::Query(a) => query::query(a),
        Command::Serve(a) => serve::serve(a),
        Command::Submit(a) => submit::submit(a),
        Command::Generate(a) => generate::generate(a),
    }
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
