//! The differential dataflow behind the address history: one collection of per-address window
//! aggregates over calendar days, and the run that reads each requested date's rows from it
//! (see the parent module for the design).

use super::flows::{counterparties, Dir, Meet, PairDays, PairInput, COUNTS};
use super::{batch, window_dates, AlertSource, Day, DayAlerts, Keep, HISTORY_DAYS, SHORT_DAYS};
use crate::contract::USD_SCALE;
use crate::features::HISTORY_FEATURES;
use crate::labels::LabelMap;
use anyhow::{anyhow, Result};
use arrow::record_batch::RecordBatch;
use chrono::{Datelike, NaiveDate};
use differential_dataflow::difference::{Abelian, IsZero, Monoid, Semigroup};
use differential_dataflow::input::{Input, InputSession};
use differential_dataflow::AsCollection;
use rustc_hash::{FxHashMap, FxHashSet as HashSet};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use timely::dataflow::operators::vec::Map;

/// A 128-bit integer kept as two 64-bit halves: it aligns to 8 bytes, where an `i128` aligns
/// to 16 and would pad every difference of the arrangement. Ordered like the `i128`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(super) struct Wide {
    hi: i64,
    lo: u64,
}

impl Wide {
    pub(super) fn new(v: i128) -> Self {
        Wide {
            hi: (v >> 64) as i64,
            lo: v as u64,
        }
    }

    pub(super) fn get(self) -> i128 {
        ((self.hi as i128) << 64) | self.lo as i128
    }
}

/// The aggregates of some alerts of one address, used as the differences of the window
/// collection, so that consolidating a key's updates sums them (exactly: integers only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(super) struct Agg {
    /// Alerts.
    alerts: i32,
    /// Distinct dates with alerts.
    days: i32,
    /// Summed `volume_usd`, in 10⁻¹⁸ USD.
    volume: Wide,
}

impl Agg {
    /// A count, distinct dates and a volume in 10⁻¹⁸ USD.
    pub(super) fn new(count: i32, days: i32, volume: i128) -> Self {
        Agg {
            alerts: count,
            days,
            volume: Wide::new(volume),
        }
    }

    /// An aggregate holding an address key in its volume's bits ([`Agg::as_key`]).
    pub(super) fn key(k: u128) -> Self {
        Agg::new(0, 0, k as i128)
    }

    /// The address key [`Agg::key`] holds.
    pub(super) fn as_key(&self) -> u128 {
        self.volume.get() as u128
    }

    /// The count (alerts, or counterparties of flows).
    #[cfg(test)]
    pub(super) fn count(&self) -> i32 {
        self.alerts
    }

    /// The distinct dates.
    #[cfg(test)]
    pub(super) fn days(&self) -> i32 {
        self.days
    }

    /// The volume, in 10⁻¹⁸ USD.
    #[cfg(test)]
    pub(super) fn volume(&self) -> i128 {
        self.volume.get()
    }

    /// Alerts, distinct dates and the volume's halves.
    pub(super) fn parts(&self) -> (i32, i32, i64, u64) {
        (self.alerts, self.days, self.volume.hi, self.volume.lo)
    }

    /// The inverse of [`Agg::parts`].
    pub(super) fn from_parts(alerts: i32, days: i32, hi: i64, lo: u64) -> Self {
        Agg {
            alerts,
            days,
            volume: Wide { hi, lo },
        }
    }
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

/// What a record of an address stands for: its aggregates over one window, of one kind, or
/// the day it needs a row for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(super) enum Slot {
    /// Its alerts of the last [`SHORT_DAYS`] dates.
    Short,
    /// Its alerts of the last [`HISTORY_DAYS`] dates.
    Long,
    /// What it sent, over the last [`SHORT_DAYS`] dates ([`super::flows::DayFlows::out`]).
    OutShort,
    /// What it sent, over the last [`HISTORY_DAYS`] dates.
    OutLong,
    /// What it received, over the last [`SHORT_DAYS`] dates ([`super::flows::DayFlows::inn`]).
    InShort,
    /// What it received, over the last [`HISTORY_DAYS`] dates.
    InLong,
    /// One of its counts of distinct counterparties (the aggregate's count), by its place in
    /// [`super::flows::COUNTS`].
    Met(u8),
    /// It is alerted on this (requested) day, so it needs a row for it.
    Alerted(u32),
}

