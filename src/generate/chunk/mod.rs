//! A column chunk encoded directly, byte for byte as parquet-rs 57's column writer encodes the
//! same values with the same properties, for the columns the generator writes most: numbers,
//! booleans, decimals and fixed-width lists of int64, none of them null. Going through Arrow
//! arrays and the generic writer cost several times more per value (level arrays, value
//! gathers, a heap allocation per decimal, a hash per dictionary lookup).
//!
//! What is reproduced: mini-batches of `write_batch_size` levels (ending on a row boundary),
//! each followed by the page-size, row-count and dictionary-size checks; dictionary encoding
//! with its fallback to plain; `PLAIN` and `DELTA_BINARY_PACKED` pages; v1 data pages with RLE
//! levels; page and chunk statistics, level histograms, the column and offset indexes and the
//! chunk's metadata. [`Config::of`] declines any property it does not reproduce, and the caller
//! then uses parquet-rs.

mod bits;
#[cfg(test)]
mod tests;
mod value;

pub(crate) use value::{Dec, Value};

use anyhow::Result;
use bits::{levels_v1, Delta};
use bytes::Bytes;
use parquet::basic::{
    BoundaryOrder, Compression, Encoding, EncodingMask, LogicalType, PageType, Type,
};
use parquet::column::page::{CompressedPage, Page, PageWriter};
use parquet::column::writer::ColumnCloseResult;
use parquet::file::metadata::{
    ColumnChunkMetaData, ColumnIndexBuilder, LevelHistogram, OffsetIndexBuilder, PageEncodingStats,
};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::file::writer::{SerializedPageWriter, TrackedWrite};
use parquet::schema::types::ColumnDescPtr;
use std::collections::{BTreeSet, VecDeque};
use value::{min_max, Dict, Plain};

/// How a column chunk is encoded, from the writer's properties.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Config {
    dictionary: bool,
    delta: bool,
    statistics: bool,
    snappy: bool,
    batch: usize,
    page_bytes: usize,
    page_rows: usize,
    dict_bytes: usize,
    offset_index: bool,
}

impl Config {
    /// The encoding of `V` values in column `descr` under `props`, if this module reproduces
    /// it (`None`: write the column with parquet-rs).
    pub(crate) fn of<V: Value>(descr: &ColumnDescPtr, props: &WriterProperties) -> Option<Self> {
        let path = descr.path();
        let decimal = matches!(descr.logical_type_ref(), Some(LogicalType::Decimal { .. }));
        let type_ok = descr.physical_type() == V::TYPE
            && (V::TYPE != Type::FIXED_LEN_BYTE_ARRAY || decimal && descr.type_length() <= 16);
        let statistics = match props.statistics_enabled(path) {
            EnabledStatistics::Page => true,
            EnabledStatistics::None => false,
            EnabledStatistics::Chunk => return None,
        };
        let snappy = match props.compression(path) {
            Compression::SNAPPY => true,
            Compression::UNCOMPRESSED => false,
            _ => return None,
        };
        let delta = match props.encoding(path) {
            None | Some(Encoding::PLAIN) => false,
            Some(Encoding::DELTA_BINARY_PACKED) if V::TYPE == Type::INT64 => true,
            Some(_) => return None,
        };
        let plain_levels = descr.max_rep_level() <= 1;
        let ok = type_ok
            && plain_levels
            && props.writer_version() == WriterVersion::PARQUET_1_0
            && props.bloom_filter_properties(path).is_none()
            && !props.write_page_header_statistics(path);
        ok.then(|| Config {
            dictionary: props.dictionary_enabled(path) && V::DICT_BYTES > 0,
            delta,
            statistics,
            snappy,
            batch: props.write_batch_size(),
            page_bytes: props.data_page_size_limit(),
            page_rows: props.data_page_row_count_limit(),
            dict_bytes: props.column_dictionary_page_size_limit(path),
            offset_index: !props.offset_index_disabled(),
        })
    }
}

/// The value encoder of a chunk: the dictionary until it falls back, then plain or delta.
enum Values<V> {
    Dict(Dict<V>),
    Plain(Plain),
    Delta(Delta),
}

/// Level histograms of a page or chunk (present when statistics are): how many levels of each
/// value, repetition then definition.
#[derive(Clone, Default)]
struct Histograms {
    rep: Option<Vec<i64>>,
    def: Option<Vec<i64>>,
}

impl Histograms {
    fn new(statistics: bool, max_rep: i16, max_def: i16) -> Self {
        let hist = |max: i16| (statistics && max > 0).then(|| vec![0; max as usize + 1]);
        Histograms {
            rep: hist(max_rep),
            def: hist(max_def),
        }
    }

