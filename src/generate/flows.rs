//! The day's money flows (benign traffic plus planted typologies), their per-address
//! aggregates, and the `money_flows` table.

use super::par;
use super::world::{mix, World};
use super::writer::{Col, Table};
use super::Day;
use crate::features::TYPOLOGIES;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal};

/// One money flow: an address pair's total in the window.
#[derive(Clone, Copy)]
pub(super) struct Flow {
    /// Sending address id.
    pub(super) from: u32,
    /// Receiving address id.
    pub(super) to: u32,
    /// Amount in USD.
    pub(super) usd: f64,
    /// Number of transactions.
    pub(super) tx: u32,
    /// While drawing, the draw's number; once merged, 1 if the reverse pair has a flow too.
    tag: u32,
    /// First transaction, in seconds after the start of the transfer day (laundering profile).
    pub(super) t0: u32,
    /// Last transaction, in seconds after the start of the transfer day (laundering profile).
    pub(super) t1: u32,
}

impl Flow {
    /// Whether the reverse pair has a flow too.
    pub(super) fn reciprocal(&self) -> bool {
        self.tag != 0
    }
}

/// The day's draws of flows, each an address pair's share; [`merge`] sums them per pair.
pub(super) struct Draws(pub(super) Vec<Flow>);

impl Draws {
    fn add(&mut self, from: u32, to: u32, usd: f64, tx: u32) {
        self.add_at(from, to, usd, tx, (0, 0));
    }

    /// Adds a draw whose transactions span seconds `t0..=t1` of the transfer day.
    pub(super) fn add_at(&mut self, from: u32, to: u32, usd: f64, tx: u32, (t0, t1): (u32, u32)) {
        if from != to {
            let tag = self.0.len() as u32;
            self.0.push(Flow {
                from,
                to,
                usd,
                tx,
                tag,
                t0,
                t1,
            });
        }
    }
}

fn pick(rng: &mut ChaCha8Rng, v: &[u32]) -> u32 {
    v[rng.gen_range(0..v.len())]
}

/// `x`'s rank in [`f64::total_cmp`] order, as an unsigned integer.
fn total_rank(x: f64) -> u64 {
    let b = x.to_bits();
    if b >> 63 == 1 {
        !b
    } else {
        b | 1 << 63
    }
}

/// The draws summed per pair, in draw order (as accumulating them in a map would), each marked
/// with whether its reverse pair has a flow too; sorted on `threads` threads.
fn merge(mut d: Vec<Flow>, threads: usize) -> Vec<Flow> {
    let pair = |f: &Flow| (f.from.min(f.to), f.from.max(f.to));
    let key = |f: &Flow| {
        let (lo, hi) = pair(f);
        (lo as u128) << 65 | (hi as u128) << 33 | ((f.from > f.to) as u128) << 32 | f.tag as u128
    };
    par::sort_by_key(&mut d, key, threads);
    let (mut out, mut i) = (0, 0);
    while i < d.len() {
        let p = pair(&d[i]);
        let end = i + d[i..].iter().take_while(|f| pair(f) == p).count();
        let both = d[i].from != d[end - 1].from;
        while i < end {
            let (from, to) = (d[i].from, d[i].to);
            let (mut usd, mut tx, mut t0, mut t1) = (0.0, 0, u32::MAX, 0);
            while i < end && d[i].from == from {
                usd += d[i].usd;
                tx += d[i].tx;
                t0 = t0.min(d[i].t0);
                t1 = t1.max(d[i].t1);
                i += 1;
            }
            let tag = both as u32;
            d[out] = Flow {
                from,
                to,
                usd,
                tx,
                tag,
                t0,
                t1,
            };
            out += 1;
        }
    }
    d.truncate(out);
    // Summing pairs can leave many draws' room unused (a third in the laundering world).
    d.shrink_to_fit();
    d
}

/// The day's flows in a deterministic order: by USD descending, then pair.
pub(super) fn sorted_day_flows(w: &World, rng: &mut ChaCha8Rng, threads: usize) -> Vec<Flow> {
    sorted(day_flows(w, rng), threads)
}

