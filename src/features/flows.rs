//! Features of the money flows of the alert's address on the day, summed up flow by flow as
//! decode streams `money_flows.parquet` ([`Network`]), so the flows need not be kept.

use crate::contract::column;
use anyhow::{anyhow, bail, Result};
use arrow::array::{ArrayRef, AsArray, Float64Array, Int32Array};
use arrow::datatypes::Int32Type;
use arrow::record_batch::RecordBatch;
use std::sync::Arc;

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
/// The group of alerted counterparties (the other end's address).
const ALERTED: usize = 2;

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
pub const NETWORK: [&str; 11] = [
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

/// Degrees, volumes, counts and alerted counterparties of the day's alerted addresses,
/// gathered flow by flow ([`Network::add`]) as decode streams the money flows: each address's
/// sums, and its incoming, outgoing and alerted counterparties, counted distinct at the end
/// ([`Network::finish`]). An address is known by the row of its first alert. What is kept is
/// 8 bytes per counterparty met, where the flows themselves took about 30 bytes each (on a
/// 10× day, 4.1M flows touch an alerted address).
pub struct Network {
    /// By first alert row.
    acc: Vec<Acc>,
    /// Per group, in flow order: (first alert row, counterparty).
    met: [Vec<(u32, i32)>; 3],
}

/// What one alerted address gathers, in one cache line (the flows visit the addresses in no
/// order, and on a 10× day their state outgrows the caches): its flows' sums and how many
/// values it met in each group.
#[derive(Default, Clone, Copy)]
#[repr(C, align(64))]
struct Acc {
    sums: [Side; 2],
    counts: [u32; 3],
}

impl Network {
    /// Nothing gathered yet, for a day of `alerts` alerts.
    pub fn new(alerts: usize) -> Self {
        Self {
            acc: vec![Acc::default(); alerts],
            met: Default::default(),
        }
    }

    /// A flow from the address numbered `ends[0]` to the one numbered `ends[1]` (numbers that
    /// name an address throughout the day), of `usd` and `tx` transactions (either NaN when
    /// missing), where `alerted` are the ends' first alert rows, for the alerted ones. A flow
    /// with no alerted end changes nothing.
    pub fn add(&mut self, ends: [i32; 2], alerted: [Option<u32>; 2], usd: f64, tx: f64) {
        let [fa, ta] = alerted;
        if fa.is_none() && ta.is_none() {
            return;
        }
        let u = if usd.is_finite() { usd } else { 0.0 };
        let x = if tx.is_finite() { tx } else { 0.0 };
        for (side, k, counterparty, other) in [(IN, ta, ends[0], fa), (OUT, fa, ends[1], ta)] {
            let Some(k) = k else { continue };
            let a = &mut self.acc[k as usize];
            let s = &mut a.sums[side];
            s.usd += u;
            s.n += 1.0;
            s.tx += x;
            a.counts[side] += 1;
            self.met[side].push((k, counterparty));
            if let Some(o) = other {
                a.counts[ALERTED] += 1;
                self.met[ALERTED].push((k, o as i32));
            }
        }
    }

    /// The [`NETWORK`] columns, a row per alert, where `first[i]` is the first alert row of
    /// alert `i`'s address (`first[i] <= i`).
    pub fn finish(self, first: &[u32]) -> Result<Vec<(&'static str, ArrayRef)>> {
        let Network { acc, met } = self;
        let n = first.len();
        if acc.len() != n {
            bail!("internal: network features of {} alerts for {n}", acc.len());
        }
        let counts: Vec<[u32; 3]> = acc.iter().map(|a| a.counts).collect();
        let mut groups = Groups::new(&counts);
        drop(counts);
        let mut next = groups.start.clone();
        for (g, met) in met.into_iter().enumerate() {
            for (k, v) in met {
                let at = &mut next[g][k as usize];
                groups.values[g][*at as usize] = v;
                *at += 1;
            }
        }
        drop(next);
        let mut cols: [Vec<f64>; 11] = std::array::from_fn(|_| Vec::with_capacity(n));
        for (i, &f) in first.iter().enumerate() {
            let f = f as usize;
            if f > i {
                bail!("internal: alert {i}'s first alert row is {f}, after it");
            }
            let row: [f64; 11] = if f < i {
                std::array::from_fn(|j| cols[j][f])
            } else {
                let [s_in, s_out] = &acc[i].sums;
                let ind = distinct(groups.of(IN, i));
                let outd = distinct(groups.of(OUT, i));
                let cp = {
                    // The address itself (a flow between two of its alerts) does not count.
                    let v = groups.of(ALERTED, i);
                    distinct(v) - v.binary_search(&(i as i32)).is_ok() as u8 as f64
                };
                let avg = |s: f64, c: f64| if c > 0.0 { s / c } else { 0.0 };
                [
                    ind,
                    outd,
                    ind + outd,
                    s_in.usd,
                    s_out.usd,
                    avg(s_in.usd, s_in.n),
                    avg(s_out.usd, s_out.n),
                    s_in.tx,
                    s_out.tx,
                    s_out.usd / (s_in.usd + 1.0),
                    cp,
                ]
            };
            for (col, v) in cols.iter_mut().zip(row) {
                col.push(v);
            }
        }
        Ok(NETWORK
            .into_iter()
            .zip(cols)
            .map(|(name, col)| (name, Arc::new(Float64Array::from(col)) as ArrayRef))
            .collect())
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

    #[test]
    fn network_features_count_as_by_hand() {
        // Alerts: A (rows 0 and 2) and B (row 1). Nodes: A 1, B 2, X 10, Y 11, Z 12, P 13, Q 14.
        // X→A twice, Y→A, A→B, A→A (between A's own alerts), B→Z, P→Q (no alerted end).
        let (a, b) = (Some(0), Some(1));
        let flows = [
            ([10, 1], [None, a], 5.0, 1.0),
            ([10, 1], [None, a], 3.0, 2.0),
            ([11, 1], [None, a], 1.0, 1.0),
            ([1, 2], [a, b], 10.0, 1.0),
            ([1, 1], [a, a], 2.0, 1.0),
            ([2, 12], [b, None], 4.0, 1.0),
            ([13, 14], [None, None], 100.0, 9.0),
        ];
        let mut net = Network::new(3);
        for (ends, alerted, usd, tx) in flows {
            net.add(ends, alerted, usd, tx);
        }
        let cols = net.finish(&[0, 1, 0]).unwrap();
        let names: Vec<&str> = cols.iter().map(|c| c.0).collect();
        assert_eq!(names, NETWORK);
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
        for (j, (name, col)) in cols.iter().enumerate() {
            let col = col.as_primitive::<arrow::datatypes::Float64Type>();
            assert_eq!(col.values().to_vec(), [a[j], b[j], a[j]], "{name}");
        }
    }

    /// Random days (alerted addresses with repeated alerts, flows between alerted and other
    /// addresses, repeats and self-flows, missing values) against the features computed
    /// directly from each address's own flows.
    #[test]
    fn network_features_equal_a_direct_count_on_random_flows() {
        use rand::{Rng, SeedableRng};
        use std::collections::BTreeSet;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for _ in 0..20 {
            let (addresses, nodes) = (rng.gen_range(1..12), rng.gen_range(12..40));
            // Node `a < addresses` is alerted address `a`; the alerts name them at random.
            let alerts: Vec<i32> = (0..rng.gen_range(1..30))
                .map(|_| rng.gen_range(0..addresses))
                .collect();
            let first: Vec<u32> = (0..alerts.len())
                .map(|i| alerts.iter().position(|&a| a == alerts[i]).unwrap() as u32)
                .collect();
            let first_row = |node: i32| alerts.iter().position(|&a| a == node).map(|r| r as u32);
            let value = |rng: &mut rand_chacha::ChaCha8Rng| match rng.gen_range(0..8) {
                0 => f64::NAN,
                _ => rng.gen_range(0..1000) as f64 / 8.0,
            };
            let flows: Vec<([i32; 2], f64, f64)> = (0..rng.gen_range(0..80))
                .map(|_| {
                    let ends = [rng.gen_range(0..nodes), rng.gen_range(0..nodes)];
                    (ends, value(&mut rng), value(&mut rng))
                })
                .collect();
            let mut net = Network::new(alerts.len());
            for &(ends, usd, tx) in &flows {
                net.add(ends, ends.map(first_row), usd, tx);
            }
            let cols = net.finish(&first).unwrap();
            for (i, &a) in alerts.iter().enumerate() {
                let clean = |v: f64| if v.is_finite() { v } else { 0.0 };
                // Per side (in, out): counterparties, USD, transactions, flows.
                let mut cps = [BTreeSet::new(), BTreeSet::new()];
                let mut sums = [[0.0; 3]; 2];
                let mut alerted = BTreeSet::new();
                for &([f, t], usd, tx) in &flows {
                    for (side, end, other) in [(0, t, f), (1, f, t)] {
                        if end != a {
                            continue;
                        }
                        cps[side].insert(other);
                        let s = &mut sums[side];
                        *s = [s[0] + clean(usd), s[1] + clean(tx), s[2] + 1.0];
                        if other != a && first_row(other).is_some() {
                            alerted.insert(other);
                        }
                    }
                }
                let ([in_usd, in_tx, n_in], [out_usd, out_tx, n_out]) = (sums[0], sums[1]);
                let (ins, outs) = (&cps[0], &cps[1]);
                let avg = |s: f64, n: f64| if n > 0.0 { s / n } else { 0.0 };
                let want = [
                    ins.len() as f64,
                    outs.len() as f64,
                    (ins.len() + outs.len()) as f64,
                    in_usd,
                    out_usd,
                    avg(in_usd, n_in),
                    avg(out_usd, n_out),
                    in_tx,
                    out_tx,
                    out_usd / (in_usd + 1.0),
                    alerted.len() as f64,
                ];
                for ((name, col), want) in cols.iter().zip(want) {
                    let got = col.as_primitive::<arrow::datatypes::Float64Type>().value(i);
                    assert_eq!(got.to_bits(), want.to_bits(), "{name} of alert {i}");
                }
            }
        }
    }

    #[test]
    fn missing_amounts_and_counts_add_nothing_but_a_flow() {
        let mut net = Network::new(1);
        net.add([1, 0], [None, Some(0)], f64::NAN, f64::INFINITY);
        net.add([2, 0], [None, Some(0)], 4.0, 2.0);
        let cols = net.finish(&[0]).unwrap();
        let value = |name: &str| {
            let (_, c) = cols.iter().find(|c| c.0 == name).unwrap();
            c.as_primitive::<arrow::datatypes::Float64Type>().value(0)
        };
        assert_eq!(value("net_in_degree"), 2.0);
        assert_eq!(value("net_in_usd"), 4.0);
        assert_eq!(value("net_avg_in_usd"), 2.0);
        assert_eq!(value("net_tx_in_count"), 2.0);
    }
}
