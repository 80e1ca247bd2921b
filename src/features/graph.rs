//! Graph features: what the day's whole money-flow graph says around the alert's address —
//! two-hop aggregates, fan and scatter-gather shapes, short cycles, and how alerted its
//! counterparties are (formulas in `docs/features.md`).
//!
//! The graph has one node per address of the day's flows (numbered by decode) and one edge per
//! ordered pair of distinct addresses with a flow; an edge's USD is the sum of its flows'
//! `amount_usd_sum` (a non-finite amount counts 0) in file order, and flows from an address to
//! itself are left out. A *hub* is a node whose in-degree plus out-degree exceeds
//! [`HUB_DEGREE`]: paths, cycles and shapes pass through non-hubs only (an exchange joins
//! everybody to everybody, and would make every count a count of its customers), while the
//! two-hop aggregates count every walk. Every value is a count, a sum in a fixed order or a
//! ratio of those, so the features are the same bits whatever the worker count.

use super::flows::i32_col;
use super::{f64_col, get_f, Columns, Day};
use anyhow::{bail, Result};
use arrow::array::{Array, Int32Array};
use arrow::record_batch::RecordBatch;

/// A node with more counterparty links than this (in-degree plus out-degree) is a hub.
pub const HUB_DEGREE: usize = 128;

/// The graph features, in matrix order.
pub const GRAPH_FEATURES: &[&str] = &[
    "graph_out2_count",
    "graph_out2_usd",
    "graph_in2_count",
    "graph_in2_usd",
    "graph_through_ratio",
    "graph_gather_scatter",
    "graph_in_fan_max",
    "graph_out_fan_max",
    "graph_sg_sinks",
    "graph_sg_sources",
    "graph_co_senders",
    "graph_co_receivers",
    "graph_cycle2",
    "graph_cycle3",
    "graph_cycle4",
    "graph_cp_alerted_share",
    "graph_cp_alerted_usd_share",
    "graph_cp_alerts_mean",
    "graph_out2_alerted",
    "graph_in2_alerted",
];

const WIDTH: usize = GRAPH_FEATURES.len();

/// One direction of the graph's edges: each node's neighbours ascending, with each edge's USD.
struct Adjacency {
    offsets: Vec<usize>,
    nbrs: Vec<u32>,
    usd: Vec<f64>,
    /// Each node's summed edge USD, neighbours in ascending order.
    total: Vec<f64>,
}

impl Adjacency {
    /// From `(node, neighbour, usd)` edges in file order, pairs repeated or not.
    fn build(n: usize, edges: &[(u32, u32, f64)]) -> Self {
        let mut offsets = vec![0usize; n + 1];
        for &(v, _, _) in edges {
            offsets[v as usize + 1] += 1;
        }
        for v in 0..n {
            offsets[v + 1] += offsets[v];
        }
        let mut at = offsets.clone();
        let mut slots = vec![(0u32, 0.0f64); edges.len()];
        for &(v, w, u) in edges {
            slots[at[v as usize]] = (w, u);
            at[v as usize] += 1;
        }
        let (mut nbrs, mut usd) = (Vec::with_capacity(edges.len()), Vec::new());
        let mut out_offsets = Vec::with_capacity(n + 1);
        let mut total = Vec::with_capacity(n);
        out_offsets.push(0);
        for v in 0..n {
            let list = &mut slots[offsets[v]..offsets[v + 1]];
            // Stable: a repeated pair's amounts are summed in file order.
            list.sort_by_key(|e| e.0);
            let start = nbrs.len();
            for run in list.chunk_by(|a, b| a.0 == b.0) {
                nbrs.push(run[0].0);
                usd.push(run.iter().map(|e| e.1).sum::<f64>());
            }
            total.push(usd[start..].iter().sum());
            out_offsets.push(nbrs.len());
        }
        Self {
            offsets: out_offsets,
            nbrs,
            usd,
            total,
        }
    }

    fn of(&self, v: u32) -> &[u32] {
        &self.nbrs[self.offsets[v as usize]..self.offsets[v as usize + 1]]
    }

    fn usd_of(&self, v: u32) -> &[f64] {
        &self.usd[self.offsets[v as usize]..self.offsets[v as usize + 1]]
    }

    fn degree(&self, v: u32) -> usize {
        self.offsets[v as usize + 1] - self.offsets[v as usize]
    }