    /// Counts `n` values in `rows` rows (lists of `n / rows`), all defined.
    fn count(&mut self, n: usize, rows: usize) {
        if let Some(h) = &mut self.def {
            *h.last_mut().expect("levels 0..=max") += n as i64;
        }
        if let Some(h) = &mut self.rep {
            h[0] += rows as i64;
            h[1] += (n - rows) as i64;
        }
    }

    fn add(&mut self, other: &Histograms) {
        for (a, b) in [(&mut self.rep, &other.rep), (&mut self.def, &other.def)] {
            if let (Some(a), Some(b)) = (a, b) {
                a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
            }
        }
    }

    fn reset(&mut self) {
        for h in [&mut self.rep, &mut self.def].into_iter().flatten() {
            h.fill(0);
        }
    }

    fn levels(h: &Option<Vec<i64>>) -> Option<LevelHistogram> {
        h.clone().map(LevelHistogram::from)
    }
}

/// Writes one column chunk of `V` values, all defined, `width` values a row (1: not a list).
pub(crate) struct ChunkWriter<V: Value> {
    descr: ColumnDescPtr,
    cfg: Config,
    width: usize,
    type_len: usize,
    values: Values<V>,
    snappy: snap::raw::Encoder,
    /// Values, rows and statistics of the page being filled.
    page_values: usize,
    page_rows: usize,
    page_min_max: Option<(V, V)>,
    page_hist: Histograms,
    chunk_min_max: Option<(V, V)>,
    chunk_hist: Histograms,
    /// The encoded repetition levels of the last page with repetition levels, and its rows.
    rep_levels: (usize, Vec<u8>),
    /// Dictionary-encoded pages wait for the dictionary page.
    waiting: VecDeque<CompressedPage>,
    sink: TrackedWrite<Vec<u8>>,
    encodings: BTreeSet<Encoding>,
    encoding_stats: Vec<PageEncodingStats>,
    column_index: ColumnIndexBuilder,
    ascending: bool,
    descending: bool,
    last_page: Option<(V, V)>,
    offset_index: Option<OffsetIndexBuilder>,
    rows: u64,
    values_written: u64,
    bytes: u64,
    compressed: u64,
    uncompressed: u64,
    dict_offset: Option<i64>,
    data_offset: Option<i64>,
}

impl<V: Value> ChunkWriter<V> {
    /// A writer of column `descr`, encoded as `cfg` says.
    pub(crate) fn new(descr: ColumnDescPtr, cfg: Config, width: usize) -> Self {
        let (max_rep, max_def) = (descr.max_rep_level(), descr.max_def_level());
        assert!(
            max_rep > 0 || width == 1,
            "a list column has repetition levels"
        );
        let values = match (cfg.dictionary, cfg.delta) {
            (true, _) => Values::Dict(Dict::new(cfg.dict_bytes / V::DICT_BYTES + cfg.batch)),
            (false, true) => Values::Delta(Delta::default()),
            (false, false) => Values::Plain(Plain::default()),
        };
        let mut column_index = ColumnIndexBuilder::new(descr.physical_type());
        if !cfg.statistics {
            column_index.to_invalid();
        }
        let mut encodings = BTreeSet::new();
        encodings.insert(Encoding::RLE);
        ChunkWriter {
            type_len: descr.type_length().max(0) as usize,
            page_hist: Histograms::new(cfg.statistics, max_rep, max_def),
            rep_levels: (0, Vec::new()),
            chunk_hist: Histograms::new(cfg.statistics, max_rep, max_def),
            descr,
            cfg,
            width,
            values,
            snappy: snap::raw::Encoder::new(),
            page_values: 0,
            page_rows: 0,
            page_min_max: None,
            chunk_min_max: None,
            waiting: VecDeque::new(),
            sink: TrackedWrite::new(Vec::new()),
            encodings,
            encoding_stats: Vec::new(),
            column_index,
            ascending: true,
            descending: true,
            last_page: None,
            offset_index: cfg.offset_index.then(OffsetIndexBuilder::new),
            rows: 0,
            values_written: 0,
            bytes: 0,
            compressed: 0,
            uncompressed: 0,
            dict_offset: None,
            data_offset: None,
        }
    }

    /// Writes `values` (whole rows), as one `write_batch` call of parquet-rs would.
    pub(crate) fn write(&mut self, values: &[V]) -> Result<()> {
        anyhow::ensure!(values.len().is_multiple_of(self.width), "whole rows");
        let mut at = 0;
        while at < values.len() {
            let end = (at + self.cfg.batch).min(values.len());
            // A mini-batch ends on a row boundary.
            let end = end.div_ceil(self.width) * self.width;
            self.mini_batch(&values[at..end])?;
            at = end;
        }
        Ok(())
    }

