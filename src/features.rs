//! The model matrix: the canonical alert features, their order, and how they are computed.
//!
//! One row per alert. Every value is an `f64`; a missing value is NaN (LightGBM's missing
//! value). Strings never enter the matrix and no feature is derived from labels. The list and
//! a one-line formula per feature are documented in `docs/features.md`.

use crate::batch::Tables;
use crate::contract::column;
use anyhow::{anyhow, Result};
use arrow::array::{Array, ArrayRef, AsArray, Float64Array, ListArray, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use chrono::{Datelike, NaiveDate};
use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;

/// Address feature columns read from `features.parquet` (each optional), in matrix order.
/// In the matrix each is named with the prefix `af_`.
pub const ADDRESS_FEATURES: &[&str] = &[
    "degree_in",
    "degree_out",
    "degree_total",
    "unique_counterparties",
    "total_in_usd",
    "total_out_usd",
    "net_flow_usd",
    "total_volume_usd",
    "avg_tx_in_usd",
    "avg_tx_out_usd",
    "median_tx_in_usd",
    "median_tx_out_usd",
    "max_tx_usd",
    "min_tx_usd",
    "amount_variance",
    "amount_skewness",
    "amount_kurtosis",
    "volume_std",
    "volume_cv",
    "flow_concentration",
    "tx_in_count",
    "tx_out_count",
    "tx_total_count",
    "activity_days",
    "activity_span_days",
    "avg_daily_volume_usd",
    "peak_hour",
    "peak_day",
    "regularity_score",
    "burst_factor",
    "reciprocity_ratio",
    "flow_diversity",
    "counterparty_concentration",
    "concentration_ratio",
    "velocity_score",
    "structuring_score",
    "unique_assets_in",
    "unique_assets_out",
    "asset_diversity_score",
    "hourly_entropy",
    "daily_entropy",
    "weekend_transaction_ratio",
    "night_transaction_ratio",
    "small_transaction_ratio",
    "consistency_score",
    "pagerank",
    "betweenness",
    "closeness",
    "clustering_coefficient",
    "kcore",
    "centrality_score",
    "khop1_count",
    "khop2_count",
    "khop3_count",
    "khop1_volume_usd",
    "khop2_volume_usd",
    "khop3_volume_usd",
    "flow_reciprocity_entropy",
    "counterparty_stability",
    "flow_burstiness",
    "transaction_regularity",
    "amount_predictability",
    "behavioral_anomaly_score",
    "graph_anomaly_score",
    "neighborhood_anomaly_score",
    "global_anomaly_score",
    "outlier_transactions",
    "suspicious_pattern_score",
    "is_exchange_like",
    "is_whale",
    "is_mixer_like",
    "is_contract_like",
    "is_new_address",
    "is_dormant_reactivated",
    "is_high_volume_trader",
    "is_hub_address",
    "is_retail_active",
    "is_whale_inactive",
    "is_retail_inactive",
    "is_regular_user",
    "unique_recipients_count",
    "unique_senders_count",
    "completeness_score",
    "quality_score",
    "outlier_score",
    "confidence_score",
];

/// Features computed from the alert itself, the calendar, the day's other alerts, the money
/// flows and the clusters, in matrix order (before the `af_*` address features).
pub const DERIVED_FEATURES: &[&str] = &[
    "alert_confidence_score",
    "volume_usd",
    "volume_usd_log",
    "severity_encoded",
    "address_type_encoded",
    "typology_code",
    "risk_indicator_count",
    "day_of_week",
    "day_of_month",
    "month",
    "is_weekend",
    "is_month_end",
    "volume_zscore",
    "volume_percentile",
    "confidence_zscore",
    "addr_alert_count",
    "addr_typology_count",
    "addr_volume_sum",
    "addr_volume_mean",
    "addr_volume_std",
    "addr_volume_max",
    "addr_confidence_max",
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
    "in_cluster",
    "cluster_count",
    "cluster_max_alerts",
    "cluster_max_volume_usd",
    "cluster_max_addresses",
];

/// Address-history features (see [`crate::history`]), in matrix order, between the derived
/// features and the `af_*` address features: alerts and summed alert volume over the previous
/// 7 and 30 dates, and the distinct dates alerted in the previous 30 (all 0 without history).
pub const HISTORY_FEATURES: &[&str] = &[
    "hist_alerts_7d",
    "hist_volume_usd_7d",
    "hist_alerts_30d",
    "hist_volume_usd_30d",
    "hist_alert_days_30d",
];

/// Known typologies; `typology_code` is the index in this list (unknown = NaN).
pub const TYPOLOGIES: &[&str] = &[
    "PEEL_CHAIN",
    "STRUCTURING",
    "PING_PONG",
    "HUB_ANOMALY",
    "FRESH_TO_EXCHANGE",
    "RAPID_FANOUT",
    "MIXING_BEHAVIOR",
    "INTRADAY_STRUCTURING",
    "VELOCITY_ANOMALY",
    "TIME_BASED_PATTERN",
    "CYCLE_DETECTION",
    "LAYERING_PATH",
    "SMURFING_NETWORK",
    "PROXIMITY_RISK",
    "MOTIF_FANIN",
    "MOTIF_FANOUT",
];

/// The canonical alert feature names, in matrix order.
pub fn alert_feature_names() -> Vec<String> {
    DERIVED_FEATURES
        .iter()
        .chain(HISTORY_FEATURES)
        .map(|s| s.to_string())
        .chain(ADDRESS_FEATURES.iter().map(|s| format!("af_{s}")))
        .collect()
}

/// Severity as a number: low 1, medium 2, high 3, critical 4; anything else 2.
pub fn severity_code(s: &str) -> f64 {
    match s {
        "low" => 1.0,
        "medium" => 2.0,
        "high" => 3.0,
        "critical" => 4.0,
        _ => 2.0,
    }
}

/// Suspected address type as a number (unknown or other = 0).
pub fn address_type_code(s: &str) -> f64 {
    match s {
        "exchange" => 1.0,
        "mixer" => 2.0,
        "defi" => 3.0,
        "contract" => 4.0,
        "eoa" => 5.0,
        "wallet" => 6.0,
        "merchant" => 7.0,
        "institutional" => 8.0,
        _ => 0.0,
    }
}

fn f64_col(b: &RecordBatch, name: &str) -> Result<Float64Array> {
    Ok(column(b, name)
        .ok_or_else(|| anyhow!("internal: column `{name}` missing"))?
        .as_primitive()
        .clone())
}

fn str_col(b: &RecordBatch, name: &str) -> Result<StringArray> {
    Ok(column(b, name)
        .ok_or_else(|| anyhow!("internal: column `{name}` missing"))?
        .as_string::<i32>()
        .clone())
}

fn list_col(b: &RecordBatch, name: &str) -> Result<ListArray> {
    Ok(column(b, name)
        .ok_or_else(|| anyhow!("internal: column `{name}` missing"))?
        .as_list::<i32>()
        .clone())
}

fn list_values(l: &ListArray, i: usize) -> Vec<String> {
    if l.is_null(i) {
        return Vec::new();
    }
    let v = l.value(i);
    let s = v.as_string::<i32>();
    s.iter().flatten().map(str::to_owned).collect()
}

/// Mean and sample standard deviation (NaN for no values).
fn mean_std(xs: &[f64]) -> (f64, f64) {
    crate::metrics::mean_std(xs).unwrap_or((f64::NAN, f64::NAN))
}

/// Percentile rank with ties averaged (pandas `rank(pct=True)`).
fn pct_rank(xs: &[f64]) -> Vec<f64> {
    let n = xs.len() as f64;
    crate::metrics::average_ranks(xs)
        .into_iter()
        .map(|r| r / n)
        .collect()
}

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

/// Builds the matrix (`alert_id`, `address`, then [`alert_feature_names`]) from decoded tables
/// and the date's address-history table ([`crate::history::load`]).
pub fn build_matrix(date: NaiveDate, t: &Tables, history: &RecordBatch) -> Result<RecordBatch> {
    let get = |n: &str| {
        t.get(n)
            .map(|b| &b.0)
            .ok_or_else(|| anyhow!("internal: table `{n}` missing"))
    };
    let alerts = get("alerts")?;
    let feats = get("features")?;
    let clusters = get("clusters")?;
    let flows = get("flows")?;
    let n = alerts.num_rows();

    let ids = str_col(alerts, "alert_id")?;
    let addr = str_col(alerts, "address")?;
    let typ = str_col(alerts, "typology_type")?;
    let sev = str_col(alerts, "severity")?;
    let atype = str_col(alerts, "suspected_address_type")?;
    let conf = f64_col(alerts, "alert_confidence_score")?;
    let vol = f64_col(alerts, "volume_usd")?;
    let nri = f64_col(alerts, "risk_indicator_count")?;

    let mut cols: Vec<Vec<f64>> = Vec::with_capacity(
        DERIVED_FEATURES.len() + HISTORY_FEATURES.len() + ADDRESS_FEATURES.len(),
    );
    let get_f = |a: &Float64Array, i: usize| if a.is_null(i) { f64::NAN } else { a.value(i) };

    // Alert.
    let conf_v: Vec<f64> = (0..n).map(|i| get_f(&conf, i)).collect();
    let vol_v: Vec<f64> = (0..n).map(|i| get_f(&vol, i)).collect();
    cols.push(conf_v.clone());
    cols.push(vol_v.clone());
    cols.push(vol_v.iter().map(|v| v.max(0.0).ln_1p()).collect());
    cols.push((0..n).map(|i| severity_code(sev.value(i))).collect());
    cols.push((0..n).map(|i| address_type_code(atype.value(i))).collect());
    cols.push(
        (0..n)
            .map(|i| {
                TYPOLOGIES
                    .iter()
                    .position(|t| *t == typ.value(i))
                    .map_or(f64::NAN, |p| p as f64)
            })
            .collect(),
    );
    cols.push((0..n).map(|i| get_f(&nri, i)).collect());

    // Calendar (the processing date).
    let dow = date.weekday().num_days_from_monday() as f64;
    let dom = date.day() as f64;
    for v in [
        dow,
        dom,
        date.month() as f64,
        (dow >= 5.0) as u8 as f64,
        (dom >= 25.0) as u8 as f64,
    ] {
        cols.push(vec![v; n]);
    }

    // Within the day.
    let finite = |xs: &[f64]| {
        xs.iter()
            .copied()
            .filter(|x| x.is_finite())
            .collect::<Vec<_>>()
    };
    let z = |xs: &[f64]| {
        let (m, s) = mean_std(&finite(xs));
        xs.iter()
            .map(|x| {
                if s > 0.0 && x.is_finite() {
                    (x - m) / s
                } else {
                    0.0
                }
            })
            .collect::<Vec<_>>()
    };
    cols.push(z(&vol_v));
    cols.push(pct_rank(&vol_v));
    cols.push(z(&conf_v));
    let mut by_addr: HashMap<&str, Vec<usize>> = HashMap::default();
    for i in 0..n {
        by_addr.entry(addr.value(i)).or_default().push(i);
    }
    let mut a_count = vec![0.0; n];
    let mut a_typ = vec![0.0; n];
    let mut a_sum = vec![0.0; n];
    let mut a_mean = vec![0.0; n];
    let mut a_std = vec![0.0; n];
    let mut a_max = vec![0.0; n];
    let mut a_cmax = vec![0.0; n];
    for rows in by_addr.values() {
        let vs: Vec<f64> = rows
            .iter()
            .map(|&i| vol_v[i])
            .filter(|v| v.is_finite())
            .collect();
        let (m, s) = mean_std(&vs);
        let mut types: Vec<&str> = rows.iter().map(|&i| typ.value(i)).collect();
        types.sort_unstable();
        types.dedup();
        let mx = vs.iter().copied().fold(f64::NAN, f64::max);
        let cmx = rows.iter().map(|&i| conf_v[i]).fold(f64::NAN, f64::max);
        let sum: f64 = vs.iter().sum();
        for &i in rows {
            a_count[i] = rows.len() as f64;
            a_typ[i] = types.len() as f64;
            a_sum[i] = sum;
            a_mean[i] = m;
            a_std[i] = s;
            a_max[i] = mx;
            a_cmax[i] = cmx;
        }
    }
    cols.extend([a_count, a_typ, a_sum, a_mean, a_std, a_max, a_cmax]);

    // Money flows, for alerted addresses.
    let mut addr_idx: HashMap<&str, u32> =
        HashMap::with_capacity_and_hasher(by_addr.len(), Default::default());
    let mut addr_names: Vec<&str> = by_addr.keys().copied().collect();
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
    let alert_net: Vec<&[f64; 11]> = (0..n)
        .map(|i| &net[addr_idx[addr.value(i)] as usize])
        .collect();
    for j in 0..11 {
        cols.push(alert_net.iter().map(|row| row[j]).collect());
    }

    // Clusters containing the alert (by related_alert_ids, else primary_alert_id, else address).
    let row_of: HashMap<&str, usize> = (0..n).map(|i| (ids.value(i), i)).collect();
    let mut c_count = vec![0.0; n];
    let mut c_alerts = vec![f64::NAN; n];
    let mut c_vol = vec![f64::NAN; n];
    let mut c_addrs = vec![f64::NAN; n];
    {
        let rel = list_col(clusters, "related_alert_ids")?;
        let inv = list_col(clusters, "addresses_involved")?;
        let prim = str_col(clusters, "primary_alert_id")?;
        let total = f64_col(clusters, "total_alerts")?;
        let cvol = f64_col(clusters, "total_volume_usd")?;
        for c in 0..clusters.num_rows() {
            let members = cluster_members(c, &rel, &prim, &inv, &row_of, &by_addr);
            let n_addr = list_values(&inv, c).len() as f64;
            for i in members {
                c_count[i] += 1.0;
                c_alerts[i] = nan_max(c_alerts[i], get_f(&total, c));
                c_vol[i] = nan_max(c_vol[i], get_f(&cvol, c));
                c_addrs[i] = nan_max(c_addrs[i], n_addr);
            }
        }
    }
    cols.push(c_count.iter().map(|&c| (c > 0.0) as u8 as f64).collect());
    cols.extend([c_count, c_alerts, c_vol, c_addrs]);

    // Address history, joined on address (absent = no history = 0).
    {
        let haddr = str_col(history, "address")?;
        let hrow: HashMap<&str, usize> = (0..haddr.len()).map(|r| (haddr.value(r), r)).collect();
        let rows: Vec<Option<usize>> = (0..n).map(|i| hrow.get(addr.value(i)).copied()).collect();
        for name in HISTORY_FEATURES {
            let c = f64_col(history, name)?;
            cols.push(rows.iter().map(|r| r.map_or(0.0, |r| c.value(r))).collect());
        }
    }

    // Address features, joined on address (first row per address wins).
    let faddr = str_col(feats, "address")?;
    let mut frow: HashMap<&str, usize> =
        HashMap::with_capacity_and_hasher(faddr.len(), Default::default());
    for r in 0..faddr.len() {
        if let Some(a) = faddr.is_valid(r).then(|| faddr.value(r)) {
            frow.entry(a).or_insert(r);
        }
    }
    let rows: Vec<Option<usize>> = (0..n).map(|i| frow.get(addr.value(i)).copied()).collect();
    for name in ADDRESS_FEATURES {
        let c = f64_col(feats, name)?;
        cols.push(
            rows.iter()
                .map(|r| r.map_or(f64::NAN, |r| get_f(&c, r)))
                .collect(),
        );
    }

    let names = alert_feature_names();
    debug_assert_eq!(names.len(), cols.len());
    let mut fields = vec![
        Field::new("alert_id", DataType::Utf8, false),
        Field::new("address", DataType::Utf8, false),
    ];
    fields.extend(
        names
            .iter()
            .map(|n| Field::new(n, DataType::Float64, false)),
    );
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(ids.clone()), Arc::new(addr.clone())];
    arrays.extend(
        cols.into_iter()
            .map(|c| Arc::new(Float64Array::from(c)) as ArrayRef),
    );
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
}

fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() {
        b
    } else if b.is_nan() {
        a
    } else {
        a.max(b)
    }
}

/// Matrix rows of a cluster's member alerts: its `related_alert_ids`, else its
/// `primary_alert_id`, else the alerts of its `addresses_involved`; ascending, distinct.
fn cluster_members(
    c: usize,
    rel: &ListArray,
    prim: &StringArray,
    inv: &ListArray,
    row_of: &HashMap<&str, usize>,
    by_addr: &HashMap<&str, Vec<usize>>,
) -> Vec<usize> {
    let mut m: Vec<usize> = list_values(rel, c)
        .iter()
        .filter_map(|id| row_of.get(id.as_str()).copied())
        .collect();
    if m.is_empty() && prim.is_valid(c) {
        m.extend(row_of.get(prim.value(c)).copied());
    }
    if m.is_empty() {
        for a in list_values(inv, c) {
            m.extend(by_addr.get(a.as_str()).into_iter().flatten().copied());
        }
    }
    m.sort_unstable();
    m.dedup();
    m
}

/// Extracts the named feature columns of a matrix as one row-major `f64` buffer.
pub fn row_major(matrix: &RecordBatch, names: &[String]) -> Result<Vec<f64>> {
    let n = matrix.num_rows();
    let cols: Vec<Float64Array> = names
        .iter()
        .map(|f| {
            column(matrix, f)
                .map(|c| c.as_primitive().clone())
                .ok_or_else(|| {
                    anyhow!("the model needs feature `{f}`, which this pipeline does not compute")
                })
        })
        .collect::<Result<_>>()?;
    let mut out = Vec::with_capacity(n * names.len());
    for r in 0..n {
        out.extend(cols.iter().map(|c| c.value(r)));
    }
    Ok(out)
}

