//! Features of the money flows of the alert's address on the day.

use super::{f64_col, get_f, Columns, Day};
use crate::contract::column;
use anyhow::{anyhow, bail, Result};
use arrow::array::{Array, AsArray, Int32Array};
use arrow::datatypes::Int32Type;
use arrow::record_batch::RecordBatch;

/// What the day's flows sum up to for one alerted address.
#[derive(Default, Clone, Copy)]
struct Sums {
    in_usd: f64,
    out_usd: f64,
    in_n: f64,
    out_n: f64,
    in_tx: f64,
    out_tx: f64,
}

/// Values grouped by alerted address, end to end (`values[start[k]..start[k + 1]]` are address
/// `k`'s), filled in a second pass once each address's count is known: one allocation for all
/// addresses instead of a growing vector each, which on a large day meant a cache miss and a
/// reallocation per flow.
struct Groups {
    start: Vec<usize>,
    next: Vec<usize>,
    values: Vec<i32>,
}

impl Groups {
    /// Room for `counts[k]` values of each address `k`.
    fn new(counts: &[u32]) -> Self {
        let mut start = Vec::with_capacity(counts.len() + 1);
        let mut total = 0;
        start.push(0);
        for &c in counts {
            total += c as usize;
            start.push(total);
        }
        Self {
            next: start[..counts.len()].to_vec(),
            start,
            values: vec![0; total],
        }
    }

    /// Adds `v` to address `k`'s values.
    fn push(&mut self, k: u32, v: i32) {
        let at = &mut self.next[k as usize];
        self.values[*at] = v;
        *at += 1;
    }

    /// Address `k`'s values.
    fn of(&mut self, k: usize) -> &mut [i32] {
        &mut self.values[self.start[k]..self.start[k + 1]]
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

/// Degrees, volumes, counts and alerted counterparties of the alert's address in the flows.
/// Decode gives each flow the alert row of its alerted end(s) (`from_alert`, `to_alert`: the
/// address's first alert), so no address is looked up here.
pub(super) fn network(day: &Day, flows: &RecordBatch, out: &mut Columns) -> Result<()> {
    // Each alerted address is numbered by its first alert's row; `first[i]`: alert i's.
    let mut number = vec![u32::MAX; day.n];
    let mut first = vec![0usize; day.n];
    for rows in day.by_addr.values() {
        number[rows[0]] = 0;
        for &i in rows {
            first[i] = rows[0];
        }
    }
    let mut n_addr = 0;
    for k in number.iter_mut().filter(|k| **k == 0) {
        *k = n_addr;
        n_addr += 1;
    }
    let n_addr = n_addr as usize;
    let (from, to) = (i32_col(flows, "from_node")?, i32_col(flows, "to_node")?);
    let usd = f64_col(flows, "amount_usd_sum")?;
    let tx = f64_col(flows, "tx_count")?;
    let (from_alert, to_alert) = (i32_col(flows, "from_alert")?, i32_col(flows, "to_alert")?);
    let number_of = |rows: &Int32Array, r: usize| -> Result<Option<u32>> {
        if rows.is_null(r) {
            return Ok(None);
        }
        match number.get(rows.value(r) as usize) {
            Some(&k) if k != u32::MAX => Ok(Some(k)),
            _ => bail!(
                "internal: flow {r} names alert {}, no address's first",
                rows.value(r)
            ),
        }
    };
    if flows.num_rows() > u32::MAX as usize {
        bail!(
            "{} money flows kept for one date; at most 2^32 are supported",
            flows.num_rows()
        );
    }
    // Counterparties: incoming (`from_node`), outgoing (`to_node`) and alerted (the other
    // end's number) per address; counted first, then filled in flow order.
    let mut counts = vec![[0u32; 3]; n_addr];
    for r in 0..flows.num_rows() {
        let (fa, ta) = (number_of(from_alert, r)?, number_of(to_alert, r)?);
        if let Some(k) = ta {
            counts[k as usize][0] += 1;
            counts[k as usize][2] += fa.is_some() as u32;
        }
        if let Some(k) = fa {
            counts[k as usize][1] += 1;
            counts[k as usize][2] += ta.is_some() as u32;
        }
    }
    let group = |i: usize| Groups::new(&counts.iter().map(|c| c[i]).collect::<Vec<_>>());
    let (mut in_from, mut out_to, mut alerted_cp) = (group(0), group(1), group(2));
    drop(counts);
    let mut sums = vec![Sums::default(); n_addr];
    for r in 0..flows.num_rows() {
        let (fa, ta) = (number_of(from_alert, r)?, number_of(to_alert, r)?);
        if fa.is_none() && ta.is_none() {
            continue;
        }
        let u = get_f(&usd, r);
        let u = if u.is_finite() { u } else { 0.0 };
        let x = get_f(&tx, r);
        let x = if x.is_finite() { x } else { 0.0 };
        if let Some(k) = ta {
            let e = &mut sums[k as usize];
            in_from.push(k, from.value(r));
            e.in_usd += u;
            e.in_n += 1.0;
            e.in_tx += x;
            if let Some(fk) = fa {
                alerted_cp.push(k, fk as i32);
            }
        }
        if let Some(k) = fa {
            let e = &mut sums[k as usize];
            out_to.push(k, to.value(r));
            e.out_usd += u;
            e.out_n += 1.0;
            e.out_tx += x;
            if let Some(tk) = ta {
                alerted_cp.push(k, tk as i32);
            }
        }
    }
    let mut net: Vec<[f64; 11]> = Vec::with_capacity(n_addr);
    for (k, e) in sums.iter().enumerate() {
        let ind = distinct(in_from.of(k));
        let outd = distinct(out_to.of(k));
        let cp = {
            // The address itself (a flow between two of its alerts) does not count.
            let v = alerted_cp.of(k);
            distinct(v) - v.binary_search(&(k as i32)).is_ok() as u8 as f64
        };
        let avg = |s: f64, c: f64| if c > 0.0 { s / c } else { 0.0 };
        net.push([
            ind,
            outd,
            ind + outd,
            e.in_usd,
            e.out_usd,
            avg(e.in_usd, e.in_n),
            avg(e.out_usd, e.out_n),
            e.in_tx,
            e.out_tx,
            e.out_usd / (e.in_usd + 1.0),
            cp,
        ]);
    }
    let alert_net: Vec<&[f64; 11]> = (0..day.n)
        .map(|i| &net[number[first[i]] as usize])
        .collect();
    for (j, name) in NETWORK.into_iter().enumerate() {
        out.push(name, alert_net.iter().map(|row| row[j]).collect());
    }
    Ok(())
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
