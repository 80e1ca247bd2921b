//! Features of the money flows of the alert's address on the day.

use super::{f64_col, get_f, Columns, Day};
use crate::address_table::{self, AHEAD};
use crate::contract::column;
use anyhow::{anyhow, bail, Result};
use arrow::array::{Array, AsArray, Int32Array};
use arrow::datatypes::Int32Type;
use arrow::record_batch::RecordBatch;

/// What the day's flows into ([`IN`]) or out of ([`OUT`]) one alerted address sum up to.
#[derive(Default, Clone, Copy)]
struct Side {
    usd: f64,
    n: f64,
    tx: f64,
}

/// The side of incoming flows, and the group of their counterparties (`from_node`).
const IN: usize = 0;
/// The side of outgoing flows, and the group of their counterparties (`to_node`).
const OUT: usize = 1;
/// The group of alerted counterparties (the other end's address number).
const ALERTED: usize = 2;

/// What one alerted address gathers in the fill pass, in one cache line: its flows' sums and
/// where its next value of each of the three groups goes. On a 10× day the 386K addresses'
/// state outgrows the caches and the flows visit it in no order; one line per address, asked
/// for [`AHEAD`] flows early, lets those reads overlap.
#[derive(Default, Clone, Copy)]
#[repr(C, align(64))]
struct Acc {
    sums: [Side; 2],
    next: [u32; 3],
}

/// The three groups of values per address, end to end (`values[g][start[g][k]..start[g][k + 1]]`
/// are address `k`'s in group `g`): incoming counterparties, outgoing counterparties, alerted
/// counterparties. Counted first, then filled in flow order into one allocation per group.
struct Groups {
    start: [Vec<u32>; 3],
    values: [Vec<i32>; 3],
}

impl Groups {
    /// Room for `counts[k][g]` values of address `k` in group `g`.
    fn new(counts: &[[u32; 3]]) -> Self {
        let group = |g: usize| {
            let mut start = Vec::with_capacity(counts.len() + 1);
            let mut total = 0u32;
            start.push(0);
            for c in counts {
                total += c[g];
                start.push(total);
            }
            let values = vec![0; total as usize];
            (start, values)
        };
        let [(s0, v0), (s1, v1), (s2, v2)] = [group(0), group(1), group(2)];
        Self {
            start: [s0, s1, s2],
            values: [v0, v1, v2],
        }
    }

    /// Address `k`'s values in group `g`.
    fn of(&mut self, g: usize, k: usize) -> &mut [i32] {
        let s = &self.start[g];
        &mut self.values[g][s[k] as usize..s[k + 1] as usize]
    }
}

/// The names of the network features, in matrix order.
const NETWORK: [&str; 11] = [
    "net_in_degree",
    "net_out_degree",
    "net_total_degree",
    "net_in_usd",
    "net_out_usd",
    "net_avg_in_usd",
    "net_avg_out_usd",
    "net_tx_in_count",
    "net_tx_out_count",
    "net_flow_ratio",
    "net_alerted_counterparties",
];

/// No alerted end.
const NONE: u32 = u32::MAX;