/// The draws summed per pair, by USD descending, then pair.
pub(super) fn sorted(draws: Vec<Flow>, threads: usize) -> Vec<Flow> {
    let mut flows = merge(draws, threads);
    let key = |f: &Flow| (!total_rank(f.usd) as u128) << 64 | (f.from as u128) << 32 | f.to as u128;
    par::sort_by_key(&mut flows, key, threads);
    flows
}

/// The day's flows: benign traffic plus the planted typologies.
fn day_flows(w: &World, rng: &mut ChaCha8Rng) -> Vec<Flow> {
    let n = w.len() as u32;
    let mut flows = Draws(Vec::with_capacity(n as usize * 4));
    let amount = LogNormal::new(6.0, 1.6).expect("valid");
    let benign = (n as f64 * 3.4) as usize;
    for _ in 0..benign {
        let from = rng.gen_range(0..n);
        let to = if rng.gen_bool(0.3) {
            pick(rng, &w.hubs)
        } else {
            rng.gen_range(0..n)
        };
        let tx = 1 + (rng.gen::<f64>().powi(3) * 20.0) as u32;
        flows.add(from, to, amount.sample(rng) * tx as f64, tx);
    }
    let any = |rng: &mut ChaCha8Rng| rng.gen_range(0..n);
    for &i in &w.illicit_ids {
        let size = rng.gen_range(6..20);
        let typ = TYPOLOGIES[w.home[i as usize] as usize];
        match typ {
            "MOTIF_FANIN" | "SMURFING_NETWORK" | "STRUCTURING" | "INTRADAY_STRUCTURING" => {
                for _ in 0..size {
                    let tx = rng.gen_range(1..6);
                    let usd = if typ.contains("STRUCTURING") {
                        rng.gen_range(9000.0..9990.0)
                    } else {
                        amount.sample(rng) * 3.0
                    };
                    flows.add(any(rng), i, usd * tx as f64, tx);
                }
                flows.add(i, pick(rng, &w.hubs), amount.sample(rng) * 20.0, 3);
            }
            "MOTIF_FANOUT" | "RAPID_FANOUT" => {
                for _ in 0..size {
                    let tx = rng.gen_range(1..4);
                    flows.add(i, any(rng), amount.sample(rng) * 2.0 * tx as f64, tx);
                }
            }
            "PEEL_CHAIN" | "LAYERING_PATH" => {
                let mut cur = i;
                let mut usd = amount.sample(rng) * 50.0;
                for _ in 0..size / 2 {
                    let next = if rng.gen_bool(0.4) {
                        pick(rng, &w.illicit_ids)
                    } else {
                        any(rng)
                    };
                    flows.add(cur, next, usd, 1);
                    flows.add(cur, any(rng), usd * 0.05, 1);
                    usd *= 0.9;
                    cur = next;
                }
            }
            "CYCLE_DETECTION" | "PING_PONG" => {
                let j = pick(rng, &w.illicit_ids);
                let k = pick(rng, &w.illicit_ids);
                let usd = amount.sample(rng) * 10.0;
                flows.add(i, j, usd, 4);
                flows.add(j, k, usd * 0.97, 4);
                flows.add(k, i, usd * 0.94, 4);
                flows.add(j, i, usd * 0.5, 2);
            }
            "MIXING_BEHAVIOR" => {
                let mixer = if w.mixers.is_empty() {
                    i
                } else {
                    pick(rng, &w.mixers)
                };
                for _ in 0..size {
                    flows.add(any(rng), mixer, 1000.0 * rng.gen_range(0.98..1.02), 1);
                    flows.add(mixer, any(rng), 1000.0 * rng.gen_range(0.97..1.0), 1);
                }
                flows.add(i, mixer, amount.sample(rng) * 10.0, 5);
            }
            _ => {
                for _ in 0..size / 2 {
                    flows.add(
                        i,
                        pick(rng, &w.hubs),
                        amount.sample(rng) * 8.0,
                        rng.gen_range(2..12),
                    );
                    flows.add(pick(rng, &w.illicit_ids), i, amount.sample(rng) * 4.0, 2);
                }
            }
        }
    }
    flows.0
}

