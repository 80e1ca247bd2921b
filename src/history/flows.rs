//! The money-flow side of the address history: one date's flows aggregated per address (USD
//! and distinct counterparties, sent and received), which the windows of the history collection
//! sum over the previous 7 and 30 dates (the `hist_out_*`, `hist_in_*` and `hist_flow_*`
//! features, [`crate::features::HISTORY_FEATURES`]); and the day's meetings of each address
//! with its counterparties ([`Meet`]), whose windows ([`PairDays`]) give the counts of distinct
//! and new counterparties (`hist_*cps*`, [`counterparties`]).
//!
//! A date's flows are read whole once: its aggregates are written as a summary named by the
//! content hash of its `money_flows.parquet` ([`super::summary`]), so the next run reads 30
//! small summaries instead of 30 days of flows.

use super::dataflow::{key, Agg};
use super::shapes::WindowPairs;
use super::summary::Summaries;
use super::Keep;
use crate::contract::{check_dates, column, required, to_str, to_usd_units};
use crate::io::ParquetSource;
use anyhow::{bail, Result};
use arrow::array::Array;
use chrono::NaiveDate;
use differential_dataflow::difference::{Abelian, IsZero, Monoid, Semigroup};
use differential_dataflow::input::InputSession;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// One date's flows per address key, each list ascending by key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DayFlows {
    /// Per sender: distinct receivers, 1 (a day it sent), USD sent.
    pub(super) out: Vec<(u128, Agg)>,
    /// Per address with any flow: distinct senders, 1 (a day it had flows), USD received.
    pub(super) inn: Vec<(u128, Agg)>,
    /// The distinct pairs `(sender, receiver)`, ascending (as read; [`DayFlows::filter`]
    /// turns them into [`DayFlows::meets`]).
    pub(super) pairs: Vec<(u128, u128)>,
    /// What the history is fed: each pair as the sender meeting its receiver out and the
    /// receiver meeting its sender in, for the kept addresses only.
    pub(super) meets: Vec<Meet>,
}

/// Which way the money went when an address met a counterparty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Dir {
    /// The address paid the counterparty.
    Out,
    /// The counterparty paid the address.
    In,
}

/// An address (its key) and a counterparty (64 bits of its key: enough to tell an address's
/// counterparties apart) with the direction: a record of the pair windows, keyed by address.
pub type Meet = (u128, (u64, Dir));

/// The dates on which a [`Meet`] happened, in the short and the long window: the differences
/// of the pair windows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PairDays {
    short: i32,
    long: i32,
}

impl PairDays {
    /// Dates in the short and in the long window.
    pub(super) fn new(short: i32, long: i32) -> Self {
        PairDays { short, long }
    }
}

impl IsZero for PairDays {
    fn is_zero(&self) -> bool {
        *self == PairDays::default()
    }
}

impl Semigroup for PairDays {
    fn plus_equals(&mut self, rhs: &Self) {
        self.short += rhs.short;
        self.long += rhs.long;
    }
}

impl Monoid for PairDays {
    fn zero() -> Self {
        PairDays::default()
    }
}

impl Abelian for PairDays {
    fn negate(&mut self) {
        *self = PairDays::new(-self.short, -self.long);
    }
}

/// The input of the pair windows, consolidating its updates per time before they enter the
/// dataflow: a run of one date moves a month of meetings to that date ([`super::compute_with`]
/// reads the windows only at requested dates), where most of them cancel or repeat, so the
/// dataflow sorts each distinct meeting once instead of once per date and window.
pub(super) struct PairInput {
    input: InputSession<u32, Meet, PairDays>,
    pending: BTreeMap<u32, FxHashMap<Meet, PairDays>>,
}

impl PairInput {
    /// Wraps the dataflow's input.
    pub(super) fn new(input: InputSession<u32, Meet, PairDays>) -> Self {
        Self {
            input,
            pending: BTreeMap::new(),
        }
    }

    /// Adds `days` to each of `met` at time `at` (not before the input's time).
    pub(super) fn update(&mut self, met: &[Meet], at: u32, days: PairDays) {
        if met.is_empty() {
            return;
        }
        let at_time = self.pending.entry(at).or_default();
        for m in met {
            at_time.entry(*m).or_default().plus_equals(&days);
        }
    }

