//! The model matrix: the canonical alert features, their order, and how they are computed.
//!
//! One row per alert. Every value is an `f64`; a missing value is NaN (LightGBM's missing
//! value). Strings never enter the matrix and no feature is derived from labels. The list and
//! a one-line formula per feature are documented in `docs/features.md`.
//!
//! The features come in groups, one function each, in matrix order: the alert itself, the
//! calendar and the day's other alerts ([`alert`]), the money flows ([`flows`]), the clusters
//! ([`clusters`]), the flow graph around the address ([`graph`]), then the address history
//! and the address features ([`joins`]). Every group
//! pushes each column together with its name, and [`build_matrix`] refuses a matrix whose
//! names are not [`alert_feature_names`] in order, so a column can never be mislabelled.

mod alert;
mod clusters;
mod flows;
mod graph;
mod joins;
pub(crate) mod keys;

pub use clusters::{build_cluster_matrix, cluster_feature_names, cluster_memberships};
pub use flows::{Network, NETWORK};
pub(crate) use graph::shapes;
pub use graph::{GRAPH_FEATURES, HUB_DEGREE, SHAPE_FEATURES};

use crate::batch::{Table, Tables};
use crate::contract::column;
use anyhow::{anyhow, bail, Result};
use arrow::array::{Array, ArrayRef, AsArray, Float64Array, ListArray, StringArray};
use arrow::datatypes::{DataType, Field, Float64Type, Schema};
use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
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

/// Address-history features (see [`crate::history`]), in matrix order, between the graph
/// features ([`GRAPH_FEATURES`]) and the `af_*` address features: alerts and summed alert
/// volume over the previous 7 and 30 dates, and the distinct dates alerted in the previous 30
/// (all 0 without history); then the money flows over the same windows
/// ([`FLOW_HISTORY_FEATURES`]), the last of them the shapes of the previous 7 dates' flow graph
/// ([`WINDOW_SHAPE_FEATURES`]).
pub const HISTORY_FEATURES: &[&str] = &[
    "hist_alerts_7d",
    "hist_volume_usd_7d",
    "hist_alerts_30d",
    "hist_volume_usd_30d",
    "hist_alert_days_30d",
    "hist_out_usd_7d",
    "hist_in_usd_7d",
    "hist_out_cp_days_7d",
    "hist_in_cp_days_7d",
    "hist_flow_days_7d",
    "hist_out_usd_30d",
    "hist_in_usd_30d",
    "hist_out_cp_days_30d",
    "hist_in_cp_days_30d",
    "hist_flow_days_30d",
    "hist_out_days_30d",
    "hist_cps_7d",
    "hist_cps_30d",
    "hist_new_cps_7d",
    "hist_out_cps_30d",
    "hist_in_cps_30d",
    "hist_gather_scatter_7d",
    "hist_in_fan_max_7d",
    "hist_out_fan_max_7d",
    "hist_sg_sinks_7d",
    "hist_sg_sources_7d",
    "hist_co_senders_7d",
    "hist_co_receivers_7d",
    "hist_cycle2_7d",
    "hist_cycle3_7d",
    "hist_cycle4_7d",
];

/// The address-history features made of the previous dates' money flows (the last of
/// [`HISTORY_FEATURES`]): computed, like the graph features, only when a model of the run uses
/// one ([`graph_features_needed`]), NaN otherwise.
pub const FLOW_HISTORY_FEATURES: &[&str] = HISTORY_FEATURES.split_at(ALERT_HISTORY_LEN).1;

/// The address-history features made of the previous dates' alerts (the first five of
/// [`HISTORY_FEATURES`]), always computed.
pub const ALERT_HISTORY_FEATURES: &[&str] = HISTORY_FEATURES.split_at(ALERT_HISTORY_LEN).0;

/// How many of [`HISTORY_FEATURES`] are made of alerts (the first).
const ALERT_HISTORY_LEN: usize = 5;

/// The flow-history features that count the [`SHAPE_FEATURES`] of the graph of the distinct
/// money-flow pairs of the previous 7 dates (the last of [`HISTORY_FEATURES`], in the same
/// order; `crate::history` says how).
pub const WINDOW_SHAPE_FEATURES: &[&str] = HISTORY_FEATURES
    .split_at(HISTORY_FEATURES.len() - SHAPE_FEATURES.len())
    .1;

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
        .chain(GRAPH_FEATURES)
        .chain(HISTORY_FEATURES)
        .map(|s| s.to_string())
        .chain(ADDRESS_FEATURES.iter().map(|s| format!("af_{s}")))
        .collect()
}

