//! The day's money flows (benign traffic plus planted typologies), their per-address
//! aggregates, and the `money_flows` table.

use super::world::{mix, World};
use super::writer::{Col, Table};
use super::Day;
use crate::features::TYPOLOGIES;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal};
use std::collections::{HashMap, HashSet};

/// One aggregated money flow (an address pair in the window).
#[derive(Clone, Copy, Default)]
pub(super) struct Flow {
    /// Amount in USD.
    pub(super) usd: f64,
    /// Number of transactions.
    pub(super) tx: u32,
}

/// A day's flows as `((from, to), flow)`, in their deterministic order.
pub(super) type Flows = Vec<((u32, u32), Flow)>;

fn add_flow(flows: &mut HashMap<(u32, u32), Flow>, from: u32, to: u32, usd: f64, tx: u32) {
    if from == to {
        return;
    }
    let f = flows.entry((from, to)).or_default();
    f.usd += usd;
    f.tx += tx;
}

fn pick(rng: &mut ChaCha8Rng, v: &[u32]) -> u32 {
    v[rng.gen_range(0..v.len())]
}

/// The day's flows in a deterministic order: by USD descending, then pair.
pub(super) fn sorted_day_flows(w: &World, rng: &mut ChaCha8Rng) -> Flows {
    let mut flows: Flows = day_flows(w, rng).into_iter().collect();
    flows.sort_unstable_by(|a, b| b.1.usd.total_cmp(&a.1.usd).then(a.0.cmp(&b.0)));
    flows
}