impl Slot {
    /// The six windows: alerts, flows out and flows in, each short then long.
    const WINDOWS: [Slot; 6] = [
        Slot::Short,
        Slot::Long,
        Slot::OutShort,
        Slot::OutLong,
        Slot::InShort,
        Slot::InLong,
    ];

    /// The window's length in dates and its place in [`Slot::WINDOWS`] (`None` otherwise).
    fn window(self) -> Option<(u32, usize)> {
        let i = Slot::WINDOWS.iter().position(|&w| w == self)?;
        let len = if i % 2 == 0 { SHORT_DAYS } else { HISTORY_DAYS };
        Some((len as u32, i))
    }
}

/// The number of history features the dataflow counts: [`HISTORY_FEATURES`] but the window
/// shapes ([`crate::features::WINDOW_SHAPE_FEATURES`], `super::shapes`).
const WIDTH: usize = 21;
const _: () =
    assert!(HISTORY_FEATURES.len() == WIDTH + crate::features::WINDOW_SHAPE_FEATURES.len());

/// The per-address features of one day, as `f64` bits so the type is `Ord`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub(super) struct Stats([u64; WIDTH]);

impl Stats {
    /// The features of the windows' aggregates ([`Slot::WINDOWS`] order, absent windows are
    /// zero); the flow features are NaN unless `flows` were fed.
    pub(super) fn of(w: &[Agg; 6], counts: &[i32; COUNTS], flows: bool) -> Self {
        let usd = |a: &Agg| a.volume.get() as f64 / 10f64.powi(USD_SCALE.into());
        let n = |v: i32| v.max(0) as f64;
        let [short, long, out_s, out_l, in_s, in_l] = w;
        let mut v = [
            n(short.alerts),
            usd(short),
            n(long.alerts),
            usd(long),
            n(long.days),
            usd(out_s),
            usd(in_s),
            n(out_s.alerts),
            n(in_s.alerts),
            n(in_s.days),
            usd(out_l),
            usd(in_l),
            n(out_l.alerts),
            n(in_l.alerts),
            n(in_l.days),
            n(out_l.days),
            n(counts[0]),
            n(counts[1]),
            n(counts[2]),
            n(counts[3]),
            n(counts[4]),
        ];
        if !flows {
            v[crate::features::ALERT_HISTORY_FEATURES.len()..].fill(f64::NAN);
        }
        Stats(v.map(f64::to_bits))
    }

    /// The feature values, in [`HISTORY_FEATURES`] order (up to the window shapes).
    pub(super) fn values(&self) -> [f64; WIDTH] {
        self.0.map(f64::from_bits)
    }
}

/// The key of an address in the collections: the first 128 bits of its sha256, so that the
/// window state holds small fixed-size keys, the same in every process (the strings stay
/// outside the dataflow, with the dates that need them).
pub(super) fn key(address: &str) -> u128 {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(address.as_bytes());
    u128::from_le_bytes(h[..16].try_into().expect("16 bytes"))
}

/// The differential time of a date: its day number (32 bits keep the arrangement small).
pub(super) fn day(d: NaiveDate) -> u32 {
    u32::try_from(d.num_days_from_ce()).expect("a date after year 1")
}

/// A date's distinct alerted addresses, ascending, with their keys.
pub(super) type Names = Vec<(String, u128)>;

/// A date's alerts (or flows) aggregated per address: key → one date's [`Agg`], ascending by key.
pub(super) type DayAggs = Rc<Vec<(u128, Agg)>>;

/// [`aggregate`] without the `(address, key)` pairs: all a date whose rows are not wanted
/// feeds the windows (no address copied, none sorted).
pub fn aggregate_keys<S>(alerts: impl IntoIterator<Item = (S, i128)>) -> Day
where
    S: AsRef<str> + std::hash::Hash + Eq,
{
    let mut aggs: Vec<(u128, Agg)> = (per_address(alerts).into_iter())
        .map(|(a, agg)| (key(a.as_ref()), agg))
        .collect();
    aggs.sort_unstable_by_key(|r| r.0);
    Day {
        aggs,
        ..Day::default()
    }
}

