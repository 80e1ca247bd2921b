//! Address-history features: how often, and for how much, an alerted address was alerted on
//! the dates before the processing date.
//!
//! For each address alerted on date D: its alerts and their summed `volume_usd` over
//! D−7..D−1 and D−30..D−1, and the distinct dates it was alerted on in D−30..D−1 (see
//! [`crate::features::HISTORY_FEATURES`]). Windows end strictly before D, so the day itself
//! never leaks into its history; an address without history gets 0.
//!
//! The windows are one differential-dataflow collection over calendar days (one epoch per
//! day), keyed by address (a 128-bit hash) and [`Slot`], whose differences are the aggregates
//! themselves ([`Agg`]: alerts, distinct dates, volume in exact 10⁻¹⁸ USD units): a date's
//! alerts enter both windows at d+1 and leave at d+8 and d+31, so the arrangement holds one
//! record per address and window whatever the range, and a date updates only the keys it
//! touches. The addresses alerted on a requested date join the same collection as markers for
//! that day alone; a reduce turns each marked key into its row. Retractions wait in a small
//! per-worker queue until the worker's input reaches their day, so neither the arrangement nor
//! its input buffers hold a month of future updates. [`prepare`] writes each date's rows as a
//! small Parquet cache under `{output}/.state/history/`, which the feature-join stage reads
//! with [`load`]; training computes the same rows in memory with [`in_memory`].

use crate::config::RunConfig;
use crate::contract::{check_dates, column, required, to_str_view, to_usd_units};
use crate::features::{FLOW_HISTORY_FEATURES, HISTORY_FEATURES};
use crate::io::ParquetSource;
use crate::labels::LabelMap;
use anyhow::{anyhow, bail, Result};
use arrow::array::{Array, ArrayRef, Float64Array, StringArray, StringViewArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use chrono::{Days, NaiveDate};
use rustc_hash::FxHashSet as HashSet;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod dataflow;
mod flows;
mod shapes;
mod summary;

use dataflow::Stats;
pub use dataflow::{aggregate, compute, compute_with};
pub use flows::{aggregate_flows, DayFlows};
use summary::Summaries;

/// Length of the long window, in dates: a date's history depends on the alerts of the
/// `HISTORY_DAYS` dates before it (and on its own alerted addresses).
pub const HISTORY_DAYS: u64 = 30;

/// Length of the short window, in dates.
pub const SHORT_DAYS: u64 = 7;

/// The input dates whose alerts a date's history features are computed from: D−30..D−1, ascending.
/// (The features also list the date's own alerted addresses, so D's own alerts matter too.)
pub fn window_dates(date: NaiveDate) -> impl Iterator<Item = NaiveDate> {
    (1..=HISTORY_DAYS).rev().map(move |k| date - Days::new(k))
}

/// The dates whose history features change when the alerts of `date` change: `date` itself
/// (its alerted addresses) and the 30 dates after it, ascending.
pub fn dependent_dates(date: NaiveDate) -> impl Iterator<Item = NaiveDate> {
    (0..=HISTORY_DAYS).map(move |k| date + Days::new(k))
}

/// One date's alerts aggregated per address ([`aggregate`]), or `None` when the date has no
/// batch.
pub type DayAlerts = Option<Day>;

/// One date's alerts aggregated per address key: what the windows are fed.
#[derive(Debug, Clone, Default)]
pub struct Day {
    /// The aggregates, ascending by key.
    aggs: Vec<(u128, dataflow::Agg)>,
    /// Its money flows per address (empty unless the flow features are computed).
    pub flows: DayFlows,
    /// The distinct `(address, key)` pairs, ascending by address; empty when read from a
    /// summary, which is never done for a date whose rows are wanted.
    names: dataflow::Names,
}

/// Reads a date's alerts for the history, keeping those of the addresses `keep` keeps: a
/// function so tests can feed hand-made dates.
pub type AlertSource = Arc<dyn Fn(NaiveDate, &Keep) -> Result<DayAlerts> + Send + Sync>;

/// Which addresses' alerts a read keeps.
#[derive(Debug, Clone, Default)]
pub enum Keep {
    /// Every address's.
    #[default]
    All,
    /// Only the alerted addresses of the requested dates (so every alert of those dates).
    Only {
        /// The addresses.
        addresses: Arc<LabelMap<()>>,
        /// Their keys.
        keys: Arc<HashSet<u128>>,
        /// The requested dates.
        dates: Arc<BTreeSet<NaiveDate>>,
    },
}

impl Keep {
    /// Whether the alerts of `address` are kept (a read keeps a batch's: [`Self::keeps_each`]).
    #[cfg(test)]
    pub(crate) fn keeps(&self, address: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only { addresses, .. } => addresses.contains_key(address),
        }
    }

    /// Whether the alerts of each of `addresses` are kept: one prefetched pass of lookups
    /// (the month of a short run's window dates holds a million and more alerts).
    fn keeps_each(&self, addresses: &StringViewArray) -> Vec<bool> {
        match self {
            Self::All => vec![true; addresses.len()],
            Self::Only {
                addresses: kept, ..
            } => kept.contains_each(addresses),
        }
    }

    /// Whether every alert of `date` is kept (and its addresses are wanted).
    pub fn complete(&self, date: NaiveDate) -> bool {
        match self {
            Self::All => true,
            Self::Only { dates, .. } => dates.contains(&date),
        }
    }

    /// Keeps the aggregates of the kept addresses.
    fn filter(&self, aggs: Vec<(u128, dataflow::Agg)>) -> Vec<(u128, dataflow::Agg)> {
        match self {
            Self::All => aggs,
            Self::Only { .. } => aggs.into_iter().filter(|r| self.keeps_key(&r.0)).collect(),
        }
    }

    /// Whether the address of key `k` is kept.
    fn keeps_key(&self, k: &u128) -> bool {
        match self {
            Self::All => true,
            Self::Only { keys, .. } => keys.contains(k),
        }
    }
}

