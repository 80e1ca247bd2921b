//! The `features` table: address features from the day's flow aggregates plus noise,
//! shifted moderately for illicit addresses; most anomaly scores and `is_*` flags disappear
//! from the drift date on, as upstream's did.

use super::flows::AggRow;
use super::world::{mix, unit};
use super::writer::{Col, Table};
use super::Day;
use chrono::NaiveDate;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// Date from which upstream dropped the anomaly scores and most `is_*` flags.
fn drift_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 11, 14).expect("valid date")
}

/// The `features` table of the day: one row per `active` address, `rows` its aggregates.
pub(super) fn feature_table(
    day: &Day,
    rows: &[AggRow],
    active: &[u32],
    rng: &mut ChaCha8Rng,
) -> Table {
    let (w, opts, days32) = (day.world, day.opts, day.days32);
    let (midnight_ms, window_ms) = (day.midnight_ms, day.window_ms);
    let n = active.len();
    let drift = day.date >= drift_date();
    let ill: Vec<bool> = active.iter().map(|&a| w.illicit[a as usize]).collect();
    let noise = Normal::new(0.0, 0.18).expect("valid");
    let mut score = |base: f64, shift: f64| -> Vec<f32> {
        (0..n)
            .map(|i| {
                (base + noise.sample(rng) + if ill[i] { shift } else { 0.0 }).clamp(0.0, 1.0) as f32
            })
            .collect()
    };
    let col = |f: &dyn Fn(&AggRow) -> f64| rows.iter().map(f).collect::<Vec<f64>>();
    let din = col(&|r| r.din);
    let dout = col(&|r| r.dout);
    let inu = col(&|r| r.inu);
    let outu = col(&|r| r.outu);
    let txin = col(&|r| r.txin);
    let txout = col(&|r| r.txout);
    let div = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let mut t = Table::new();
    let ints = |v: &[f64]| Col::I64(v.iter().map(|&x| x as i64).collect());
    let total: Vec<f64> = (0..n).map(|i| inu[i] + outu[i]).collect();
    let txt: Vec<f64> = (0..n).map(|i| txin[i] + txout[i]).collect();
    let mean_amt: Vec<f64> = (0..n).map(|i| div(total[i], txt[i])).collect();
    let var: Vec<f64> = (0..n)
        .map(|i| (div(rows[i].sq, din[i] + dout[i]) - mean_amt[i] * mean_amt[i]).abs())
        .collect();
    let hash = |i: usize, k: u64| unit(mix(mix(active[i] as u64 ^ opts.seed) ^ k ^ days32 as u64));
    t.push("window_days", Col::I64(vec![opts.window_days as i64; n]))
        .push("processing_date", Col::Date(days32, n))
        .push(
            "address",
            Col::Str(active.iter().map(|&a| w.addr[a as usize].clone()).collect()),
        )
        .push("degree_in", ints(&din))
        .push("degree_out", ints(&dout))
        .push(
            "degree_total",
            ints(&(0..n).map(|i| din[i] + dout[i]).collect::<Vec<_>>()),
        )
        .push(
            "unique_counterparties",
            ints(&(0..n).map(|i| din[i] + dout[i]).collect::<Vec<_>>()),
        )
        .push("total_in_usd", Col::Dec(inu.clone()))
        .push("total_out_usd", Col::Dec(outu.clone()))
        .push(
            "net_flow_usd",
            Col::Dec((0..n).map(|i| inu[i] - outu[i]).collect()),
        )
        .push("total_volume_usd", Col::Dec(total.clone()))
        .push(
            "avg_tx_in_usd",
            Col::Dec((0..n).map(|i| div(inu[i], txin[i])).collect()),
        )
        .push(
            "avg_tx_out_usd",
            Col::Dec((0..n).map(|i| div(outu[i], txout[i])).collect()),
        )
        .push(
            "median_tx_in_usd",
            Col::Dec(
                (0..n)
                    .map(|i| div(inu[i], txin[i]) * (0.6 + 0.4 * hash(i, 1)))
                    .collect(),
            ),
        )
        .push(
            "median_tx_out_usd",
            Col::Dec(
                (0..n)
                    .map(|i| div(outu[i], txout[i]) * (0.6 + 0.4 * hash(i, 2)))
                    .collect(),
            ),
        )
        .push("max_tx_usd", Col::Dec(col(&|r| r.max)))
        .push("min_tx_usd", Col::Dec(col(&|r| r.min)))
        .push("amount_variance", Col::F64(var.clone()))
        .push(
            "amount_skewness",
            Col::F64((0..n).map(|i| (hash(i, 3) - 0.5) * 4.0).collect()),
        )
        .push(
            "amount_kurtosis",
            Col::F64((0..n).map(|i| hash(i, 4) * 10.0).collect()),
        )
        .push(
            "volume_std",
            Col::F64(var.iter().map(|v| v.sqrt()).collect()),
        )
        .push(
            "volume_cv",
            Col::F64((0..n).map(|i| div(var[i].sqrt(), mean_amt[i])).collect()),
        )
        .push(
            "flow_concentration",
            Col::F64(
                (0..n)
                    .map(|i| div(rows[i].max, total[i]).min(1.0))
                    .collect(),
            ),
        )
        .push("tx_in_count", ints(&txin))
        .push("tx_out_count", ints(&txout))
        .push("tx_total_count", ints(&txt))
        .push(
            "activity_days",
            Col::I64(
                txt.iter()
                    .map(|&x| (x as i64).min(opts.window_days as i64))
                    .collect(),
            ),
        )
        .push(
            "activity_span_days",
            Col::I64(
                (0..n)
                    .map(|i| (hash(i, 5) * opts.window_days as f64) as i64)
                    .collect(),
            ),
        )
        .push(
            "avg_daily_volume_usd",
            Col::Dec(total.iter().map(|v| v / opts.window_days as f64).collect()),
        )
        .push(
            "peak_hour",
            Col::I64((0..n).map(|i| (hash(i, 6) * 24.0) as i64).collect()),
        )
        .push(
            "peak_day",
            Col::I64((0..n).map(|i| (hash(i, 7) * 7.0) as i64).collect()),
        )
        .push("regularity_score", Col::F32(score(0.5, -0.1)))
        .push("burst_factor", Col::F32(score(0.3, 0.2)))
        .push("reciprocity_ratio", Col::F32(score(0.2, 0.1)))
        .push("flow_diversity", Col::F32(score(0.5, 0.0)))
        .push(
            "counterparty_concentration",
            Col::F32((0..n).map(|i| div(1.0, din[i] + dout[i]) as f32).collect()),
        )
        .push("concentration_ratio", Col::F32(score(0.4, 0.05)))
        .push("velocity_score", Col::F32(score(0.35, 0.2)))
        .push(
            "structuring_score",
            Col::F32(
                (0..n)
                    .map(|i| (rows[i].structuring * 0.7 + 0.1 * hash(i, 8)) as f32)
                    .collect(),
            ),
        )
        .push(
            "unique_assets_in",
            Col::I64((0..n).map(|i| 1 + (hash(i, 9) * 3.0) as i64).collect()),
        )
        .push(
            "unique_assets_out",
            Col::I64((0..n).map(|i| 1 + (hash(i, 10) * 3.0) as i64).collect()),
        )
        .push("dominant_asset_in", Col::Str(vec!["TOR".to_string(); n]))
        .push("dominant_asset_out", Col::Str(vec!["TOR".to_string(); n]))
        .push("asset_diversity_score", Col::F32(score(0.3, 0.0)));
    let hourly: Vec<u32> = (0..n * 24)
        .map(|k| (mix(active[k / 24] as u64 ^ k as u64 ^ days32 as u64) % 4) as u32)
        .collect();
    let daily: Vec<u32> = (0..n * 7)
        .map(|k| (mix(active[k / 7] as u64 ^ k as u64 ^ 77) % 6) as u32)
        .collect();
    t.push("hourly_activity", Col::ListI64(hourly, 24))
        .push("daily_activity", Col::ListI64(daily, 7))
        .push(
            "peak_activity_hour",
            Col::I64((0..n).map(|i| (hash(i, 11) * 24.0) as i64).collect()),
        )
        .push(
            "peak_activity_day",
            Col::I64((0..n).map(|i| (hash(i, 12) * 7.0) as i64).collect()),
        )
        .push("hourly_entropy", Col::F32(score(0.6, -0.1)))
        .push("daily_entropy", Col::F32(score(0.6, 0.0)))
        .push("weekend_transaction_ratio", Col::F32(score(0.28, 0.0)))
        .push("night_transaction_ratio", Col::F32(score(0.2, 0.12)))
        .push("small_transaction_ratio", Col::F32(score(0.4, 0.1)))
        .push("consistency_score", Col::F32(score(0.5, -0.1)))
        .push(
            "pagerank",
            Col::F32(
                (0..n)
                    .map(|i| ((din[i] + 1.0) / 1e4 * (0.5 + hash(i, 13))) as f32)
                    .collect(),
            ),
        )
        .push(
            "betweenness",
            Col::F32(
                (0..n)
                    .map(|i| (hash(i, 14) * 0.01 * (din[i] + dout[i]).sqrt()) as f32)
                    .collect(),
            ),
        )
        .push("closeness", Col::F32(score(0.3, 0.05)))
        .push("clustering_coefficient", Col::F32(score(0.1, 0.05)))
        .push(
            "kcore",
            Col::I64(
                (0..n)
                    .map(|i| (din[i] + dout[i]).min(1.0 + hash(i, 15) * 8.0) as i64)
                    .collect(),
            ),
        )
        .push(
            "community_id",
            Col::I64((0..n).map(|i| (hash(i, 16) * 1000.0) as i64).collect()),
        )
        .push("centrality_score", Col::F32(score(0.2, 0.08)))
        .push(
            "khop1_count",
            ints(&(0..n).map(|i| din[i] + dout[i]).collect::<Vec<_>>()),
        )
        .push(
            "khop2_count",
            ints(
                &(0..n)
                    .map(|i| (din[i] + dout[i]) * (3.0 + hash(i, 17) * 4.0))
                    .collect::<Vec<_>>(),
            ),
        )
        .push(
            "khop3_count",
            ints(
                &(0..n)
                    .map(|i| (din[i] + dout[i]) * (10.0 + hash(i, 18) * 20.0))
                    .collect::<Vec<_>>(),
            ),
        )
        .push("khop1_volume_usd", Col::Dec(total.clone()))
        .push(
            "khop2_volume_usd",
            Col::Dec(
                total
                    .iter()
                    .enumerate()
                    .map(|(i, v)| v * (2.0 + hash(i, 19) * 3.0))
                    .collect(),
            ),
        )
        .push(
            "khop3_volume_usd",
            Col::Dec(
                total
                    .iter()
                    .enumerate()
                    .map(|(i, v)| v * (5.0 + hash(i, 20) * 10.0))
                    .collect(),
            ),
        )
        .push("flow_reciprocity_entropy", Col::F32(score(0.3, 0.05)))
        .push("counterparty_stability", Col::F32(score(0.5, -0.15)))
        .push("flow_burstiness", Col::F32(score(0.3, 0.15)))
        .push("transaction_regularity", Col::F32(score(0.5, -0.1)))
        .push("amount_predictability", Col::F32(score(0.4, 0.1)));
    if !drift {
        t.push("behavioral_anomaly_score", Col::F32(score(0.25, 0.2)))
            .push("graph_anomaly_score", Col::F32(score(0.25, 0.15)))
            .push("neighborhood_anomaly_score", Col::F32(score(0.25, 0.1)))
            .push("global_anomaly_score", Col::F32(score(0.25, 0.18)))
            .push(
                "outlier_transactions",
                Col::I64(
                    (0..n)
                        .map(|i| (hash(i, 21) * if ill[i] { 8.0 } else { 4.0 }) as i64)
                        .collect(),
                ),
            )
            .push("suspicious_pattern_score", Col::F32(score(0.2, 0.2)))
            .push(
                "is_exchange_like",
                Col::Bool(active.iter().map(|&a| w.hub[a as usize]).collect()),
            )
            .push(
                "is_whale",
                Col::Bool(total.iter().map(|&v| v > 1e6).collect()),
            )
            .push(
                "is_mixer_like",
                Col::Bool(
                    (0..n)
                        .map(|i| w.mixer[active[i] as usize] && hash(i, 22) < 0.7)
                        .collect(),
                ),
            )
            .push(
                "is_contract_like",
                Col::Bool((0..n).map(|i| hash(i, 23) < 0.05).collect()),
            );
    }
    t.push(
        "is_new_address",
        Col::Bool(
            (0..n)
                .map(|i| hash(i, 24) < if ill[i] { 0.25 } else { 0.1 })
                .collect(),
        ),
    )
    .push(
        "is_dormant_reactivated",
        Col::Bool(
            (0..n)
                .map(|i| hash(i, 25) < if ill[i] { 0.1 } else { 0.03 })
                .collect(),
        ),
    );
    if !drift {
        t.push(
            "is_high_volume_trader",
            Col::Bool(total.iter().map(|&v| v > 2e5).collect()),
        )
        .push(
            "is_hub_address",
            Col::Bool(active.iter().map(|&a| w.hub[a as usize]).collect()),
        )
        .push(
            "is_retail_active",
            Col::Bool((0..n).map(|i| txt[i] > 5.0 && total[i] < 5e4).collect()),
        )
        .push(
            "is_whale_inactive",
            Col::Bool((0..n).map(|i| hash(i, 26) < 0.01).collect()),
        )
        .push(
            "is_retail_inactive",
            Col::Bool((0..n).map(|i| txt[i] <= 2.0).collect()),
        )
        .push(
            "is_regular_user",
            Col::Bool((0..n).map(|i| hash(i, 27) < 0.5).collect()),
        );
    }
    t.push("unique_recipients_count", ints(&dout))
        .push("unique_senders_count", ints(&din))
        .push("completeness_score", Col::F32(score(0.8, 0.0)))
        .push("quality_score", Col::F32(score(0.7, 0.0)))
        .push("outlier_score", Col::F32(score(0.2, 0.15)))
        .push("confidence_score", Col::F32(score(0.6, 0.0)))
        .push(
            "first_activity_timestamp",
            Col::I64(
                (0..n)
                    .map(|i| midnight_ms - (hash(i, 28) * window_ms as f64) as i64)
                    .collect(),
            ),
        )
        .push(
            "last_activity_timestamp",
            Col::I64(
                (0..n)
                    .map(|i| midnight_ms - (hash(i, 29) * 86_400_000.0) as i64)
                    .collect(),
            ),
        );
    t
}
