//! decode: reads one date's batch, checks it against the data contract and META.json, and
//! normalises it. Features and money flows stream in batches: the features keep only the rows
//! of alerted addresses, joined to the alerts as they stream (a row per alert), and the flows
//! that touch an alerted address are summed into its network features, so a day's memory is
//! bounded by its alerts, not its flows. When a model uses the graph features every flow is
//! kept as well, as a graph of numbered addresses (about 30 bytes a flow).

mod features;
mod flows;
mod meta;

pub use features::feature_columns;
pub use meta::{check_file_name, Meta};

use super::alerted::Alerted;
use super::{Context, DateInput, Kind, Stage, StageInput};
use crate::batch::{ArrowBatch, Table, Tables};
use crate::config::{RunConfig, StageSpec};
use crate::contract::{check_dates, check_unique, column, required, to_f64, to_str, to_str_list};
use crate::io::ParquetSource;
use crate::model::Model;
use anyhow::{bail, Result};
use arrow::array::{Array, ArrayRef, Float64Array, Int64Array, ListArray, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use rustc_hash::FxHashSet as HashSet;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

/// The decode stage kind: a source, it reads the date's batch itself.
pub const KIND: Kind = Kind {
    name: "decode",
    consumes: &[],
    produces: &[
        Table::Alerts,
        Table::Features,
        Table::Clusters,
        Table::Flows,
        Table::Network,
        Table::BatchInfo,
    ],
    fails_as: crate::error::ErrorKind::Input,
    parse: super::parse::<DecodeParams>,
    span: |stage, date| tracing::debug_span!("decode", stage = %stage, %date),
};

/// Parameters of the decode stage.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecodeParams {
    /// Check every file against the sha256 in META.json.
    pub verify_checksums: bool,
    /// Rows per batch when streaming the large tables (default [`STREAM_ROWS`](crate::io::STREAM_ROWS)).
    /// Outputs do not depend on it.
    pub batch_size: usize,
    /// Dates whose decoded features and flows may be held at once (per process): another
    /// date's decode waits until feature join has read them. More lets more workers decode
    /// side by side, for more memory. Outputs do not depend on it (nor does the fingerprint).
    #[serde(skip_serializing)]
    pub dates_at_once: usize,
}

impl Default for DecodeParams {
    fn default() -> Self {
        Self {
            verify_checksums: true,
            batch_size: crate::io::STREAM_ROWS,
            dates_at_once: 1,
        }
    }
}

impl Stage for DecodeParams {
    fn run(&self, ctx: &Context, _: &StageSpec, input: &StageInput) -> Result<Tables> {
        let cfg = &ctx.config;
        run(
            self,
            &cfg.input_dir(input.date),
            input.date,
            cfg.window_days,
            ctx.graph_features,
        )
    }

    fn params_json(&self) -> serde_json::Value {
        serde_json::json!(self)
    }

    fn date_inputs(&self) -> &'static [DateInput] {
        &[DateInput::Batch]
    }

    fn dates_at_once(&self) -> usize {
        self.dates_at_once
    }

    fn check(&self, _: &RunConfig, _: Option<&Model>) -> Result<()> {
        if self.dates_at_once == 0 {
            bail!("dates_at_once must be at least 1 (1: one decoded date at a time), not 0");
        }
        Ok(())
    }
}

/// Columns decode reads from alerts.parquet (those present).
pub const ALERT_COLUMNS: &[&str] = &[
    "alert_id",
    "address",
    "typology_type",
    "severity",
    "suspected_address_type",
    "alert_confidence_score",
    "volume_usd",
    "risk_indicators",
    "processing_date",
    "window_days",
];

/// Columns decode reads from clusters.parquet (those present).
pub const CLUSTER_COLUMNS: &[&str] = &[
    "cluster_id",
    "cluster_type",
    "primary_alert_id",
    "related_alert_ids",
    "addresses_involved",
    "total_alerts",
    "total_volume_usd",
    "severity_max",
    "confidence_avg",
    "processing_date",
];

/// Columns decode reads from money_flows.parquet (those present).
pub const FLOW_COLUMNS: &[&str] = &[
    "from_address",
    "to_address",
    "amount_usd_sum",
    "tx_count",
    "processing_date",
];

