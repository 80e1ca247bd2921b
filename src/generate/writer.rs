//! Parquet output: the [`Table`] of column generators, which imitates pandas-written files, and
//! its streaming writer. A table is never held whole: each column is generated and encoded a
//! row group at a time, columns in parallel, and the file's checksum is taken as it is written.
//! The bytes are those of an `ArrowWriter` fed the rows in chunks of [`CHUNK`].

use super::chunk::{ChunkWriter, Config, Dec, Value};
use super::par;
use super::{Day, DayCounts};
use crate::io::TempFile;
use anyhow::Result;
use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array, Int64Array,
    ListArray, StringArray, StringBuilder,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use bytes::Bytes;
use parquet::arrow::arrow_writer::{compute_leaves, ArrowColumnChunk, ArrowColumnWriter};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding as PageEncoding};
use parquet::column::writer::ColumnCloseResult;
use parquet::file::properties::{EnabledStatistics, WriterProperties, DEFAULT_MAX_ROW_GROUP_SIZE};
use parquet::file::writer::SerializedRowGroupWriter;
use parquet::schema::types::{ColumnDescPtr, ColumnPath};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Rows generated and handed to the encoder at a time.
pub(super) const CHUNK: usize = 131_072;
/// Rows of a row group (Parquet's default), a whole number of chunks.
const ROW_GROUP: usize = DEFAULT_MAX_ROW_GROUP_SIZE;
const _: () = assert!(ROW_GROUP.is_multiple_of(CHUNK));

/// Appends a column's values for a range of rows.
type Fill<'a, T> = Box<dyn Fn(Range<usize>, &mut Vec<T>) + Sync + 'a>;
/// Appends a text column's values for a range of rows.
type FillStr<'a> = Box<dyn Fn(Range<usize>, &mut StringBuilder) + Sync + 'a>;
/// Appends the values of a row of a list-of-text column; returns how many.
type FillList<'a> = Box<dyn Fn(usize, &mut StringBuilder) -> usize + Sync + 'a>;