    fn has(&self, v: u32, w: u32) -> bool {
        self.of(v).binary_search(&w).is_ok()
    }
}

/// The day's flow graph with each node's alerts.
struct Graph {
    out: Adjacency,
    inc: Adjacency,
    hub: Vec<bool>,
    /// Alerts on the node's address today (0 if not alerted).
    alerts: Vec<u32>,
}

/// Per-node counts that are cleared in O(1) between nodes: a count is valid only when its
/// stamp is the current one.
struct Counter {
    stamp: Vec<u32>,
    count: Vec<u32>,
    now: u32,
}

impl Counter {
    fn new(n: usize) -> Self {
        Self {
            stamp: vec![0; n],
            count: vec![0; n],
            now: 0,
        }
    }

    fn clear(&mut self) {
        self.now += 1;
    }

    /// Adds one to `v`'s count and returns it.
    fn add(&mut self, v: u32) -> u32 {
        let v = v as usize;
        if self.stamp[v] != self.now {
            self.stamp[v] = self.now;
            self.count[v] = 0;
        }
        self.count[v] += 1;
        self.count[v]
    }

    fn get(&self, v: u32) -> u32 {
        if self.stamp[v as usize] == self.now {
            self.count[v as usize]
        } else {
            0
        }
    }
}

/// Adds the graph features ([`GRAPH_FEATURES`]) of each alert's address.
pub(super) fn features(day: &Day, flows: &RecordBatch, out: &mut Columns) -> Result<()> {
    let from = i32_col(flows, "from_node")?;
    let to = i32_col(flows, "to_node")?;
    let from_alert = i32_col(flows, "from_alert")?;
    let to_alert = i32_col(flows, "to_alert")?;
    let usd = f64_col(flows, "amount_usd_sum")?;
    let node = |c: &Int32Array, r: usize| -> Result<u32> {
        match c.is_valid(r).then(|| c.value(r)) {
            Some(v) if v >= 0 => Ok(v as u32),
            v => bail!("internal: flow {r} has node {v:?}; decode numbers addresses from 0"),
        }
    };
    // Each alert's first alert row, and each first row's alert count.
    let mut first = vec![0usize; day.n];
    let mut alert_count = vec![0u32; day.n];
    for rows in day.by_addr.groups() {
        alert_count[rows[0]] = rows.len() as u32;
        for &i in rows {
            first[i] = rows[0];
        }
    }
    let mut node_of_first: Vec<Option<u32>> = vec![None; day.n];
    let mut edges = Vec::with_capacity(flows.num_rows());
    let mut n = 0usize;
    for r in 0..flows.num_rows() {
        let (v, w) = (node(from, r)?, node(to, r)?);
        n = n.max(v as usize + 1).max(w as usize + 1);
        for (c, x) in [(from_alert, v), (to_alert, w)] {
            if c.is_valid(r) {
                match node_of_first.get_mut(c.value(r) as usize) {
                    Some(slot) if alert_count[c.value(r) as usize] > 0 => *slot = Some(x),
                    _ => bail!(
                        "internal: flow {r} names alert {}, no address's first",
                        c.value(r)
                    ),
                }
            }
        }
        if v != w {
            let u = get_f(&usd, r);
            edges.push((v, w, if u.is_finite() { u } else { 0.0 }));
        }
    }
    // Alerted addresses without flows become nodes without edges.
    for (r, slot) in node_of_first.iter_mut().enumerate() {
        if alert_count[r] > 0 && slot.is_none() {
            *slot = Some(n as u32);
            n += 1;
        }
    }
    let mut alerts = vec![0u32; n];
    for (r, v) in node_of_first.iter().enumerate() {
        if let Some(v) = v {
            alerts[*v as usize] = alert_count[r];
        }
    }
    let g = Graph::new(n, &edges, alerts);
    let mut scratch = Scratch::new(n);
    let mut rows: Vec<[f64; WIDTH]> = vec![[0.0; WIDTH]; day.n];
    for r in (0..day.n).filter(|&r| alert_count[r] > 0) {
        let v = node_of_first[r].expect("every alerted address has a node");
        rows[r] = g.node_features(v, &mut scratch);
    }
    for (j, name) in GRAPH_FEATURES.iter().enumerate() {
        out.push(*name, (0..day.n).map(|i| rows[first[i]][j]).collect());
    }
    Ok(())
}

