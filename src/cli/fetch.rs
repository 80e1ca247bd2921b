//! `pipeline fetch`, and what a run that fetches shows of it (the bytes bar, the labels).

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