/// A date's alerts summed per address.
fn per_address<S>(alerts: impl IntoIterator<Item = (S, i128)>) -> FxHashMap<S, Agg>
where
    S: AsRef<str> + std::hash::Hash + Eq,
{
    let alerts = alerts.into_iter();
    let mut per: FxHashMap<S, Agg> =
        FxHashMap::with_capacity_and_hasher(alerts.size_hint().0, Default::default());
    for (a, v) in alerts {
        let agg = per.entry(a).or_insert(Agg {
            days: 1,
            ..Agg::default()
        });
        agg.plus_equals(&Agg {
            alerts: 1,
            days: 0,
            volume: Wide::new(v),
        });
    }
    per
}

/// Aggregates a date's alerts per address, with its distinct `(address, key)` pairs.
pub fn aggregate<S>(alerts: impl IntoIterator<Item = (S, i128)>) -> Day
where
    S: AsRef<str> + std::hash::Hash + Eq,
{
    // Ascending by address, compared by their first eight bytes first: most comparisons then
    // read no string.
    let per: Vec<(S, Agg)> = per_address(alerts).into_iter().collect();
    let mut order: Vec<(u64, usize)> = per
        .iter()
        .enumerate()
        .map(|(i, (a, _))| (prefix(a.as_ref()), i))
        .collect();
    order.sort_unstable_by(|x, y| {
        let name = |i: usize| per[i].0.as_ref().as_bytes();
        x.0.cmp(&y.0).then_with(|| name(x.1).cmp(name(y.1)))
    });
    let names: Names = order
        .iter()
        .map(|&(_, i)| {
            let a = per[i].0.as_ref();
            (a.to_string(), key(a))
        })
        .collect();
    let mut aggs: Vec<(u128, Agg)> = (names.iter().zip(&order))
        .map(|((_, k), &(_, i))| (*k, per[i].1))
        .collect();
    aggs.sort_unstable_by_key(|r| r.0);
    Day {
        aggs,
        names,
        ..Day::default()
    }
}

/// The first eight bytes of `name`, zero-padded, as a number that orders as the bytes do
/// (ties: names that share those bytes, or one of which extends the other with zeros).
fn prefix(name: &str) -> u64 {
    let mut b = [0u8; 8];
    let n = name.len().min(8);
    b[..n].copy_from_slice(&name.as_bytes()[..n]);
    u64::from_be_bytes(b)
}

/// The rows the reduces made: day → its (key, stats) rows, one per alerted address.
pub(super) type Gathered = BTreeMap<u32, Vec<(u128, Stats)>>;

/// One finished date: its rows, or why it has none.
pub(super) type Finished = (NaiveDate, Result<RecordBatch, String>);

/// Computes the history rows of `dates` from `source`, feeding each needed input date (the
/// requested dates and the 30 before each) in date order, one epoch per date, on `workers`
/// timely workers. `sink` receives each requested date once, in ascending order, as soon as
/// its epoch is complete: its rows (address ascending), or the error that prevents them (the
/// date's batch is missing, or an alerts file of its window cannot be read). Memory holds one
/// record per address and window of the live windows and the dates in flight, never the range.
/// The flow features are NaN: [`compute_with`] computes them.
pub fn compute(
    source: AlertSource,
    dates: &[NaiveDate],
    workers: usize,
    sink: &mut dyn FnMut(NaiveDate, Result<RecordBatch, String>) -> Result<()>,
) -> Result<()> {
    compute_with(source, dates, workers, true, false, sink)
}