/// The day's flows: benign traffic plus the planted typologies.
fn day_flows(w: &World, rng: &mut ChaCha8Rng) -> HashMap<(u32, u32), Flow> {
    let n = w.addr.len() as u32;
    let mut flows: HashMap<(u32, u32), Flow> = HashMap::with_capacity(n as usize * 4);
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
        add_flow(&mut flows, from, to, amount.sample(rng) * tx as f64, tx);
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
                    add_flow(&mut flows, any(rng), i, usd * tx as f64, tx);
                }
                add_flow(
                    &mut flows,
                    i,
                    pick(rng, &w.hubs),
                    amount.sample(rng) * 20.0,
                    3,
                );
            }
            "MOTIF_FANOUT" | "RAPID_FANOUT" => {
                for _ in 0..size {
                    let tx = rng.gen_range(1..4);
                    add_flow(
                        &mut flows,
                        i,
                        any(rng),
                        amount.sample(rng) * 2.0 * tx as f64,
                        tx,
                    );
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
                    add_flow(&mut flows, cur, next, usd, 1);
                    add_flow(&mut flows, cur, any(rng), usd * 0.05, 1);
                    usd *= 0.9;
                    cur = next;
                }
            }
            "CYCLE_DETECTION" | "PING_PONG" => {
                let j = pick(rng, &w.illicit_ids);
                let k = pick(rng, &w.illicit_ids);
                let usd = amount.sample(rng) * 10.0;
                add_flow(&mut flows, i, j, usd, 4);
                add_flow(&mut flows, j, k, usd * 0.97, 4);
                add_flow(&mut flows, k, i, usd * 0.94, 4);
                add_flow(&mut flows, j, i, usd * 0.5, 2);
            }
            "MIXING_BEHAVIOR" => {
                let mixer = if w.mixers.is_empty() {
                    i
                } else {
                    pick(rng, &w.mixers)
                };
                for _ in 0..size {
                    add_flow(
                        &mut flows,
                        any(rng),
                        mixer,
                        1000.0 * rng.gen_range(0.98..1.02),
                        1,
                    );
                    add_flow(
                        &mut flows,
                        mixer,
                        any(rng),
                        1000.0 * rng.gen_range(0.97..1.0),
                        1,
                    );
                }
                add_flow(&mut flows, i, mixer, amount.sample(rng) * 10.0, 5);
            }
            _ => {
                for _ in 0..size / 2 {
                    add_flow(
                        &mut flows,
                        i,
                        pick(rng, &w.hubs),
                        amount.sample(rng) * 8.0,
                        rng.gen_range(2..12),
                    );
                    add_flow(
                        &mut flows,
                        pick(rng, &w.illicit_ids),
                        i,
                        amount.sample(rng) * 4.0,
                        2,
                    );
                }
            }
        }
    }
    flows
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
    /// The aggregates of every address (indexed by address id) over `flows`.
    pub(super) fn of_flows(n: usize, flows: &Flows) -> Vec<Agg> {
        let mut agg = vec![
            Agg {
                min: f64::INFINITY,
                ..Agg::default()
            };
            n
        ];
        for &((f, t), fl) in flows {
            let avg = fl.usd / fl.tx as f64;
            for (a, incoming) in [(f, false), (t, true)] {
                let g = &mut agg[a as usize];
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

/// The `money_flows` table of the day.
pub(super) fn flows_table(day: &Day, flows: &Flows) -> Table {
    let (w, dseed) = (day.world, day.dseed);
    let (midnight_ms, window_ms) = (day.midnight_ms, day.window_ms);
    let pair_set: HashSet<(u32, u32)> = flows.iter().map(|f| f.0).collect();
    let nf = flows.len();
    let mut hourly = Vec::with_capacity(nf * 24);
    let mut weekly = Vec::with_capacity(nf * 7);
    for (k, f) in flows.iter().enumerate() {
        let h = mix(dseed ^ k as u64);
        let mut hrs = [0u32; 24];
        let mut wk = [0u32; 7];
        for j in 0..f.1.tx.min(3) {
            let share = f.1.tx / f.1.tx.min(3) + u32::from(j < f.1.tx % f.1.tx.min(3));
            hrs[((h >> (j * 5)) % 24) as usize] += share;
            wk[((h >> (j * 3 + 20)) % 7) as usize] += share;
        }
        hourly.extend_from_slice(&hrs);
        weekly.extend_from_slice(&wk);
    }
    let recip: Vec<f32> = flows
        .iter()
        .map(|((a, b), f)| match pair_set.contains(&(*b, *a)) {
            true => 0.5f32.min(f.usd as f32 / (f.usd as f32 + 1.0)),
            false => 0.0,
        })
        .collect();
    let mut t = Table::new();
    t.push(
        "from_address",
        Col::Str(
            flows
                .iter()
                .map(|f| w.addr[f.0 .0 as usize].clone())
                .collect(),
        ),
    )
    .push(
        "to_address",
        Col::Str(
            flows
                .iter()
                .map(|f| w.addr[f.0 .1 as usize].clone())
                .collect(),
        ),
    )
    .push(
        "tx_count",
        Col::I64(flows.iter().map(|f| f.1.tx as i64).collect()),
    )
    .push(
        "amount_sum",
        Col::Dec(flows.iter().map(|f| f.1.usd / 1.7).collect()),
    )
    .push(
        "amount_usd_sum",
        Col::Dec(flows.iter().map(|f| f.1.usd).collect()),
    )
    .push(
        "first_seen_timestamp",
        Col::I64(
            flows
                .iter()
                .enumerate()
                .map(|(k, _)| {
                    midnight_ms - window_ms
                        + (mix(dseed ^ k as u64 ^ 7) % window_ms as u64 / 2) as i64
                })
                .collect(),
        ),
    )
    .push(
        "last_seen_timestamp",
        Col::I64(
            flows
                .iter()
                .enumerate()
                .map(|(k, _)| {
                    midnight_ms - (mix(dseed ^ k as u64 ^ 8) % window_ms as u64 / 2) as i64
                })
                .collect(),
        ),
    )
    .push(
        "active_days",
        Col::I64(
            flows
                .iter()
                .map(|f| f.1.tx.min(day.opts.window_days) as i64)
                .collect(),
        ),
    )
    .push(
        "avg_tx_size_usd",
        Col::Dec(flows.iter().map(|f| f.1.usd / f.1.tx as f64).collect()),
    )
    .push(
        "unique_assets",
        Col::I64(flows.iter().map(|f| 1 + (f.1.tx > 5) as i64).collect()),
    )
    .push(
        "dominant_asset",
        Col::Str(
            flows
                .iter()
                .map(|f| if f.1.usd > 5000.0 { "USDT" } else { "TOR" }.to_string())
                .collect(),
        ),
    )
    .push("hourly_pattern", Col::ListI64(hourly, 24))
    .push("weekly_pattern", Col::ListI64(weekly, 7))
    .push("reciprocity_ratio", Col::F32(recip.clone()))
    .push(
        "is_bidirectional",
        Col::Bool(recip.iter().map(|&r| r > 0.0).collect()),
    )
    .push("processing_date", Col::Str(vec![day.date_s.clone(); nf]))
    .push(
        "window_days",
        Col::I64(vec![day.opts.window_days as i64; nf]),
    );
    t
}