/// Where the shape features sit in [`GRAPH_FEATURES`].
const SHAPES: std::ops::Range<usize> = 5..15;

/// The graph features that describe shapes (fans, scatter-gather, shared counterparties and
/// short cycles) rather than amounts or alerts: what [`shapes`] gives for a graph of pairs.
pub const SHAPE_FEATURES: &[&str] = GRAPH_FEATURES
    .split_at(SHAPES.end)
    .0
    .split_at(SHAPES.start)
    .1;

/// The [`SHAPE_FEATURES`] of `nodes` in the graph of `n` nodes whose edges are `pairs`
/// (ordered, distinct, no node paired with itself), with the hub rule of the day's graph.
pub(crate) fn shapes(n: usize, pairs: &[(u32, u32)], nodes: &[u32]) -> Vec<Vec<f64>> {
    let edges: Vec<(u32, u32, f64)> = pairs.iter().map(|&(v, w)| (v, w, 0.0)).collect();
    let g = Graph::new(n, &edges, vec![0; n]);
    let mut scratch = Scratch::new(n);
    nodes
        .iter()
        .map(|&v| g.node_features(v, &mut scratch)[SHAPES].to_vec())
        .collect()
}

/// The counters one node's features are counted with, reused from node to node.
struct Scratch {
    /// The node's in-neighbours.
    ins: Counter,
    /// Two-step paths into the node from each node.
    paths_in: Counter,
    /// Two-step paths out of the node to each node.
    paths_out: Counter,
}

impl Scratch {
    fn new(n: usize) -> Self {
        Self {
            ins: Counter::new(n),
            paths_in: Counter::new(n),
            paths_out: Counter::new(n),
        }
    }
}

/// `a / b`, NaN when `b` is 0.
fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        f64::NAN
    }
}

impl Graph {
    fn new(n: usize, edges: &[(u32, u32, f64)], alerts: Vec<u32>) -> Self {
        let out = Adjacency::build(n, edges);
        let reversed: Vec<(u32, u32, f64)> = edges.iter().map(|&(v, w, u)| (w, v, u)).collect();
        let inc = Adjacency::build(n, &reversed);
        let hub = (0..n as u32)
            .map(|v| out.degree(v) + inc.degree(v) > HUB_DEGREE)
            .collect();
        Self {
            out,
            inc,
            hub,
            alerts,
        }
    }

