//! The data that flows between stages: named Arrow record batches for one processing date.

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

/// The tables one stage hands to the next for one date, by [`Table::name`].
pub type Tables = BTreeMap<String, ArrowBatch>;

/// A table that flows along the graph's edges. Stage kinds declare the tables they consume
/// and produce ([`crate::stages::Kind`]); the pipeline file is checked against them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    /// The batch's alerts, checked and typed.
    Alerts,
    /// The batch's address features (large).
    Features,
    /// The batch's alert clusters.
    Clusters,
    /// The batch's money flows (large).
    Flows,
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
    /// Its name in [`Tables`] and in the state cache.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Alerts => "alerts",
            Self::Features => "features",
            Self::Clusters => "clusters",
            Self::Flows => "flows",
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
    /// rerun a reader without rerunning its producer. The address features and money flows
    /// are not (they are large, and feature join, their only reader, reruns with decode); nor
    /// is the submission record, which nothing reads.
    pub const fn cached(self) -> bool {
        !matches!(self, Self::Features | Self::Flows | Self::Submission)
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
