//! `pipeline run`: plans the selected dates, starts fetching what is missing, runs the graph
//! and prints the summary.

use super::fetch::{bytes_bar, report_labels};
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
    crate::heap::limit_arenas(cluster.workers);
    let (n, p) = (cluster.processes(), cluster.process);
    let mine: Vec<NaiveDate> = dates
        .iter()
        .enumerate()
        .filter(|(i, _)| i % n == p)
        .map(|(_, d)| *d)
        .collect();
    // Validation reads the ground truth of the run's alerts only, which it takes from the
    // batches in place; those still to download could not say theirs, so then it reads all.
    let judged = cfg.source.is_none().then_some(mine.as_slice());
    let ctx = Arc::new(Context::new(cfg, judged)?);
    let _lock = if dry_run {
        None
    } else {
        Some(crate::state::RunLock::acquire(&ctx.config.output, p)?)
    };
    // With a source, the fetch stage's dates download on a thread of their own from the start.
    let fetching = ctx.config.source.is_some() && !dry_run;
    if fetching
        && !ctx
            .config
            .pipeline
            .stages
            .iter()
            .any(|s| s.stage.brings_input())
    {
        bail!(
            "the run config sets `source`, but {} has no fetch stage to bring the batches in: add one first in the graph (see pipelines/daily.toml), or run `pipeline fetch` before the run",
            ctx.config.pipeline.path.display()
        );
    }
    let multi = indicatif::MultiProgress::new();
    let pb = multi.add(bar(0, "run"));
    let cfg = &ctx.config;
    // What the input tree holds before any download; a date still to fetch is planned in the
    // graph, once in place.
    let mut plans = plan_dates(cfg, &ctx.model_paths(), &mine, force)?;
    if fetching {
        let f = Fetcher::new(cfg)?.with_progress(multi.add(bytes_bar()));
        if let Err(e) = report_labels(&f) {
            eprintln!("warning: address labels not fetched: {e:#}");
        }
        ctx.arrivals.start(f, cfg, &mine);
    }
    for p in plans.iter_mut().filter(|p| p.run.is_empty()) {
        if ctx.arrivals.fetches_for(p.date) {
            p.status = DateStatus::ToFetch;
        }
    }
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
    if format == PlanFormat::Json {
        let all: Vec<serde_json::Value> = plans.iter().map(DatePlan::to_json).collect();
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(0);
    }
    pb.suspend(|| print_plan(&plans));
    if dry_run {
        return Ok(0);
    }
    let mut report = engine::RunReport::default();
    for p in &plans {
        let why = match &p.status {
            DateStatus::Unreadable(e) => e.clone(),
            DateStatus::MissingInput => format!(
                "missing input: {} does not exist",
                cfg.input_dir(p.date).display()
            ),
            _ => continue,
        };
        report
            .dates
            .push((p.date, Err(DateError::text(ErrorKind::Input, why))));
    }
    let enter: Vec<NaiveDate> = plans
        .iter()
        .filter(|p| !p.run.is_empty() || p.status == DateStatus::ToFetch)
        .map(|p| p.date)
        .collect();
    pb.set_length(enter.len() as u64);
    pb.enable_steady_tick(std::time::Duration::from_millis(200));
    start_history(&ctx, history_dates(cfg, &plans), fetching);
    let observer = Arc::new(BarObserver::new(pb.clone()));
    report.merge(engine::run(
        ctx.clone(),
        enter,
        force,
        &cluster,
        &run_id,
        observer,
    )?);
    ctx.history.finish()?;
    let fetched = ctx.arrivals.finish();
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

/// Starts the address history pass of `dates` on a thread of its own (reading each date once
/// it has arrived, in date order, if `fetching`); feature join reads each date's table once it
/// is written.
fn start_history(ctx: &Arc<Context>, dates: Vec<NaiveDate>, fetching: bool) {
    let written: Arc<crate::background::Progress<()>> = Arc::default();
    let (c, w) = (ctx.clone(), written.clone());
    let arrived: Option<crate::history::Arrived> =
        fetching.then(|| Arc::new(move |d| c.arrivals.wait_for(d)) as crate::history::Arrived);
    let cfg = ctx.config.clone();
    let flows = ctx.graph_features;
    let work = Background::spawn("the address history", move || {
        let _end = w.ends_with();
        crate::history::prepare_as_they_arrive(&cfg, &dates, arrived, flows, &|d| w.add(d, ()))
    });
    ctx.history.start(work, written);
}

/// The dates whose plan runs a stage that reads the address history, or that are fetched
/// first (and planned once in place).
fn history_dates(cfg: &RunConfig, plans: &[DatePlan]) -> Vec<NaiveDate> {
    let joins: Vec<&str> = cfg
        .pipeline
        .stages
        .iter()
        .filter(|s| s.stage.date_inputs().contains(&DateInput::AlertHistory))
        .map(|s| s.name.as_str())
        .collect();
    plans
        .iter()
        .filter(|p| {
            p.status == DateStatus::ToFetch || p.run.iter().any(|r| joins.contains(&r.as_str()))
        })
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

    fn date_skipped(&self, _date: NaiveDate) {
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
    let fetch = plans
        .iter()
        .filter(|p| p.status == DateStatus::ToFetch)
        .count();
    let fetch = match fetch {
        0 => String::new(),
        n => format!(", {n} to fetch first"),
    };
    println!(
        "plan: {} of {} dates to run{fetch}, {up} up to date",
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