/// Cluster-level feature names: the cluster's own fields, then `mean_`/`max_` of each alert feature over its members.
pub fn cluster_feature_names() -> Vec<String> {
    let mut v: Vec<String> = CLUSTER_OWN.iter().map(|s| s.to_string()).collect();
    for f in alert_feature_names() {
        v.push(format!("mean_{f}"));
        v.push(format!("max_{f}"));
    }
    v
}

const CLUSTER_OWN: &[&str] = &[
    "member_count",
    "cluster_total_alerts",
    "cluster_total_volume_usd",
    "cluster_confidence_avg",
    "cluster_severity_max",
    "cluster_type_code",
    "cluster_address_count",
];

/// Matrix rows of each cluster's member alerts (see [`cluster_members`]).
pub fn cluster_memberships(
    clusters: &RecordBatch,
    matrix: &RecordBatch,
) -> Result<Vec<Vec<usize>>> {
    let ids = str_col(matrix, "alert_id")?;
    let addr = str_col(matrix, "address")?;
    let n = matrix.num_rows();
    let row_of: HashMap<&str, usize> = (0..n).map(|i| (ids.value(i), i)).collect();
    let mut by_addr: HashMap<&str, Vec<usize>> = HashMap::default();
    for i in 0..n {
        by_addr.entry(addr.value(i)).or_default().push(i);
    }
    let rel = list_col(clusters, "related_alert_ids")?;
    let inv = list_col(clusters, "addresses_involved")?;
    let prim = str_col(clusters, "primary_alert_id")?;
    Ok((0..clusters.num_rows())
        .map(|c| cluster_members(c, &rel, &prim, &inv, &row_of, &by_addr))
        .collect())
}