/// Degrees, volumes, counts and alerted counterparties of the alert's address in the flows.
/// Decode gives each flow the alert row of its alerted end(s) (`from_alert`, `to_alert`: the
/// address's first alert), so no address is looked up here.
pub(super) fn network(day: &Day, flows: &RecordBatch, out: &mut Columns) -> Result<()> {
    let addrs = &day.by_addr;
    let n_addr = addrs.len();
    let (from, to) = (i32_col(flows, "from_node")?, i32_col(flows, "to_node")?);
    let usd = f64_col(flows, "amount_usd_sum")?;
    let tx = f64_col(flows, "tx_count")?;
    let (from_alert, to_alert) = (i32_col(flows, "from_alert")?, i32_col(flows, "to_alert")?);
    // The number of the address whose first alert is row `i`, `NONE` for the other rows.
    let mut first = vec![NONE; day.n];
    for (k, rows) in addrs.groups().enumerate() {
        first[rows[0]] = k as u32;
    }
    let number_of = |rows: &Int32Array, r: usize| -> Result<u32> {
        if rows.is_null(r) {
            return Ok(NONE);
        }
        match first.get(rows.value(r) as usize) {
            Some(&k) if k != NONE => Ok(k),
            _ => bail!(
                "internal: flow {r} names alert {}, no address's first",
                rows.value(r)
            ),
        }
    };
    if flows.num_rows() > (u32::MAX / 2) as usize {
        bail!(
            "{} money flows kept for one date; at most 2^31 are supported",
            flows.num_rows()
        );
    }
    // Each flow's alerted ends: `[from, to]`.
    let mut ends = Vec::with_capacity(flows.num_rows());
    for r in 0..flows.num_rows() {
        ends.push([number_of(from_alert, r)?, number_of(to_alert, r)?]);
    }
    // Counterparties: incoming (`from_node`), outgoing (`to_node`) and alerted (the other
    // end's number) per address; counted first, then filled in flow order.
    let mut counts = vec![[0u32; 3]; n_addr];
    for (r, &[fa, ta]) in ends.iter().enumerate() {
        if let Some(&[f, t]) = ends.get(r + AHEAD) {
            prefetch(&counts, f);
            prefetch(&counts, t);
        }
        for (side, k, other) in [(IN, ta, fa), (OUT, fa, ta)] {
            if k != NONE {
                counts[k as usize][side] += 1;
                counts[k as usize][ALERTED] += (other != NONE) as u32;
            }
        }
    }
    let mut groups = Groups::new(&counts);
    drop(counts);
    let mut acc: Vec<Acc> = (0..n_addr)
        .map(|k| Acc {
            sums: Default::default(),
            next: [0, 1, 2].map(|g| groups.start[g][k]),
        })
        .collect();
    let (sides, alerted) = groups.values.split_at_mut(ALERTED);
    for (r, &[fa, ta]) in ends.iter().enumerate() {
        if let Some(&[f, t]) = ends.get(r + AHEAD) {
            prefetch(&acc, f);
            prefetch(&acc, t);
        }
        if fa == NONE && ta == NONE {
            continue;
        }
        let u = get_f(&usd, r);
        let u = if u.is_finite() { u } else { 0.0 };
        let x = get_f(&tx, r);
        let x = if x.is_finite() { x } else { 0.0 };
        for (side, k, counterparty, other) in [(IN, ta, from, fa), (OUT, fa, to, ta)] {
            if k == NONE {
                continue;
            }
            let a = &mut acc[k as usize];
            push(&mut sides[side], &mut a.next[side], counterparty.value(r));
            let s = &mut a.sums[side];
            s.usd += u;
            s.n += 1.0;
            s.tx += x;
            if other != NONE {
                push(&mut alerted[0], &mut a.next[ALERTED], other as i32);
            }
        }
    }
    drop(ends);
    let mut net: Vec<[f64; 11]> = Vec::with_capacity(n_addr);
    for (k, a) in acc.iter().enumerate() {
        let [i, o] = &a.sums;
        let ind = distinct(groups.of(IN, k));
        let outd = distinct(groups.of(OUT, k));
        let cp = {
            // The address itself (a flow between two of its alerts) does not count.
            let v = groups.of(ALERTED, k);
            distinct(v) - v.binary_search(&(k as i32)).is_ok() as u8 as f64
        };
        let avg = |s: f64, c: f64| if c > 0.0 { s / c } else { 0.0 };
        net.push([
            ind,
            outd,
            ind + outd,
            i.usd,
            o.usd,
            avg(i.usd, i.n),
            avg(o.usd, o.n),
            i.tx,
            o.tx,
            o.usd / (i.usd + 1.0),
            cp,
        ]);
    }
    // Every column filled in one pass over the alerts.
    let mut cols: [Vec<f64>; 11] = std::array::from_fn(|_| Vec::with_capacity(day.n));
    for i in 0..day.n {
        for (col, &v) in cols.iter_mut().zip(&net[addrs.number(i)]) {
            col.push(v);
        }
    }
    for (name, col) in NETWORK.into_iter().zip(cols) {
        out.push(name, col);
    }
    Ok(())
}

