//! `pipeline run`: plans the selected dates, fetches what is missing on a second thread, runs
//! the graph and prints the summary.

use super::fetch::{bytes_bar, fetch_chunk, report_labels, FetchReport, FETCH_CHUNK_MIN};
use super::submit::SubmitTarget;
use super::validate::print_reward;
use super::*;
use crate::background::Background;
use crate::error::{DateError, ErrorKind};
use crate::stages::{DateInput, Observer};

/// Arguments of `pipeline run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    remote: Remote,
    /// Worker threads (default: the config's `workers`).
    #[arg(long)]
    workers: Option<usize>,
    #[command(flatten)]
    output: OutputArg,
    #[command(flatten)]
    models: ModelsArg,
    /// Sample the whole run and write a flamegraph (SVG) here.
    #[arg(long)]
    flamegraph: Option<PathBuf>,
    /// Write a Chrome/Perfetto trace (JSON) here: one span per stage and date, on the thread that ran it.
    #[arg(long)]
    pub(super) trace: Option<PathBuf>,
    /// Recompute every selected date and stage, even those whose outputs are up to date.
    #[arg(long)]
    force: bool,
    /// Print what would run (dates, stages and why) and exit without running it.
    #[arg(long)]
    dry_run: bool,
    /// How --dry-run prints the plan: `text` (dates grouped, for people) or `json` (one object
    /// per date: status, stages to run and load, reasons, fingerprints).
    #[arg(long, value_enum, default_value_t = PlanFormat::Text, requires = "dry_run")]
    format: PlanFormat,
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(flatten)]
    submit: SubmitTarget,
}

/// How `--dry-run` prints the plan.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanFormat {
    /// Dates grouped by what runs and why.
    Text,
    /// A JSON array, one object per date.
    Json,
}

