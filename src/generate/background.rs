//! The laundering profile's legitimate background: heavy-tailed activity, exchanges, recurring
//! relationships, refunds and structuring-like but legitimate payments.

use super::flows::{Draws, Flow};
use super::par;
use super::world::{mix, unit, World};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal};

/// Background draws per address and day (about 4 money flows per address once summed).
const DRAWS_PER_ADDRESS: f64 = 4.9;
/// Draws of one independently seeded block.
const BLOCK: usize = 1 << 16;
/// A prime larger than any universe: rank → address is `rank · MULT + offset mod n`.
const MULT: u64 = 2_654_435_761;

/// How active each address is: addresses are ranked by a seeded permutation, and an endpoint
/// of a flow is rank `⌊n·u³⌋` for a uniform `u`, so the share of endpoints falls as a power of
/// the rank (heavy-tailed degrees: the first ranks are exchanges).
pub(super) struct Activity {
    n: u64,
    offset: u64,
    seed: u64,
}

impl Activity {
    /// The activity ranking of `n` addresses for `seed`.
    pub(super) fn new(seed: u64, n: usize) -> Self {
        Activity {
            n: n.max(1) as u64,
            offset: mix(seed ^ 0x6163_7469) % n.max(1) as u64,
            seed,
        }
    }

    fn id(&self, rank: u64) -> u32 {
        ((rank % self.n * MULT + self.offset) % self.n) as u32
    }

    /// An address drawn by activity, from a uniform `u` in [0, 1).
    fn draw(&self, u: f64) -> u32 {
        self.id(((self.n as f64 * u * u * u) as u64).min(self.n - 1))
    }

    /// The exchanges: the most active addresses, one in 2,000 (at least two), ascending.
    pub(super) fn hubs(&self) -> Vec<u32> {
        let k = (self.n / 2000).max(2).min(self.n);
        let mut h: Vec<u32> = (0..k).map(|r| self.id(r)).collect();
        h.sort_unstable();
        h
    }

    /// Whether address `a` is a cash-intensive business that pays just under 10,000 USD.
    pub(super) fn structurer(&self, a: u32) -> bool {
        unit(mix(self.seed ^ 0x7374_7275 ^ mix(a as u64))) < 0.01
    }

    /// Address `a`'s `j`-th regular counterparty (the same on every date).
    fn regular(&self, a: u32, j: u64) -> u32 {
        self.draw(unit(mix(self.seed
            ^ 0x7265_6775
            ^ mix((a as u64) << 2 | j))))
    }
}

/// Seconds `t0..=t1` of a day for `tx` transactions starting at a random second.
fn times(rng: &mut ChaCha8Rng, tx: u32) -> (u32, u32) {
    let t0 = rng.gen_range(0..86_400);
    let t1 = if tx == 1 {
        t0
    } else {
        t0 + rng.gen_range(0..86_400 - t0)
    };
    (t0, t1)
}

/// One block of the day's background draws.
fn block(w: &World, act: &Activity, rng: &mut ChaCha8Rng, draws: usize) -> Draws {
    let amount = LogNormal::new(6.0, 1.6).expect("valid");
    let mut d = Draws(Vec::with_capacity(draws + draws / 16));
    for _ in 0..draws {
        let from = act.draw(rng.gen());
        let (from, to) = match rng.gen::<f64>() {
            x if x < 0.45 => (from, act.regular(from, rng.gen_range(0..3))),
            x if x < 0.65 => {
                let hub = w.hubs[rng.gen_range(0..w.hubs.len())];
                if rng.gen_bool(0.5) {
                    (from, hub)
                } else {
                    (hub, from)
                }
            }
            _ => (from, act.draw(rng.gen())),
        };
        let (usd, tx) = if act.structurer(from) && rng.gen_bool(0.5) {
            let tx = rng.gen_range(1..5);
            (rng.gen_range(9000.0..9990.0) * tx as f64, tx)
        } else {
            let tx = 1 + (rng.gen::<f64>().powi(3) * 20.0) as u32;
            (amount.sample(rng) * tx as f64, tx)
        };
        let at = times(rng, tx);
        d.add_at(from, to, usd, tx, at);
        if rng.gen_bool(0.03) {
            let back = rng.gen_range(0.05..1.0) * usd;
            d.add_at(to, from, back, 1, (at.1, at.1));
        }
    }
    d
}

/// The day's background draws, from the date's seed `dseed`: blocks of [`BLOCK`] draws, each
/// seeded by its number, made on up to `threads` threads and appended in block order.
pub(super) fn background(w: &World, act: &Activity, dseed: u64, threads: usize) -> Draws {
    let total = (w.len() as f64 * DRAWS_PER_ADDRESS) as usize;
    let blocks = total.div_ceil(BLOCK);
    let mut out = Draws(Vec::with_capacity(total + total / 16));
    let job = |b: usize| {
        let mut rng = ChaCha8Rng::seed_from_u64(mix(dseed ^ 0x6267 ^ mix(b as u64)));
        block(w, act, &mut rng, BLOCK.min(total - b * BLOCK)).0
    };
    par::ordered(threads, blocks, job, |part: Vec<Flow>| {
        for f in part {
            out.add_at(f.from, f.to, f.usd, f.tx, (f.t0, f.t1));
        }
    });
    out
}