/// Whether `name` is made of more flows than the alert's own ones: a graph feature
/// ([`GRAPH_FEATURES`]), a flow-history feature ([`FLOW_HISTORY_FEATURES`]), or a cluster
/// feature made of one (`mean_…`, `max_…`).
pub fn is_graph_feature(name: &str) -> bool {
    let base = name
        .strip_prefix("mean_")
        .or_else(|| name.strip_prefix("max_"))
        .unwrap_or(name);
    GRAPH_FEATURES.contains(&base) || FLOW_HISTORY_FEATURES.contains(&base)
}

/// Whether a run computes the graph features, given the feature names of the models it
/// applies: when one of them uses one, or when it applies none (training, `pipeline features`).
/// Otherwise decode keeps only the flows that touch an alerted address, and the graph
/// features' columns are NaN.
pub fn graph_features_needed<'a>(models: impl IntoIterator<Item = &'a [String]>) -> bool {
    let mut any_model = false;
    for names in models {
        any_model = true;
        if names.iter().any(|n| is_graph_feature(n)) {
            return true;
        }
    }
    !any_model
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

pub(super) fn f64_col(b: &RecordBatch, name: &str) -> Result<Float64Array> {
    Ok(column(b, name)
        .ok_or_else(|| anyhow!("internal: column `{name}` missing"))?
        .as_primitive()
        .clone())
}

pub(super) fn str_col(b: &RecordBatch, name: &str) -> Result<StringArray> {
    Ok(column(b, name)
        .ok_or_else(|| anyhow!("internal: column `{name}` missing"))?
        .as_string::<i32>()
        .clone())
}

pub(super) fn list_col(b: &RecordBatch, name: &str) -> Result<ListArray> {
    Ok(column(b, name)
        .ok_or_else(|| anyhow!("internal: column `{name}` missing"))?
        .as_list::<i32>()
        .clone())
}

/// The non-null strings of list `i` of a list-of-strings column (none when the list is null),
/// borrowed from the column.
pub(super) fn list_values(l: &ListArray, i: usize) -> impl Iterator<Item = &str> {
    let values = l.values().as_string::<i32>();
    let offsets = l.value_offsets();
    let range = if l.is_null(i) {
        0..0
    } else {
        offsets[i] as usize..offsets[i + 1] as usize
    };
    range
        .filter(move |&j| values.is_valid(j))
        .map(move |j| values.value(j))
}

/// Mean and sample standard deviation (NaN for no values).
pub(super) fn mean_std(xs: &[f64]) -> (f64, f64) {
    crate::metrics::mean_std(xs).unwrap_or((f64::NAN, f64::NAN))
}

/// Percentile rank with ties averaged (pandas `rank(pct=True)`).
pub(super) fn pct_rank(xs: &[f64]) -> Vec<f64> {
    let n = xs.len() as f64;
    crate::metrics::average_ranks(xs)
        .into_iter()
        .map(|r| r / n)
        .collect()
}

/// A value of a nullable column (null = NaN).
pub(super) fn get_f(a: &Float64Array, i: usize) -> f64 {
    if a.is_null(i) {
        f64::NAN
    } else {
        a.value(i)
    }
}

/// Matrix columns as the groups compute them, each with its name.
#[derive(Default)]
pub(super) struct Columns {
    names: Vec<String>,
    cols: Vec<ArrayRef>,
}

impl Columns {
    /// Adds the column `name`.
    pub(super) fn push(&mut self, name: impl Into<String>, col: Vec<f64>) {
        self.push_array(name, Arc::new(Float64Array::from(col)));
    }

    /// Adds the column `name` as an existing array, which several columns may share.
    fn push_array(&mut self, name: impl Into<String>, col: ArrayRef) {
        self.names.push(name.into());
        self.cols.push(col);
    }

    /// Each column's values, in order.
    #[cfg(test)]
    pub(super) fn values(&self) -> impl Iterator<Item = &[f64]> {
        self.cols.iter().map(|c| {
            c.as_primitive::<arrow::datatypes::Float64Type>()
                .values()
                .as_ref()
        })
    }

    /// Adds the columns of `other`, in their order.
    fn append(&mut self, other: Columns) {
        self.names.extend(other.names);
        self.cols.extend(other.cols);
    }
}

/// The alerts of the day, as every group reads them.
pub(super) struct Day<'a> {
    /// The processing date.
    pub date: NaiveDate,
    /// Alerts.
    pub n: usize,
    /// `alert_id` per alert.
    pub ids: &'a StringArray,
    /// `typology_type` per alert.
    pub typ: &'a StringArray,
    /// `alert_confidence_score` per alert (NaN when null).
    pub conf: Vec<f64>,
    /// `volume_usd` per alert (NaN when null).
    pub vol: Vec<f64>,
    /// The alerts grouped by address.
    pub by_addr: keys::KeyRows,
}

