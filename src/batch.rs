//! The data that flows between stages: named Arrow record batches for one processing date.

use arrow::datatypes::DataType;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

/// An Arrow [`RecordBatch`] that timely can move between workers and processes.
///
/// Within a process it is shared by reference count; across processes it is serialised as an
/// Arrow IPC stream.
#[derive(Clone, Debug, PartialEq)]
pub struct ArrowBatch(pub RecordBatch);

impl ArrowBatch {
    /// Number of rows.
    pub fn num_rows(&self) -> usize {
        self.0.num_rows()
    }

    fn to_ipc(&self) -> Result<Vec<u8>, arrow::error::ArrowError> {
        let mut buf = Vec::new();
        let mut w = StreamWriter::try_new(&mut buf, &self.0.schema())?;
        w.write(&self.0)?;
        w.finish()?;
        drop(w);
        Ok(buf)
    }

    fn from_ipc(bytes: &[u8]) -> Result<Self, arrow::error::ArrowError> {
        let mut r = StreamReader::try_new(bytes, None)?;
        let schema = r.schema();
        match r.next() {
            Some(batch) => Ok(Self(batch?)),
            None => Ok(Self(RecordBatch::new_empty(schema))),
        }
    }
}

impl Serialize for ArrowBatch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let bytes = self.to_ipc().map_err(serde::ser::Error::custom)?;
        s.serialize_bytes(&bytes)
    }
}

impl<'de> Deserialize<'de> for ArrowBatch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes: Vec<u8> = serde_bytes_vec(d)?;
        Self::from_ipc(&bytes).map_err(de::Error::custom)
    }
}

fn serde_bytes_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    struct V;
    impl<'de> de::Visitor<'de> for V {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("Arrow IPC bytes")
        }
        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(b) = seq.next_element()? {
                out.push(b);
            }
            Ok(out)
        }
    }
    d.deserialize_byte_buf(V)
}

/// The tables one stage hands to the next for one date.
pub type Tables = BTreeMap<Table, ArrowBatch>;

/// A table that flows along the graph's edges, with its declared schema ([`Table::schema`]).
/// Stage kinds declare the tables they consume and produce ([`crate::stages::Kind`]); the
/// pipeline file is checked against them when the graph is built, and every table a stage
/// hands on is checked against its schema ([`Table::check`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    /// The batch's alerts, checked and typed.
    Alerts,
    /// The address features of each alert's address (large).
    Features,
    /// The batch's alert clusters.
    Clusters,
    /// The batch's money flows, all of them, as a graph of numbered addresses (large), when a
    /// model uses the graph features; else none.
    Flows,
    /// The network features of each alert's address: its money flows of the day summed up.
    Network,
    /// What decode learned of the batch (row counts, input issues).
    BatchInfo,
    /// The model matrix: one row per alert.
    Matrix,
    /// One score per alert.
    AlertScores,
    /// One rank per alert.
    AlertRankings,
    /// One score per cluster.
    ClusterScores,
    /// The output files written, with their rows.
    Written,
    /// The checks validation passed.
    Validation,
    /// What was sent to the validator.
    Submission,
}