    /// The features of node `a`, in [`GRAPH_FEATURES`] order.
    fn node_features(&self, a: u32, s: &mut Scratch) -> [f64; WIDTH] {
        let (outs, out_usd) = (self.out.of(a), self.out.usd_of(a));
        let (ins, in_usd) = (self.inc.of(a), self.inc.usd_of(a));
        let hub = |v: u32| self.hub[v as usize];
        let alerted = |v: u32| self.alerts[v as usize] > 0;

        // Counterparties (the union of both neighbour lists, merged in ascending order).
        let (mut cps, mut cp_alerted, mut cp_alerts, mut cycle2) = (0.0, 0.0, 0.0, 0.0);
        let (mut cp_usd, mut cp_alerted_usd) = (0.0, 0.0);
        let (mut back_usd, mut forth_usd) = (0.0, 0.0);
        let (mut i, mut j) = (0, 0);
        while i < outs.len() || j < ins.len() {
            let (x, u) = match (outs.get(i), ins.get(j)) {
                (Some(&o), Some(&n)) if o == n => {
                    cycle2 += 1.0;
                    back_usd += in_usd[j];
                    forth_usd += out_usd[i];
                    i += 1;
                    j += 1;
                    (o, out_usd[i - 1] + in_usd[j - 1])
                }
                (Some(&o), n) if n.is_none_or(|&n| o < n) => {
                    i += 1;
                    (o, out_usd[i - 1])
                }
                _ => {
                    j += 1;
                    (ins[j - 1], in_usd[j - 1])
                }
            };
            cps += 1.0;
            cp_usd += u;
            cp_alerts += self.alerts[x as usize] as f64;
            if alerted(x) {
                cp_alerted += 1.0;
                cp_alerted_usd += u;
            }
        }

        // Two-hop aggregates: every walk that does not come straight back.
        let out2_count = outs.iter().map(|&b| self.out.degree(b)).sum::<usize>() as f64 - cycle2;
        let out2_usd = outs
            .iter()
            .map(|&b| self.out.total[b as usize])
            .sum::<f64>()
            - back_usd;
        let in2_count = ins.iter().map(|&b| self.inc.degree(b)).sum::<usize>() as f64 - cycle2;
        let in2_usd = ins.iter().map(|&b| self.inc.total[b as usize]).sum::<f64>() - forth_usd;

        let (tin, tout) = (self.inc.total[a as usize], self.out.total[a as usize]);
        let through = if tin > 0.0 && tout > 0.0 {
            tin.min(tout) / tin.max(tout)
        } else {
            0.0
        };
        let fan_max = |list: &[u32], deg: &dyn Fn(u32) -> usize| {
            list.iter()
                .filter(|&&v| !hub(v))
                .map(|&v| deg(v))
                .max()
                .unwrap_or(0) as f64
        };
        let in_fan_max = fan_max(ins, &|v| self.out.degree(v));
        let out_fan_max = fan_max(outs, &|v| self.inc.degree(v));

        // Paths into `a`: c → d → a, d and c non-hubs.
        s.ins.clear();
        for &d in ins {
            s.ins.add(d);
        }
        s.paths_in.clear();
        let (mut sg_sources, mut in2_alerted) = (0.0, 0.0);
        for &d in ins.iter().filter(|&&d| !hub(d)) {
            for &c in self.inc.of(d).iter().filter(|&&c| c != a && !hub(c)) {
                match s.paths_in.add(c) {
                    1 if alerted(c) => in2_alerted += 1.0,
                    2 => sg_sources += 1.0,
                    _ => {}
                }
            }
        }
        // Paths out of `a`: a → b → c, and the cycles they close.
        s.paths_out.clear();
        let (mut sg_sinks, mut out2_alerted, mut cycle3, mut cycle4) = (0.0, 0.0, 0.0, 0.0);
        for &b in outs.iter().filter(|&&b| !hub(b)) {
            let b_to_a = s.ins.get(b) > 0;
            for &c in self.out.of(b).iter().filter(|&&c| c != a && !hub(c)) {
                match s.paths_out.add(c) {
                    1 if alerted(c) => out2_alerted += 1.0,
                    2 => sg_sinks += 1.0,
                    _ => {}
                }
                if s.ins.get(c) > 0 {
                    cycle3 += 1.0;
                }
                // a → b → c → d → a for each non-hub d with c → d → a, except d = b.
                cycle4 += s.paths_in.get(c) as f64;
                if b_to_a && self.out.has(c, b) {
                    cycle4 -= 1.0;
                }
            }
        }
        // Other senders to two of a's receivers, other receivers from two of a's senders.
        let shared = |list: &[u32], back: &Adjacency, c: &mut Counter| {
            c.clear();
            let mut n = 0.0;
            for &t in list.iter().filter(|&&t| !hub(t)) {
                for &x in back.of(t).iter().filter(|&&x| x != a && !hub(x)) {
                    if c.add(x) == 2 {
                        n += 1.0;
                    }
                }
            }
            n
        };
        let co_senders = shared(outs, &self.inc, &mut s.paths_out);
        let co_receivers = shared(ins, &self.out, &mut s.paths_in);

        [
            out2_count,
            out2_usd,
            in2_count,
            in2_usd,
            through,
            outs.len().min(ins.len()) as f64,
            in_fan_max,
            out_fan_max,
            sg_sinks,
            sg_sources,
            co_senders,
            co_receivers,
            cycle2,
            cycle3,
            cycle4,
            ratio(cp_alerted, cps),
            ratio(cp_alerted_usd, cp_usd),
            ratio(cp_alerts, cps),
            out2_alerted,
            in2_alerted,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Float64Array, StringArray};
    use rustc_hash::FxHashMap as HashMap;
    use std::sync::Arc;

    const NAMES: &[&str] = GRAPH_FEATURES;

    fn feature(row: &[f64; WIDTH], name: &str) -> f64 {
        row[NAMES.iter().position(|n| *n == name).expect(name)]
    }

    /// The features of every node of a graph of `n` nodes, with `alerts` per node.
    fn all(n: usize, edges: &[(u32, u32, f64)], alerts: &[u32]) -> Vec<[f64; WIDTH]> {
        let mut al = alerts.to_vec();
        al.resize(n, 0);
        let g = Graph::new(n, edges, al);
        let mut s = Scratch::new(n);
        (0..n as u32).map(|v| g.node_features(v, &mut s)).collect()
    }

    #[test]
    fn the_shapes_are_the_fans_scatter_gathers_shared_counterparties_and_cycles() {
        assert_eq!(SHAPE_FEATURES.first(), Some(&"graph_gather_scatter"));
        assert_eq!(SHAPE_FEATURES.last(), Some(&"graph_cycle4"));
        assert_eq!(SHAPE_FEATURES.len(), 10);
        let edges = [(0, 1, 0.0), (1, 2, 0.0), (2, 0, 0.0), (0, 3, 0.0)];
        let full = all(4, &edges, &[0, 0, 0, 0]);
        let pairs: Vec<(u32, u32)> = edges.iter().map(|e| (e.0, e.1)).collect();
        let got = shapes(4, &pairs, &[0, 3]);
        for (row, v) in got.iter().zip([0, 3]) {
            for (j, name) in SHAPE_FEATURES.iter().enumerate() {
                assert_eq!(row[j], feature(&full[v], name), "{name} of {v}");
            }
        }
        assert_eq!(
            got[0][SHAPE_FEATURES.len() - 2],
            1.0,
            "node 0 is on a 3-cycle"
        );
    }

    #[test]
    fn a_three_cycle_and_its_two_hop_sums() {
        let f = all(
            4,
            &[(0, 1, 10.0), (1, 2, 20.0), (2, 0, 30.0), (1, 3, 5.0)],
            &[],
        );
        for (v, row) in f.iter().enumerate().take(3) {
            assert_eq!(feature(row, "graph_cycle3"), 1.0, "node {v}");
            assert_eq!(feature(row, "graph_cycle2"), 0.0);
            assert_eq!(feature(row, "graph_cycle4"), 0.0);
        }
        assert_eq!(feature(&f[3], "graph_cycle3"), 0.0);
        // 0 → 1 → {2, 3}: two walks carrying 25; into 0: 1 → 2 → 0 carrying 20.
        assert_eq!(feature(&f[0], "graph_out2_count"), 2.0);
        assert_eq!(feature(&f[0], "graph_out2_usd"), 25.0);
        assert_eq!(feature(&f[0], "graph_in2_count"), 1.0);
        assert_eq!(feature(&f[0], "graph_in2_usd"), 20.0);
        // 1 receives 10 and sends 25.
        assert_eq!(feature(&f[1], "graph_through_ratio"), 0.4);
    }

    #[test]
    fn a_four_cycle_is_counted_once_and_back_and_forth_walks_are_not_cycles() {
        // 0 → 1 → 2 → 3 → 0, with 1 → 0 and 2 → 1 (2-cycles that a 4-walk could reuse).
        let e = [
            (0, 1, 1.0),
            (1, 2, 1.0),
            (2, 3, 1.0),
            (3, 0, 1.0),
            (1, 0, 1.0),
            (2, 1, 1.0),
        ];
        let f = all(4, &e, &[]);
        for (v, row) in f.iter().enumerate() {
            assert_eq!(feature(row, "graph_cycle4"), 1.0, "node {v}");
        }
        assert_eq!(feature(&f[0], "graph_cycle2"), 1.0);
        assert_eq!(feature(&f[1], "graph_cycle2"), 2.0);
        // 0 → 1 → 2 → 0? No edge 2 → 0; 1 → 2 → 1 is a 2-cycle, not a 3-cycle.
        assert_eq!(feature(&f[0], "graph_cycle3"), 0.0);
        // Walks straight back are left out: 0 → 1 → 0 is not a two-hop walk.
        assert_eq!(feature(&f[0], "graph_out2_count"), 1.0);
    }

    #[test]
    fn a_fan_in_with_a_hop_before_it() {
        // Sources 1..=5 each pay 100 into 0; 1 also pays 6; 7 pays 1 40.
        let mut e: Vec<(u32, u32, f64)> = (1..=5).map(|s| (s, 0, 100.0)).collect();
        e.extend([(1, 6, 50.0), (7, 1, 40.0)]);
        let f = all(8, &e, &[]);
        assert_eq!(feature(&f[0], "graph_in2_count"), 1.0);
        assert_eq!(feature(&f[0], "graph_in2_usd"), 40.0);
        assert_eq!(feature(&f[0], "graph_in_fan_max"), 2.0);
        assert_eq!(feature(&f[0], "graph_gather_scatter"), 0.0);
        // Each source's receiver gathers from five.
        assert_eq!(feature(&f[3], "graph_out_fan_max"), 5.0);
        assert_eq!(feature(&f[1], "graph_out_fan_max"), 5.0);
        assert_eq!(feature(&f[1], "graph_out2_count"), 0.0);
        assert_eq!(feature(&f[7], "graph_out2_usd"), 150.0);
    }

    #[test]
    fn scatter_gather_and_bipartite_shapes() {
        // 0 → {1, 2, 3} → 4, and a bipartite 5, 6 → 7, 8.
        let mut e = vec![];
        for m in 1..=3 {
            e.extend([(0, m, 10.0), (m, 4, 9.5)]);
        }
        e.extend([(5, 7, 1.0), (5, 8, 1.0), (6, 7, 1.0), (6, 8, 1.0)]);
        let f = all(9, &e, &[]);
        assert_eq!(feature(&f[0], "graph_sg_sinks"), 1.0);
        assert_eq!(feature(&f[4], "graph_sg_sources"), 1.0);
        assert_eq!(feature(&f[1], "graph_sg_sinks"), 0.0);
        assert_eq!(feature(&f[1], "graph_through_ratio"), 0.95);
        assert_eq!(feature(&f[1], "graph_gather_scatter"), 1.0);
        assert_eq!(feature(&f[5], "graph_co_senders"), 1.0);
        assert_eq!(feature(&f[7], "graph_co_receivers"), 1.0);
        // 1, 2, 3 share one receiver only.
        assert_eq!(feature(&f[1], "graph_co_senders"), 0.0);
    }

    #[test]
    fn hubs_are_no_intermediates_but_count_in_two_hop_sums() {
        // 0 → 1 → 2 → 0 where 1 also pays HUB_DEGREE others.
        let n = 3 + HUB_DEGREE;
        let mut e = vec![(0, 1, 1.0), (1, 2, 1.0), (2, 0, 1.0)];
        e.extend((3..n as u32).map(|t| (1, t, 1.0)));
        let f = all(n, &e, &[]);
        assert_eq!(feature(&f[0], "graph_cycle3"), 0.0);
        assert_eq!(feature(&f[0], "graph_out2_count"), (HUB_DEGREE + 1) as f64);
        assert_eq!(feature(&f[0], "graph_out2_alerted"), 0.0);
    }

    #[test]
    fn counterparties_alert_rates() {
        // 0 pays 1 (alerted twice) 30 and 2 10; 3 (alerted) pays 2.
        let e = [(0, 1, 30.0), (0, 2, 10.0), (3, 2, 5.0)];
        let f = all(4, &e, &[0, 2, 0, 1]);
        assert_eq!(feature(&f[0], "graph_cp_alerted_share"), 0.5);
        assert_eq!(feature(&f[0], "graph_cp_alerted_usd_share"), 0.75);
        assert_eq!(feature(&f[0], "graph_cp_alerts_mean"), 1.0);
        // 2 is reached from 0 and 3, one of them alerted.
        assert_eq!(feature(&f[2], "graph_cp_alerted_share"), 0.5);
        assert_eq!(feature(&f[0], "graph_in2_alerted"), 0.0);
        assert_eq!(feature(&f[3], "graph_co_senders"), 0.0);
        assert!(feature(&all(1, &[], &[1])[0], "graph_cp_alerted_share").is_nan());
    }

    #[test]
    fn repeated_pairs_are_summed_in_file_order_and_self_flows_dropped() {
        let a = Adjacency::build(2, &[(0, 1, 0.1), (0, 1, 0.2), (1, 0, 1.0)]);
        assert_eq!(a.of(0), &[1]);
        assert_eq!(a.usd_of(0), &[0.1 + 0.2]);
        assert_eq!(a.total, vec![0.1 + 0.2, 1.0]);
    }

    /// A pseudo-random graph with hubs, cycles and repeated pairs.
    fn random_edges(n: u32, m: usize) -> Vec<(u32, u32, f64)> {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        (0..m)
            .map(|_| {
                // Low node numbers are drawn far more often: some become hubs.
                let skew = |r: u64| ((r % 1000) as f64 / 1000.0).powi(3) * n as f64;
                let v = skew(next()) as u32;
                let w = (next() % n as u64) as u32;
                (v, w, (next() % 10_000) as f64 / 7.0)
            })
            .collect()
    }

    #[test]
    fn deterministic_whatever_the_node_order_and_the_row_order() {
        let n = 400;
        let edges = random_edges(n, 6000);
        let alerts: Vec<u32> = (0..n).map(|v| (v % 7 == 0) as u32).collect();
        let g = Graph::new(n as usize, &edges, alerts.clone());
        assert!(g.hub.iter().any(|&h| h) && !g.hub.iter().all(|&h| h));
        let mut s = Scratch::new(n as usize);
        let forward: Vec<[f64; WIDTH]> = (0..n).map(|v| g.node_features(v, &mut s)).collect();
        let mut backward: Vec<[f64; WIDTH]> =
            (0..n).rev().map(|v| g.node_features(v, &mut s)).collect();
        backward.reverse();
        let bits = |rows: &[[f64; WIDTH]]| -> Vec<u64> {
            rows.iter().flatten().map(|v| v.to_bits()).collect()
        };
        assert_eq!(bits(&forward), bits(&backward));
        assert!(forward.iter().any(|r| feature(r, "graph_cycle3") > 0.0));
        assert!(forward.iter().any(|r| feature(r, "graph_cycle4") > 0.0));
        // Rows reordered, each pair's own rows kept in order: the same bits.
        let mut shuffled = edges.clone();
        shuffled.sort_by_key(|&(v, w, _)| (w.wrapping_mul(2_654_435_761) ^ v, v, w));
        let mut firsts: HashMap<(u32, u32), Vec<f64>> = HashMap::default();
        for &(v, w, u) in &edges {
            firsts.entry((v, w)).or_default().push(u);
        }
        for e in shuffled.iter_mut() {
            e.2 = firsts.get_mut(&(e.0, e.1)).expect("pair").remove(0);
        }
        assert_ne!(shuffled, edges);
        let g2 = Graph::new(n as usize, &shuffled, alerts);
        let again: Vec<[f64; WIDTH]> = (0..n).map(|v| g2.node_features(v, &mut s)).collect();
        assert_eq!(bits(&forward), bits(&again));
    }

    #[test]
    fn alerts_get_their_address_features_and_alerts_without_flows_get_none() {
        let addr = StringArray::from(vec!["a", "b", "a", "c"]);
        let ids = StringArray::from(vec!["1", "2", "3", "4"]);
        let typ = StringArray::from(vec!["X"; 4]);
        let day = crate::features::test_day(&ids, &addr, &typ);
        // Nodes: a 0, b 1, x 2 (not alerted); c has no flows. a → b → x → a.
        let col = |v: Vec<Option<i32>>| Arc::new(Int32Array::from(v)) as ArrayRef;
        let flows = RecordBatch::try_from_iter([
            ("from_node", col(vec![Some(0), Some(1), Some(2)])),
            ("to_node", col(vec![Some(1), Some(2), Some(0)])),
            (
                "amount_usd_sum",
                Arc::new(Float64Array::from(vec![1.0, f64::NAN, 3.0])) as ArrayRef,
            ),
            ("from_alert", col(vec![Some(0), Some(1), None])),
            ("to_alert", col(vec![Some(1), None, Some(0)])),
        ])
        .unwrap();
        let mut cols = Columns::default();
        features(&day, &flows, &mut cols).unwrap();
        assert_eq!(cols.names, NAMES);
        let get = |name: &str| cols.values().zip(NAMES).find(|c| *c.1 == name).unwrap().0;
        assert_eq!(get("graph_cycle3"), vec![1.0, 1.0, 1.0, 0.0]);
        // a: b (one alert) and x (none); b: a (two alerts) and x.
        assert_eq!(get("graph_cp_alerts_mean")[..3], [0.5, 1.0, 0.5]);
        // b → x carries a NaN amount, counted as 0.
        assert_eq!(get("graph_out2_usd")[0], 0.0);
        assert!(get("graph_cp_alerted_share")[3].is_nan());
        let bad = RecordBatch::try_from_iter([
            ("from_node", col(vec![Some(0)])),
            ("to_node", col(vec![Some(1)])),
            (
                "amount_usd_sum",
                Arc::new(Float64Array::from(vec![1.0])) as ArrayRef,
            ),
            ("from_alert", col(vec![Some(2)])),
            ("to_alert", col(vec![None])),
        ])
        .unwrap();
        let e = features(&day, &bad, &mut Columns::default()).unwrap_err();
        assert!(e.to_string().contains("names alert 2"), "{e}");
    }
}
