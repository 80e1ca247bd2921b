//! The `features` table: address features from the day's flow aggregates plus noise,
//! shifted moderately for illicit addresses (in the laundering profile, by a fraction of
//! that); most anomaly scores and `is_*` flags disappear
//! from the drift date on, as upstream's did.

use super::flows::{Agg, AggRow};
use super::world::{mix, unit};
use super::writer::{Col, Table, CHUNK};
use super::Day;
use chrono::NaiveDate;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Date from which upstream dropped the anomaly scores and most `is_*` flags.
fn drift_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 11, 14).expect("valid date")
}

/// The noise of the score columns: the date's random stream from where the alerts left it,
/// `rows` normal draws per score column, column after column. [`Noise::prepare`] walks the
/// stream once and records where each chunk of each column starts, so that chunks can then be
/// drawn in any order, on any thread. A [`Noise::seeded`] noise instead seeds each chunk of
/// each column on its own, with nothing to walk.
pub(super) struct Noise {
    start: ChaCha8Rng,
    /// The seed of the chunks of a [`Noise::seeded`] noise.
    chunk_seed: Option<u64>,
    rows: usize,
    columns: AtomicUsize,
    /// Word position of chunk `c` of column `k`, at `k * chunks + c`.
    starts: OnceLock<Vec<u128>>,
}

impl Noise {
    /// The noise of `rows` rows per column, drawn from `rng` on.
    pub(super) fn new(rng: ChaCha8Rng, rows: usize) -> Self {
        Noise {
            start: rng,
            chunk_seed: None,
            rows,
            columns: AtomicUsize::new(0),
            starts: OnceLock::new(),
        }
    }

    /// The noise of `rows` rows per column, each chunk of each column seeded by `seed`, the
    /// column's number and the chunk's.
    pub(super) fn seeded(seed: u64, rows: usize) -> Self {
        Noise {
            chunk_seed: Some(seed),
            ..Noise::new(ChaCha8Rng::seed_from_u64(seed), rows)
        }
    }

    fn normal() -> Normal<f64> {
        Normal::new(0.0, 0.18).expect("valid")
    }

    /// Records where every chunk starts, for the columns made so far.
    pub(super) fn prepare(&self) {
        if self.chunk_seed.is_some() {
            return;
        }
        let (mut rng, normal) = (self.start.clone(), Self::normal());
        let mut starts = Vec::new();
        for _ in 0..self.columns.load(Ordering::SeqCst) {
            for r in 0..self.rows {
                if r % CHUNK == 0 {
                    starts.push(rng.get_word_pos());
                }
                normal.sample(&mut rng);
            }
        }
        assert!(self.starts.set(starts).is_ok(), "noise prepared once");
    }

    /// The next score column: `base` plus noise, plus `shift` for illicit rows, within [0, 1].
    fn column<'a>(
        &'a self,
        base: f64,
        shift: f64,
        ill: impl Fn(usize) -> bool + Sync + 'a,
    ) -> Col<'a> {
        let k = self.columns.fetch_add(1, Ordering::SeqCst);
        Col::F32(Box::new(move |r, out| {
            let chunk = r.start / CHUNK;
            let mut rng = match self.chunk_seed {
                Some(seed) => {
                    ChaCha8Rng::seed_from_u64(mix(seed ^ mix((k as u64) << 32 | chunk as u64)))
                }
                None => {
                    let starts = self.starts.get().expect("noise prepared");
                    let mut rng = self.start.clone();
                    rng.set_word_pos(starts[k * self.rows.div_ceil(CHUNK) + chunk]);
                    rng
                }
            };
            let normal = Self::normal();
            out.extend(r.map(|i| {
                (base + normal.sample(&mut rng) + if ill(i) { shift } else { 0.0 }).clamp(0.0, 1.0)
                    as f32
            }));
        }))
    }
}

/// An address's aggregates with the figures derived from them.
struct Row {
    r: AggRow,
    /// USD in plus out.
    total: f64,
    /// Transactions in plus out.
    txt: f64,
    /// Variance of the flows' average transactions.
    var: f64,
}

