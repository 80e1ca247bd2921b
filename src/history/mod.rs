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
use crate::contract::{check_dates, column, required, to_str, to_usd_units};
use crate::features::HISTORY_FEATURES;
use crate::io::ParquetSource;
use anyhow::{anyhow, bail, Result};
use arrow::array::{Array, ArrayRef, Float64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use chrono::{Days, NaiveDate};
use rustc_hash::FxHashSet as HashSet;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod dataflow;
mod flows;
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
        addresses: Arc<HashSet<String>>,
        /// Their keys.
        keys: Arc<HashSet<u128>>,
        /// The requested dates.
        dates: Arc<BTreeSet<NaiveDate>>,
    },
}

impl Keep {
    /// Whether the alerts of `address` are kept.
    pub fn keeps(&self, address: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only { addresses, .. } => addresses.contains(address),
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
    let day = read_file(&path, date, keep)?;
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
/// and aggregates them ([`aggregate`]: the addresses are copied once each, not once per alert).
fn read_file(path: &Path, date: NaiveDate, keep: &Keep) -> Result<Day> {
    let file = path.display().to_string();
    let b = ParquetSource::open(path)?.read_all(&["address", "volume_usd", "processing_date"])?;
    if b.num_columns() == 0 {
        return Ok(Day::default());
    }
    if let Some(c) = column(&b, "processing_date") {
        check_dates(c, date, &file, "processing_date")?;
    }
    let addr = to_str(required(&b, &file, "address")?, &file, "address")?;
    let vol = to_usd_units(required(&b, &file, "volume_usd")?, &file, "volume_usd")?;
    if let Some(i) = (0..b.num_rows()).find(|&i| addr.is_null(i)) {
        bail!("{file}: column `address` is null in row {i}");
    }
    let kept = (0..b.num_rows()).filter(|&i| keep.keeps(addr.value(i)));
    let alerts = kept.map(|i| {
        let v = if vol.is_null(i) {
            0
        } else {
            vol.value(i).max(0)
        };
        (addr.value(i), v)
    });
    Ok(aggregate(alerts))
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
    let (c, s, a) = (cfg.clone(), summaries.clone(), arrived.clone());
    let source: AlertSource = Arc::new(move |d, keep| {
        if let Some(a) = &a {
            a(d);
        }
        let mut day = read_alerts(&c, &s, d, keep)?;
        if let Some(day) = day.as_mut().filter(|_| flows && Some(d) < last) {
            day.flows = flows::read(&c.input_dir(d), &flow_summaries, d, keep)?;
        }
        Ok(day)
    });
    compute_with(source, dates, cfg.workers, arrived.is_none(), flows, sink)?;
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
mod tests {
    use super::dataflow::*;
    use super::*;
    use arrow::array::AsArray;
    use std::sync::Mutex;

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
        Arc::new(move |date, keep: &Keep| {
            Ok(by_date.get(&date).map(|alerts| {
                let kept = alerts.iter().filter(|(a, _)| keep.keeps(a));
                aggregate(kept.map(|(a, v)| (a.as_str(), *v)))
            }))
        })
    }

    fn run(src: AlertSource, dates: &[NaiveDate], workers: usize) -> Rows {
        run_with(src, dates, workers, true)
    }

    fn run_with(src: AlertSource, dates: &[NaiveDate], workers: usize, first: bool) -> Rows {
        let mut out = Rows::new();
        compute_with(src, dates, workers, first, false, &mut |date, r| {
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
        let src: AlertSource = Arc::new(move |date, _: &Keep| {
            if date == bad {
                bail!("alerts.parquet: corrupt")
            }
            Ok(Some(aggregate(vec![("a".to_string(), units(1.0))])))
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
    fn a_short_run_reading_only_its_addresses_gives_the_rows_of_a_long_one() {
        let base = d("2025-06-30");
        let m = month(7);
        let dates: Vec<NaiveDate> = (0..40).map(|k| base - Days::new(k)).collect();
        let long = run(src_of(base, &m), &dates, 1);
        // One and two requested dates: their windows are fed with their addresses' alerts only.
        for short in [vec![base], vec![base - Days::new(20), base]] {
            let rows = run(src_of(base, &m), &short, 2);
            for d in &short {
                assert_eq!(rows[d], long[d], "{d}");
            }
        }
        let read: Arc<Mutex<Vec<usize>>> = Arc::default();
        let seen = read.clone();
        let inner = src_of(base, &m);
        let counting: AlertSource = Arc::new(move |date, keep: &Keep| {
            let r = inner(date, keep)?;
            let alerts = r
                .as_ref()
                .map_or(0, |d| d.aggs.iter().map(|a| a.1.parts().0).sum());
            seen.lock().unwrap().push(alerts as usize);
            Ok(r)
        });
        let _ = run(counting, &[base], 1);
        let all: usize = m.iter().filter(|r| r.0 <= 30).count();
        let kept: usize = read.lock().unwrap().iter().skip(1).sum();
        assert!(kept < all, "the history dates kept {kept} of {all} alerts");
    }

    #[test]
    fn dates_arriving_one_by_one_are_read_in_date_order_with_the_same_rows() {
        let base = d("2025-06-30");
        let m = month(7);
        let short = [base - Days::new(20), base - Days::new(3), base];
        let expected = run(src_of(base, &m), &short, 1);
        let read: Arc<Mutex<Vec<NaiveDate>>> = Arc::default();
        let seen = read.clone();
        let inner = src_of(base, &m);
        let logging: AlertSource = Arc::new(move |date, keep: &Keep| {
            seen.lock().unwrap().push(date);
            inner(date, keep)
        });
        assert_eq!(run_with(logging, &short, 1, false), expected);
        let read = read.lock().unwrap().clone();
        let mut sorted = read.clone();
        sorted.sort();
        assert_eq!(
            read, sorted,
            "a requested date was read before earlier ones"
        );
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
