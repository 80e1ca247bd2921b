//! Shapes over the week before a date: the window graph of the distinct money-flow pairs of
//! the [`SHORT_DAYS`] dates before D (D−7..D−1), and in it, for each alerted address of D, the
//! shape features of the day's graph (fans, scatter-gather, shared counterparties, 2-, 3- and
//! 4-cycles; [`crate::features::WINDOW_SHAPE_FEATURES`]). A pattern whose transfers fall on
//! several days has its whole shape there, where one day's graph holds a fragment.
//!
//! The pairs come from the flow history's reads ([`super::flows`], a summary or the file) as
//! the dates go by; a date's are kept only while a later requested date's window holds it.

use super::dataflow::key;
use super::SHORT_DAYS;
use crate::features::WINDOW_SHAPE_FEATURES;
use anyhow::{anyhow, Result};
use arrow::array::{ArrayRef, AsArray, Float64Array};
use arrow::record_batch::RecordBatch;
use chrono::{Days, NaiveDate};
use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// One date's distinct `(sender, receiver)` key pairs.
type Pairs = Arc<Vec<(u128, u128)>>;

/// The pairs of the dates some requested date's window holds, as they are read.
#[derive(Default)]
pub(super) struct WindowPairs {
    /// The dates whose pairs a requested date needs.
    needed: BTreeSet<NaiveDate>,
    /// Their pairs.
    days: Mutex<BTreeMap<NaiveDate, Pairs>>,
}

/// The dates of `date`'s window graph: D−7..D−1.
fn window(date: NaiveDate) -> impl Iterator<Item = NaiveDate> {
    (1..=SHORT_DAYS).map(move |k| date - Days::new(k))
}

impl WindowPairs {
    /// For the windows of the `requested` dates.
    pub(super) fn new(requested: &[NaiveDate]) -> Self {
        WindowPairs {
            needed: requested.iter().flat_map(|&d| window(d)).collect(),
            days: Mutex::default(),
        }
    }

    /// Keeps `date`'s pairs if a requested date's window holds it.
    pub(super) fn keep(&self, date: NaiveDate, pairs: &[(u128, u128)]) {
        if self.needed.contains(&date) {
            let mut days = self.days.lock().expect("window pairs");
            days.insert(date, Arc::new(pairs.to_vec()));
        }
    }