/// Builds a record batch from named columns.
pub fn make_batch(cols: Vec<(&str, ArrayRef)>) -> Result<RecordBatch> {
    let fields: Vec<Field> = cols
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), a.null_count() > 0))
        .collect();
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        cols.into_iter().map(|c| c.1).collect(),
    )?)
}

/// Decodes the batch in `dir` for `date`, keeping every money flow if `whole_graph` (for the
/// graph features, [`crate::features::graph_features_needed`]), else those that touch an
/// alerted address.
pub fn run(
    p: &DecodeParams,
    dir: &Path,
    date: NaiveDate,
    window_days: u32,
    whole_graph: bool,
) -> Result<Tables> {
    if !dir.is_dir() {
        bail!("{}: no batch for {date} (directory missing)", dir.display());
    }
    // Checksums are verified on another thread while the tables are read; a checksum error
    // wins over a read error, since a corrupt file explains both.
    let (meta, tables) = std::thread::scope(|s| {
        let meta = s.spawn(|| meta::check_meta(p.verify_checksums, dir, date, window_days));
        let tables = read_tables(p, dir, date, window_days, whole_graph);
        (meta.join(), tables)
    });
    match meta {
        Ok(m) => m?,
        Err(panic) => std::panic::resume_unwind(panic),
    }
    tables
}