/// [`compute`]; `requested_first` lets a short run read its requested dates before the
/// others (to keep only their addresses' alerts), which a run whose dates arrive one by one
/// does not want: the first date's rows would wait for the last date. With `flows`, the
/// source's days carry their money flows ([`Day::flows`]) and the rows their flow features.
pub fn compute_with(
    source: AlertSource,
    dates: &[NaiveDate],
    workers: usize,
    requested_first: bool,
    flows: bool,
    sink: &mut dyn FnMut(NaiveDate, Result<RecordBatch, String>) -> Result<()>,
) -> Result<()> {
    let wanted: BTreeSet<NaiveDate> = dates.iter().copied().collect();
    let feed: Vec<NaiveDate> = wanted
        .iter()
        .flat_map(|&d| window_dates(d).chain([d]))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    // A short run (a few requested dates, each with a month of history) needs the windows of
    // its dates' alerted addresses only: those are read first, and the dates fed keep only
    // their alerts. In a backfill most dates fed are requested too, so all are kept. The
    // requested dates read first are fed as read, not read again.
    let (keep, read_first) = if requested_first && feed.len() >= 4 * wanted.len() {
        alerted(&source, &wanted)
    } else {
        (Keep::All, BTreeMap::new())
    };
    let read_first = Arc::new(Mutex::new(read_first));
    let wanted = Arc::new(wanted);
    let feed = Arc::new(feed);
    // Dates that fail, with the error: unreadable input dates (true: they also count as no
    // alerts in the windows that hold them, with a warning) and requested dates without a batch.
    let failures: Arc<Mutex<BTreeMap<NaiveDate, (bool, String)>>> = Arc::default();
    // The alerted addresses of each requested date in flight.
    let names: Arc<Mutex<HashMap<NaiveDate, Names>>> = Arc::default();
    // The rows the workers' reduces make, by day: out of the dataflow, so that its output
    // trace holds a day number per row, not the row.
    let rows: Arc<Mutex<Gathered>> = Arc::default();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Finished>(16);
    let tx = Mutex::new(tx);
    let guards = timely::execute(timely::Config::process(workers.max(1)), move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let tx = tx.lock().expect("sender").clone();
        let rows = rows.clone();
        let (mut records, mut pairs, probe) = worker.dataflow::<u32, _, _>(|scope| {
            let (input, records) = scope.new_collection::<(u128, Slot), Agg>();
            // An address and a counterparty, with the days they met in each window, turned
            // into each address's counts of distinct counterparties.
            let (pair_input, pairs) = scope.new_collection::<Meet, PairDays>();
            let counts = pairs
                .reduce(|_address, met: &[(&(u64, Dir), PairDays)], out: &mut Vec<(u8, isize)>| {
                    let counts = counterparties(met);
                    let nonzero = counts.iter().enumerate().filter(|c| *c.1 > 0);
                    out.extend(nonzero.map(|(i, &n)| (i as u8, n as isize)));
                })
                .map(|(address, i)| (address, Slot::Met(i)))
                .inner
                .map(|(d, t, r)| (d, t, Agg::new(r as i32, 0, 0)))
                .as_collection();
            let rows = rows.clone();
            let (probe, _) = records
                .concat(counts)
                .reduce(move |key, vals: &[(&Slot, Agg)], out: &mut Vec<(u32, isize)>| {
                    // The marks sort after the aggregates. A mark is live on its own day
                    // only (every update is at a requested day), so the reduce meets it once:
                    // the row is kept then, and the output is just the day.
                    let mut windows = [Agg::default(); 6];
                    let mut counts = [0; COUNTS];
                    for (slot, agg) in vals {
                        match (slot, slot.window()) {
                            (Slot::Alerted(d), _) => {
                                let stats = Stats::of(&windows, &counts, flows);
                                let mut rows = rows.lock().expect("rows");
                                rows.entry(*d).or_default().push((*key, stats));
                                out.push((*d, 1));
                            }
                            (Slot::Met(i), _) => counts[usize::from(*i)] = agg.alerts,
                            (_, Some((_, i))) => windows[i] = *agg,
                            (_, None) => {}
                        }
                    }
                })
                .probe();
            (input, PairInput::new(pair_input), probe)
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
                let got = rows.lock().expect("rows").remove(&day(d)).unwrap_or_default();
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
        // A reader thread reads them ahead, in order, while the worker computes.
        let mine: Vec<NaiveDate> = feed.iter().skip(index).step_by(peers).copied().collect();
        let (ahead, read) = std::sync::mpsc::sync_channel::<Result<DayAlerts>>(2);
        let (source, keep, dates) = (source.clone(), keep.clone(), mine.clone());
        let read_first = read_first.clone();
        std::thread::spawn(move || {
            for d in dates {
                let first = read_first.lock().expect("read first").remove(&d);
                let day = first.map_or_else(|| source(d, &keep), |day| Ok(Some(day)));
                if ahead.send(day).is_err() {
                    return;
                }
            }
        });
        let horizon = wanted.iter().next_back().map_or(0, |&d| day(d));
        // The collection is only read at requested days, so each update is moved to the first
        // requested day at or after its own: the collection at every requested day is the
        // same, and the reduce works once per requested day instead of once per day.
        let requested: BTreeSet<u32> = wanted.iter().map(|&d| day(d)).collect();
        let seen_at = |u: u32| requested.range(u..).next().copied().unwrap_or(u);
        // Retractions not yet due, by day: (window, the aggregates and the meetings of the
        // date that leaves it).
        let mut exits: BTreeMap<u32, Vec<(Slot, DayAggs, DayMeets)>> = BTreeMap::new();
        let mut later = Later::default();
        for (i, &d) in mine.iter().enumerate() {
            // At most one of this worker's dates in flight.
            if i > 0 {
                while probe.less_equal(&day(mine[i - 1])) {
                    worker.step_or_park(Some(crate::engine::IDLE));
                    flush(&probe, false);
                }
            }
            let t = day(d);
            later.feed_through(&mut records, t);
            records.advance_to(t);
            let alerts = read
                .recv()
                .unwrap_or_else(|_| Err(anyhow!("the history reader of {d} stopped")));
            match alerts {
                Ok(Some(Day {
                    aggs,
                    flows: day_flows,
                    names: addrs,
                })) => {
                    let kinds = [aggs, day_flows.out, day_flows.inn].map(Rc::new);
                    let met: DayMeets = Rc::new(day_flows.meets);
                    for slot in Slot::WINDOWS {
                        let (len, i) = slot.window().expect("a window");
                        let aggs: &DayAggs = &kinds[i / 2];
                        // The meetings enter both windows with the flows out, once.
                        let met = if i / 2 == 1 { met.clone() } else { DayMeets::default() };
                        // Updates after the last requested date are never read: skipped, so
                        // that closing the input leaves no month of retractions to process.
                        // An entry and its exit moved to the same requested day cancel: neither
                        // is fed (on a one-date run, most of the short window's).
                        let enters = seen_at(t + 1);
                        let leaves = (t + 1 + len <= horizon).then(|| seen_at(t + 1 + len));
                        let cancels = leaves == Some(enters);
                        if t < horizon {
                            if !cancels {
                                for &(k, agg) in aggs.iter() {
                                    later.update(&mut records, t, (k, slot), enters, agg);
                                }
                            }
                            if slot == Slot::OutShort {
                                pairs.update(&met, enters, PairDays::new(1, 1));
                            }
                        }
                        if leaves.is_some() && !(aggs.is_empty() && met.is_empty()) {
                            let aggs = if cancels { DayAggs::default() } else { aggs.clone() };
                            exits.entry(t + 1 + len).or_default().push((slot, aggs, met));
                        }
                    }
                    if wanted.contains(&d) {
                        let mark = (Slot::Alerted(t), Agg { alerts: 1, ..Agg::default() });
                        for &(_, k) in &addrs {
                            records.update_at((k, mark.0), t, mark.1);
                            if t < horizon {
                                records.update_at((k, mark.0), seen_at(t + 1), -mark.1);
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
                for (slot, aggs, met) in entry.remove() {
                    for &(k, agg) in aggs.iter() {
                        records.update_at((k, slot), seen_at(at), -agg);
                    }
                    let left = match slot {
                        Slot::OutShort => PairDays::new(-1, 0),
                        _ => PairDays::new(0, -1),
                    };
                    pairs.update(&met, seen_at(at), left);
                }
            }
            records.advance_to(t + 1);
            records.flush();
            pairs.advance_to(t + 1);
        }
        later.feed_through(&mut records, u32::MAX);
        records.close();
        pairs.close();
        while worker.step_or_park(Some(crate::engine::IDLE)) {
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

/// Window entries due at a day later than the next, summed per record until the input reaches
/// that day: on a run of one date every date of its month enters at that date, so each
/// address's month is fed to the dataflow as one update per window instead of one per date.
/// The sums are exact (integers), so the collection is the same.
#[derive(Default)]
struct Later(BTreeMap<u32, FxHashMap<(u128, Slot), Agg>>);

impl Later {
    /// `record` changes by `agg` at day `at`, while the input is at day `now`: fed now if `at`
    /// is the next day, else summed.
    fn update(
        &mut self,
        input: &mut InputSession<u32, (u128, Slot), Agg>,
        now: u32,
        record: (u128, Slot),
        at: u32,
        agg: Agg,
    ) {
        if at <= now + 1 {
            input.update_at(record, at, agg);
            return;
        }
        let sums = self.0.entry(at).or_default();
        sums.entry(record)
            .and_modify(|sum| sum.plus_equals(&agg))
            .or_insert(agg);
    }

    /// Feeds the sums due at day `day` or before (call before the input advances past them).
    fn feed_through(&mut self, input: &mut InputSession<u32, (u128, Slot), Agg>, day: u32) {
        while let Some(entry) = self.0.first_entry().filter(|e| *e.key() <= day) {
            let at = *entry.key();
            let mut sums: Vec<_> = entry.remove().into_iter().collect();
            // In record order, as the dates' own updates came.
            sums.sort_unstable_by_key(|r| r.0);
            for (record, agg) in sums {
                input.update_at(record, at, agg);
            }
        }
    }
}

/// A date's meetings of an address with a counterparty ([`super::flows::DayFlows::meets`]).
pub(super) type DayMeets = Rc<Vec<Meet>>;

/// The addresses alerted on `dates`, and the dates as read (a date that cannot be read adds
/// none and is read again in the run, which reports it).
fn alerted(source: &AlertSource, dates: &BTreeSet<NaiveDate>) -> (Keep, BTreeMap<NaiveDate, Day>) {
    let (mut addresses, mut keys) = (LabelMap::default(), HashSet::default());
    let mut read = BTreeMap::new();
    for &d in dates {
        if let Ok(Some(day)) = source(d, &Keep::All) {
            for (a, k) in &day.names {
                addresses.insert(a, ());
                keys.insert(*k);
            }
            read.insert(d, day);
        }
    }
    let keep = Keep::Only {
        addresses: Arc::new(addresses),
        keys: Arc::new(keys),
        dates: Arc::new(dates.clone()),
    };
    // Their flows feed the windows of the later dates: only the kept addresses' are needed.
    for day in read.values_mut() {
        day.flows = std::mem::take(&mut day.flows).filter(&keep);
    }
    (keep, read)
}

/// A date's rows: each alerted address (ascending) with the stats the dataflow gave its key
/// (one per key: the reduce meets a key's mark once).
pub(super) fn rows_of(addrs: Names, mut stats: Vec<(u128, Stats)>) -> Result<RecordBatch, String> {
    stats.sort_unstable_by_key(|s| s.0);
    if let Some(w) = stats.windows(2).find(|w| w[0].0 == w[1].0) {
        let name = addrs
            .iter()
            .find(|a| a.1 == w[0].0)
            .map_or("?", |a| a.0.as_str());
        return Err(format!("history features: two rows for address {name}"));
    }
    // The addresses by key, joined with the keys' stats in one merge.
    let mut by_key: Vec<(u128, usize)> = addrs.iter().enumerate().map(|(i, a)| (a.1, i)).collect();
    by_key.sort_unstable();
    let mut found = vec![usize::MAX; addrs.len()];
    let mut at = 0;
    for (k, i) in by_key {
        while stats.get(at).is_some_and(|s| s.0 < k) {
            at += 1;
        }
        if stats.get(at).is_some_and(|s| s.0 == k) {
            found[i] = at;
        }
    }
    if let Some(i) = found.iter().position(|&f| f == usize::MAX) {
        return Err(format!(
            "history features: no row for address {}",
            addrs[i].0
        ));
    }
    let rows = addrs
        .into_iter()
        .zip(found)
        .map(|((a, _), f)| (a, stats[f].1));
    batch(rows).map_err(|e| format!("{e:#}"))
}