fn div(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

/// The `features` table of the day: one row per `active` address; score columns draw `noise`.
pub(super) fn feature_table<'a>(
    day: &'a Day,
    agg: &'a [Agg],
    active: &'a [u32],
    noise: &'a Noise,
) -> Table<'a> {
    let (w, opts, days32) = (day.world, day.opts, day.days32);
    let (midnight_ms, window_ms, window_days) = (day.midnight_ms, day.window_ms, opts.window_days);
    let drift = day.date >= drift_date();
    // The laundering profile scales the score shifts down and leaves the flags alone.
    let (scale, flags) = day
        .laundering
        .map_or((1.0, true), |l| (l.feature_shift, false));
    let ill = move |i: usize| w.illicit[active[i] as usize];
    let flag = move |i: usize| flags && ill(i);
    let score = |base: f64, shift: f64| noise.column(base, shift * scale, ill);
    let row = move |i: usize| {
        let r = agg[active[i] as usize].row();
        let (total, txt) = (r.inu + r.outu, r.txin + r.txout);
        let mean_amt = div(total, txt);
        let var = (div(r.sq, r.din + r.dout) - mean_amt * mean_amt).abs();
        Row { r, total, txt, var }
    };
    let deg = move |i: usize| {
        let r = agg[active[i] as usize].row();
        r.din + r.dout
    };
    let hash =
        move |i: usize, k: u64| unit(mix(mix(active[i] as u64 ^ opts.seed) ^ k ^ days32 as u64));
    let mut t = Table::new(active.len());
    t.encoded(day.encoding);
    t.push("window_days", Col::i64(move |_| window_days as i64))
        .push("processing_date", Col::Date(days32))
        .push("address", Col::str(move |i| w.addr(active[i])))
        .push("degree_in", Col::i64(move |i| row(i).r.din as i64))
        .push("degree_out", Col::i64(move |i| row(i).r.dout as i64))
        .push("degree_total", Col::i64(move |i| deg(i) as i64))
        .push("unique_counterparties", Col::i64(move |i| deg(i) as i64))
        .push("total_in_usd", Col::dec(move |i| row(i).r.inu))
        .push("total_out_usd", Col::dec(move |i| row(i).r.outu))
        .push(
            "net_flow_usd",
            Col::dec(move |i| {
                let r = row(i).r;
                r.inu - r.outu
            }),
        )
        .push("total_volume_usd", Col::dec(move |i| row(i).total))
        .push(
            "avg_tx_in_usd",
            Col::dec(move |i| {
                let r = row(i).r;
                div(r.inu, r.txin)
            }),
        )
        .push(
            "avg_tx_out_usd",
            Col::dec(move |i| {
                let r = row(i).r;
                div(r.outu, r.txout)
            }),
        )
        .push(
            "median_tx_in_usd",
            Col::dec(move |i| {
                let r = row(i).r;
                div(r.inu, r.txin) * (0.6 + 0.4 * hash(i, 1))
            }),
        )
        .push(
            "median_tx_out_usd",
            Col::dec(move |i| {
                let r = row(i).r;
                div(r.outu, r.txout) * (0.6 + 0.4 * hash(i, 2))
            }),
        )
        .push("max_tx_usd", Col::dec(move |i| row(i).r.max))
        .push("min_tx_usd", Col::dec(move |i| row(i).r.min))
        .push("amount_variance", Col::f64(move |i| row(i).var))
        .push(
            "amount_skewness",
            Col::f64(move |i| (hash(i, 3) - 0.5) * 4.0),
        )
        .push("amount_kurtosis", Col::f64(move |i| hash(i, 4) * 10.0))
        .push("volume_std", Col::f64(move |i| row(i).var.sqrt()))
        .push(
            "volume_cv",
            Col::f64(move |i| {
                let x = row(i);
                div(x.var.sqrt(), div(x.total, x.txt))
            }),
        )
        .push(
            "flow_concentration",
            Col::f64(move |i| {
                let x = row(i);
                div(x.r.max, x.total).min(1.0)
            }),
        )
        .push("tx_in_count", Col::i64(move |i| row(i).r.txin as i64))
        .push("tx_out_count", Col::i64(move |i| row(i).r.txout as i64))
        .push("tx_total_count", Col::i64(move |i| row(i).txt as i64))
        .push(
            "activity_days",
            Col::i64(move |i| (row(i).txt as i64).min(window_days as i64)),
        )
        .push(
            "activity_span_days",
            Col::i64(move |i| (hash(i, 5) * window_days as f64) as i64),
        )
        .push(
            "avg_daily_volume_usd",
            Col::dec(move |i| row(i).total / window_days as f64),
        )
        .push("peak_hour", Col::i64(move |i| (hash(i, 6) * 24.0) as i64))
        .push("peak_day", Col::i64(move |i| (hash(i, 7) * 7.0) as i64))
        .push("regularity_score", score(0.5, -0.1))
        .push("burst_factor", score(0.3, 0.2))
        .push("reciprocity_ratio", score(0.2, 0.1))
        .push("flow_diversity", score(0.5, 0.0))
        .push(
            "counterparty_concentration",
            Col::f32(move |i| div(1.0, deg(i)) as f32),
        )
        .push("concentration_ratio", score(0.4, 0.05))
        .push("velocity_score", score(0.35, 0.2))
        .push(
            "structuring_score",
            Col::f32(move |i| (row(i).r.structuring * 0.7 + 0.1 * hash(i, 8)) as f32),
        )
        .push(
            "unique_assets_in",
            Col::i64(move |i| 1 + (hash(i, 9) * 3.0) as i64),
        )
        .push(
            "unique_assets_out",
            Col::i64(move |i| 1 + (hash(i, 10) * 3.0) as i64),
        )
        .push("dominant_asset_in", Col::str(|_| "TOR"))
        .push("dominant_asset_out", Col::str(|_| "TOR"))
        .push("asset_diversity_score", score(0.3, 0.0))
        .push(
            "hourly_activity",
            Col::list_i64(24, move |i, out| {
                let a = active[i] as u64;
                out.extend(
                    (i * 24..i * 24 + 24).map(|k| (mix(a ^ k as u64 ^ days32 as u64) % 4) as i64),
                );
            }),
        )
        .push(
            "daily_activity",
            Col::list_i64(7, move |i, out| {
                let a = active[i] as u64;
                out.extend((i * 7..i * 7 + 7).map(|k| (mix(a ^ k as u64 ^ 77) % 6) as i64));
            }),
        )
        .push(
            "peak_activity_hour",
            Col::i64(move |i| (hash(i, 11) * 24.0) as i64),
        )
        .push(
            "peak_activity_day",
            Col::i64(move |i| (hash(i, 12) * 7.0) as i64),
        )
        .push("hourly_entropy", score(0.6, -0.1))
        .push("daily_entropy", score(0.6, 0.0))
        .push("weekend_transaction_ratio", score(0.28, 0.0))
        .push("night_transaction_ratio", score(0.2, 0.12))
        .push("small_transaction_ratio", score(0.4, 0.1))
        .push("consistency_score", score(0.5, -0.1))
        .push(
            "pagerank",
            Col::f32(move |i| ((row(i).r.din + 1.0) / 1e4 * (0.5 + hash(i, 13))) as f32),
        )
        .push(
            "betweenness",
            Col::f32(move |i| (hash(i, 14) * 0.01 * deg(i).sqrt()) as f32),
        )
        .push("closeness", score(0.3, 0.05))
        .push("clustering_coefficient", score(0.1, 0.05))
        .push(
            "kcore",
            Col::i64(move |i| deg(i).min(1.0 + hash(i, 15) * 8.0) as i64),
        )
        .push(
            "community_id",
            Col::i64(move |i| (hash(i, 16) * 1000.0) as i64),
        )
        .push("centrality_score", score(0.2, 0.08))
        .push("khop1_count", Col::i64(move |i| deg(i) as i64))
        .push(
            "khop2_count",
            Col::i64(move |i| (deg(i) * (3.0 + hash(i, 17) * 4.0)) as i64),
        )
        .push(
            "khop3_count",
            Col::i64(move |i| (deg(i) * (10.0 + hash(i, 18) * 20.0)) as i64),
        )
        .push("khop1_volume_usd", Col::dec(move |i| row(i).total))
        .push(
            "khop2_volume_usd",
            Col::dec(move |i| row(i).total * (2.0 + hash(i, 19) * 3.0)),
        )
        .push(
            "khop3_volume_usd",
            Col::dec(move |i| row(i).total * (5.0 + hash(i, 20) * 10.0)),
        )
        .push("flow_reciprocity_entropy", score(0.3, 0.05))
        .push("counterparty_stability", score(0.5, -0.15))
        .push("flow_burstiness", score(0.3, 0.15))
        .push("transaction_regularity", score(0.5, -0.1))
        .push("amount_predictability", score(0.4, 0.1));
    if !drift {
        t.push("behavioral_anomaly_score", score(0.25, 0.2))
            .push("graph_anomaly_score", score(0.25, 0.15))
            .push("neighborhood_anomaly_score", score(0.25, 0.1))
            .push("global_anomaly_score", score(0.25, 0.18))
            .push(
                "outlier_transactions",
                Col::i64(move |i| (hash(i, 21) * if flag(i) { 8.0 } else { 4.0 }) as i64),
            )
            .push("suspicious_pattern_score", score(0.2, 0.2))
            .push(
                "is_exchange_like",
                Col::bool(move |i| w.hub[active[i] as usize]),
            )
            .push("is_whale", Col::bool(move |i| row(i).total > 1e6))
            .push(
                "is_mixer_like",
                Col::bool(move |i| w.mixer[active[i] as usize] && hash(i, 22) < 0.7),
            )
            .push("is_contract_like", Col::bool(move |i| hash(i, 23) < 0.05));
    }
    t.push(
        "is_new_address",
        Col::bool(move |i| hash(i, 24) < if flag(i) { 0.25 } else { 0.1 }),
    )
    .push(
        "is_dormant_reactivated",
        Col::bool(move |i| hash(i, 25) < if flag(i) { 0.1 } else { 0.03 }),
    );
    if !drift {
        t.push(
            "is_high_volume_trader",
            Col::bool(move |i| row(i).total > 2e5),
        )
        .push(
            "is_hub_address",
            Col::bool(move |i| w.hub[active[i] as usize]),
        )
        .push(
            "is_retail_active",
            Col::bool(move |i| {
                let x = row(i);
                x.txt > 5.0 && x.total < 5e4
            }),
        )
        .push("is_whale_inactive", Col::bool(move |i| hash(i, 26) < 0.01))
        .push("is_retail_inactive", Col::bool(move |i| row(i).txt <= 2.0))
        .push("is_regular_user", Col::bool(move |i| hash(i, 27) < 0.5));
    }
    t.push(
        "unique_recipients_count",
        Col::i64(move |i| row(i).r.dout as i64),
    )
    .push(
        "unique_senders_count",
        Col::i64(move |i| row(i).r.din as i64),
    )
    .push("completeness_score", score(0.8, 0.0))
    .push("quality_score", score(0.7, 0.0))
    .push("outlier_score", score(0.2, 0.15))
    .push("confidence_score", score(0.6, 0.0))
    .push(
        "first_activity_timestamp",
        Col::i64(move |i| midnight_ms - (hash(i, 28) * window_ms as f64) as i64),
    )
    .push(
        "last_activity_timestamp",
        Col::i64(move |i| midnight_ms - (hash(i, 29) * 86_400_000.0) as i64),
    );
    t
}
