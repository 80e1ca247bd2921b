//! Dates arriving in the input tree while a run goes on: what the fetch stage waits for.
//!
//! Without a `source` in the run config every batch is local and has arrived. With one, a
//! thread of its own downloads, from the run's start and in ascending date order, every date
//! the run's dates need that the input tree does not hold whole — each date and the 30 before
//! it, whose alerts feed the address history — at most `fetch_concurrency` downloads at a time.
//! The fetch stage lets a date into the graph once it and its window are in place
//! ([`Arrivals::wait`]), so the first date decodes while later ones download; the address
//! history pass reads each date once it is there ([`Arrivals::wait_for`]). The fetcher never
//! waits for the graph, so neither waits for the other in a circle.

use crate::background::Progress;
use crate::config::RunConfig;
use crate::fetch::{DateOutcome, Fetcher};
use anyhow::{bail, Result};
use chrono::NaiveDate;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// Whether the input tree holds a date's batch whole: META.json and every file it lists.
pub fn complete_locally(cfg: &RunConfig, date: NaiveDate) -> bool {
    let dir = cfg.input_dir(date);
    let path = dir.join(crate::layout::META);
    crate::io::read_regular(&path)
        .ok()
        .and_then(|b| crate::stages::decode::Meta::parse(&b, &path.display().to_string()).ok())
        .is_some_and(|m| !m.sha256.is_empty() && m.sha256.keys().all(|f| dir.join(f).exists()))
}

/// What fetching for a run came to, for the dates the run was asked for.
#[derive(Debug, Default)]
pub struct FetchReport {
    /// Dates brought in place (window dates included).
    pub fetched: usize,
    /// Dates the source has no batch for (reported, not failed).
    pub missing: BTreeSet<NaiveDate>,
    /// Dates that could not be fetched, with the error.
    pub failed: BTreeMap<NaiveDate, String>,
}

/// The dates of a run coming into the input tree (see the module doc).
#[derive(Default)]
pub struct Arrivals {
    fetching: Mutex<Option<Arc<Fetching>>>,
}

/// A fetch under way: the dates it brings and what became of each so far.
struct Fetching {
    /// The run's dates.
    wanted: BTreeSet<NaiveDate>,
    /// The dates it fetches (the run's dates and their windows that the input tree lacks).
    need: BTreeSet<NaiveDate>,
    done: Arc<Progress<DateOutcome>>,
}

impl Fetching {
    /// Waits until every date of `dates` that is fetched has its outcome (or the fetch ended);
    /// their outcomes.
    fn wait(&self, dates: impl IntoIterator<Item = NaiveDate>) -> BTreeMap<NaiveDate, DateOutcome> {
        let dates: Vec<NaiveDate> = dates
            .into_iter()
            .filter(|d| self.need.contains(d))
            .collect();
        self.done.wait(&dates)
    }
}

impl Arrivals {
    /// Starts fetching, on a thread of its own, what `dates` need and the input tree lacks: each
    /// date and the dates of its history window ([`crate::history::window_dates`]). Dates
    /// already complete cost a directory listing, no request (batches are immutable upstream;
    /// `pipeline fetch` re-checks them).
    pub fn start(&self, fetcher: Fetcher, cfg: &RunConfig, dates: &[NaiveDate]) {
        let need: BTreeSet<NaiveDate> = dates
            .iter()
            .flat_map(|&d| crate::history::window_dates(d).chain([d]))
            .filter(|&d| !complete_locally(cfg, d))
            .collect();
        let fetching = Arc::new(Fetching {
            wanted: dates.iter().copied().collect(),
            need,
            done: Arc::default(),
        });
        *self.fetching.lock().unwrap_or_else(|p| p.into_inner()) = Some(fetching.clone());
        std::thread::Builder::new()
            .name("fetch".into())
            .spawn(move || {
                let _end = fetching.done.ends_with();
                let need: Vec<NaiveDate> = fetching.need.iter().copied().collect();
                fetcher.fetch_dates(&need, |d, o| {
                    if let DateOutcome::Failed(e) = o {
                        if !fetching.wanted.contains(&d) {
                            tracing::warn!(date = %d, "history window date not fetched: {e}");
                        }
                    }
                    tracing::debug!(date = %d, complete = matches!(o, DateOutcome::Complete(_)), "fetched");
                    fetching.done.add(d, o.clone());
                });
                fetcher.progress().finish_and_clear();
            })
            .expect("cannot start the fetching thread");
    }

    fn fetching(&self) -> Option<Arc<Fetching>> {
        self.fetching
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether anything is fetched for `date`: the date itself or a date of its window.
    pub fn fetches_for(&self, date: NaiveDate) -> bool {
        self.fetching().is_some_and(|f| {
            crate::history::window_dates(date)
                .chain([date])
                .any(|d| f.need.contains(&d))
        })
    }

    /// Waits until `date` and the dates of its history window are in place, or known to be
    /// missing at the source (the planner then finds no batch). Fails if the date itself could
    /// not be fetched; a window date that could not be counts as one without alerts, with a
    /// warning, as an unreadable one does.
    pub fn wait(&self, date: NaiveDate) -> Result<()> {
        let Some(f) = self.fetching() else {
            return Ok(());
        };
        let done = f.wait(crate::history::window_dates(date).chain([date]));
        match done.get(&date) {
            Some(DateOutcome::Failed(e)) => bail!("fetch failed: {e}"),
            None if f.need.contains(&date) => {
                bail!("fetch failed: {date}: the fetching thread ended before it")
            }
            _ => Ok(()),
        }
    }

    /// Waits until `date` itself is in place or given up on (what the address history pass
    /// waits for before it reads a date's alerts).
    pub fn wait_for(&self, date: NaiveDate) {
        if let Some(f) = self.fetching() {
            f.wait([date]);
        }
    }

    /// Waits for the fetch to end and says what it came to.
    pub fn finish(&self) -> FetchReport {
        let mut report = FetchReport::default();
        let Some(f) = self.fetching() else {
            return report;
        };
        for (d, o) in &f.wait(f.need.iter().copied()) {
            match o {
                DateOutcome::Complete(_) => report.fetched += 1,
                DateOutcome::Missing if f.wanted.contains(d) => {
                    report.missing.insert(*d);
                }
                DateOutcome::Failed(e) if f.wanted.contains(d) => {
                    report.failed.insert(*d, e.clone());
                }
                _ => {}
            }
        }
        report
    }
}
