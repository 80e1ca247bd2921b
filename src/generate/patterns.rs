//! The laundering profile's planted patterns: AMLworld's eight typologies among the laundering
//! pool, each instance spanning several addresses and days. An instance depends only on the
//! seed, its start day and its number, so any date's share of it is drawn on its own.

use super::flows::Draws;
use super::profile::{Kind, Laundering};
use super::world::{mix, World};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal};
use std::collections::BTreeMap;

/// The longest span of an instance, in days.
pub(super) const MAX_DAYS: i32 = 6;
/// The smallest pool that patterns are planted in (the largest instance has 17 addresses).
const MIN_POOL: usize = 24;
const DAY: i64 = 86_400;

/// One laundering transfer: `tx` transactions from `from` to `to`, the first at `t0`, the last
/// at `t1` (seconds since the epoch, the same day).
#[derive(Debug, Clone)]
pub(super) struct Hop {
    pub(super) from: u32,
    pub(super) to: u32,
    pub(super) usd: f64,
    pub(super) tx: u32,
    pub(super) t0: i64,
    pub(super) t1: i64,
}

impl Hop {
    /// The day of the hop, in days since the epoch.
    pub(super) fn day(&self) -> i32 {
        self.t0.div_euclid(DAY) as i32
    }
}

/// One planted pattern.
#[derive(Debug, Clone)]
pub(super) struct Instance {
    pub(super) kind: Kind,
    /// First day, in days since the epoch.
    pub(super) start: i32,
    /// Its number among the instances of its kind started that day.
    pub(super) number: usize,
    pub(super) hops: Vec<Hop>,
}

/// How many instances of each kind start every day, for `alerts` alerts a day.
fn per_day(cfg: &Laundering, alerts: usize) -> [usize; 8] {
    let total = cfg.patterns_per_laundering_alert * cfg.laundering_alert_share() * alerts as f64;
    let sum: f64 = cfg.mix.0.iter().sum();
    let mut n = [0; 8];
    if alerts == 0 || sum <= 0.0 {
        return n;
    }
    for (k, w) in cfg.mix.0.iter().enumerate() {
        if *w > 0.0 {
            n[k] = ((total * w / sum).round() as usize).max(1);
        }
    }
    n
}

/// Draws the hops of one instance.
struct Builder<'a> {
    rng: ChaCha8Rng,
    pool: &'a [u32],
    start: i64,
    span: i64,
    hops: Vec<Hop>,
    /// Per-transaction amounts just under 10,000 USD.
    structured: bool,
}

impl Builder<'_> {
    /// `k` distinct members of the pool (fewer if the pool is smaller).
    fn members(&mut self, k: usize) -> Vec<u32> {
        let k = k.min(self.pool.len());
        let mut m: Vec<u32> = Vec::with_capacity(k);
        while m.len() < k {
            let a = self.pool[self.rng.gen_range(0..self.pool.len())];
            if !m.contains(&a) {
                m.push(a);
            }
        }
        m
    }

    /// A time within the fraction `f0..f1` of the instance's span.
    fn at(&mut self, f0: f64, f1: f64) -> i64 {
        let x = self.rng.gen_range(f0..f1);
        self.start + (x * self.span as f64) as i64
    }

    /// A hop of `usd` from `from` to `to` at `t0`, split into transactions.
    fn hop(&mut self, from: u32, to: u32, usd: f64, t0: i64) {
        let tx = if self.structured {
            (usd / 9500.0).ceil().max(1.0) as u32
        } else {
            self.rng.gen_range(1..3)
        };
        let end_of_day = t0.div_euclid(DAY) * DAY + DAY - 1;
        let t1 = match tx {
            1 => t0,
            _ => (t0 + self.rng.gen_range(60..7200) * (tx as i64 - 1)).min(end_of_day),
        };
        self.hops.push(Hop {
            from,
            to,
            usd,
            tx,
            t0,
            t1,
        });
    }

    /// A laundering fee taken at each hop: 1–3%.
    fn fee(&mut self) -> f64 {
        1.0 - self.rng.gen_range(0.01..0.03)
    }

    /// A share of `total` among `k`: `total / k` within ±20%.
    fn share(&mut self, total: f64, k: usize) -> f64 {
        total / k as f64 * self.rng.gen_range(0.8..1.2)
    }

    /// Edges of a bipartite layer from `a` to `b`: each pair with probability 0.7, and every
    /// address of both sides in at least one edge.
    fn layer(&mut self, a: &[u32], b: &[u32]) -> Vec<(u32, u32)> {
        let mut e = Vec::new();
        for (i, &x) in a.iter().enumerate() {
            for (j, &y) in b.iter().enumerate() {
                if i % b.len() == j || j % a.len() == i || self.rng.gen_bool(0.7) {
                    e.push((x, y));
                }
            }
        }
        e
    }
}