/// Per-address aggregates of the day's flows.
#[derive(Default, Clone)]
pub(super) struct Agg {
    din: u32,
    dout: u32,
    inu: f64,
    outu: f64,
    intx: u32,
    outtx: u32,
    max: f64,
    min: f64,
    structuring: u32,
    sq: f64,
}

/// An address's aggregates as the feature table reads them.
pub(super) struct AggRow {
    /// Degree in.
    pub(super) din: f64,
    /// Degree out.
    pub(super) dout: f64,
    /// USD in.
    pub(super) inu: f64,
    /// USD out.
    pub(super) outu: f64,
    /// Transactions in.
    pub(super) txin: f64,
    /// Transactions out.
    pub(super) txout: f64,
    /// Largest average transaction of a flow, in USD.
    pub(super) max: f64,
    /// Smallest average transaction of a flow, in USD (0 without flows).
    pub(super) min: f64,
    /// Share of the flows whose average transaction is just under 10,000 USD.
    pub(super) structuring: f64,
    /// Sum of the squared average transactions.
    pub(super) sq: f64,
}

impl Agg {
    /// The aggregates of every address (indexed by address id) over `flows`, in their order;
    /// each of up to `threads` threads takes a range of addresses.
    pub(super) fn of_flows(n: usize, flows: &[Flow], threads: usize) -> Vec<Agg> {
        let mut agg = vec![
            Agg {
                min: f64::INFINITY,
                ..Agg::default()
            };
            n
        ];
        par::for_parts(&mut agg, threads, |first, part| {
            let range = first as u32..(first + part.len()) as u32;
            for fl in flows {
                let avg = fl.usd / fl.tx as f64;
                for (a, incoming) in [(fl.from, false), (fl.to, true)] {
                    if !range.contains(&a) {
                        continue;
                    }
                    let g = &mut part[(a - range.start) as usize];
                    if incoming {
                        g.din += 1;
                        g.inu += fl.usd;
                        g.intx += fl.tx;
                    } else {
                        g.dout += 1;
                        g.outu += fl.usd;
                        g.outtx += fl.tx;
                    }
                    g.max = g.max.max(avg);
                    g.min = g.min.min(avg);
                    g.sq += avg * avg;
                    g.structuring += (9000.0..10000.0).contains(&avg) as u32;
                }
            }
        });
        agg
    }

    /// Number of counterparties (in plus out).
    pub(super) fn degree(&self) -> u32 {
        self.din + self.dout
    }

    /// USD in plus USD out.
    pub(super) fn volume(&self) -> f64 {
        self.inu + self.outu
    }

    /// The aggregates as floats, for the feature table.
    pub(super) fn row(&self) -> AggRow {
        let deg = (self.din + self.dout).max(1) as f64;
        let min = if self.min.is_finite() { self.min } else { 0.0 };
        AggRow {
            din: self.din as f64,
            dout: self.dout as f64,
            inu: self.inu,
            outu: self.outu,
            txin: self.intx as f64,
            txout: self.outtx as f64,
            max: self.max,
            min,
            structuring: self.structuring as f64 / deg,
            sq: self.sq,
        }
    }
}

/// The timing columns of the `money_flows` table: first and last seen, active days, hourly and
/// weekly patterns.
type Timing<'a> = [Col<'a>; 5];

/// The classic profile's timing: first and last seen anywhere in the window, up to three
/// transactions' hours and weekdays from the row's hash.
fn window_timing<'a>(day: &'a Day, flows: &'a [Flow]) -> Timing<'a> {
    let dseed = day.dseed;
    let (midnight_ms, window_ms, window_days) =
        (day.midnight_ms, day.window_ms, day.opts.window_days);
    let pattern = move |k: usize, out: &mut Vec<i64>, (slots, step, shift): (usize, u32, u32)| {
        let (h, f) = (mix(dseed ^ k as u64), &flows[k]);
        let start = out.len();
        out.resize(start + slots, 0);
        for j in 0..f.tx.min(3) {
            let share = f.tx / f.tx.min(3) + u32::from(j < f.tx % f.tx.min(3));
            out[start + ((h >> (j * step + shift)) % slots as u64) as usize] += i64::from(share);
        }
    };
    [
        Col::i64(move |k| {
            midnight_ms - window_ms + (mix(dseed ^ k as u64 ^ 7) % window_ms as u64 / 2) as i64
        }),
        Col::i64(move |k| midnight_ms - (mix(dseed ^ k as u64 ^ 8) % window_ms as u64 / 2) as i64),
        Col::i64(move |k| flows[k].tx.min(window_days) as i64),
        Col::list_i64(24, move |k, out| pattern(k, out, (24, 5, 0))),
        Col::list_i64(7, move |k, out| pattern(k, out, (7, 3, 20))),
    ]
}