/// A column of a table: how to generate its values for any range of rows.
pub(super) enum Col<'a> {
    /// int64.
    I64(Fill<'a, i64>),
    /// float64.
    F64(Fill<'a, f64>),
    /// float32.
    F32(Fill<'a, f32>),
    /// `decimal128(p, 18)`, `p` from the data.
    Dec(Fill<'a, f64>),
    /// bool.
    Bool(Fill<'a, bool>),
    /// utf8.
    Str(FillStr<'a>),
    /// date32: the same day (days since the epoch) on every row.
    Date(i32),
    /// list of int64, the same length on every row.
    ListI64(usize, Fill<'a, i64>),
    /// list of utf8: appends a row's values, returns how many.
    ListStr(FillList<'a>),
}

impl<'a> Col<'a> {
    /// int64 column of `f(row)`.
    pub(super) fn i64(f: impl Fn(usize) -> i64 + Sync + 'a) -> Self {
        Col::I64(Box::new(move |r, out| out.extend(r.map(&f))))
    }

    /// float64 column of `f(row)`.
    pub(super) fn f64(f: impl Fn(usize) -> f64 + Sync + 'a) -> Self {
        Col::F64(Box::new(move |r, out| out.extend(r.map(&f))))
    }

    /// float32 column of `f(row)`.
    pub(super) fn f32(f: impl Fn(usize) -> f32 + Sync + 'a) -> Self {
        Col::F32(Box::new(move |r, out| out.extend(r.map(&f))))
    }

    /// Decimal column of `f(row)`.
    pub(super) fn dec(f: impl Fn(usize) -> f64 + Sync + 'a) -> Self {
        Col::Dec(Box::new(move |r, out| out.extend(r.map(&f))))
    }

    /// bool column of `f(row)`.
    pub(super) fn bool(f: impl Fn(usize) -> bool + Sync + 'a) -> Self {
        Col::Bool(Box::new(move |r, out| out.extend(r.map(&f))))
    }

    /// utf8 column of `f(row)`.
    pub(super) fn str<S: AsRef<str>>(f: impl Fn(usize) -> S + Sync + 'a) -> Self {
        Col::Str(Box::new(move |r, b| r.for_each(|i| b.append_value(f(i)))))
    }

    /// list-of-int64 column: `f(row, out)` appends the row's `width` values.
    pub(super) fn list_i64(width: usize, f: impl Fn(usize, &mut Vec<i64>) + Sync + 'a) -> Self {
        Col::ListI64(width, Box::new(move |r, out| r.for_each(|i| f(i, out))))
    }

    /// list-of-utf8 column of the values `f(row)`.
    pub(super) fn list_str<I>(f: impl Fn(usize) -> I + Sync + 'a) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        Col::ListStr(Box::new(move |i, b| {
            f(i).into_iter().map(|s| b.append_value(s)).count()
        }))
    }
}

/// How a table's columns are encoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum Encoding {
    /// The arrow writer's defaults with Snappy, as pandas writes: dictionary pages and column
    /// statistics (the classic profile's bytes are pinned to these).
    #[default]
    Pandas,
    /// No statistics; integers delta-encoded, text of few values dictionary-encoded, both with
    /// Snappy; numbers and other text (addresses, ids) plain and uncompressed: much cheaper to
    /// write, and as readable by pandas and pyarrow.
    Fast,
}

/// A table of `rows` rows with one schema; decimal precision is set by the data, as pandas does.
pub(super) struct Table<'a> {
    rows: usize,
    cols: Vec<(&'static str, Col<'a>)>,
    encoding: Encoding,
    /// Whether columns [`super::chunk`] reproduces are encoded there rather than by parquet-rs
    /// (the bytes are the same).
    native: bool,
}

/// An encoded column chunk, by parquet-rs or by [`super::chunk`].
enum Encoded {
    Arrow(ArrowColumnChunk),
    Native(Bytes, ColumnCloseResult),
}

impl Encoded {
    fn append<W: Write + Send>(self, rg: &mut SerializedRowGroupWriter<'_, W>) -> Result<()> {
        match self {
            Encoded::Arrow(c) => c.append_to_row_group(rg)?,
            Encoded::Native(data, close) => rg.append_column(&data, close)?,
        }
        Ok(())
    }
}

/// Encodes rows `rows` of a column with [`ChunkWriter`], `width` values a row, generated by
/// `fill` a chunk of rows at a time; `None` if the column's properties are not reproduced.
fn native<V: Value>(
    descr: &ColumnDescPtr,
    props: &WriterProperties,
    width: usize,
    rows: Range<usize>,
    fill: impl Fn(Range<usize>, &mut Vec<V>),
) -> Result<Option<Encoded>> {
    let Some(cfg) = Config::of::<V>(descr, props) else {
        return Ok(None);
    };
    let mut w = ChunkWriter::<V>::new(descr.clone(), cfg, width);
    let mut values = Vec::with_capacity(CHUNK * width);
    for r in chunks(rows) {
        values.clear();
        fill(r, &mut values);
        w.write(&values)?;
    }
    let (data, close) = w.close()?;
    Ok(Some(Encoded::Native(data, close)))
}

/// A decimal column's generator as one of [`Dec`] values.
fn decimals<'f>(f: &'f Fill<'_, f64>) -> impl Fn(Range<usize>, &mut Vec<Dec>) + 'f {
    move |r, out| {
        let mut v = Vec::with_capacity(r.len());
        f(r, &mut v);
        out.extend(v.into_iter().map(|x| Dec(to_dec(x))));
    }
}

/// Decimal precision for a largest absolute value `max` at scale 18: the integer digits plus
/// 18, within 19..=38.
fn dec_precision(max: f64) -> u8 {
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

/// A list field's item, as pandas names it.
fn element(t: DataType) -> FieldRef {
    Arc::new(Field::new("element", t, true))
}

/// `row` chunks of `rows`, aligned on multiples of [`CHUNK`].
fn chunks(rows: Range<usize>) -> impl Iterator<Item = Range<usize>> {
    let end = rows.end;
    rows.step_by(CHUNK).map(move |a| a..(a + CHUNK).min(end))
}

impl<'a> Table<'a> {
    /// A table of `rows` rows, without columns yet.
    pub(super) fn new(rows: usize) -> Self {
        Table {
            rows,
            cols: Vec::new(),
            encoding: Encoding::Pandas,
            native: true,
        }
    }

    /// Encodes every column with parquet-rs (to compare the bytes with).
    #[cfg(test)]
    pub(super) fn through_arrow(&mut self) -> &mut Self {
        self.native = false;
        self
    }

    /// Sets how the columns are encoded.
    pub(super) fn encoded(&mut self, e: Encoding) -> &mut Self {
        self.encoding = e;
        self
    }

    /// Appends column `name`.
    pub(super) fn push(&mut self, name: &'static str, c: Col<'a>) -> &mut Self {
        self.cols.push((name, c));
        self
    }

    /// Number of rows written (0 without columns).
    pub(super) fn rows(&self) -> usize {
        if self.cols.is_empty() {
            0
        } else {
            self.rows
        }
    }

    /// The writer's properties for the table's encoding.
    fn properties(&self) -> WriterProperties {
        let b = WriterProperties::builder().set_compression(Compression::SNAPPY);
        if self.encoding == Encoding::Pandas {
            return b.build();
        }
        let mut b = b
            .set_dictionary_enabled(false)
            .set_statistics_enabled(EnabledStatistics::None)
            .set_data_page_size_limit(4 << 20);
        for (c, (name, col)) in self.cols.iter().enumerate() {
            let path = |leaf: &[&str]| {
                let p = std::iter::once(*name).chain(leaf.iter().copied());
                ColumnPath::new(p.map(String::from).collect())
            };
            b = match col {
                Col::I64(_) => b.set_column_encoding(path(&[]), PageEncoding::DELTA_BINARY_PACKED),
                Col::ListI64(..) => b.set_column_encoding(
                    path(&["list", "element"]),
                    PageEncoding::DELTA_BINARY_PACKED,
                ),
                Col::F32(_) | Col::F64(_) | Col::Dec(_) => {
                    b.set_column_compression(path(&[]), Compression::UNCOMPRESSED)
                }
                Col::Str(_) if self.few_values(c) => {
                    b.set_column_dictionary_enabled(path(&[]), true)
                }
                Col::Str(_) => b.set_column_compression(path(&[]), Compression::UNCOMPRESSED),
                _ => b,
            };
        }
        b.build()
    }

    /// Whether text column `c` takes at most 16 values in its first 256 rows (such columns
    /// are dictionary-encoded; the others, addresses and ids, hardly compress).
    fn few_values(&self, c: usize) -> bool {
        let Col::Str(f) = &self.cols[c].1 else {
            return false;
        };
        let mut b = StringBuilder::new();
        f(0..self.rows.min(256), &mut b);
        let values = b.finish();
        let distinct: std::collections::BTreeSet<&str> = values.iter().flatten().collect();
        distinct.len() <= 16
    }

    /// The precision of every decimal column (0 for the others), from all its values.
    fn precisions(&self, threads: usize) -> Vec<u8> {
        let dec: Vec<usize> = (0..self.cols.len())
            .filter(|&c| matches!(self.cols[c].1, Col::Dec(_)))
            .collect();
        let mut p = vec![0; self.cols.len()];
        let mut at = dec.iter();
        let max_abs = |k: usize| {
            let Col::Dec(f) = &self.cols[dec[k]].1 else {
                unreachable!()
            };
            let mut v = Vec::with_capacity(CHUNK);
            chunks(0..self.rows).fold(0.0f64, |m, r| {
                v.clear();
                f(r, &mut v);
                v.iter().fold(m, |m, x| m.max(x.abs()))
            })
        };
        par::ordered(threads, dec.len(), max_abs, |m| {
            p[*at.next().expect("a decimal column")] = dec_precision(m)
        });
        p
    }

    /// The schema; without rows, one without columns.
    fn schema(&self, precisions: &[u8]) -> SchemaRef {
        if self.rows == 0 {
            return Arc::new(Schema::empty());
        }
        let fields: Vec<Field> = (self.cols.iter().zip(precisions))
            .map(|((name, c), &p)| {
                let t = match c {
                    Col::I64(_) => DataType::Int64,
                    Col::F64(_) => DataType::Float64,
                    Col::F32(_) => DataType::Float32,
                    Col::Dec(_) => DataType::Decimal128(p, 18),
                    Col::Bool(_) => DataType::Boolean,
                    Col::Str(_) => DataType::Utf8,
                    Col::Date(_) => DataType::Date32,
                    Col::ListI64(..) => DataType::List(element(DataType::Int64)),
                    Col::ListStr(_) => DataType::List(element(DataType::Utf8)),
                };
                Field::new(*name, t, true)
            })
            .collect();
        Arc::new(Schema::new(fields))
    }

    /// Column `c`'s values for rows `r`.
    fn array(&self, c: usize, r: Range<usize>, precision: u8) -> Result<ArrayRef> {
        let n = r.len();
        fn vals<T>(f: &Fill<'_, T>, r: Range<usize>) -> Vec<T> {
            let mut v = Vec::with_capacity(r.len());
            f(r, &mut v);
            v
        }
        Ok(match &self.cols[c].1 {
            Col::I64(f) => Arc::new(Int64Array::from(vals(f, r))),
            Col::F64(f) => Arc::new(Float64Array::from(vals(f, r))),
            Col::F32(f) => Arc::new(Float32Array::from(vals(f, r))),
            Col::Dec(f) => Arc::new(
                Decimal128Array::from_iter_values(vals(f, r).into_iter().map(to_dec))
                    .with_precision_and_scale(precision, 18)?,
            ),
            Col::Bool(f) => Arc::new(BooleanArray::from(vals(f, r))),
            Col::Str(f) => {
                let mut b = StringBuilder::with_capacity(n, n * 16);
                f(r, &mut b);
                Arc::new(b.finish())
            }
            Col::Date(d) => Arc::new(Date32Array::from(vec![*d; n])),
            Col::ListI64(w, f) => {
                let mut v = Vec::with_capacity(n * w);
                f(r, &mut v);
                let values = Int64Array::from(v);
                Arc::new(ListArray::new(
                    element(DataType::Int64),
                    OffsetBuffer::from_lengths(std::iter::repeat_n(*w, n)),
                    Arc::new(values),
                    None,
                ))
            }
            Col::ListStr(f) => {
                let mut b = StringBuilder::new();
                let lengths: Vec<usize> = r.map(|i| f(i, &mut b)).collect();
                let values: StringArray = b.finish();
                Arc::new(ListArray::new(
                    element(DataType::Utf8),
                    OffsetBuffer::from_lengths(lengths),
                    Arc::new(values),
                    None,
                ))
            }
        })
    }

    /// Column `c` of the row group `rows`, encoded natively if it can be, else with `w`.
    fn encode(
        &self,
        c: usize,
        (field, descr, props): (&Field, &ColumnDescPtr, &WriterProperties),
        mut w: ArrowColumnWriter,
        rows: Range<usize>,
    ) -> Result<Encoded> {
        if self.native {
            let r = rows.clone();
            let done = match &self.cols[c].1 {
                Col::I64(f) => native(descr, props, 1, r, f)?,
                Col::F64(f) => native(descr, props, 1, r, f)?,
                Col::F32(f) => native(descr, props, 1, r, f)?,
                Col::Bool(f) => native(descr, props, 1, r, f)?,
                Col::Dec(f) => native(descr, props, 1, r, decimals(f))?,
                Col::ListI64(width, f) => native(descr, props, *width, r, f)?,
                Col::Str(_) | Col::Date(_) | Col::ListStr(_) => None,
            };
            if let Some(done) = done {
                return Ok(done);
            }
        }
        let precision = match field.data_type() {
            DataType::Decimal128(p, _) => *p,
            _ => 0,
        };
        for r in chunks(rows) {
            for leaf in compute_leaves(field, &self.array(c, r, precision)?)? {
                w.write(&leaf)?;
            }
        }
        Ok(Encoded::Arrow(w.close()?))
    }

    /// Writes the table to a temporary file beside `path` (renamed by the caller), using up to
    /// `threads` threads; returns it with its SHA-256 in hex.
    pub(super) fn write(&self, path: &Path, threads: usize) -> Result<(TempFile, String)> {
        let precisions = self.precisions(threads);
        let schema = self.schema(&precisions);
        let mut sum = String::new();
        let tmp = TempFile::write(path, |file| {
            let props = self.properties();
            anyhow::ensure!(props.max_row_group_size() == ROW_GROUP);
            let out = BufWriter::with_capacity(1 << 20, HashingWriter(file, Sha256::new()));
            let writer = ArrowWriter::try_new(out, schema.clone(), Some(props))?;
            let (mut file_writer, factory) = writer.into_serialized_writer()?;
            let leaves = file_writer.schema_descr().num_columns();
            let descrs: Vec<ColumnDescPtr> = (0..leaves)
                .map(|c| file_writer.schema_descr().column(c))
                .collect();
            let props = file_writer.properties().clone();
            let rows = self.rows();
            for (g, start) in (0..rows).step_by(ROW_GROUP).enumerate() {
                let group = start..(start + ROW_GROUP).min(rows);
                let writers: Vec<Mutex<Option<ArrowColumnWriter>>> = factory
                    .create_column_writers(g)?
                    .into_iter()
                    .map(|w| Mutex::new(Some(w)))
                    .collect();
                anyhow::ensure!(writers.len() == self.cols.len(), "one leaf per column");
                let mut rg = file_writer.next_row_group()?;
                let mut result = Ok(());
                let job = |c: usize| {
                    let w = writers[c].lock().expect("column writer").take();
                    let w = w.expect("each column encoded once");
                    let column = (schema.fields()[c].as_ref(), &descrs[c], props.as_ref());
                    self.encode(c, column, w, group.clone())
                };
                par::ordered(threads, self.cols.len(), job, |chunk| {
                    if result.is_ok() {
                        result = chunk.and_then(|c| c.append(&mut rg));
                    }
                });
                result?;
                rg.close()?;
            }
            let out = file_writer.into_inner()?;
            let HashingWriter(_, sha) = out.into_inner().map_err(|e| e.into_error())?;
            sum = hex::encode(sha.finalize());
            Ok(())
        })?;
        Ok((tmp, sum))
    }
}

/// Passes writes through to `W` and hashes them.
struct HashingWriter<W>(W, Sha256);

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.0.write(buf)?;
        self.1.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Writes a date's `META.json` into `dir`, with the `counts` and the checksums of the tables
/// (file name, SHA-256 in hex).
pub(super) fn write_meta(
    day: &Day,
    dir: &Path,
    sums: &[(&str, String)],
    counts: &DayCounts,
) -> Result<()> {
    let opts = day.opts;
    let date_s = &day.date_s;
    let sums: serde_json::Map<String, serde_json::Value> = sums
        .iter()
        .map(|(name, sum)| (name.to_string(), json!(sum)))
        .collect();
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