/// Writes `v` at `values[*at]` and moves `at` on.
fn push(values: &mut [i32], at: &mut u32, v: i32) {
    values[*at as usize] = v;
    *at += 1;
}

/// Asks the cache for `v[k]` (nothing for [`NONE`]).
fn prefetch<T>(v: &[T], k: u32) {
    if let Some(x) = v.get(k as usize) {
        address_table::prefetch(x);
    }
}

pub(super) fn i32_col<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a Int32Array> {
    column(b, name)
        .and_then(|c| c.as_primitive_opt::<Int32Type>())
        .ok_or_else(|| anyhow!("internal: column `{name}` missing"))
}

/// The number of distinct values of `v` (sorted in place).
fn distinct(v: &mut [i32]) -> f64 {
    v.sort_unstable();
    v.iter()
        .enumerate()
        .filter(|&(i, x)| i == 0 || v[i - 1] != *x)
        .count() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::decode::make_batch;
    use arrow::array::{ArrayRef, Float64Array, StringArray};
    use std::sync::Arc;

    #[test]
    fn network_features_count_as_by_hand() {
        // Alerts: A (rows 0 and 2) and B (row 1). Nodes: A 1, B 2, X 10, Y 11, Z 12, P 13, Q 14.
        let ids = StringArray::from(vec!["a0", "b1", "a2"]);
        let addr = StringArray::from(vec!["A", "B", "A"]);
        let typ = StringArray::from(vec!["t", "t", "t"]);
        let day = crate::features::test_day(&ids, &addr, &typ);
        let i32s = |v: Vec<Option<i32>>| Arc::new(Int32Array::from(v)) as ArrayRef;
        let f64s = |v: Vec<f64>| Arc::new(Float64Array::from(v)) as ArrayRef;
        // X→A twice, Y→A, A→B, A→A (between A's own alerts), B→Z, P→Q (no alerted end).
        let flows = make_batch(vec![
            (
                "from_node",
                i32s(vec![
                    Some(10),
                    Some(10),
                    Some(11),
                    Some(1),
                    Some(1),
                    Some(2),
                    Some(13),
                ]),
            ),
            (
                "to_node",
                i32s(vec![
                    Some(1),
                    Some(1),
                    Some(1),
                    Some(2),
                    Some(1),
                    Some(12),
                    Some(14),
                ]),
            ),
            (
                "amount_usd_sum",
                f64s(vec![5.0, 3.0, 1.0, 10.0, 2.0, 4.0, 100.0]),
            ),
            ("tx_count", f64s(vec![1.0, 2.0, 1.0, 1.0, 1.0, 1.0, 9.0])),
            (
                "from_alert",
                i32s(vec![None, None, None, Some(0), Some(0), Some(1), None]),
            ),
            (
                "to_alert",
                i32s(vec![
                    Some(0),
                    Some(0),
                    Some(0),
                    Some(1),
                    Some(0),
                    None,
                    None,
                ]),
            ),
        ])
        .unwrap();
        let mut cols = Columns::default();
        network(&day, &flows, &mut cols).unwrap();
        assert_eq!(cols.names, NETWORK);
        let a = [3.0, 2.0, 5.0, 11.0, 12.0, 2.75, 6.0, 5.0, 2.0, 1.0, 1.0];
        let b = [
            1.0,
            1.0,
            2.0,
            10.0,
            4.0,
            10.0,
            4.0,
            1.0,
            1.0,
            4.0 / 11.0,
            1.0,
        ];
        for (j, col) in cols.values().enumerate() {
            assert_eq!(col, [a[j], b[j], a[j]], "{}", NETWORK[j]);
        }
    }
}