impl Table {
    /// Its name in messages and in the state cache.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Alerts => "alerts",
            Self::Features => "features",
            Self::Clusters => "clusters",
            Self::Flows => "flows",
            Self::Network => "network",
            Self::BatchInfo => "batch_info",
            Self::Matrix => "matrix",
            Self::AlertScores => "alert_scores",
            Self::AlertRankings => "alert_rankings",
            Self::ClusterScores => "cluster_scores",
            Self::Written => "written",
            Self::Validation => "validation",
            Self::Submission => "submission",
        }
    }

    /// Whether a stage's output of this table is kept in the state cache, so a later run can
    /// rerun a reader without rerunning its producer. The address features, money flows and
    /// network features are not (the first two are large, and feature join, the only reader of
    /// all three, reruns with decode); nor is the submission record, which nothing reads.
    pub const fn cached(self) -> bool {
        !matches!(
            self,
            Self::Features | Self::Flows | Self::Network | Self::Submission
        )
    }

    /// Whether it holds a large part of a day (the address features, the money flows): a
    /// date holding it counts towards its producer's [`crate::stages::Stage::dates_at_once`].
    pub const fn large(self) -> bool {
        matches!(self, Self::Features | Self::Flows)
    }

    /// Its declared schema: what every stage that produces it writes, and every reader may
    /// rely on (column positions included).
    pub const fn schema(self) -> Schema {
        use ColType::{Bool, Float64, Int32, Int64, Utf8, Utf8List};
        const fn col(name: &'static str, ty: ColType) -> Column {
            Column {
                name,
                ty,
                nullable: false,
            }
        }
        const fn opt(name: &'static str, ty: ColType) -> Column {
            Column {
                name,
                ty,
                nullable: true,
            }
        }
        let (columns, rest): (&'static [Column], Option<ColType>) = match self {
            Self::Alerts => (
                const {
                    &[
                        col("alert_id", Utf8),
                        opt("address", Utf8),
                        opt("typology_type", Utf8),
                        opt("severity", Utf8),
                        opt("suspected_address_type", Utf8),
                        opt("alert_confidence_score", Float64),
                        opt("volume_usd", Float64),
                        opt("risk_indicator_count", Float64),
                    ]
                },
                None,
            ),
            // One column per address feature, one row per alert: the features of the alert's
            // address (NaN where the file has no row or value for it).
            Self::Features => (const { &[] }, Some(Float64)),
            // One column per network feature (`features::NETWORK`), one row per alert.
            Self::Network => (const { &[] }, Some(Float64)),
            Self::Clusters => (
                const {
                    &[
                        col("cluster_id", Utf8),
                        opt("cluster_type", Utf8),
                        opt("primary_alert_id", Utf8),
                        opt("related_alert_ids", Utf8List),
                        opt("addresses_involved", Utf8List),
                        opt("total_alerts", Float64),
                        opt("total_volume_usd", Float64),
                        opt("severity_max", Utf8),
                        opt("confidence_avg", Float64),
                    ]
                },
                None,
            ),
            Self::Flows => (
                const {
                    &[
                        // Each end's address, numbered by first appearance in the file.
                        col("from_node", Int32),
                        col("to_node", Int32),
                        opt("amount_usd_sum", Float64),
                        opt("tx_count", Float64),
                        // The row in `alerts` of the first alert of each end, if alerted.
                        opt("from_alert", Int32),
                        opt("to_alert", Int32),
                    ]
                },
                None,
            ),
            Self::BatchInfo => (
                const {
                    &[
                        col("alerts", Int64),
                        col("features", Int64),
                        col("clusters", Int64),
                        col("money_flows", Int64),
                        col("volume_usd_missing", Int64),
                        col("volume_usd_negative", Int64),
                        col("cluster_unknown_alert_ids", Int64),
                    ]
                },
                None,
            ),
            // One column per model feature after the keys, in the model's order.
            Self::Matrix => (
                const { &[col("alert_id", Utf8), opt("address", Utf8)] },
                Some(Float64),
            ),
            Self::AlertScores => (
                const {
                    &[
                        col("alert_id", Utf8),
                        col("score", Float64),
                        col("model_version", Utf8),
                        col("latency_ms", Float64),
                        col("explain_json", Utf8),
                    ]
                },
                None,
            ),
            Self::AlertRankings => (
                const {
                    &[
                        col("alert_id", Utf8),
                        col("rank", Int32),
                        col("score", Float64),
                        col("model_version", Utf8),
                    ]
                },
                None,
            ),
            Self::ClusterScores => (
                const {
                    &[
                        col("cluster_id", Utf8),
                        col("score", Float64),
                        col("model_version", Utf8),
                        col("latency_ms", Float64),
                        col("explain_json", Utf8),
                    ]
                },
                None,
            ),
            Self::Written => (const { &[col("file", Utf8), col("rows", Int64)] }, None),
            Self::Validation => (const { &[col("check", Utf8), col("passed", Bool)] }, None),
            Self::Submission => (
                const { &[col("outcome", Utf8), col("rows_sent", Int64)] },
                None,
            ),
        };
        Schema { columns, rest }
    }

    /// Checks `batch` against the declared schema: the declared columns first, in order, with
    /// their types and no nulls where none are allowed, then only columns of the `rest` type.
    pub fn check(self, batch: &RecordBatch) -> Result<(), String> {
        let schema = self.schema();
        let fields = batch.schema_ref().fields();
        let what = |i: usize| format!("table `{}`, column {i}", self.name());
        for (i, c) in schema.columns.iter().enumerate() {
            let Some(f) = fields.get(i) else {
                return Err(format!("{}: `{}` is missing", what(i), c.name));
            };
            if f.name() != c.name {
                return Err(format!(
                    "{}: `{}` where `{}` is declared",
                    what(i),
                    f.name(),
                    c.name
                ));
            }
            if !c.ty.matches(f.data_type()) {
                return Err(format!(
                    "{}: `{}` is {}, declared {:?}",
                    what(i),
                    c.name,
                    f.data_type(),
                    c.ty
                ));
            }
            if !c.nullable && batch.column(i).null_count() > 0 {
                return Err(format!("{}: `{}` holds nulls", what(i), c.name));
            }
        }
        for (i, f) in fields.iter().enumerate().skip(schema.columns.len()) {
            match schema.rest {
                Some(ty) if ty.matches(f.data_type()) => {}
                Some(ty) => {
                    return Err(format!(
                        "{}: `{}` is {}, declared {ty:?}",
                        what(i),
                        f.name(),
                        f.data_type()
                    ))
                }
                None => return Err(format!("{}: `{}` is not declared", what(i), f.name())),
            }
        }
        Ok(())
    }
}

/// A table's declared schema: its leading columns, and the type of any further ones.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    /// The columns every batch of the table starts with, in order.
    pub columns: &'static [Column],
    /// The type of the columns after them (e.g. one per feature), or `None` for none.
    pub rest: Option<ColType>,
}

/// A declared column.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Its name.
    pub name: &'static str,
    /// Its type.
    pub ty: ColType,
    /// Whether it may hold nulls.
    pub nullable: bool,
}

