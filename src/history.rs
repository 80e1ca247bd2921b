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
use crate::contract::{check_dates, column, required, to_str, to_usd_units, USD_SCALE};
use crate::features::HISTORY_FEATURES;
use crate::io::ParquetSource;
use anyhow::{anyhow, bail, Result};
use arrow::array::{Array, ArrayRef, Float64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use chrono::{Datelike, Days, NaiveDate};
use differential_dataflow::difference::{Abelian, IsZero, Monoid, Semigroup};
use differential_dataflow::input::Input;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use timely::dataflow::operators::{Exchange, Inspect, Probe};

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

/// One date's alerts as `(address, volume_usd)` pairs, the volume in units of 10⁻¹⁸ USD
/// ([`to_usd_units`]), or `None` when the date has no batch.
pub type DayAlerts = Option<Vec<(String, i128)>>;

/// Reads a date's alerts for the history: a function so tests can feed hand-made dates.
pub type AlertSource = Arc<dyn Fn(NaiveDate) -> Result<DayAlerts> + Send + Sync>;

/// Reads `address` and `volume_usd` (exactly, as 10⁻¹⁸ USD units; a null, unrepresentable or
/// negative volume counts as 0, as decode makes it missing) of one date's `alerts.parquet` with the contract's tolerant readers;
/// `None` when the date's batch directory does not exist.
pub fn read_alerts(cfg: &RunConfig, date: NaiveDate) -> Result<DayAlerts> {
    let dir = cfg.input_dir(date);
    if !dir.is_dir() {
        return Ok(None);
    }
    let path = dir.join("alerts.parquet");
    let file = path.display().to_string();
    let b = ParquetSource::open(&path)?.read_all(&["address", "volume_usd", "processing_date"])?;
    if b.num_columns() == 0 {
        return Ok(Some(Vec::new()));
    }
    if let Some(c) = column(&b, "processing_date") {
        check_dates(c, date, &file, "processing_date")?;
    }
    let addr = to_str(required(&b, &file, "address")?, &file, "address")?;
    let vol = to_usd_units(required(&b, &file, "volume_usd")?, &file, "volume_usd")?;
    (0..b.num_rows())
        .map(|i| {
            if addr.is_null(i) {
                bail!("{file}: column `address` is null in row {i}");
            }
            let v = if vol.is_null(i) {
                0
            } else {
                vol.value(i).max(0)
            };
            Ok((addr.value(i).to_string(), v))
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// A 128-bit integer kept as two 64-bit halves: it aligns to 8 bytes, where an `i128` aligns
/// to 16 and would pad every difference of the arrangement. Ordered like the `i128`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Wide {
    hi: i64,
    lo: u64,
}

impl Wide {
    fn new(v: i128) -> Self {
        Wide {
            hi: (v >> 64) as i64,
            lo: v as u64,
        }
    }

    fn get(self) -> i128 {
        ((self.hi as i128) << 64) | self.lo as i128
    }
}

/// The aggregates of some alerts of one address, used as the differences of the window
/// collection, so that consolidating a key's updates sums them (exactly: integers only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Agg {
    /// Alerts.
    alerts: i32,
    /// Distinct dates with alerts.
    days: i32,
    /// Summed `volume_usd`, in 10⁻¹⁸ USD.
    volume: Wide,
}

impl IsZero for Agg {
    fn is_zero(&self) -> bool {
        *self == Agg::default()
    }
}

impl Semigroup for Agg {
    fn plus_equals(&mut self, rhs: &Self) {
        self.alerts += rhs.alerts;
        self.days += rhs.days;
        self.volume = Wide::new(self.volume.get().wrapping_add(rhs.volume.get()));
    }
}

impl Monoid for Agg {
    fn zero() -> Self {
        Agg::default()
    }
}

impl Abelian for Agg {
    fn negate(&mut self) {
        *self = Agg {
            alerts: -self.alerts,
            days: -self.days,
            volume: Wide::new(self.volume.get().wrapping_neg()),
        };
    }
}

impl std::ops::Neg for Agg {
    type Output = Agg;
    fn neg(mut self) -> Agg {
        self.negate();
        self
    }
}

/// What a record of an address stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum Slot {
    /// Its alerts of the last [`SHORT_DAYS`] dates.
    Short,
    /// Its alerts of the last [`HISTORY_DAYS`] dates.
    Long,
    /// It is alerted on this (requested) day, so it needs a row for it.
    Alerted(u32),
}

/// The per-address features of one day; volumes as `f64` bits so the type is `Ord`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
struct Stats {
    alerts_7d: u64,
    volume_7d: u64,
    alerts_30d: u64,
    volume_30d: u64,
    days_30d: u64,
}

impl Stats {
    /// The features of the windows' aggregates (absent windows are zero).
    fn of(short: Agg, long: Agg) -> Self {
        let usd = |units: i128| (units as f64 / 10f64.powi(USD_SCALE.into())).to_bits();
        Stats {
            alerts_7d: short.alerts.max(0) as u64,
            volume_7d: usd(short.volume.get()),
            alerts_30d: long.alerts.max(0) as u64,
            volume_30d: usd(long.volume.get()),
            days_30d: long.days.max(0) as u64,
        }
    }

    /// The feature values, in [`HISTORY_FEATURES`] order.
    fn values(&self) -> [f64; 5] {
        [
            self.alerts_7d as f64,
            f64::from_bits(self.volume_7d),
            self.alerts_30d as f64,
            f64::from_bits(self.volume_30d),
            self.days_30d as f64,
        ]
    }
}

/// The key of an address in the collections: the first 128 bits of its sha256, so that the
/// window state holds small fixed-size keys, the same in every process (the strings stay
/// outside the dataflow, with the dates that need them).
fn key(address: &str) -> u128 {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(address.as_bytes());
    u128::from_le_bytes(h[..16].try_into().expect("16 bytes"))
}

/// The differential time of a date: its day number (32 bits keep the arrangement small).
fn day(d: NaiveDate) -> u32 {
    u32::try_from(d.num_days_from_ce()).expect("a date after year 1")
}

/// A date's distinct alerted addresses, ascending, with their keys.
type Names = Vec<(String, u128)>;

/// A date's alerts aggregated per address: key → one date's [`Agg`], ascending by key.
type DayAggs = Rc<Vec<(u128, Agg)>>;

/// Aggregates a date's alerts per address; also returns its distinct `(address, key)` pairs,
/// ascending by address.
fn aggregate(alerts: Vec<(String, i128)>) -> (DayAggs, Names) {
    let mut per: BTreeMap<u128, Agg> = BTreeMap::new();
    let mut names: BTreeMap<String, u128> = BTreeMap::new();
    for (a, v) in alerts {
        let k = match names.get(&a) {
            Some(&k) => k,
            None => {
                let k = key(&a);
                names.insert(a, k);
                k
            }
        };
        let agg = per.entry(k).or_insert(Agg {
            days: 1,
            ..Agg::default()
        });
        agg.plus_equals(&Agg {
            alerts: 1,
            days: 0,
            volume: Wide::new(v),
        });
    }
    (
        Rc::new(per.into_iter().collect()),
        names.into_iter().collect(),
    )
}

/// An output update: (key, ((day, stats)), time, multiplicity).
type Row = ((u128, (u32, Stats)), u32, isize);

/// Output rows gathered on worker 0: day → (key, stats) → multiplicity.
type Gathered = BTreeMap<u32, BTreeMap<(u128, Stats), isize>>;

/// One finished date: its rows, or why it has none.
type Finished = (NaiveDate, Result<RecordBatch, String>);

/// Computes the history rows of `dates` from `source`, feeding each needed input date (the
/// requested dates and the 30 before each) in date order, one epoch per date, on `workers`
/// timely workers. `sink` receives each requested date once, in ascending order, as soon as
/// its epoch is complete: its rows (address ascending), or the error that prevents them (the
/// date's batch is missing, or an alerts file of its window cannot be read). Memory holds one
/// record per address and window of the live windows and the dates in flight, never the range.
pub fn compute(
    source: AlertSource,
    dates: &[NaiveDate],
    workers: usize,
    sink: &mut dyn FnMut(NaiveDate, Result<RecordBatch, String>) -> Result<()>,
) -> Result<()> {
    let wanted: BTreeSet<NaiveDate> = dates.iter().copied().collect();
    let feed: Vec<NaiveDate> = wanted
        .iter()
        .flat_map(|&d| window_dates(d).chain([d]))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let wanted = Arc::new(wanted);
    let feed = Arc::new(feed);
    // Dates that fail, with the error: unreadable input dates (true: they also count as no
    // alerts in the windows that hold them, with a warning) and requested dates without a batch.
    let failures: Arc<Mutex<BTreeMap<NaiveDate, (bool, String)>>> = Arc::default();
    // The alerted addresses of each requested date in flight.
    let names: Arc<Mutex<HashMap<NaiveDate, Names>>> = Arc::default();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Finished>(16);
    let tx = Mutex::new(tx);
    let guards = timely::execute(timely::Config::process(workers.max(1)), move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let tx = tx.lock().expect("sender").clone();
        let rows: Rc<RefCell<Gathered>> = Rc::default();
        let (mut records, probe) = worker.dataflow::<u32, _, _>(|scope| {
            let (input, records) = scope.new_collection::<(u128, Slot), Agg>();
            let rows = rows.clone();
            let (probe, _) = records
                .reduce(|_key, vals: &[(&Slot, Agg)], out: &mut Vec<((u32, Stats), isize)>| {
                    let (mut short, mut long) = (Agg::default(), Agg::default());
                    for (slot, agg) in vals {
                        match slot {
                            Slot::Short => short = *agg,
                            Slot::Long => long = *agg,
                            Slot::Alerted(d) => out.push(((*d, Stats::of(short, long)), 1)),
                        }
                    }
                })
                .inner
                .exchange(|_| 0)
                .inspect(move |((k, (d, s)), t, r): &Row| {
                    // A date's rows are the updates at its own day; the next day retracts them.
                    if t == d {
                        *rows
                            .borrow_mut()
                            .entry(*t)
                            .or_default()
                            .entry((*k, *s))
                            .or_default() += r;
                    }
                })
                .probe();
            (input, probe)
        });

        // Hands every requested date whose epoch is complete to the sink, in date order (worker 0).
        let mut last_sent: Option<NaiveDate> = None;
        let mut flush = |probe: &timely::dataflow::ProbeHandle<u32>, all: bool| {
            if index != 0 {
                return;
            }
            let after = last_sent;
            for &d in wanted.iter().filter(|&&d| after.is_none_or(|l| d > l)) {
                if !all && probe.less_equal(&day(d)) {
                    break;
                }
                let got = rows.borrow_mut().remove(&day(d)).unwrap_or_default();
                let addrs = names.lock().expect("names").remove(&d).unwrap_or_default();
                let failed = failures.lock().expect("failures").clone();
                for w in window_dates(d).filter(|w| failed.get(w).is_some_and(|e| e.0)) {
                    tracing::warn!(date = %d, "history window: {w} unreadable, counted as no alerts");
                }
                let result = match failed.get(&d) {
                    Some(e) => Err(e.1.clone()),
                    None => rows_of(addrs, got),
                };
                last_sent = Some(d);
                let _ = tx.send((d, result));
            }
        };

        // This worker's dates; each feeds its alerts into the windows and queues their exits.
        let mine: Vec<NaiveDate> = feed.iter().skip(index).step_by(peers).copied().collect();
        let horizon = wanted.iter().next_back().map_or(0, |&d| day(d));
        // Retractions not yet due, by day: (window, the aggregates of the date that leaves it).
        let mut exits: BTreeMap<u32, Vec<(Slot, DayAggs)>> = BTreeMap::new();
        for (i, &d) in mine.iter().enumerate() {
            // At most one of this worker's dates in flight.
            if i > 0 {
                while probe.less_equal(&day(mine[i - 1])) {
                    worker.step();
                    flush(&probe, false);
                }
            }
            let t = day(d);
            records.advance_to(t);
            match source(d) {
                Ok(Some(alerts)) => {
                    let (aggs, addrs) = aggregate(alerts);
                    // Updates after the last requested date are never read: skipped, so that
                    // closing the input leaves no month of retractions to process.
                    if t < horizon {
                        for &(k, agg) in aggs.iter() {
                            records.update_at((k, Slot::Short), t + 1, agg);
                            records.update_at((k, Slot::Long), t + 1, agg);
                        }
                    }
                    for (slot, len) in [(Slot::Short, SHORT_DAYS), (Slot::Long, HISTORY_DAYS)] {
                        let len = len as u32;
                        if t + 1 + len <= horizon {
                            exits.entry(t + 1 + len).or_default().push((slot, aggs.clone()));
                        }
                    }
                    if wanted.contains(&d) {
                        let mark = (Slot::Alerted(t), Agg { alerts: 1, ..Agg::default() });
                        for &(_, k) in &addrs {
                            records.update_at((k, mark.0), t, mark.1);
                            if t < horizon {
                                records.update_at((k, mark.0), t + 1, -mark.1);
                            }
                        }
                        names.lock().expect("names").insert(d, addrs);
                    }
                }
                Ok(None) => {
                    if wanted.contains(&d) {
                        failures
                            .lock()
                            .expect("failures")
                            .insert(d, (false, format!("{d}: no batch")));
                    }
                }
                Err(e) => {
                    failures
                        .lock()
                        .expect("failures")
                        .insert(d, (true, format!("{e:#}")));
                }
            }
            // The exits due before this worker's next date: the input is still at `t` ≤ them.
            let next = mine.get(i + 1).map_or(u32::MAX, |&n| day(n));
            while let Some(entry) = exits.first_entry().filter(|e| *e.key() < next) {
                let at = *entry.key();
                for (slot, aggs) in entry.remove() {
                    for &(k, agg) in aggs.iter() {
                        records.update_at((k, slot), at, -agg);
                    }
                }
            }
            records.advance_to(t + 1);
            records.flush();
        }
        records.close();
        while worker.step() {
            flush(&probe, false);
        }
        flush(&probe, true);
    })
    .map_err(|e| anyhow!("cannot start {workers} workers for the history features: {e}"))?;
    let mut first_err = None;
    for (d, r) in rx {
        if first_err.is_none() {
            if let Err(e) = sink(d, r) {
                first_err = Some(e);
            }
        }
    }
    for r in guards.join() {
        r.map_err(|e| anyhow!("a history worker failed: {e}"))?;
    }
    first_err.map_or(Ok(()), Err)
}