    /// Moves the input to `time`, first handing it the updates of the times before.
    pub(super) fn advance_to(&mut self, time: u32) {
        while let Some(entry) = self.pending.first_entry().filter(|e| *e.key() < time) {
            let at = *entry.key();
            for (m, days) in entry.remove() {
                if !days.is_zero() {
                    self.input.update_at(m, at, days);
                }
            }
        }
        self.input.advance_to(time);
        self.input.flush();
    }

    /// Hands every update to the dataflow and closes the input.
    pub(super) fn close(mut self) {
        self.advance_to(u32::MAX);
        self.input.close();
    }
}

/// The number of counterparty counts: met in the short window; in the long one; in the short
/// one but on no earlier date of the long one (new); paid in the long one; paid by in the long
/// one (the last five of [`crate::features::HISTORY_FEATURES`]).
pub(super) const COUNTS: usize = 5;

/// An address's counterparty counts, in [`COUNTS`] order, from the dates it met each
/// counterparty each way ([`PairDays`]; `met` is ordered by counterparty, as a reduce gives it).
pub(super) fn counterparties(met: &[(&(u64, Dir), PairDays)]) -> [i32; COUNTS] {
    let mut counts = [0; COUNTS];
    for one in met.chunk_by(|a, b| a.0 .0 == b.0 .0) {
        let sum = |f: &dyn Fn(&Dir) -> bool| {
            one.iter()
                .filter(|m| f(&m.0 .1))
                .fold(PairDays::default(), |mut a, m| {
                    a.plus_equals(&m.1);
                    a
                })
        };
        let both = sum(&|_| true);
        let counted = [
            both.short > 0,
            both.long > 0,
            both.short > 0 && both.long == both.short,
            sum(&|d| *d == Dir::Out).long > 0,
            sum(&|d| *d == Dir::In).long > 0,
        ];
        for (c, yes) in counts.iter_mut().zip(counted) {
            *c += i32::from(yes);
        }
    }
    counts
}

impl DayFlows {
    /// Keeps the aggregates and meetings of the addresses `keep` keeps (the pairs as read
    /// become meetings).
    pub(super) fn filter(self, keep: &Keep) -> Self {
        let kept = |k: &u128| keep.keeps_key(k);
        let mut meets: Vec<Meet> = self.meets.into_iter().filter(|m| kept(&m.0)).collect();
        for &(f, t) in &self.pairs {
            if kept(&f) {
                meets.push((f, (t as u64, Dir::Out)));
            }
            if kept(&t) {
                meets.push((t, (f as u64, Dir::In)));
            }
        }
        Self {
            out: keep.filter(self.out),
            inn: keep.filter(self.inn),
            pairs: Vec::new(),
            meets,
        }
    }
}

/// Aggregates a date's flows `(from, to, USD in 10⁻¹⁸ units)` per address: a repeated pair is
/// one counterparty (its amounts add up), a flow from an address to itself is left out.
pub fn aggregate_flows<'a>(flows: impl IntoIterator<Item = (&'a str, &'a str, i128)>) -> DayFlows {
    let mut ids: FxHashMap<&str, u32> = FxHashMap::default();
    let mut names: Vec<&str> = Vec::new();
    let mut edges: Vec<(u32, u32)> = Vec::new();
    let mut sent: Vec<i128> = Vec::new();
    let mut received: Vec<i128> = Vec::new();
    for (f, t, usd) in flows {
        if f == t {
            continue;
        }
        let (f, t) = (
            intern(&mut ids, &mut names, f),
            intern(&mut ids, &mut names, t),
        );
        let n = names.len();
        sent.resize(n, 0);
        received.resize(n, 0);
        sent[f as usize] = sent[f as usize].wrapping_add(usd);
        received[t as usize] = received[t as usize].wrapping_add(usd);
        edges.push((f, t));
    }
    edges.sort_unstable();
    edges.dedup();
    let n = names.len();
    let (mut receivers, mut senders) = (vec![0i32; n], vec![0i32; n]);
    for &(f, t) in &edges {
        receivers[f as usize] += 1;
        senders[t as usize] += 1;
    }
    let keys: Vec<u128> = names.iter().map(|a| key(a)).collect();
    let mut pairs: Vec<(u128, u128)> = edges
        .iter()
        .map(|&(f, t)| (keys[f as usize], keys[t as usize]))
        .collect();
    pairs.sort_unstable();
    let mut out = Vec::new();
    let mut inn = Vec::with_capacity(n);
    for (i, &k) in keys.iter().enumerate() {
        if receivers[i] > 0 {
            out.push((k, Agg::new(receivers[i], 1, sent[i])));
        }
        inn.push((k, Agg::new(senders[i], 1, received[i])));
    }
    out.sort_unstable_by_key(|r| r.0);
    inn.sort_unstable_by_key(|r| r.0);
    DayFlows {
        out,
        inn,
        pairs,
        meets: Vec::new(),
    }
}