/// Reads one date's alerts, keeping those of the addresses `keep` keeps, aggregated: from its
/// summary ([`summary`]) when one matches the content of its `alerts.parquet` and not all of
/// the date is wanted, else from the file (writing its summary when all of it was read);
/// `None` when the date's batch directory does not exist.
fn read_alerts(
    cfg: &RunConfig,
    summaries: &Summaries,
    date: NaiveDate,
    keep: &Keep,
) -> Result<DayAlerts> {
    let dir = cfg.input_dir(date);
    if !dir.is_dir() {
        return Ok(None);
    }
    let path = dir.join("alerts.parquet");
    let hash = summaries.hash(&path)?;
    let complete = keep.complete(date);
    if !complete {
        match summaries.read(date, &hash) {
            Ok(Some(aggs)) => {
                let aggs = keep.filter(aggs.into_iter().flatten().collect());
                return Ok(Some(Day {
                    aggs,
                    ..Day::default()
                }));
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(%date, "{e:#}; reading the alerts instead"),
        }
    }
    let day = read_file(&path, date, keep, complete)?;
    if complete {
        if let Err(e) = summaries.write(date, &hash, &[&day.aggs]) {
            tracing::warn!(%date, "history summary not written: {e:#}");
        }
    }
    Ok(Some(day))
}

/// Reads `address` and `volume_usd` (exactly, as 10⁻¹⁸ USD units; a null, unrepresentable or
/// negative volume counts as 0, as decode makes it missing) of one date's `alerts.parquet`
/// with the contract's tolerant readers, keeping the alerts of the addresses `keep` keeps,
/// and aggregates them ([`aggregate`]: the addresses are copied once each, not once per alert;
/// without `names`, a date whose rows are not wanted, not at all: [`dataflow::aggregate_keys`]).
fn read_file(path: &Path, date: NaiveDate, keep: &Keep, names: bool) -> Result<Day> {
    let file = path.display().to_string();
    let b = ParquetSource::open_with_views(path, &["address"])?.read_all(&[
        "address",
        "volume_usd",
        "processing_date",
    ])?;
    if b.num_columns() == 0 {
        return Ok(Day::default());
    }
    if let Some(c) = column(&b, "processing_date") {
        check_dates(c, date, &file, "processing_date")?;
    }
    let addr = to_str_view(required(&b, &file, "address")?, &file, "address")?;
    let vol = to_usd_units(required(&b, &file, "volume_usd")?, &file, "volume_usd")?;
    if let Some(i) = (0..b.num_rows()).find(|&i| addr.is_null(i)) {
        bail!("{file}: column `address` is null in row {i}");
    }
    let keeps = keep.keeps_each(&addr);
    let kept = (0..b.num_rows()).filter(|&i| keeps[i]);
    let alerts = kept.map(|i| {
        let v = if vol.is_null(i) {
            0
        } else {
            vol.value(i).max(0)
        };
        (addr.value(i), v)
    });
    Ok(if names {
        aggregate(alerts)
    } else {
        dataflow::aggregate_keys(alerts)
    })
}

pub fn schema() -> Schema {
    let mut fields = vec![Field::new("address", DataType::Utf8, false)];
    fields.extend(
        HISTORY_FEATURES
            .iter()
            .map(|n| Field::new(*n, DataType::Float64, false)),
    );
    Schema::new(fields)
}

/// Builds a history table from `(address, stats)` rows (already in address order); the
/// window shapes are NaN ([`shapes::WindowPairs::fill`] counts them).
fn batch(rows: impl ExactSizeIterator<Item = (String, Stats)>) -> Result<RecordBatch> {
    let mut addr = Vec::with_capacity(rows.len());
    let mut cols: Vec<Vec<f64>> = (HISTORY_FEATURES.iter())
        .map(|_| Vec::with_capacity(rows.len()))
        .collect();
    for (a, s) in rows {
        addr.push(a);
        let values = s.values();
        let shapes = std::iter::repeat(f64::NAN);
        for (c, v) in cols.iter_mut().zip(values.into_iter().chain(shapes)) {
            c.push(v);
        }
    }
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(StringArray::from(addr))];
    arrays.extend(
        cols.into_iter()
            .map(|c| Arc::new(Float64Array::from(c)) as ArrayRef),
    );
    Ok(RecordBatch::try_new(Arc::new(schema()), arrays)?)
}