/// A date's rows: each alerted address (ascending) with the stats the dataflow gave its key.
fn rows_of(addrs: Names, got: BTreeMap<(u128, Stats), isize>) -> Result<RecordBatch, String> {
    let stats: HashMap<u128, Stats> = got
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|((k, s), _)| (k, s))
        .collect();
    let rows = addrs
        .into_iter()
        .map(|(a, k)| match stats.get(&k) {
            Some(s) => Ok((a, *s)),
            None => Err(format!("history features: no row for address {a}")),
        })
        .collect::<Result<Vec<_>, String>>()?;
    batch(rows.into_iter()).map_err(|e| format!("{e:#}"))
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

/// Builds a history table from `(address, stats)` rows (already in address order).
fn batch(rows: impl Iterator<Item = (String, Stats)>) -> Result<RecordBatch> {
    let mut addr = Vec::new();
    let mut cols: Vec<Vec<f64>> = vec![Vec::new(); HISTORY_FEATURES.len()];
    for (a, s) in rows {
        addr.push(a);
        for (c, v) in cols.iter_mut().zip(s.values()) {
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

fn source_of(cfg: &RunConfig) -> AlertSource {
    let cfg = cfg.clone();
    Arc::new(move |d| read_alerts(&cfg, d))
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
pub fn prepare(cfg: &RunConfig, dates: &[NaiveDate]) -> Result<()> {
    let (mut written, mut unchanged, mut failed) = (0usize, 0usize, 0usize);
    compute(source_of(cfg), dates, cfg.workers, &mut |d, result| {
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
        Ok(())
    })?;
    tracing::info!(written, unchanged, failed, "history features prepared");
    Ok(())
}

fn remove_if_present(path: &std::path::Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(anyhow!("cannot remove {}: {e}", path.display())),
    }
}

/// The history table of `date` written by [`prepare`]: `address`, then [`HISTORY_FEATURES`].
pub fn load(cfg: &RunConfig, date: NaiveDate) -> Result<RecordBatch> {
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
    let b = ParquetSource::open(&path)?.read_all(
        &std::iter::once("address")
            .chain(HISTORY_FEATURES.iter().copied())
            .collect::<Vec<_>>(),
    )?;
    if b.schema().as_ref() != &schema() {
        bail!(
            "{}: not a history table of this version (expected columns address, {}); delete it and rerun",
            path.display(),
            HISTORY_FEATURES.join(", ")
        );
    }
    Ok(b)
}

/// The history tables of `dates`, computed in memory (for training); fails on the first date
/// whose history cannot be computed.
pub fn in_memory(cfg: &RunConfig, dates: &[NaiveDate]) -> Result<BTreeMap<NaiveDate, RecordBatch>> {
    let mut out = BTreeMap::new();
    compute(source_of(cfg), dates, cfg.workers, &mut |d, r| {
        out.insert(d, r.map_err(|e| anyhow!("history features of {d}: {e}"))?);
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;

    type Rows = BTreeMap<NaiveDate, BTreeMap<String, [f64; 5]>>;

    fn d(s: &str) -> NaiveDate {
        crate::dates::parse_date(s).unwrap()
    }

    /// A volume in USD as 10⁻¹⁸ USD units.
    fn units(usd: f64) -> i128 {
        (usd * 1e18).round() as i128
    }

    /// A source over hand-made dates: `(days before base, address, volume)`; other dates have no batch.
    fn source(base: NaiveDate, alerts: &[(u64, &str, f64)]) -> AlertSource {
        let mut by_date: BTreeMap<NaiveDate, Vec<(String, i128)>> = BTreeMap::new();
        for &(k, a, v) in alerts {
            by_date
                .entry(base - Days::new(k))
                .or_default()
                .push((a.to_string(), units(v)));
        }
        Arc::new(move |date| Ok(by_date.get(&date).cloned()))
    }

    fn run(src: AlertSource, dates: &[NaiveDate], workers: usize) -> Rows {
        let mut out = Rows::new();
        compute(src, dates, workers, &mut |date, r| {
            let b = r.map_err(|e| anyhow!(e))?;
            let addr = b.column(0).as_string::<i32>();
            let rows = out.entry(date).or_default();
            for i in 0..b.num_rows() {
                let v: Vec<f64> = (1..=5)
                    .map(|c| {
                        b.column(c)
                            .as_primitive::<arrow::datatypes::Float64Type>()
                            .value(i)
                    })
                    .collect();
                rows.insert(addr.value(i).to_string(), v.try_into().unwrap());
            }
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn windows_end_before_the_date_and_count_as_defined() {
        let base = d("2025-06-30");
        let alerts = [
            // a: inside both windows at D−1 and D−7 (twice), only the long one at D−8 and D−30,
            // outside at D−31; its alert of D itself never counts for D.
            (0, "a", 1000.0),
            (1, "a", 10.0),
            (7, "a", 20.0),
            (7, "a", 20.0),
            (8, "a", 40.0),
            (30, "a", 80.0),
            (31, "a", 160.0),
            // b: alerted on D only.
            (0, "b", 3.0),
            // c: history but not alerted on D, so no row for D.
            (3, "c", 1.0),
            // g: alerted on D−1 and D with the same history on both (D−31 and D−8 leave as D−8 and D−1 enter).
            (31, "g", 5.0),
            (8, "g", 5.0),
            (1, "g", 5.0),
            (0, "g", 5.0),
        ];
        let prev = base - Days::new(1);
        let rows = run(source(base, &alerts), &[prev, base], 1);
        let at = &rows[&base];
        assert_eq!(at.keys().collect::<Vec<_>>(), ["a", "b", "g"]);
        assert_eq!(at["a"], [3.0, 50.0, 5.0, 170.0, 4.0]);
        assert_eq!(at["b"], [0.0; 5]);
        assert_eq!(at["g"], [1.0, 5.0, 2.0, 10.0, 2.0]);
        // D−1: windows D−8..D−2 and D−31..D−2.
        let before = &rows[&prev];
        assert_eq!(before.keys().collect::<Vec<_>>(), ["a", "g"]);
        assert_eq!(before["a"], [3.0, 80.0, 5.0, 320.0, 4.0]);
        assert_eq!(before["g"], at["g"]);
    }

    #[test]
    fn volumes_add_up_exactly_whatever_the_order() {
        let base = d("2025-06-30");
        // In f64, 0.1 + 0.2 is 0.30000000000000004 and (1e16 + 1) - 1e16 is 0; the window
        // sums hold exact units, so neither order nor magnitudes change the result.
        let alerts = [
            (0, "a", 0.0),
            (1, "a", 0.1),
            (2, "a", 0.2),
            (3, "a", 1e16),
            (4, "a", 1.0),
            (5, "a", -1e16),
        ];
        let rows = run(source(base, &alerts), &[base], 2);
        assert_eq!(rows[&base]["a"][1], 1.3);
        // The same volumes on the window's days in the opposite order.
        let mut reversed = alerts;
        for k in 1..=5 {
            reversed[k].2 = alerts[6 - k].2;
        }
        let rows = run(source(base, &reversed), &[base], 1);
        assert_eq!(rows[&base]["a"][1], 1.3);
    }

    #[test]
    fn a_date_without_batch_is_an_error_for_that_date_only() {
        let base = d("2025-06-30");
        let src = source(base, &[(2, "a", 1.0), (0, "a", 1.0)]);
        let mut got = BTreeMap::new();
        compute(src, &[base - Days::new(1), base], 2, &mut |date, r| {
            got.insert(date, r.map(|b| b.num_rows()));
            Ok(())
        })
        .unwrap();
        assert!(got[&(base - Days::new(1))]
            .as_ref()
            .unwrap_err()
            .contains("no batch"));
        assert_eq!(got[&base], Ok(1));
    }

    #[test]
    fn an_unreadable_date_fails_alone_and_counts_as_no_alerts_in_windows() {
        let base = d("2025-06-30");
        let bad = base - Days::new(10);
        let src: AlertSource = Arc::new(move |date| {
            if date == bad {
                bail!("alerts.parquet: corrupt")
            }
            Ok(Some(vec![("a".to_string(), units(1.0))]))
        });
        let dates = [
            bad - Days::new(1),
            bad,
            bad + Days::new(1),
            base,
            base + Days::new(21),
        ];
        let mut got = BTreeMap::new();
        compute(src, &dates, 2, &mut |date, r| {
            got.insert(date, r.is_ok());
            Ok(())
        })
        .unwrap();
        let expected: BTreeMap<NaiveDate, bool> = [
            (dates[0], true),
            (dates[1], false),
            (dates[2], true),
            (dates[3], true),
            (dates[4], true),
        ]
        .into();
        assert_eq!(got, expected);
    }

    /// A pseudo-random month of alerts over a few addresses.
    fn month(seed: u64) -> Vec<(u64, String, f64)> {
        let mut out = Vec::new();
        let mut x = seed;
        for k in 0..75u64 {
            out.push((k, "daily".to_string(), k as f64));
            for _ in 0..6 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                if !(x >> 60).is_multiple_of(3) {
                    out.push((
                        k,
                        format!("addr{}", (x >> 33) % 9),
                        ((x >> 20) % 1000) as f64 / 7.0,
                    ));
                }
            }
        }
        out
    }

    fn src_of(base: NaiveDate, m: &[(u64, String, f64)]) -> AlertSource {
        let v: Vec<(u64, &str, f64)> = m.iter().map(|(k, a, v)| (*k, a.as_str(), *v)).collect();
        source(base, &v)
    }

    #[test]
    fn worker_counts_give_identical_rows() {
        let base = d("2025-06-30");
        let m = month(3);
        let dates: Vec<NaiveDate> = (0..40).map(|k| base - Days::new(k)).collect();
        let one = run(src_of(base, &m), &dates, 1);
        assert_eq!(one.len(), 40);
        let two = run(src_of(base, &m), &dates, 2);
        let bits = |r: &Rows| -> Vec<(NaiveDate, String, [u64; 5])> {
            r.iter()
                .flat_map(|(d, rows)| {
                    rows.iter()
                        .map(move |(a, v)| (*d, a.clone(), v.map(f64::to_bits)))
                })
                .collect()
        };
        assert_eq!(bits(&one), bits(&two));
    }

    #[test]
    fn changing_one_date_changes_only_the_dates_whose_windows_hold_it() {
        let base = d("2025-06-30");
        let m = month(5);
        let dates: Vec<NaiveDate> = (0..75).map(|k| base - Days::new(k)).collect();
        let before = run(src_of(base, &m), &dates, 2);
        // Change the volume of one alert of date `changed`.
        let k = 50;
        let changed = base - Days::new(k);
        let mut m2 = m.clone();
        let i = m2.iter().position(|r| r.0 == k).unwrap();
        m2[i].2 += 1.0;
        let after = run(src_of(base, &m2), &dates, 2);
        let differ: Vec<NaiveDate> = before
            .keys()
            .copied()
            .filter(|d| before[d] != after[d])
            .collect();
        // The changed address is alerted every date, so exactly the 30 dates after change.
        let expected: Vec<NaiveDate> = dependent_dates(changed).skip(1).collect();
        assert_eq!(differ, expected);
        // Within a date, only the changed address's row moves.
        for d in &differ {
            let moved: Vec<&String> = before[d]
                .iter()
                .filter(|(a, v)| after[d].get(*a) != Some(v))
                .map(|(a, _)| a)
                .collect();
            assert_eq!(moved, [&m2[i].1]);
        }
    }

    #[test]
    fn wide_integers_round_trip_and_order_like_i128() {
        let vs = [
            i128::MIN,
            -(1 << 70) - 3,
            -1,
            0,
            1,
            u64::MAX as i128 + 1,
            i128::MAX,
        ];
        for w in vs.windows(2) {
            assert_eq!((Wide::new(w[0]).get(), Wide::new(w[1]).get()), (w[0], w[1]));
            assert!(Wide::new(w[0]) < Wide::new(w[1]));
        }
        assert_eq!(std::mem::align_of::<Agg>(), 8);
    }

    #[test]
    fn window_dates_are_the_thirty_before() {
        let w: Vec<NaiveDate> = window_dates(d("2025-03-01")).collect();
        assert_eq!(w.len(), 30);
        assert_eq!(w[0], d("2025-01-30"));
        assert_eq!(w[29], d("2025-02-28"));
        let dep: Vec<NaiveDate> = dependent_dates(d("2025-02-28")).collect();
        assert_eq!((dep[0], dep[30]), (d("2025-02-28"), d("2025-03-30")));
    }
}