/// The Arrow types that flow between stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    /// `utf8`.
    Utf8,
    /// A list of `utf8`.
    Utf8List,
    /// `float64`.
    Float64,
    /// `int64`.
    Int64,
    /// `int32`.
    Int32,
    /// `bool`.
    Bool,
}

impl ColType {
    /// Whether an Arrow type is this one.
    pub fn matches(self, t: &DataType) -> bool {
        match (self, t) {
            (Self::Utf8, DataType::Utf8)
            | (Self::Float64, DataType::Float64)
            | (Self::Int64, DataType::Int64)
            | (Self::Int32, DataType::Int32)
            | (Self::Bool, DataType::Boolean) => true,
            (Self::Utf8List, DataType::List(f)) => f.data_type() == &DataType::Utf8,
            _ => false,
        }
    }
}

/// One stage's output for one processing date: its tables, or why the date failed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DateMsg {
    /// The processing date.
    pub date: NaiveDate,
    /// The name of the stage that produced this message.
    pub from: String,
    /// The tables, or the error that failed this date (possibly upstream).
    pub body: Result<Tables, crate::error::DateError>,
    /// Milliseconds spent in each stage so far on this date's path, by stage name.
    pub timings: BTreeMap<String, f64>,
    /// The stages on this date's path that produced output in this run, with their records.
    pub done: BTreeMap<String, crate::state::StageRecord>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch(cols: Vec<(&str, arrow::array::ArrayRef)>) -> RecordBatch {
        RecordBatch::try_from_iter(cols).unwrap()
    }

    #[test]
    fn a_table_is_checked_against_its_declared_schema() {
        use arrow::array::{BooleanArray, Int64Array};
        let check = |b| Arc::new(StringArray::from(b)) as arrow::array::ArrayRef;
        let ok = batch(vec![
            ("check", check(vec!["tier1"])),
            ("passed", Arc::new(BooleanArray::from(vec![true]))),
        ]);
        assert_eq!(Table::Validation.check(&ok), Ok(()));
        let swapped = batch(vec![
            ("passed", Arc::new(BooleanArray::from(vec![true]))),
            ("check", check(vec!["tier1"])),
        ]);
        assert_eq!(
            Table::Validation.check(&swapped).unwrap_err(),
            "table `validation`, column 0: `passed` where `check` is declared"
        );
        let typed = batch(vec![
            ("check", check(vec!["tier1"])),
            ("passed", Arc::new(Int64Array::from(vec![1]))),
        ]);
        assert_eq!(
            Table::Validation.check(&typed).unwrap_err(),
            "table `validation`, column 1: `passed` is Int64, declared Bool"
        );
        let short = batch(vec![("check", check(vec!["tier1"]))]);
        assert!(Table::Validation
            .check(&short)
            .unwrap_err()
            .contains("`passed` is missing"));
        let nulls = batch(vec![
            ("check", Arc::new(StringArray::from(vec![None::<&str>]))),
            ("passed", Arc::new(BooleanArray::from(vec![true]))),
        ]);
        assert!(Table::Validation
            .check(&nulls)
            .unwrap_err()
            .contains("`check` holds nulls"));
        let extra = batch(vec![
            ("check", check(vec!["tier1"])),
            ("passed", Arc::new(BooleanArray::from(vec![true]))),
            ("why", check(vec!["x"])),
        ]);
        assert!(Table::Validation
            .check(&extra)
            .unwrap_err()
            .contains("`why` is not declared"));
    }

    #[test]
    fn further_columns_must_have_the_declared_rest_type() {
        let ids = Arc::new(StringArray::from(vec!["a1"])) as arrow::array::ArrayRef;
        let mut cols = vec![("alert_id", ids.clone()), ("address", ids.clone())];
        cols.push(("volume_usd", Arc::new(Float64Array::from(vec![1.0]))));
        assert_eq!(Table::Matrix.check(&batch(cols.clone())), Ok(()));
        cols.push(("typology", ids));
        assert_eq!(
            Table::Matrix.check(&batch(cols)).unwrap_err(),
            "table `matrix`, column 3: `typology` is Utf8, declared Float64"
        );
    }

    #[test]
    fn tables_are_keyed_by_their_names_in_messages() {
        let json = serde_json::to_string(&Table::AlertScores).unwrap();
        assert_eq!(json, format!("\"{}\"", Table::AlertScores.name()));
        assert_eq!(
            serde_json::to_string(&Table::BatchInfo).unwrap(),
            "\"batch_info\""
        );
    }

    #[test]
    fn ipc_round_trip() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("x", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["a", "b"])),
                Arc::new(Float64Array::from(vec![Some(1.5), None])),
            ],
        )
        .unwrap();
        let b = ArrowBatch(batch);
        let back = ArrowBatch::from_ipc(&b.to_ipc().unwrap()).unwrap();
        assert_eq!(b, back);
        let json = serde_json::to_vec(&b).unwrap();
        let back: ArrowBatch = serde_json::from_slice(&json).unwrap();
        assert_eq!(b, back);
    }
}