    fn mini_batch(&mut self, values: &[V]) -> Result<()> {
        let (n, rows) = (values.len(), values.len() / self.width);
        self.page_hist.count(n, rows);
        self.page_rows += rows;
        if self.cfg.statistics {
            if let Some((min, max)) = min_max(values) {
                self.page_min_max = Some(merge(self.page_min_max, min, max));
            }
        }
        match &mut self.values {
            Values::Dict(d) => d.put(values),
            Values::Plain(p) => V::plain(values, self.type_len, p),
            Values::Delta(d) => d.put(values.iter().map(|v| v.as_i64())),
        }
        self.page_values += n;
        let estimated = match &self.values {
            Values::Dict(d) => d.estimated_size(),
            Values::Plain(p) => p.size(),
            Values::Delta(d) => d.estimated_size(),
        };
        if self.page_rows >= self.cfg.page_rows || estimated >= self.cfg.page_bytes {
            self.add_page()?;
        }
        if matches!(&self.values, Values::Dict(d) if d.size() >= self.cfg.dict_bytes) {
            if self.page_values > 0 {
                self.add_page()?;
            }
            self.write_dictionary()?;
            self.write_waiting()?;
        }
        Ok(())
    }

    /// Ends the page being filled.
    fn add_page(&mut self) -> Result<()> {
        let (data, encoding) = match &mut self.values {
            Values::Dict(d) => (d.take_indices(), Encoding::RLE_DICTIONARY),
            Values::Plain(p) => (p.take(), Encoding::PLAIN),
            Values::Delta(d) => (d.flush_page(), Encoding::DELTA_BINARY_PACKED),
        };
        let page_stats = self.page_min_max.take();
        if let Some((min, max)) = page_stats {
            self.chunk_min_max = Some(merge(self.chunk_min_max, min, max));
        }
        self.index_page(page_stats);
        self.chunk_hist.add(&self.page_hist);
        let (max_rep, max_def) = (self.descr.max_rep_level(), self.descr.max_def_level());
        let mut buf = Vec::with_capacity(data.len() + 64);
        if max_rep > 0 {
            // Pages mostly have the same number of rows, so the same repetition levels.
            let (rows, width) = (self.page_rows, self.width);
            if self.rep_levels.0 != rows {
                self.rep_levels = (rows, levels_v1(max_rep, |r| r.put_pattern(rows, width)));
            }
            buf.extend_from_slice(&self.rep_levels.1);
        }
        if max_def > 0 {
            let n = self.page_values;
            buf.extend(levels_v1(max_def, |r| r.put_run(max_def as u64, n)));
        }
        buf.extend_from_slice(&data);
        let uncompressed = buf.len();
        let page = Page::DataPage {
            buf: self.compress(buf)?,
            num_values: self.page_values as u32,
            encoding,
            def_level_encoding: Encoding::RLE,
            rep_level_encoding: Encoding::RLE,
            statistics: None,
        };
        let page = CompressedPage::new(page, uncompressed);
        if matches!(self.values, Values::Dict(_)) {
            self.waiting.push_back(page);
        } else {
            self.write_data_page(page)?;
        }
        self.rows += self.page_rows as u64;
        self.page_values = 0;
        self.page_rows = 0;
        self.page_hist.reset();
        Ok(())
    }

    /// Records a page in the column and offset indexes.
    fn index_page(&mut self, stats: Option<(V, V)>) {
        if self.column_index.valid() {
            match stats {
                None => self.column_index.to_invalid(),
                Some((min, max)) => {
                    if let Some((last_min, last_max)) = self.last_page {
                        if last_min.greater(min) || last_max.greater(max) {
                            self.ascending = false;
                        }
                        if min.greater(last_min) || max.greater(last_max) {
                            self.descending = false;
                        }
                    }
                    self.last_page = Some((min, max));
                    let w = self.type_len;
                    self.column_index
                        .append(false, min.bytes(w), max.bytes(w), 0);
                }
            }
        }
        let h = &self.page_hist;
        self.column_index
            .append_histograms(&Histograms::levels(&h.rep), &Histograms::levels(&h.def));
        if let Some(oi) = &mut self.offset_index {
            oi.append_row_count(self.page_rows as i64);
            oi.append_unencoded_byte_array_data_bytes(None);
        }
    }

    fn compress(&mut self, buf: Vec<u8>) -> Result<Bytes> {
        if !self.cfg.snappy {
            return Ok(buf.into());
        }
        let mut out = vec![0; snap::raw::max_compress_len(buf.len())];
        let n = self.snappy.compress(&buf, &mut out)?;
        out.truncate(n);
        Ok(out.into())
    }