/// The number of `a` in `names`, adding it if new.
fn intern<'a>(ids: &mut FxHashMap<&'a str, u32>, names: &mut Vec<&'a str>, a: &'a str) -> u32 {
    *ids.entry(a).or_insert_with(|| {
        names.push(a);
        (names.len() - 1) as u32
    })
}

/// One date's flows, from its summary when one matches the content of its
/// `money_flows.parquet`, else from the file (writing the summary); empty without the file.
pub(super) fn read(
    dir: &Path,
    summaries: &Summaries,
    date: NaiveDate,
    keep: &Keep,
    window: &WindowPairs,
) -> Result<DayFlows> {
    let path = dir.join("money_flows.parquet");
    if !crate::io::present(&path)? {
        return Ok(DayFlows::default());
    }
    let hash = summaries.hash(&path)?;
    match summaries.read(date, &hash) {
        Ok(Some(mut lists)) if lists.len() == 3 => {
            let pairs = lists.pop().unwrap_or_default();
            let pairs = pairs.into_iter().map(|(f, to)| (f, to.as_key())).collect();
            let inn = lists.pop().unwrap_or_default();
            let out = lists.pop().unwrap_or_default();
            let day = DayFlows {
                out,
                inn,
                pairs,
                meets: Vec::new(),
            };
            window.keep(date, &day.pairs);
            return Ok(day.filter(keep));
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(%date, "{e:#}; reading the money flows instead"),
    }
    let day = read_file(&path, date)?;
    // A pair is kept as its sender and the receiver's key in the volume's 128 bits.
    let pairs: Vec<(u128, Agg)> = day.pairs.iter().map(|&(f, t)| (f, Agg::key(t))).collect();
    if let Err(e) = summaries.write(date, &hash, &[&day.out, &day.inn, &pairs]) {
        tracing::warn!(%date, "flow history summary not written: {e:#}");
    }
    window.keep(date, &day.pairs);
    Ok(day.filter(keep))
}

/// Reads `from_address`, `to_address` and `amount_usd_sum` (exactly, as 10⁻¹⁸ USD units; a
/// null or negative amount counts 0) of one date's `money_flows.parquet`, and aggregates them;
/// a flow with a null address is left out, as decode leaves it out.
fn read_file(path: &Path, date: NaiveDate) -> Result<DayFlows> {
    let file = path.display().to_string();
    let columns = [
        "from_address",
        "to_address",
        "amount_usd_sum",
        "processing_date",
    ];
    let b = ParquetSource::open(path)?.read_all(&columns)?;
    if b.num_columns() == 0 {
        return Ok(DayFlows::default());
    }
    if let Some(c) = column(&b, "processing_date") {
        check_dates(c, date, &file, "processing_date")?;
    }
    let from = to_str(required(&b, &file, "from_address")?, &file, "from_address")?;
    let to = to_str(required(&b, &file, "to_address")?, &file, "to_address")?;
    let usd = to_usd_units(
        required(&b, &file, "amount_usd_sum")?,
        &file,
        "amount_usd_sum",
    )?;
    if from.len() != to.len() || to.len() != usd.len() {
        bail!("{file}: columns of different lengths");
    }
    let flows = (0..b.num_rows())
        .filter(|&i| from.is_valid(i) && to.is_valid(i))
        .map(|i| {
            let u = if usd.is_valid(i) {
                usd.value(i).max(0)
            } else {
                0
            };
            (from.value(i), to.value(i), u)
        });
    Ok(aggregate_flows(flows))
}

#[cfg(test)]
mod tests {
    use super::super::{aggregate, compute_with, AlertSource, Day};
    use super::*;
    use crate::features::HISTORY_FEATURES;
    use arrow::array::AsArray;
    use arrow::datatypes::Float64Type;
    use chrono::Days;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    fn get(list: &[(u128, Agg)], a: &str) -> Option<(i32, i32, i128)> {
        list.iter()
            .find(|r| r.0 == key(a))
            .map(|r| (r.1.count(), r.1.days(), r.1.volume()))
    }

    #[test]
    fn counterparties_are_distinct_amounts_add_up_and_self_flows_are_left_out() {
        let day = aggregate_flows([
            ("a", "b", 5),
            ("a", "b", 7),
            ("a", "c", 1),
            ("c", "a", 2),
            ("b", "b", 100),
            ("d", "d", 3),
        ]);
        assert_eq!(get(&day.out, "a"), Some((2, 1, 13)));
        assert_eq!(get(&day.out, "c"), Some((1, 1, 2)));
        assert_eq!(
            get(&day.out, "b"),
            None,
            "b only receives (and pays itself)"
        );
        assert_eq!(get(&day.inn, "b"), Some((1, 1, 12)));
        assert_eq!(get(&day.inn, "a"), Some((1, 1, 2)));
        assert_eq!(get(&day.inn, "c"), Some((1, 1, 1)));
        assert_eq!(get(&day.inn, "d"), None, "a flow to itself is no flow");
        let mut pairs = [("a", "b"), ("a", "c"), ("c", "a")].map(|(f, t)| (key(f), key(t)));
        pairs.sort_unstable();
        assert_eq!(day.pairs, pairs);
        assert!(day.out.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(day.inn.windows(2).all(|w| w[0].0 < w[1].0));
    }

    /// Flows `(days before base, from, to, whole USD)` and the addresses alerted on `base`.
    fn source(base: NaiveDate, flows: &[(u64, &str, &str, i128)], alerted: &[&str]) -> AlertSource {
        let mut by_date: BTreeMap<NaiveDate, Vec<(String, String, i128)>> = BTreeMap::new();
        for &(k, f, t, u) in flows {
            let d = base - Days::new(k);
            let units = u * 10i128.pow(18);
            by_date
                .entry(d)
                .or_default()
                .push((f.into(), t.into(), units));
        }
        let alerted: Vec<String> = alerted.iter().map(|a| a.to_string()).collect();
        Arc::new(move |date, keep: &Keep| {
            let alerts = if date == base {
                alerted.clone()
            } else {
                Vec::new()
            };
            let mut day: Day = aggregate(alerts.iter().map(|a| (a.as_str(), 0)));
            if let Some(f) = by_date.get(&date) {
                let flows = f.iter().map(|(f, t, u)| (f.as_str(), t.as_str(), *u));
                day.flows = aggregate_flows(flows).filter(keep);
            }
            Ok(Some(day))
        })
    }

    type Rows = BTreeMap<String, BTreeMap<&'static str, f64>>;

    /// The features the dataflow counts: all but the window shapes (`super::shapes`).
    fn counted() -> &'static [&'static str] {
        let shapes = crate::features::WINDOW_SHAPE_FEATURES.len();
        &HISTORY_FEATURES[..HISTORY_FEATURES.len() - shapes]
    }

    /// The history rows of `base`, by address, as name → value (the dataflow's features).
    /// `first`: read the date first and keep only its addresses' flows.
    fn rows(src: AlertSource, base: NaiveDate, flows: bool, workers: usize, first: bool) -> Rows {
        let mut out = BTreeMap::new();
        compute_with(src, &[base], workers, first, flows, &mut |_, r| {
            let b = r.map_err(|e| anyhow::anyhow!(e))?;
            for i in 0..b.num_rows() {
                let values = counted().iter().map(|&n| {
                    let c = b.column_by_name(n).expect("a history column");
                    (n, c.as_primitive::<Float64Type>().value(i))
                });
                let a = b.column(0).as_string::<i32>().value(i).to_string();
                out.insert(a, values.collect());
            }
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn flow_windows_sum_the_dates_before_the_date() {
        let base = crate::dates::parse_date("2025-06-30").unwrap();
        let flows = [
            (0, "a", "z", 1000), // the day itself never counts
            (1, "a", "b", 10),
            (1, "a", "c", 5),
            (7, "a", "b", 3),
            (8, "b", "a", 2),
            (30, "a", "d", 1),
            (31, "a", "e", 100), // outside the long window
        ];
        let src = source(base, &flows, &["a", "b", "q"]);
        let got = rows(src.clone(), base, true, 1, true);
        let want_a = [
            ("hist_out_usd_7d", 18.0),
            ("hist_in_usd_7d", 0.0),
            ("hist_out_cp_days_7d", 3.0),
            ("hist_in_cp_days_7d", 0.0),
            ("hist_flow_days_7d", 2.0),
            ("hist_out_usd_30d", 19.0),
            ("hist_in_usd_30d", 2.0),
            ("hist_out_cp_days_30d", 4.0),
            ("hist_in_cp_days_30d", 1.0),
            ("hist_flow_days_30d", 4.0),
            ("hist_out_days_30d", 3.0),
            ("hist_cps_7d", 2.0),      // b, c
            ("hist_cps_30d", 3.0),     // b, c, d
            ("hist_new_cps_7d", 1.0),  // c (b paid a on D−8)
            ("hist_out_cps_30d", 3.0), // b, c, d
            ("hist_in_cps_30d", 1.0),  // b
        ];
        let want_b = [
            ("hist_out_usd_7d", 0.0),
            ("hist_in_usd_7d", 13.0),
            ("hist_in_cp_days_7d", 2.0),
            ("hist_flow_days_7d", 2.0),
            ("hist_out_usd_30d", 2.0),
            ("hist_out_cp_days_30d", 1.0),
            ("hist_in_usd_30d", 13.0),
            ("hist_in_cp_days_30d", 2.0),
            ("hist_flow_days_30d", 3.0),
            ("hist_out_days_30d", 1.0),
            ("hist_cps_7d", 1.0),
            ("hist_cps_30d", 1.0),
            ("hist_new_cps_7d", 0.0),
            ("hist_out_cps_30d", 1.0),
            ("hist_in_cps_30d", 1.0),
        ];
        for (a, want) in [("a", &want_a[..]), ("b", &want_b[..])] {
            for &(n, v) in want {
                assert_eq!(got[a][n], v, "{a} {n}");
            }
        }
        let flow_names = &counted()[crate::features::ALERT_HISTORY_FEATURES.len()..];
        assert!(
            flow_names.iter().all(|n| got["q"][n] == 0.0),
            "no flows, all 0"
        );
        assert_eq!(got["a"]["hist_alerts_30d"], 0.0);
        assert_eq!(
            rows(src.clone(), base, true, 2, true),
            got,
            "worker counts agree"
        );
        assert_eq!(
            rows(src.clone(), base, true, 1, false),
            got,
            "so do all addresses' flows"
        );
        // Two requested dates: the first, read whole before the others, keeps the flows of
        // the run's alerted addresses only, and the rows are the same.
        let two = |first: bool| {
            let mut out = Rows::new();
            let dates = [base - Days::new(1), base];
            compute_with(src.clone(), &dates, 1, first, true, &mut |d, r| {
                let b = r.map_err(|e| anyhow::anyhow!(e))?;
                let cps = b.column_by_name("hist_cps_30d").expect("a column");
                let a = b.column(0).as_string::<i32>();
                for i in 0..b.num_rows() {
                    let v = cps.as_primitive::<Float64Type>().value(i);
                    out.insert(format!("{d} {}", a.value(i)), BTreeMap::from([("cps", v)]));
                }
                Ok(())
            })
            .unwrap();
            out
        };
        let both = two(true);
        assert_eq!(both, two(false));
        assert_eq!(both[&format!("{base} a")]["cps"], 3.0);
        let without = rows(src, base, false, 1, true);
        for name in &counted()[crate::features::ALERT_HISTORY_FEATURES.len()..] {
            assert!(without["a"][name].is_nan(), "{name} is NaN unless computed");
        }
    }
}