/// Instance `k` of `kind` starting on day `start`.
fn instance(w: &World, seed: u64, kind: Kind, start: i32, k: usize) -> Instance {
    let key = (start as u32 as u64) << 24 | (kind as u64) << 16 | k as u64;
    let mut rng = ChaCha8Rng::seed_from_u64(mix(mix(seed ^ 0x7061_7474) ^ key));
    let days: i64 = match kind {
        Kind::FanOut | Kind::FanIn => rng.gen_range(1..=4),
        Kind::GatherScatter | Kind::ScatterGather | Kind::Stack => rng.gen_range(2..=5),
        Kind::Cycle | Kind::RandomWalk => rng.gen_range(1..=MAX_DAYS as i64),
        Kind::Bipartite => rng.gen_range(1..=3),
    };
    let structured = rng.gen_bool(0.25);
    let total = LogNormal::new(15_000f64.ln(), 0.9)
        .expect("valid")
        .sample(&mut rng);
    let offset = rng.gen_range(0..DAY / 2);
    let mut b = Builder {
        rng,
        pool: &w.illicit_ids,
        start: start as i64 * DAY + offset,
        span: days * DAY - offset,
        hops: Vec::new(),
        structured,
    };
    match kind {
        Kind::FanOut | Kind::FanIn => {
            let k = b.rng.gen_range(4..=12);
            let m = b.members(k + 1);
            for &x in &m[1..] {
                let (usd, t) = (b.share(total, k), b.at(0.0, 1.0));
                match kind {
                    Kind::FanOut => b.hop(m[0], x, usd, t),
                    _ => b.hop(x, m[0], usd, t),
                }
            }
        }
        Kind::GatherScatter | Kind::ScatterGather => {
            let (k, j) = (b.rng.gen_range(3..=8), b.rng.gen_range(3..=8));
            let m = b.members(k + j + 1);
            let (hub, first, second) = (m[0], &m[1..=k], &m[k + 1..]);
            if kind == Kind::GatherScatter {
                for &x in first {
                    let (usd, t) = (b.share(total, k), b.at(0.0, 0.5));
                    b.hop(x, hub, usd, t);
                }
                let out = total * b.fee();
                for &y in second {
                    let (usd, t) = (b.share(out, j), b.at(0.5, 1.0));
                    b.hop(hub, y, usd, t);
                }
            } else {
                for &x in first {
                    let (usd, t) = (b.share(total, k), b.at(0.0, 0.5));
                    b.hop(hub, x, usd, t);
                    let (back, t) = (usd * b.fee(), b.at(0.5, 1.0));
                    b.hop(x, second[0], back, t);
                }
            }
        }
        Kind::Cycle | Kind::RandomWalk => {
            let len = b.rng.gen_range(3..=7);
            let m = b.members(len + usize::from(kind == Kind::RandomWalk));
            let steps = if kind == Kind::Cycle {
                m.len()
            } else {
                m.len() - 1
            };
            let mut usd = total;
            for j in 0..steps {
                let f = (j as f64 + 0.2) / steps as f64;
                let t = b.at(f, f + 0.6 / steps as f64);
                b.hop(m[j], m[(j + 1) % m.len()], usd, t);
                usd *= b.fee();
            }
        }
        Kind::Bipartite | Kind::Stack => {
            let sizes = [0; 3].map(|_| b.rng.gen_range(2..=4));
            let layers = if kind == Kind::Stack { 2 } else { 1 };
            let m = b.members(sizes[..=layers].iter().sum());
            let (l0, rest) = m.split_at(sizes[0]);
            let (l1, l2) = rest.split_at(sizes[1]);
            let edges = b.layer(l0, l1);
            let per = total / edges.len() as f64;
            let phase = 1.0 / layers as f64;
            for (x, y) in edges {
                let (usd, t) = (b.share(per, 1), b.at(0.0, phase));
                b.hop(x, y, usd, t);
            }
            if layers == 2 {
                let edges = b.layer(l1, l2);
                let per = total * b.fee() / edges.len() as f64;
                for (x, y) in edges {
                    let (usd, t) = (b.share(per, 1), b.at(0.5, 1.0));
                    b.hop(x, y, usd, t);
                }
            }
        }
    }
    Instance {
        kind,
        start,
        number: k,
        hops: b.hops,
    }
}

/// Every instance with a hop on day `day` (days since the epoch), for `alerts` alerts a day.
pub(super) fn active_on(
    w: &World,
    cfg: &Laundering,
    seed: u64,
    alerts: usize,
    day: i32,
) -> Vec<Instance> {
    let counts = per_day(cfg, alerts);
    let mut out = Vec::new();
    if w.illicit_ids.len() < MIN_POOL {
        return out;
    }
    for start in day - MAX_DAYS + 1..=day {
        for (kind, &n) in Kind::ALL.iter().zip(&counts) {
            for k in 0..n {
                let i = instance(w, seed, *kind, start, k);
                if i.hops.iter().any(|h| h.day() == day) {
                    out.push(i);
                }
            }
        }
    }
    out
}

/// Adds the hops of `instances` on day `day` to `draws`; returns the addresses laundering that
/// day, each with the kind of its first instance.
pub(super) fn plant(instances: &[Instance], day: i32, draws: &mut Draws) -> BTreeMap<u32, Kind> {
    let mut active = BTreeMap::new();
    let base = day as i64 * DAY;
    for i in instances {
        for h in i.hops.iter().filter(|h| h.day() == day) {
            let at = ((h.t0 - base) as u32, (h.t1 - base) as u32);
            draws.add_at(h.from, h.to, h.usd, h.tx, at);
            active.entry(h.from).or_insert(i.kind);
            active.entry(h.to).or_insert(i.kind);
        }
    }
    active
}