/// Reads the four tables of a batch (what [`run`] returns, without the META.json checks).
fn read_tables(
    p: &DecodeParams,
    dir: &Path,
    date: NaiveDate,
    window_days: u32,
    whole_graph: bool,
) -> Result<Tables> {
    let (alerts, [volume_missing, volume_negative]) =
        read_alerts(&dir.join("alerts.parquet"), date, window_days)?;
    let ids = alerts
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("alert_id");
    let addrs = alerts
        .column(1)
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("address");
    let alerted = Alerted::new(addrs.iter().enumerate().filter_map(|(r, a)| Some((r, a?))));
    check_unique(
        ids,
        &dir.join("alerts.parquet").display().to_string(),
        "alert_id",
    )?;
    // The two large files are read side by side, features on a thread of its own.
    let (features, rest) = std::thread::scope(|s| {
        let features = s.spawn(|| {
            features::read_features(
                &dir.join("features.parquet"),
                date,
                &alerted,
                alerts.num_rows(),
                p.batch_size,
            )
        });
        let rest = read_clusters(&dir.join("clusters.parquet"), date).and_then(|clusters| {
            let flows = flows::read_flows(
                &dir.join("money_flows.parquet"),
                date,
                &alerted,
                alerts.num_rows(),
                p.batch_size,
                whole_graph,
            )?;
            Ok((clusters, flows))
        });
        (features.join(), rest)
    });
    let (features, n_features) = match features {
        Ok(f) => f?,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    let (clusters, flows) = rest?;
    let issues = [
        volume_missing,
        volume_negative,
        unknown_alert_ids(&clusters, ids),
    ];
    for (name, n) in ISSUE_COUNTS.iter().zip(issues) {
        if n > 0 {
            tracing::warn!(%date, "{}: {n} × {name} (accepted; see input_issues in processing_metadata.json)", dir.display());
        }
    }
    let mut info: Vec<(&str, ArrayRef)> = vec![
        (
            "alerts",
            Arc::new(Int64Array::from(vec![alerts.num_rows() as i64])),
        ),
        (
            "features",
            Arc::new(Int64Array::from(vec![n_features as i64])),
        ),
        (
            "clusters",
            Arc::new(Int64Array::from(vec![clusters.num_rows() as i64])),
        ),
        (
            "money_flows",
            Arc::new(Int64Array::from(vec![flows.total as i64])),
        ),
    ];
    for (name, n) in ISSUE_COUNTS.iter().zip(issues) {
        info.push((name, Arc::new(Int64Array::from(vec![n as i64]))));
    }
    let info = make_batch(info)?;
    Ok(Tables::from([
        (Table::Alerts, ArrowBatch(alerts)),
        (Table::Features, ArrowBatch(features)),
        (Table::Clusters, ArrowBatch(clusters)),
        (Table::Flows, ArrowBatch(flows.graph)),
        (Table::Network, ArrowBatch(flows.network)),
        (Table::BatchInfo, ArrowBatch(info)),
    ]))
}

fn check_date(b: &RecordBatch, file: &str, date: NaiveDate) -> Result<()> {
    if let Some(c) = column(b, "processing_date") {
        check_dates(c, date, file, "processing_date")?;
    }
    Ok(())
}

fn str_or(b: &RecordBatch, file: &str, name: &str, default: &str) -> Result<ArrayRef> {
    Ok(match column(b, name) {
        Some(c) => {
            let s = to_str(c, file, name)?;
            Arc::new(
                s.iter()
                    .map(|v| Some(v.unwrap_or(default)))
                    .collect::<StringArray>(),
            )
        }
        None => Arc::new(StringArray::from(vec![default; b.num_rows()])),
    })
}

fn f64_req(b: &RecordBatch, file: &str, name: &str) -> Result<ArrayRef> {
    Ok(Arc::new(to_f64(required(b, file, name)?, file, name)?))
}

fn str_req(b: &RecordBatch, file: &str, name: &str) -> Result<StringArray> {
    let s = to_str(required(b, file, name)?, file, name)?;
    if let Some(i) = (0..s.len()).find(|&i| s.is_null(i)) {
        bail!("{file}: column `{name}` is null in row {i}");
    }
    Ok(s)
}

/// Counts of values a batch holds that upstream should not send but that do not stop the date:
/// each is accepted as said here, written to `processing_metadata.json`'s `input_issues` and
/// warned about. (An empty or null `alert_id` is refused instead: such an alert cannot be
/// scored, submitted or matched.)
pub const ISSUE_COUNTS: [&str; 3] = [
    // null, NaN or infinite `volume_usd`: a missing value for the model, 0 in history sums
    "volume_usd_missing",
    // negative `volume_usd`: no USD volume is negative, so likewise missing
    "volume_usd_negative",
    // `related_alert_ids` entries naming no alert of the batch: skipped (the cluster keeps
    // its known members, else falls back to its primary alert, then its addresses)
    "cluster_unknown_alert_ids",
];

/// `alerts.parquet`'s `volume_usd` as f64, with values that are no USD volume (null, NaN,
/// infinite, negative) made null; returns the column and the counts of the last two kinds.
fn alert_volumes(b: &RecordBatch, file: &str) -> Result<(Float64Array, usize, usize)> {
    let v = to_f64(required(b, file, "volume_usd")?, file, "volume_usd")?;
    let (mut missing, mut negative) = (0, 0);
    let out = v
        .iter()
        .map(|x| match x {
            Some(x) if x.is_finite() && x >= 0.0 => Some(x),
            Some(x) if x.is_finite() => {
                negative += 1;
                None
            }
            _ => {
                missing += 1;
                None
            }
        })
        .collect();
    Ok((out, missing, negative))
}

/// Entries of clusters' `related_alert_ids` that name no alert in `ids`.
fn unknown_alert_ids(clusters: &RecordBatch, ids: &StringArray) -> usize {
    let known: HashSet<&str> = ids.iter().flatten().collect();
    let Some(rel) = column(clusters, "related_alert_ids") else {
        return 0;
    };
    let rel = rel
        .as_any()
        .downcast_ref::<ListArray>()
        .expect("decoded list");
    let values = rel.values().as_any().downcast_ref::<StringArray>();
    let Some(values) = values else { return 0 };
    let (start, end) = (
        rel.value_offsets()[0] as usize,
        rel.value_offsets()[rel.len()] as usize,
    );
    (start..end)
        .filter(|&i| values.is_valid(i) && !known.contains(values.value(i)))
        .count()
}

fn read_alerts(
    path: &Path,
    date: NaiveDate,
    window_days: u32,
) -> Result<(RecordBatch, [usize; 2])> {
    let file = path.display().to_string();
    let src = ParquetSource::open(path)?;
    let b = src.read_all(ALERT_COLUMNS)?;
    let empty_file = b.num_columns() == 0;
    let b = if empty_file { empty_alerts_input() } else { b };
    check_date(&b, &file, date)?;
    if let Some(w) = column(&b, "window_days") {
        let w = to_f64(w, &file, "window_days")?;
        if let Some(v) = w.iter().flatten().find(|v| *v != window_days as f64) {
            bail!("{file}: column `window_days` holds {v}, but the batch directory is for {window_days}");
        }
    }
    let risk: ArrayRef = match column(&b, "risk_indicators") {
        Some(c) => {
            let l = to_str_list(c, &file, "risk_indicators")?;
            Arc::new(Float64Array::from_iter_values((0..l.len()).map(|i| {
                if l.is_null(i) {
                    0.0
                } else {
                    l.value_length(i) as f64
                }
            })))
        }
        None => Arc::new(Float64Array::from(vec![0.0; b.num_rows()])),
    };
    let ids = str_req(&b, &file, "alert_id")?;
    if let Some(i) = (0..ids.len()).find(|&i| ids.value(i).is_empty()) {
        bail!("{file}: column `alert_id` is empty in row {i} (every alert needs an id to be scored and submitted)");
    }
    let (volume, missing, negative) = alert_volumes(&b, &file)?;
    let batch = make_batch(vec![
        ("alert_id", Arc::new(ids)),
        ("address", Arc::new(str_req(&b, &file, "address")?)),
        ("typology_type", str_or(&b, &file, "typology_type", "")?),
        ("severity", str_or(&b, &file, "severity", "medium")?),
        (
            "suspected_address_type",
            str_or(&b, &file, "suspected_address_type", "unknown")?,
        ),
        (
            "alert_confidence_score",
            f64_req(&b, &file, "alert_confidence_score")?,
        ),
        ("volume_usd", Arc::new(volume)),
        ("risk_indicator_count", risk),
    ])?;
    Ok((batch, [missing, negative]))
}

fn empty_alerts_input() -> RecordBatch {
    fn s(n: &'static str) -> (&'static str, ArrayRef) {
        (n, Arc::new(StringArray::from(Vec::<String>::new())))
    }
    fn f(n: &'static str) -> (&'static str, ArrayRef) {
        (n, Arc::new(Float64Array::from(Vec::<f64>::new())))
    }
    make_batch(vec![
        s("alert_id"),
        s("address"),
        s("typology_type"),
        s("severity"),
        f("alert_confidence_score"),
        f("volume_usd"),
    ])
    .expect("static schema")
}

fn read_clusters(path: &Path, date: NaiveDate) -> Result<RecordBatch> {
    let file = path.display().to_string();
    let b = ParquetSource::open(path)?.read_all(CLUSTER_COLUMNS)?;
    let n = b.num_rows();
    if b.num_columns() == 0 {
        let empty_list = || -> ArrayRef {
            Arc::new(ListArray::new_null(
                Arc::new(Field::new("item", DataType::Utf8, true)),
                0,
            ))
        };
        let s = || -> ArrayRef { Arc::new(StringArray::from(Vec::<String>::new())) };
        let f = || -> ArrayRef { Arc::new(Float64Array::from(Vec::<f64>::new())) };
        return make_batch(vec![
            ("cluster_id", s()),
            ("cluster_type", s()),
            ("primary_alert_id", s()),
            ("related_alert_ids", empty_list()),
            ("addresses_involved", empty_list()),
            ("total_alerts", f()),
            ("total_volume_usd", f()),
            ("severity_max", s()),
            ("confidence_avg", f()),
        ]);
    }
    check_date(&b, &file, date)?;
    let ids = str_req(&b, &file, "cluster_id")?;
    check_unique(&ids, &file, "cluster_id")?;
    let list = |name: &str| -> Result<ArrayRef> {
        Ok(match column(&b, name) {
            Some(c) => Arc::new(to_str_list(c, &file, name)?),
            None => Arc::new(ListArray::new_null(
                Arc::new(Field::new("item", DataType::Utf8, true)),
                n,
            )),
        })
    };
    let f64_opt = |name: &str| -> Result<ArrayRef> {
        Ok(match column(&b, name) {
            Some(c) => Arc::new(to_f64(c, &file, name)?),
            None => Arc::new(Float64Array::from(vec![None; n])),
        })
    };
    let str_opt = |name: &str| -> Result<ArrayRef> {
        Ok(match column(&b, name) {
            Some(c) => Arc::new(to_str(c, &file, name)?),
            None => Arc::new(StringArray::from(vec![None::<&str>; n])),
        })
    };
    make_batch(vec![
        ("cluster_id", Arc::new(ids)),
        ("cluster_type", str_opt("cluster_type")?),
        ("primary_alert_id", str_opt("primary_alert_id")?),
        ("related_alert_ids", list("related_alert_ids")?),
        ("addresses_involved", list("addresses_involved")?),
        ("total_alerts", f64_opt("total_alerts")?),
        ("total_volume_usd", f64_opt("total_volume_usd")?),
        ("severity_max", str_opt("severity_max")?),
        ("confidence_avg", f64_opt("confidence_avg")?),
    ])
}