/// `pipeline run`: Run the pipeline graph over the selected dates and write scored, ranked, validated outputs.
pub fn run(args: RunArgs) -> Result<i32> {
    let RunArgs {
        common,
        remote,
        workers,
        output,
        models,
        flamegraph,
        trace: _,
        force,
        dry_run,
        format,
        cluster,
        submit,
    } = args;
    let (cfg, dates) = common.load_from(Some(&remote), &[&output, &models, &submit])?;
    if cfg.validator_url.is_some()
        && cfg
            .pipeline
            .stage_of(&crate::stages::submit::KIND)
            .is_none()
    {
        eprintln!(
            "warning: {} has no submit stage, so this run sends nothing to {}: add one (see pipelines/daily.toml) or use `pipeline submit`",
            cfg.pipeline.path.display(),
            cfg.validator_url.as_deref().unwrap_or_default()
        );
    }
    let cluster = cluster.cluster(workers.unwrap_or(cfg.workers))?;
    engine::limit_heaps(cluster.workers);
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
        let mut chunks: Vec<Vec<NaiveDate>> = mine.chunks(chunk_len).map(|c| c.to_vec()).collect();
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
            if format == PlanFormat::Json {
                let all: Vec<serde_json::Value> = plans.iter().map(DatePlan::to_json).collect();
                println!("{}", serde_json::to_string_pretty(&all)?);
                return Ok(());
            }
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
            pb.enable_steady_tick(std::time::Duration::from_millis(200));
            let (history_cfg, history) = (cfg.clone(), history_dates(cfg, &plans));
            ctx.history
                .start(Background::spawn("the address history", move || {
                    crate::history::prepare(&history_cfg, &history)
                }));
            let unreadable: Vec<(NaiveDate, Result<(), DateError>)> = plans
                .iter()
                .filter_map(|p| match &p.status {
                    DateStatus::Unreadable(e) => {
                        Some((p.date, Err(DateError::text(ErrorKind::Input, e.clone()))))
                    }
                    _ => None,
                })
                .collect();
            let observer = Arc::new(BarObserver::new(pb.clone()));
            let part = engine::run(ctx.clone(), plans, &cluster, &run_id, observer)?;
            ctx.history.finish()?;
            report.merge(part);
            report.dates.extend(unreadable);
            for d in missing {
                let dir = cfg.input_dir(d);
                let why = format!("missing input: {} does not exist", dir.display());
                report
                    .dates
                    .push((d, Err(DateError::text(ErrorKind::Input, why))));
            }
            for (d, e) in &got.failed {
                report
                    .dates
                    .push((*d, Err(DateError::text(ErrorKind::Input, e.clone()))));
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
    let validate = ctx.config.pipeline.stage_of(&crate::stages::validate::KIND);
    if let (0, Some(validate)) = (p, validate) {
        // Dates whose validation passed and is current, whatever happened after it (a
        // submission that failed leaves the date failed, but its figures stand).
        let store = crate::state::StateStore::new(&ctx.config);
        let done: Vec<NaiveDate> = dates
            .iter()
            .copied()
            .filter(|d| {
                ctx.config
                    .output_dir(*d)
                    .join(crate::layout::VALIDATION)
                    .exists()
            })
            .filter(|d| {
                store
                    .load(*d)
                    .is_ok_and(|st| st.stages.contains_key(&validate.name))
            })
            .collect();
        if !done.is_empty() {
            let (path, reward) = summarize(&ctx.config, &done)?;
            println!("validation summary: {}", path.display());
            print_reward(&ctx.config, reward.as_ref());
        }
    }
    // The process exits next: freeing the labels and models piece by piece (a million
    // strings) would only delay the exit, by about 0.3 s on a month of labels.
    std::mem::forget(ctx);
    Ok(if report.failed().is_empty() { 0 } else { 1 })
}

/// The dates whose plan runs a stage that reads the address history.
pub(super) fn history_dates(cfg: &RunConfig, plans: &[DatePlan]) -> Vec<NaiveDate> {
    let joins: Vec<&str> = cfg
        .pipeline
        .stages
        .iter()
        .filter(|s| s.stage.date_inputs().contains(&DateInput::AlertHistory))
        .map(|s| s.name.as_str())
        .collect();
    plans
        .iter()
        .filter(|p| p.run.iter().any(|r| joins.contains(&r.as_str())))
        .map(|p| p.date)
        .collect()
}

/// Shows a run on the progress bar: lines from stages and failed dates above it, the count of
/// failures in its message.
struct BarObserver {
    bar: ProgressBar,
    failed: std::sync::atomic::AtomicUsize,
}

impl BarObserver {
    fn new(bar: ProgressBar) -> Self {
        Self {
            bar,
            failed: Default::default(),
        }
    }
}

impl Observer for BarObserver {
    fn note(&self, date: NaiveDate, stage: &str, text: &str) {
        self.bar.suspend(|| println!("{stage} {date}: {text}"));
    }

    fn date_done(&self, date: NaiveDate, error: Option<&DateError>) {
        if let Some(e) = error {
            let f = self
                .failed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1;
            self.bar.println(format!("✗ {date}: {e}"));
            self.bar.set_message(format!("{f} failed"));
        }
        self.bar.inc(1);
    }
}

/// Prints the plan: dates with the same stages to run and the same reason, as ranges.
pub(super) fn print_plan(plans: &[DatePlan]) {
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

pub(super) fn print_summary(r: &RunReport, n: usize, secs: f64) {
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
            kind.name,
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
        let mut kinds: BTreeMap<ErrorKind, usize> = BTreeMap::new();
        for (_, e) in &failed {
            if let Err(e) = e {
                *kinds.entry(e.kind).or_default() += 1;
            }
        }
        let kinds: Vec<String> = kinds
            .iter()
            .map(|(k, n)| format!("{n} {}", k.name()))
            .collect();
        eprintln!("{} dates failed ({}):", failed.len(), kinds.join(", "));
        for (d, e) in failed {
            eprintln!("  {d}: {}", e.as_ref().unwrap_err());
        }
    }
}