/// Computes the history tables of `dates` from `cfg`'s input ([`compute`]), reading the
/// summaries under its output root where they match, and keeping the content hashes it learnt.
pub fn compute_for(
    cfg: &RunConfig,
    dates: &[NaiveDate],
    flows: bool,
    sink: &mut dyn FnMut(NaiveDate, Result<RecordBatch, String>) -> Result<()>,
) -> Result<()> {
    compute_as_they_arrive(cfg, dates, None, flows, sink)
}

/// Waits until a date's batch is in place, before the history reads it (a run that fetches
/// reads each date as it arrives: [`crate::arrivals::Arrivals::wait_for`]).
pub type Arrived = Arc<dyn Fn(NaiveDate) + Send + Sync>;

/// [`compute_for`]; with `arrived`, the dates arrive one by one: each is read once `arrived`
/// returns for it, in date order ([`compute_with`]).
fn compute_as_they_arrive(
    cfg: &RunConfig,
    dates: &[NaiveDate],
    arrived: Option<Arrived>,
    flows: bool,
    sink: &mut dyn FnMut(NaiveDate, Result<RecordBatch, String>) -> Result<()>,
) -> Result<()> {
    let summaries = Arc::new(Summaries::new(&cfg.output, &cfg.network, cfg.window_days));
    let flow_summaries = Summaries::flows(&summaries);
    // No window holds the last requested date: its flows are not read.
    let last = dates.iter().max().copied();
    let window = Arc::new(shapes::WindowPairs::new(dates));
    let (c, s, a, w) = (
        cfg.clone(),
        summaries.clone(),
        arrived.clone(),
        window.clone(),
    );
    let source: AlertSource = Arc::new(move |d, keep| {
        if let Some(a) = &a {
            a(d);
        }
        let mut day = read_alerts(&c, &s, d, keep)?;
        if let Some(day) = day.as_mut().filter(|_| flows && Some(d) < last) {
            day.flows = flows::read(&c.input_dir(d), &flow_summaries, d, keep, &w)?;
        }
        Ok(day)
    });
    let mut with_shapes = |d: NaiveDate, table: Result<RecordBatch, String>| match table {
        Ok(t) if flows => match window.fill(d, t) {
            Ok(t) => sink(d, Ok(t)),
            Err(e) => sink(d, Err(format!("{e:#}"))),
        },
        other => sink(d, other),
    };
    compute_with(
        source,
        dates,
        cfg.workers,
        arrived.is_none(),
        flows,
        &mut with_shapes,
    )?;
    summaries.save_hashes(&cfg.output)
}

/// Where [`prepare`] keeps the history table of a date:
/// `{output}/.state/history/{network}/{window_days}/{YYYY-MM-DD}.parquet`.
pub fn cache_path(cfg: &RunConfig, date: NaiveDate) -> PathBuf {
    crate::layout::history(&cfg.output, &cfg.network, cfg.window_days, date)
}