/// Builds the cluster matrix (`cluster_id`, then [`cluster_feature_names`]) from the clusters,
/// the alert matrix and each cluster's member rows ([`cluster_memberships`]).
pub fn build_cluster_matrix(
    clusters: &RecordBatch,
    matrix: &RecordBatch,
    members: &[Vec<usize>],
) -> Result<RecordBatch> {
    let feats: Vec<Float64Array> = alert_feature_names()
        .iter()
        .map(|f| f64_col(matrix, f))
        .collect::<Result<_>>()?;
    let cid = str_col(clusters, "cluster_id")?;
    let ctype = str_col(clusters, "cluster_type")?;
    let inv = list_col(clusters, "addresses_involved")?;
    let total = f64_col(clusters, "total_alerts")?;
    let cvol = f64_col(clusters, "total_volume_usd")?;
    let cconf = f64_col(clusters, "confidence_avg")?;
    let csev = str_col(clusters, "severity_max")?;
    let m = clusters.num_rows();
    let width = cluster_feature_names().len();
    let mut cols: Vec<Vec<f64>> = vec![Vec::with_capacity(m); width];
    let get_f = |a: &Float64Array, i: usize| if a.is_null(i) { f64::NAN } else { a.value(i) };
    for c in 0..m {
        let members = &members[c];
        let own = [
            members.len() as f64,
            get_f(&total, c),
            get_f(&cvol, c),
            get_f(&cconf, c),
            if csev.is_null(c) {
                f64::NAN
            } else {
                severity_code(csev.value(c))
            },
            match if ctype.is_null(c) { "" } else { ctype.value(c) } {
                "same_entity" => 1.0,
                "related_network" => 2.0,
                "same_pattern" => 3.0,
                "time_based" => 4.0,
                _ => 0.0,
            },
            list_values(&inv, c).len() as f64,
        ];
        for (k, v) in own.into_iter().enumerate() {
            cols[k].push(v);
        }
        for (j, f) in feats.iter().enumerate() {
            let vs: Vec<f64> = members
                .iter()
                .map(|&i| f.value(i))
                .filter(|v| !v.is_nan())
                .collect();
            let mean = if vs.is_empty() {
                f64::NAN
            } else {
                vs.iter().sum::<f64>() / vs.len() as f64
            };
            let max = vs.iter().copied().fold(f64::NAN, nan_max);
            cols[CLUSTER_OWN.len() + 2 * j].push(mean);
            cols[CLUSTER_OWN.len() + 2 * j + 1].push(max);
        }
    }
    let mut fields = vec![Field::new("cluster_id", DataType::Utf8, false)];
    fields.extend(
        cluster_feature_names()
            .iter()
            .map(|n| Field::new(n, DataType::Float64, false)),
    );
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(cid.clone())];
    arrays.extend(
        cols.into_iter()
            .map(|c| Arc::new(Float64Array::from(c)) as ArrayRef),
    );
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_ranks_average_ties() {
        assert_eq!(
            pct_rank(&[10.0, 20.0, 20.0, 5.0]),
            vec![0.5, 0.875, 0.875, 0.25]
        );
    }

    #[test]
    fn names_are_unique() {
        let mut n = alert_feature_names();
        let len = n.len();
        n.sort();
        n.dedup();
        assert_eq!(n.len(), len);
    }
}