    /// `date`'s history table with its window-shape columns counted (they are NaN as the
    /// dataflow gives them); then forgets the dates no later date's window holds. Called in
    /// date order, once every date of the window has been read.
    pub(super) fn fill(&self, date: NaiveDate, table: RecordBatch) -> Result<RecordBatch> {
        let started = std::time::Instant::now();
        let days: Vec<Pairs> = {
            let mut all = self.days.lock().expect("window pairs");
            let got = window(date).filter_map(|d| all.get(&d).cloned()).collect();
            all.retain(|&d, _| d > date - Days::new(SHORT_DAYS));
            got
        };
        // Number the window's addresses in the order met (dates ascending, pairs ascending).
        let mut ids: FxHashMap<u128, u32> = FxHashMap::default();
        let mut number = |k: u128| {
            let n = ids.len() as u32;
            *ids.entry(k).or_insert(n)
        };
        let mut edges: Vec<(u32, u32)> = Vec::new();
        for pairs in days.iter().rev() {
            for &(f, t) in pairs.iter() {
                edges.push((number(f), number(t)));
            }
        }
        edges.sort_unstable();
        edges.dedup();
        let addresses = table
            .column_by_name("address")
            .ok_or_else(|| anyhow!("internal: a history table without addresses"))?
            .as_string::<i32>();
        let nodes: Vec<u32> = addresses
            .iter()
            .map(|a| number(key(a.unwrap_or(""))))
            .collect();
        let rows = crate::features::shapes(ids.len(), &edges, &nodes);
        tracing::debug!(
            %date,
            addresses = ids.len(),
            pairs = edges.len(),
            alerted = nodes.len(),
            seconds = started.elapsed().as_secs_f64(),
            "window shapes counted"
        );
        let mut columns = table.columns().to_vec();
        for (j, name) in WINDOW_SHAPE_FEATURES.iter().enumerate() {
            let (at, _) = table
                .schema()
                .column_with_name(name)
                .ok_or_else(|| anyhow!("internal: the history table has no column {name}"))?;
            let values: Float64Array = rows.iter().map(|r| Some(r[j])).collect();
            columns[at] = Arc::new(values) as ArrayRef;
        }
        Ok(RecordBatch::try_new(table.schema(), columns)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringArray;
    use arrow::datatypes::{DataType, Field, Schema};

    fn d(s: &str) -> NaiveDate {
        crate::dates::parse_date(s).unwrap()
    }

    fn table(addresses: &[&str]) -> RecordBatch {
        let mut fields = vec![Field::new("address", DataType::Utf8, false)];
        let mut cols: Vec<ArrayRef> = vec![Arc::new(StringArray::from(addresses.to_vec()))];
        for n in WINDOW_SHAPE_FEATURES {
            fields.push(Field::new(*n, DataType::Float64, false));
            cols.push(Arc::new(Float64Array::from(vec![
                f64::NAN;
                addresses.len()
            ])));
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
    }

    fn value(t: &RecordBatch, name: &str, row: usize) -> f64 {
        t.column_by_name(name)
            .unwrap()
            .as_primitive::<arrow::datatypes::Float64Type>()
            .value(row)
    }

    /// A 3-cycle whose hops fall on three dates of the window is counted; one hop a date too
    /// early (D−8) is not; an address without flows gets zeros.
    #[test]
    fn a_cycle_across_dates_of_the_window_is_counted() {
        let (a, b, c) = (key("a"), key("b"), key("c"));
        let date = d("2025-10-10");
        let w = WindowPairs::new(&[date]);
        w.keep(d("2025-10-03"), &[(a, b)]);
        w.keep(d("2025-10-05"), &[(b, c)]);
        w.keep(d("2025-10-09"), &[(c, a), (a, b)]);
        w.keep(d("2025-10-02"), &[(c, b)]);
        let t = w.fill(date, table(&["a", "b", "z"])).unwrap();
        assert_eq!(value(&t, "hist_cycle3_7d", 0), 1.0);
        assert_eq!(value(&t, "hist_cycle3_7d", 1), 1.0);
        assert_eq!(value(&t, "hist_cycle2_7d", 1), 0.0, "c → b was on D−8");
        for n in WINDOW_SHAPE_FEATURES {
            assert_eq!(value(&t, n, 2), 0.0, "{n}");
        }
        let early = WindowPairs::new(&[date]);
        early.keep(d("2025-10-02"), &[(a, b)]);
        early.keep(d("2025-10-05"), &[(b, c)]);
        early.keep(d("2025-10-09"), &[(c, a)]);
        let t = early.fill(date, table(&["a"])).unwrap();
        assert_eq!(value(&t, "hist_cycle3_7d", 0), 0.0);
    }

    /// Only the dates a requested date's window holds are kept, and each is forgotten once no
    /// later requested date needs it.
    #[test]
    fn dates_are_kept_while_a_window_needs_them() {
        let w = WindowPairs::new(&[d("2025-10-10"), d("2025-10-12")]);
        for day in 1..=11 {
            w.keep(d(&format!("2025-10-{day:02}")), &[(1, 2)]);
        }
        let kept = |w: &WindowPairs| w.days.lock().unwrap().keys().copied().collect::<Vec<_>>();
        assert_eq!(kept(&w).first(), Some(&d("2025-10-03")));
        assert_eq!(kept(&w).len(), 9, "10-03..10-11, the union of both windows");
        w.fill(d("2025-10-10"), table(&[])).unwrap();
        assert_eq!(kept(&w).first(), Some(&d("2025-10-04")));
        w.fill(d("2025-10-12"), table(&[])).unwrap();
        assert_eq!(kept(&w).first(), Some(&d("2025-10-06")));
    }
}