/// A test day over the alerts `ids` of addresses `addr` (typology `typ`), confidence 0.5 and
/// volume 1 each.
#[cfg(test)]
pub(super) fn test_day<'a>(
    ids: &'a StringArray,
    addr: &'a StringArray,
    typ: &'a StringArray,
) -> Day<'a> {
    Day {
        date: NaiveDate::from_ymd_opt(2025, 1, 1).expect("a date"),
        n: addr.len(),
        ids,
        typ,
        conf: vec![0.5; addr.len()],
        vol: vec![1.0; addr.len()],
        by_addr: keys::KeyRows::new(addr),
    }
}

/// Builds the matrix (`alert_id`, `address`, then [`alert_feature_names`]) from decoded tables
/// and the date's address-history table ([`crate::history::load`], which `history` reads, on a
/// thread of its own while the day's alerts are indexed); the graph features are NaN unless
/// `graph_features` ([`graph_features_needed`]; decode must then have kept every flow).
pub fn build_matrix(
    date: NaiveDate,
    t: &Tables,
    history: impl FnOnce() -> Result<RecordBatch> + Send,
    graph_features: bool,
) -> Result<RecordBatch> {
    let get = |n| crate::stages::table(t, n);
    let alerts = get(Table::Alerts)?;
    let ids = str_col(alerts, "alert_id")?;
    let addr = str_col(alerts, "address")?;
    let typ = str_col(alerts, "typology_type")?;
    let n = alerts.num_rows();
    let conf = f64_col(alerts, "alert_confidence_score")?;
    let vol = f64_col(alerts, "volume_usd")?;
    let (flows, clusters) = (get(Table::Flows)?, get(Table::Clusters)?);
    // Without the graph features, their columns and the flow history's are NaN for every
    // alert: one array shared by all of them (184 MB less to fill on a 500K-alert day).
    let missing =
        (!graph_features).then(|| -> ArrayRef { Arc::new(Float64Array::from(vec![f64::NAN; n])) });
    let (mut cols, graph_side, members, joined) = std::thread::scope(|outer| {
        let history = outer.spawn(history);
        let day = Day {
            date,
            n,
            ids: &ids,
            typ: &typ,
            conf: (0..n).map(|i| get_f(&conf, i)).collect(),
            vol: (0..n).map(|i| get_f(&vol, i)).collect(),
            by_addr: keys::KeyRows::new(&addr),
        };
        // The graph features are computed beside the rest, on a thread of their own (in a
        // scope of its own: it borrows `day`, built while the history loads); the clusters'
        // memberships on this one. The columns are put together in the model's order.
        std::thread::scope(|s| {
            let graph_side = s.spawn(|| -> Result<Columns> {
                let mut graph = Columns::default();
                match &missing {
                    None => graph::features(&day, flows, &mut graph)?,
                    Some(nan) => {
                        for name in GRAPH_FEATURES {
                            graph.push_array(*name, nan.clone());
                        }
                    }
                }
                Ok(graph)
            });
            let own = || -> Result<(Columns, Columns, Columns)> {
                let (mut cols, mut members, mut joined) = Default::default();
                alert::own(&day, alerts, &mut cols)?;
                alert::calendar(&day, &mut cols);
                alert::within_day(&day, &mut cols);
                clusters::membership(&day, clusters, &mut members)?;
                let history = crate::background::joined(history)?;
                joins::history(&day, &history, missing.as_ref(), &mut joined)?;
                joins::address(&day, get(Table::Features)?, &mut joined)?;
                Ok((cols, members, joined))
            };
            let own = own();
            let graph_side = crate::background::joined(graph_side);
            own.map(|(cols, members, joined)| (cols, graph_side, members, joined))
        })
    })?;
    let graph = graph_side?;
    let network = get(Table::Network)?;
    for name in NETWORK {
        let col = column(network, name)
            .ok_or_else(|| anyhow!("internal: network feature `{name}` missing"))?;
        cols.push_array(name, col.clone());
    }
    cols.append(members);
    cols.append(graph);
    cols.append(joined);

    let names = alert_feature_names();
    check_order(&cols.names, &names)?;
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
    arrays.extend(cols.cols);
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
}