/// Where [`prepare`] records why a date has no history table.
fn error_path(cfg: &RunConfig, date: NaiveDate) -> PathBuf {
    cache_path(cfg, date).with_extension("error")
}

/// Computes the history tables of `dates` (reading their alerts and those of the 30 dates
/// before each) and writes each as a Parquet cache file ([`cache_path`]), atomically, leaving
/// a file whose content is unchanged untouched. A date whose history cannot be computed (no
/// batch, or its own alerts unreadable) gets no table but an error that [`load`] reports, so
/// it fails alone; an unreadable date in another date's window counts as no alerts there
/// (with a warning), and the planner reruns that date once the file changes. Errors only when the cache cannot be written.
pub fn prepare(cfg: &RunConfig, dates: &[NaiveDate], flows: bool) -> Result<()> {
    prepare_as_they_arrive(cfg, dates, None, flows, &|_| {})
}

/// [`prepare`], calling `ready` with each date whose table (or error) is written, as soon as
/// it is; with `arrived`, the dates arrive one by one and each is read once `arrived` returns
/// for it.
pub fn prepare_as_they_arrive(
    cfg: &RunConfig,
    dates: &[NaiveDate],
    arrived: Option<Arrived>,
    flows: bool,
    ready: &dyn Fn(NaiveDate),
) -> Result<()> {
    let start = std::time::Instant::now();
    let (mut written, mut unchanged, mut failed) = (0usize, 0usize, 0usize);
    compute_as_they_arrive(cfg, dates, arrived, flows, &mut |d, result| {
        let path = cache_path(cfg, d);
        let err = error_path(cfg, d);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow!("cannot create {}: {e}", dir.display()))?;
        }
        match result {
            Ok(b) => {
                let bytes = crate::io::parquet_bytes(&b)?;
                if crate::io::read_regular(&path).ok().as_deref() == Some(bytes.as_slice()) {
                    unchanged += 1;
                } else {
                    crate::io::write_atomic(&path, |w| Ok(std::io::Write::write_all(w, &bytes)?))?;
                    written += 1;
                }
                remove_if_present(&err)?;
            }
            Err(e) => {
                tracing::warn!(date = %d, "history features: {e}");
                remove_if_present(&path)?;
                crate::io::write_atomic(&err, |w| Ok(std::io::Write::write_all(w, e.as_bytes())?))?;
                failed += 1;
            }
        }
        ready(d);
        Ok(())
    })?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    tracing::info!(written, unchanged, failed, ms, "history features prepared");
    Ok(())
}

fn remove_if_present(path: &std::path::Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(anyhow!("cannot remove {}: {e}", path.display())),
    }
}

/// The history table of `date` written by [`prepare`]: `address`, then [`HISTORY_FEATURES`];
/// without `flows`, the flow-history columns ([`FLOW_HISTORY_FEATURES`], NaN when the run did
/// not compute them) are not read.
pub fn load(cfg: &RunConfig, date: NaiveDate, flows: bool) -> Result<RecordBatch> {
    let path = cache_path(cfg, date);
    if let Ok(e) = crate::io::read_text(&error_path(cfg, date)) {
        bail!("no history features for {date}: {e}");
    }
    if !path.exists() {
        bail!(
            "{}: history features of {date} missing; `pipeline run` prepares them (or call `history::prepare`)",
            path.display()
        );
    }
    let src = ParquetSource::open(&path)?;
    if src.schema().fields() != schema().fields() {
        bail!(
            "{}: not a history table of this version (expected columns address, {}); delete it and rerun",
            path.display(),
            HISTORY_FEATURES.join(", ")
        );
    }
    let wanted = HISTORY_FEATURES
        .iter()
        .filter(|n| flows || !FLOW_HISTORY_FEATURES.contains(n));
    src.read_all(
        &std::iter::once(&"address")
            .chain(wanted)
            .copied()
            .collect::<Vec<_>>(),
    )
}

/// The history tables of `dates`, with their flow features when `flows`, computed in memory
/// (for training and `pipeline features`); fails on the first date whose history cannot be
/// computed.
pub fn in_memory(
    cfg: &RunConfig,
    dates: &[NaiveDate],
    flows: bool,
) -> Result<BTreeMap<NaiveDate, RecordBatch>> {
    let mut out = BTreeMap::new();
    compute_for(cfg, dates, flows, &mut |d, r| {
        out.insert(d, r.map_err(|e| anyhow!("history features of {d}: {e}"))?);
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests;