    /// Writes the dictionary page; later pages are plain.
    fn write_dictionary(&mut self) -> Result<()> {
        let Values::Dict(d) = &self.values else {
            anyhow::bail!("no dictionary to write");
        };
        let (data, entries) = (d.page(), d.len());
        let uncompressed = data.len();
        let page = Page::DictionaryPage {
            buf: self.compress(data)?,
            num_values: entries as u32,
            encoding: Encoding::PLAIN,
            is_sorted: false,
        };
        self.values = match self.cfg.delta {
            true => Values::Delta(Delta::default()),
            false => Values::Plain(Plain::default()),
        };
        self.encodings.insert(Encoding::PLAIN);
        self.encoding_stats.push(PageEncodingStats {
            page_type: PageType::DICTIONARY_PAGE,
            encoding: Encoding::PLAIN,
            count: 1,
        });
        let spec = SerializedPageWriter::new(&mut self.sink)
            .write_page(CompressedPage::new(page, uncompressed))?;
        self.count(&spec);
        self.dict_offset = Some(spec.offset as i64);
        Ok(())
    }

    fn write_waiting(&mut self) -> Result<()> {
        while let Some(page) = self.waiting.pop_front() {
            self.write_data_page(page)?;
        }
        Ok(())
    }

    fn write_data_page(&mut self, page: CompressedPage) -> Result<()> {
        let encoding = page.encoding();
        self.encodings.insert(encoding);
        match self.encoding_stats.last_mut() {
            Some(s) if s.page_type == PageType::DATA_PAGE && s.encoding == encoding => s.count += 1,
            _ => self.encoding_stats.push(PageEncodingStats {
                page_type: PageType::DATA_PAGE,
                encoding,
                count: 1,
            }),
        }
        let spec = SerializedPageWriter::new(&mut self.sink).write_page(page)?;
        if let Some(oi) = &mut self.offset_index {
            oi.append_offset_and_size(spec.offset as i64, spec.compressed_size as i32);
        }
        self.count(&spec);
        self.values_written += spec.num_values as u64;
        self.data_offset.get_or_insert(spec.offset as i64);
        Ok(())
    }

    fn count(&mut self, spec: &parquet::column::page::PageWriteSpec) {
        self.uncompressed += spec.uncompressed_size as u64;
        self.compressed += spec.compressed_size as u64;
        self.bytes += spec.bytes_written;
    }

    /// Ends the chunk: its bytes, and what the row group records of it.
    pub(crate) fn close(mut self) -> Result<(Bytes, ColumnCloseResult)> {
        if self.page_values > 0 {
            self.add_page()?;
        }
        if matches!(self.values, Values::Dict(_)) {
            self.write_dictionary()?;
        }
        self.write_waiting()?;
        let mut b = ColumnChunkMetaData::builder(self.descr.clone())
            .set_compression(match self.cfg.snappy {
                true => Compression::SNAPPY,
                false => Compression::UNCOMPRESSED,
            })
            .set_encodings_mask(EncodingMask::new_from_encodings(self.encodings.iter()))
            .set_page_encoding_stats(self.encoding_stats.clone())
            .set_total_compressed_size(self.compressed as i64)
            .set_total_uncompressed_size(self.uncompressed as i64)
            .set_num_values(self.values_written as i64)
            .set_data_page_offset(self.data_offset.unwrap_or(0))
            .set_dictionary_page_offset(self.dict_offset);
        if self.cfg.statistics {
            let signed = self.descr.sort_order().is_signed();
            let h = &self.chunk_hist;
            b = b
                .set_statistics(V::statistics(self.chunk_min_max, self.type_len, signed))
                .set_unencoded_byte_array_data_bytes(None)
                .set_repetition_level_histogram(Histograms::levels(&h.rep))
                .set_definition_level_histogram(Histograms::levels(&h.def));
        }
        let metadata = b.build()?;
        self.column_index
            .set_boundary_order(match (self.ascending, self.descending) {
                (true, _) => BoundaryOrder::ASCENDING,
                (false, true) => BoundaryOrder::DESCENDING,
                (false, false) => BoundaryOrder::UNORDERED,
            });
        let column_index = match self.column_index.valid() {
            true => Some(self.column_index.build()?),
            false => None,
        };
        let close = ColumnCloseResult {
            bytes_written: self.bytes,
            rows_written: self.rows,
            metadata,
            bloom_filter: None,
            column_index,
            offset_index: self.offset_index.map(|b| b.build()),
        };
        Ok((self.sink.into_inner()?.into(), close))
    }
}

/// `(min, max)` widened by a batch's or page's `(min, max)`, as parquet-rs merges statistics
/// (a later equal value never replaces an earlier one).
fn merge<V: Value>(cur: Option<(V, V)>, min: V, max: V) -> (V, V) {
    match cur {
        None => (min, max),
        Some((lo, hi)) => (
            if lo.greater(min) { min } else { lo },
            if max.greater(hi) { max } else { hi },
        ),
    }
}