/// Refuses columns whose names are not `want`, in order.
fn check_order(got: &[String], want: &[String]) -> Result<()> {
    if got != want {
        let at = got.iter().zip(want).position(|(a, b)| a != b);
        bail!(
            "internal: the feature groups produced {} columns where the model order has {}{}",
            got.len(),
            want.len(),
            at.map_or(String::new(), |i| format!(
                "; position {i} is `{}`, expected `{}`",
                got[i], want[i]
            ))
        );
    }
    Ok(())
}

/// Extracts the named feature columns of a matrix as one row-major `f64` buffer.
pub fn row_major(matrix: &RecordBatch, names: &[String]) -> Result<Vec<f64>> {
    row_major_rows(matrix, names, 0..matrix.num_rows())
}

/// Extracts rows `rows` of the named feature columns of a matrix as one row-major `f64`
/// buffer.
pub fn row_major_rows(
    matrix: &RecordBatch,
    names: &[String],
    rows: std::ops::Range<usize>,
) -> Result<Vec<f64>> {
    Ok(FeatureColumns::of(matrix, names)?.row_major(rows))
}

/// The named feature columns of a matrix, looked up once, for laying out many blocks of its
/// rows row-major ([`FeatureColumns::row_major`]).
pub struct FeatureColumns<'a> {
    cols: Vec<&'a [f64]>,
}

impl<'a> FeatureColumns<'a> {
    /// The columns `names` of `matrix`, in that order; fails on one the matrix lacks.
    pub fn of(matrix: &'a RecordBatch, names: &[String]) -> Result<Self> {
        let cols = names
            .iter()
            .map(|f| {
                column(matrix, f)
                    .map(|c| c.as_primitive::<Float64Type>().values().as_ref())
                    .ok_or_else(|| {
                        anyhow!(
                            "the model needs feature `{f}`, which this pipeline does not compute"
                        )
                    })
            })
            .collect::<Result<_>>()?;
        Ok(Self { cols })
    }

    /// Rows `rows` as one row-major buffer.
    pub fn row_major(&self, rows: std::ops::Range<usize>) -> Vec<f64> {
        // Transposed in blocks of rows, so that both the columns' slices and the rows written
        // stay in cache however many columns there are.
        const BLOCK: usize = 128;
        let (first, n, w) = (rows.start, rows.len(), self.cols.len());
        let mut out = vec![0.0; n * w];
        for (b, rows) in out.chunks_mut(BLOCK * w.max(1)).enumerate() {
            let r0 = first + b * BLOCK;
            for (j, c) in self.cols.iter().enumerate() {
                let vals = &c[r0..r0 + rows.len() / w];
                for (row, v) in rows.chunks_exact_mut(w).zip(vals) {
                    row[j] = *v;
                }
            }
        }
        out
    }
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
    fn columns_out_of_order_are_refused() {
        let want = alert_feature_names();
        assert!(check_order(&want, &want).is_ok());
        let mut swapped = want.clone();
        swapped.swap(1, 2);
        let e = check_order(&swapped, &want).unwrap_err().to_string();
        assert!(e.contains("position 1 is `volume_usd_log`"), "{e}");
        assert!(check_order(&want[1..], &want).is_err());
    }

    #[test]
    fn graph_features_are_computed_for_a_model_that_uses_one_or_without_models() {
        let old: Vec<String> = ["volume_usd", "af_pagerank"].map(String::from).to_vec();
        let graph: Vec<String> = ["volume_usd", "graph_cycle3"].map(String::from).to_vec();
        let cluster = vec!["max_graph_sg_sinks".to_string()];
        let flow_history = vec!["hist_in_usd_30d".to_string()];
        let alert_history = vec!["hist_alerts_30d".to_string()];
        assert!(graph_features_needed([flow_history.as_slice()]));
        assert!(!graph_features_needed([alert_history.as_slice()]));
        assert_eq!(FLOW_HISTORY_FEATURES.first(), Some(&"hist_out_usd_7d"));
        assert!(!graph_features_needed([old.as_slice()]));
        assert!(graph_features_needed([old.as_slice(), graph.as_slice()]));
        assert!(graph_features_needed([cluster.as_slice()]));
        assert!(graph_features_needed(std::iter::empty::<&[String]>()));
        assert!(!is_graph_feature("mean_net_in_degree"));
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
