//! Features of the money flows of the alert's address on the day.

use super::{f64_col, get_f, Columns, Day};
use crate::contract::column;
use anyhow::{anyhow, bail, Result};
use arrow::array::{Array, AsArray, Int32Array};
use arrow::datatypes::Int32Type;
use arrow::record_batch::RecordBatch;

/// What the day's flows say of one alerted address; counterparties are the numbers decode gave
/// their addresses (`from_node`, `to_node`).
#[derive(Default, Clone)]
struct Flow {
    in_from: Vec<i32>,
    out_to: Vec<i32>,
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
            let e = &mut fl[k as usize];
            e.in_from.push(from.value(r));
            e.in_usd += u;
            e.in_n += 1.0;
            e.in_tx += x;
            if let Some(fk) = fa {
                alerted_cp[k as usize].push(fk);
            }
        }
        if let Some(k) = fa {
            let e = &mut fl[k as usize];
            e.out_to.push(to.value(r));
            e.out_usd += u;
            e.out_n += 1.0;
            e.out_tx += x;
            if let Some(tk) = ta {
                alerted_cp[k as usize].push(tk);
            }
        }
    }
    let mut net: Vec<[f64; 11]> = Vec::with_capacity(fl.len());
    for (k, e) in fl.iter_mut().enumerate() {
        let ind = distinct(&mut e.in_from);
        let outd = distinct(&mut e.out_to);
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

pub(super) fn i32_col<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a Int32Array> {
    column(b, name)
        .and_then(|c| c.as_primitive_opt::<Int32Type>())
        .ok_or_else(|| anyhow!("internal: column `{name}` missing"))
}

/// The number of distinct values of `v` (sorted and deduplicated in place).
fn distinct<T: Ord>(v: &mut Vec<T>) -> f64 {
    v.sort_unstable();
    v.dedup();
    v.len() as f64
}
