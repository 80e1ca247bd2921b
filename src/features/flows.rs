//! Features of the money flows of the alert's address on the day.

use super::{f64_col, get_f, str_col, Columns, Day};
use crate::contract::column;
use anyhow::{anyhow, bail, Result};
use arrow::array::{Array, AsArray, Int32Array, StringArray};
use arrow::datatypes::Int32Type;
use arrow::record_batch::RecordBatch;
use rustc_hash::FxBuildHasher;
use std::hash::BuildHasher;

/// What the day's flows say of one alerted address. A counterparty is kept as
/// [`counterparty`]: its flow row with a hash of its address, so that counting distinct
/// counterparties needs no table of every address the flows name.
#[derive(Default, Clone)]
struct Flow {
    in_from: Vec<u64>,
    out_to: Vec<u64>,
    in_usd: f64,
    out_usd: f64,
    in_n: f64,
    out_n: f64,
    in_tx: f64,
    out_tx: f64,
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
    let mut fl = vec![Flow::default(); n_addr as usize];
    let mut alerted_cp: Vec<Vec<u32>> = vec![Vec::new(); n_addr as usize];
    let from = str_col(flows, "from_address")?;
    let to = str_col(flows, "to_address")?;
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
    for r in 0..flows.num_rows() {
        let u = get_f(&usd, r);
        let u = if u.is_finite() { u } else { 0.0 };
        let x = get_f(&tx, r);
        let x = if x.is_finite() { x } else { 0.0 };
        let (fa, ta) = (number_of(from_alert, r)?, number_of(to_alert, r)?);
        if let Some(k) = ta {
            let e = &mut fl[k as usize];
            e.in_from.push(counterparty(from.value(r), r));
            e.in_usd += u;
            e.in_n += 1.0;
            e.in_tx += x;
            if let Some(fk) = fa {
                alerted_cp[k as usize].push(fk);
            }
        }
        if let Some(k) = fa {
            let e = &mut fl[k as usize];
            e.out_to.push(counterparty(to.value(r), r));
            e.out_usd += u;
            e.out_n += 1.0;
            e.out_tx += x;
            if let Some(tk) = ta {
                alerted_cp[k as usize].push(tk);
            }
        }
    }
    let distinct = |v: &mut Vec<u32>| {
        v.sort_unstable();
        v.dedup();
        v.len() as f64
    };
    let mut net: Vec<[f64; 11]> = Vec::with_capacity(fl.len());
    for (k, e) in fl.iter_mut().enumerate() {
        let ind = distinct_counterparties(&mut e.in_from, &from);
        let outd = distinct_counterparties(&mut e.out_to, &to);
        let cp = {
            let v = &mut alerted_cp[k];
            v.retain(|&x| x as usize != k);
            distinct(v)
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

fn i32_col<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a Int32Array> {
    column(b, name)
        .and_then(|c| c.as_primitive_opt::<Int32Type>())
        .ok_or_else(|| anyhow!("internal: column `{name}` missing"))
}

/// A counterparty as a flow keeps it: a 32-bit hash of its address above the flow's row.
fn counterparty(address: &str, row: usize) -> u64 {
    let h = FxBuildHasher.hash_one(address) >> 32;
    (h << 32) | row as u64
}

/// The distinct addresses among `cps` (see [`counterparty`]; `col` holds each row's address):
/// sorted by hash, equal hashes are told apart by their addresses.
fn distinct_counterparties(cps: &mut [u64], col: &StringArray) -> f64 {
    cps.sort_unstable();
    let mut n = 0;
    for run in cps.chunk_by(|a, b| a >> 32 == b >> 32) {
        n += if run.len() == 1 {
            1
        } else {
            let mut names: Vec<&str> = run.iter().map(|c| col.value(*c as u32 as usize)).collect();
            names.sort_unstable();
            names.dedup();
            names.len()
        };
    }
    n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counterparties_with_equal_hashes_are_told_apart_by_address() {
        let col = StringArray::from(vec!["a", "b", "a", "c", "b"]);
        // Rows 0-4 all under one hash: three distinct addresses.
        let mut same: Vec<u64> = (0..5).map(|r| (7 << 32) | r).collect();
        assert_eq!(distinct_counterparties(&mut same, &col), 3.0);
        let mut real: Vec<u64> = (0..5).map(|r| counterparty(col.value(r), r)).collect();
        assert_eq!(distinct_counterparties(&mut real, &col), 3.0);
        assert_eq!(distinct_counterparties(&mut [], &col), 0.0);
    }
}
