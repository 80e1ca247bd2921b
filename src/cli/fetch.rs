//! `pipeline fetch`, and the fetching a run does ahead of its chunks of dates.

use super::*;

/// Arguments of `pipeline fetch`.
#[derive(Args, Debug)]
pub struct FetchArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    remote: Remote,
}

/// `pipeline fetch`: Mirror batches from object storage (the config's `source`) into the input tree, verified by checksum.
pub fn fetch(args: FetchArgs) -> Result<i32> {
    let FetchArgs { common, remote } = args;
    let (cfg, dates) = common.load_from(Some(&remote), &[])?;
    let fetcher = Fetcher::new(&cfg)?.with_progress(bytes_bar());
    fetch_command(&fetcher, &dates)
}

pub(super) fn bytes_bar() -> ProgressBar {
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
pub(super) struct FetchReport {
    /// Dates brought in place (window dates included).
    pub(super) fetched: usize,
    /// Dates the source has no batch for (reported, not failed).
    pub(super) missing: BTreeSet<NaiveDate>,
    /// Dates that could not be fetched, with the error.
    pub(super) failed: BTreeMap<NaiveDate, String>,
}

/// Whether the input tree holds a date's batch whole: META.json and every file it lists.
pub(super) fn complete_locally(cfg: &RunConfig, date: NaiveDate) -> bool {
    let dir = cfg.input_dir(date);
    let path = dir.join(crate::layout::META);
    crate::io::read_regular(&path)
        .ok()
        .and_then(|b| crate::stages::decode::Meta::parse(&b, &path.display().to_string()).ok())
        .is_some_and(|m| !m.sha256.is_empty() && m.sha256.keys().all(|f| dir.join(f).exists()))
}

/// Dates a run with a `source` fetches at once before running them, at least; while a chunk
/// runs, the next one downloads.
pub(super) const FETCH_CHUNK_MIN: usize = 4;

/// Fetches what one chunk of a run needs and the input tree lacks — its dates and the 30
/// before each, whose alerts feed the address history — skipping dates already tried in this
/// run. Dates already complete cost a directory listing, no request (batches are immutable
/// upstream; `pipeline fetch` re-checks them).
pub(super) fn fetch_chunk(
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
pub(super) fn report_labels(f: &Fetcher) -> Result<()> {
    match f.fetch_labels()? {
        LabelsOutcome::Downloaded(n) => println!("address labels: downloaded ({n} bytes)"),
        LabelsOutcome::Unchanged => println!("address labels: up to date"),
        LabelsOutcome::Missing => println!("address labels: none at the source"),
    }
    Ok(())
}

/// `pipeline fetch`: every date, then the labels; exit code 1 if a date or the labels failed.
pub(super) fn fetch_command(f: &Fetcher, dates: &[NaiveDate]) -> Result<i32> {
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