/// The laundering profile's timing: every transaction on the transfer day (the day before the
/// processing date), between the flow's first and last second; the first in the hour of
/// `t0`, the last in the hour of `t1`, the others in hours between from the row's hash.
fn day_timing<'a>(day: &'a Day, flows: &'a [Flow]) -> Timing<'a> {
    let (dseed, start_ms) = (day.dseed, day.midnight_ms - 86_400_000);
    // The transfer day's weekday, Monday 0 (1970-01-01 was a Thursday).
    let weekday = (day.days32 - 1 + 3).rem_euclid(7) as usize;
    [
        Col::i64(move |k| start_ms + flows[k].t0 as i64 * 1000),
        Col::i64(move |k| start_ms + flows[k].t1 as i64 * 1000),
        Col::i64(|_| 1),
        Col::list_i64(24, move |k, out| {
            let f = &flows[k];
            let (h0, h1) = (f.t0 as u64 / 3600, f.t1 as u64 / 3600);
            let start = out.len();
            out.resize(start + 24, 0);
            out[start + h0 as usize] += 1;
            if f.tx > 1 {
                out[start + h1 as usize] += 1;
            }
            let h = mix(dseed ^ k as u64);
            for j in 2..f.tx as u64 {
                out[start + (h0 + mix(h ^ j) % (h1 - h0 + 1)) as usize] += 1;
            }
        }),
        Col::list_i64(7, move |k, out| {
            let start = out.len();
            out.resize(start + 7, 0);
            out[start + weekday] = flows[k].tx as i64;
        }),
    ]
}

/// The `money_flows` table of the day.
pub(super) fn flows_table<'a>(day: &'a Day, flows: &'a [Flow]) -> Table<'a> {
    let (w, window_days) = (day.world, day.opts.window_days);
    let recip = move |k: usize| {
        let f = &flows[k];
        match f.reciprocal() {
            true => 0.5f32.min(f.usd as f32 / (f.usd as f32 + 1.0)),
            false => 0.0,
        }
    };
    let [first, last, active, hourly, weekly] = match day.laundering {
        None => window_timing(day, flows),
        Some(_) => day_timing(day, flows),
    };
    let mut t = Table::new(flows.len());
    t.push("from_address", Col::str(move |k| w.addr(flows[k].from)))
        .push("to_address", Col::str(move |k| w.addr(flows[k].to)))
        .push("tx_count", Col::i64(move |k| flows[k].tx as i64))
        .push("amount_sum", Col::dec(move |k| flows[k].usd / 1.7))
        .push("amount_usd_sum", Col::dec(move |k| flows[k].usd))
        .push("first_seen_timestamp", first)
        .push("last_seen_timestamp", last)
        .push("active_days", active)
        .push(
            "avg_tx_size_usd",
            Col::dec(move |k| flows[k].usd / flows[k].tx as f64),
        )
        .push(
            "unique_assets",
            Col::i64(move |k| 1 + (flows[k].tx > 5) as i64),
        )
        .push(
            "dominant_asset",
            Col::str(move |k| if flows[k].usd > 5000.0 { "USDT" } else { "TOR" }),
        )
        .push("hourly_pattern", hourly)
        .push("weekly_pattern", weekly)
        .push("reciprocity_ratio", Col::f32(recip))
        .push("is_bidirectional", Col::bool(move |k| recip(k) > 0.0))
        .push("processing_date", Col::str(move |_| &day.date_s))
        .push("window_days", Col::i64(move |_| window_days as i64));
    t.encoded(day.encoding);
    t
}
