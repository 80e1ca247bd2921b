//! Features of the money flows of the alert's address on the day.

use super::{f64_col, get_f, str_col, Columns, Day};
use anyhow::Result;
use arrow::record_batch::RecordBatch;
use rustc_hash::FxHashMap as HashMap;

/// What the day's flows say of one alerted address.
#[derive(Default, Clone)]
struct Flow {
    in_from: Vec<u32>,
    out_to: Vec<u32>,
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
pub(super) fn network(day: &Day, flows: &RecordBatch, out: &mut Columns) -> Result<()> {
    let mut addr_idx: HashMap<&str, u32> =
        HashMap::with_capacity_and_hasher(day.by_addr.len(), Default::default());
    let mut addr_names: Vec<&str> = day.by_addr.keys().copied().collect();
    addr_names.sort_unstable();
    for (k, a) in addr_names.iter().enumerate() {
        addr_idx.insert(a, k as u32);
    }
    let mut fl = vec![Flow::default(); addr_names.len()];
    let mut alerted_cp: Vec<Vec<u32>> = vec![Vec::new(); addr_names.len()];
    {
        let from = str_col(flows, "from_address")?;
        let to = str_col(flows, "to_address")?;
        let usd = f64_col(flows, "amount_usd_sum")?;
        let tx = f64_col(flows, "tx_count")?;
        let mut cp_ids: HashMap<&str, u32> = HashMap::default();
        for r in 0..flows.num_rows() {
            let (f, to_a) = (from.value(r), to.value(r));
            let u = get_f(&usd, r);
            let u = if u.is_finite() { u } else { 0.0 };
            let x = get_f(&tx, r);
            let x = if x.is_finite() { x } else { 0.0 };
            let next = cp_ids.len() as u32;
            let fid = *cp_ids.entry(f).or_insert(next);
            let next = cp_ids.len() as u32;
            let tid = *cp_ids.entry(to_a).or_insert(next);
            let fa = addr_idx.get(f).copied();
            let ta = addr_idx.get(to_a).copied();
            if let Some(k) = ta {
                let e = &mut fl[k as usize];
                e.in_from.push(fid);
                e.in_usd += u;
                e.in_n += 1.0;
                e.in_tx += x;
                if let Some(fk) = fa {
                    alerted_cp[k as usize].push(fk);
                }
            }
            if let Some(k) = fa {
                let e = &mut fl[k as usize];
                e.out_to.push(tid);
                e.out_usd += u;
                e.out_n += 1.0;
                e.out_tx += x;
                if let Some(tk) = ta {
                    alerted_cp[k as usize].push(tk);
                }
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
        .map(|i| &net[addr_idx[day.addr.value(i)] as usize])
        .collect();
    for (j, name) in NETWORK.into_iter().enumerate() {
        out.push(name, alert_net.iter().map(|row| row[j]).collect());
    }
    Ok(())
}
