//! Parquet output: the [`Table`] builder, which imitates pandas-written files, and the batch
//! writer that encodes a date's tables in parallel and records their checksums in `META.json`.

use super::{Day, DayCounts};
use crate::io::{sha256_file, TempFile};
use anyhow::Result;
use arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
    Int64Array, ListArray, StringArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

/// A column being built for a table.
pub(super) enum Col {
    /// int64.
    I64(Vec<i64>),
    /// float64.
    F64(Vec<f64>),
    /// float32.
    F32(Vec<f32>),
    /// `decimal128(p, 18)`, `p` from the data.
    Dec(Vec<f64>),
    /// bool.
    Bool(Vec<bool>),
    /// utf8.
    Str(Vec<String>),
    /// date32: the same day (days since the epoch) on every one of the rows.
    Date(i32, usize),
    /// list of int64: the rows' values concatenated, and the list length of every row.
    ListI64(Vec<u32>, usize),
    /// list of utf8.
    ListStr(Vec<Vec<String>>),
}

/// A table written in row chunks with one schema; decimal precision is set by the data, as pandas does.
pub(super) struct Table {
    cols: Vec<(&'static str, Col)>,
}

/// Decimal precision for values `v` at scale 18: the integer digits plus 18, within 19..=38.
fn dec_precision(v: &[f64]) -> u8 {
    let max = v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let digits = if max < 1.0 {
        1
    } else {
        max.log10().floor() as u8 + 1
    };
    (18 + digits).clamp(19, 38)
}

/// `v` as a decimal at scale 18, rounded to six decimals.
fn to_dec(v: f64) -> i128 {
    (v * 1e6).round() as i128 * 1_000_000_000_000
}

impl Table {
    /// An empty table.
    pub(super) fn new() -> Self {
        Table { cols: Vec::new() }
    }

    /// Appends column `name`.
    pub(super) fn push(&mut self, name: &'static str, c: Col) -> &mut Self {
        self.cols.push((name, c));
        self
    }

    /// Number of rows (0 without columns).
    pub(super) fn rows(&self) -> usize {
        match self.cols.first().map(|c| &c.1) {
            None => 0,
            Some(Col::I64(v)) => v.len(),
            Some(Col::F64(v)) | Some(Col::Dec(v)) => v.len(),
            Some(Col::F32(v)) => v.len(),
            Some(Col::Bool(v)) => v.len(),
            Some(Col::Str(v)) => v.len(),
            Some(Col::Date(_, n)) => *n,
            Some(Col::ListI64(v, w)) => v.len() / w,
            Some(Col::ListStr(v)) => v.len(),
        }
    }

    fn slice(&self, a: usize, b: usize, precisions: &[u8]) -> Result<RecordBatch> {
        let mut fields = Vec::new();
        let mut arrays: Vec<ArrayRef> = Vec::new();
        for ((name, c), &p) in self.cols.iter().zip(precisions) {
            let arr: ArrayRef = match c {
                Col::I64(v) => Arc::new(Int64Array::from(v[a..b].to_vec())),
                Col::F64(v) => Arc::new(Float64Array::from(v[a..b].to_vec())),
                Col::F32(v) => Arc::new(Float32Array::from(v[a..b].to_vec())),
                Col::Dec(v) => Arc::new(
                    Decimal128Array::from_iter_values(v[a..b].iter().map(|&x| to_dec(x)))
                        .with_precision_and_scale(p, 18)?,
                ),
                Col::Bool(v) => Arc::new(BooleanArray::from(v[a..b].to_vec())),
                Col::Str(v) => Arc::new(StringArray::from_iter_values(v[a..b].iter())),
                Col::Date(d, _) => Arc::new(Date32Array::from(vec![*d; b - a])),
                Col::ListI64(v, w) => {
                    let values =
                        Int64Array::from_iter_values(v[a * w..b * w].iter().map(|&x| x as i64));
                    let offsets = OffsetBuffer::from_lengths(std::iter::repeat_n(*w, b - a));
                    Arc::new(ListArray::new(
                        Arc::new(Field::new("element", DataType::Int64, true)),
                        offsets,
                        Arc::new(values),
                        None,
                    ))
                }
                Col::ListStr(v) => {
                    let rows = &v[a..b];
                    let values: StringArray = rows.iter().flatten().map(Some).collect();
                    let offsets = OffsetBuffer::from_lengths(rows.iter().map(|r| r.len()));
                    Arc::new(ListArray::new(
                        Arc::new(Field::new("element", DataType::Utf8, true)),
                        offsets,
                        Arc::new(values),
                        None,
                    ))
                }
            };
            fields.push(Field::new(*name, arr.data_type().clone(), true));
            arrays.push(arr);
        }
        Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
    }

    /// Writes the table to a temporary file beside `path` (renamed by the caller).
    pub(super) fn write(&self, path: &Path) -> Result<TempFile> {
        let n = self.rows();
        let precisions: Vec<u8> = self
            .cols
            .iter()
            .map(|(_, c)| {
                if let Col::Dec(v) = c {
                    dec_precision(v)
                } else {
                    0
                }
            })
            .collect();
        let first = if n == 0 {
            RecordBatch::new_empty(Arc::new(Schema::empty()))
        } else {
            self.slice(0, n.min(1), &precisions)?
        };
        TempFile::write(path, |w| {
            let props = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .build();
            let mut writer = ArrowWriter::try_new(w, first.schema(), Some(props))?;
            const CHUNK: usize = 131_072;
            let mut a = 0;
            while a < n {
                let b = (a + CHUNK).min(n);
                writer.write(&self.slice(a, b, &precisions)?)?;
                a = b;
            }
            writer.close()?;
            Ok(())
        })
    }
}

/// Writes a date's `tables` (file name, table) into `dir`, encoded in parallel and then moved
/// into place, then `META.json` with the `counts` and the files' checksums.
pub(super) fn write_batch(
    day: &Day,
    dir: &Path,
    tables: [(&'static str, &Table); 4],
    counts: &DayCounts,
) -> Result<()> {
    let opts = day.opts;
    let date_s = &day.date_s;
    let temps: Vec<(&str, TempFile)> = std::thread::scope(|s| {
        let handles: Vec<_> = tables
            .iter()
            .map(|&(name, t)| {
                let path = dir.join(name);
                s.spawn(move || t.write(&path).map(|f| (name, f)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("writer thread"))
            .collect::<Result<Vec<_>>>()
    })?;
    let mut sums = serde_json::Map::new();
    for (name, tmp) in temps {
        tmp.commit()?;
        sums.insert(name.to_string(), json!(sha256_file(&dir.join(name))?));
    }
    let meta = json!({
        "schema_version": "1.0.0",
        "batch_id": format!("{}-{}-{}d", opts.network, date_s, opts.window_days),
        "network": opts.network,
        "processing_date": date_s,
        "window_days": opts.window_days,
        "generated_at": format!("{date_s}T00:00:00Z"),
        "counts": {"alerts": counts.alerts, "features": counts.features, "clusters": counts.clusters, "money_flows": counts.flows, "address_labels": 0},
        "sha256": sums,
    });
    crate::io::write_json(&dir.join(crate::layout::META), &meta)
}
