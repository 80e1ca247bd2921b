//! The value types the chunk writer encodes, with parquet-rs 57's rules for each: plain
//! encoding, the order its statistics use, and its dictionary (first-seen order).

use super::bits::{bits_for, BitWriter, Rle};
use parquet::basic::Type;
use parquet::data_type::{ByteArray, FixedLenByteArray};
use parquet::file::statistics::{Statistics, ValueStatistics};
use rustc_hash::FxHashMap;

/// A `decimal128` value written as a big-endian fixed-length byte array.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Dec(pub(crate) i128);

/// A value type of a column chunk.
pub(crate) trait Value: Copy + PartialEq + Send + Sync {
    /// The Parquet physical type.
    const TYPE: Type;
    /// Bytes a dictionary entry counts for; 0 if never dictionary-encoded.
    const DICT_BYTES: usize;

    /// A key equal for two values exactly when their plain encodings are (dictionary types).
    fn key(self) -> u64;

    /// `self > other` in the order of the column's statistics.
    fn greater(self, other: Self) -> bool;

    /// Whether statistics skip it.
    fn is_nan(self) -> bool {
        false
    }

    /// A statistic's minimum as written (negative zero for floats).
    fn min_stat(self) -> Self {
        self
    }

    /// A statistic's maximum as written (positive zero for floats).
    fn max_stat(self) -> Self {
        self
    }

    /// Appends the plain encoding of `values` (`width` bytes each for fixed-length types).
    fn plain(values: &[Self], width: usize, out: &mut Plain);

    /// The plain bytes of one value, as the column index holds them.
    fn bytes(self, width: usize) -> Vec<u8>;

    /// The column chunk's statistics, from its smallest and largest values if any.
    fn statistics(min_max: Option<(Self, Self)>, width: usize, signed: bool) -> Statistics;

    /// The value of an int64 column.
    fn as_i64(self) -> i64 {
        unreachable!("only int64 columns are delta-encoded")
    }
}

/// A plain-encoded page under construction.
#[derive(Default)]
pub(crate) struct Plain {
    bytes: Vec<u8>,
    bits: BitWriter,
}

impl Plain {
    /// Bytes so far.
    pub(super) fn size(&self) -> usize {
        self.bytes.len() + self.bits.bytes_written()
    }

    /// The page's bytes; starts a new page.
    pub(super) fn take(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.bytes);
        out.extend_from_slice(&self.bits.take());
        out
    }
}

/// Appends the little-endian bytes of fixed-size numbers.
macro_rules! le_plain {
    () => {
        fn plain(values: &[Self], _: usize, out: &mut Plain) {
            out.bytes.reserve(std::mem::size_of_val(values));
            for v in values {
                out.bytes.extend_from_slice(&v.to_le_bytes());
            }
        }

        fn bytes(self, _: usize) -> Vec<u8> {
            self.to_le_bytes().to_vec()
        }
    };
}

impl Value for i64 {
    const TYPE: Type = Type::INT64;
    const DICT_BYTES: usize = 8;

    fn key(self) -> u64 {
        self as u64
    }

    fn greater(self, other: Self) -> bool {
        self > other
    }

    fn as_i64(self) -> i64 {
        self
    }

    le_plain!();

    fn statistics(min_max: Option<(Self, Self)>, _: usize, signed: bool) -> Statistics {
        stats(min_max, signed)
    }
}

/// Floats: NaN never enters statistics, a zero minimum is written -0.0 and a zero maximum 0.0.
macro_rules! float {
    ($t:ty, $ty:expr) => {
        impl Value for $t {
            const TYPE: Type = $ty;
            const DICT_BYTES: usize = std::mem::size_of::<$t>();

            fn key(self) -> u64 {
                self.to_bits() as u64
            }

            fn greater(self, other: Self) -> bool {
                self > other
            }

            fn is_nan(self) -> bool {
                self.is_nan()
            }

            fn min_stat(self) -> Self {
                if self == 0.0 {
                    -0.0
                } else {
                    self
                }
            }

            fn max_stat(self) -> Self {
                if self == 0.0 {
                    0.0
                } else {
                    self
                }
            }

            le_plain!();

            fn statistics(min_max: Option<(Self, Self)>, _: usize, signed: bool) -> Statistics {
                stats(min_max, signed)
            }
        }
    };
}

float!(f32, Type::FLOAT);
float!(f64, Type::DOUBLE);

impl Value for bool {
    const TYPE: Type = Type::BOOLEAN;
    const DICT_BYTES: usize = 0;

    fn key(self) -> u64 {
        self as u64
    }

    fn greater(self, other: Self) -> bool {
        self & !other
    }

    fn plain(values: &[Self], _: usize, out: &mut Plain) {
        for &v in values {
            out.bits.put_value(v as u64, 1);
        }
    }

    fn bytes(self, _: usize) -> Vec<u8> {
        vec![self as u8]
    }

    fn statistics(min_max: Option<(Self, Self)>, _: usize, signed: bool) -> Statistics {
        stats(min_max, signed)
    }
}

impl Value for Dec {
    const TYPE: Type = Type::FIXED_LEN_BYTE_ARRAY;
    const DICT_BYTES: usize = 0;

    fn key(self) -> u64 {
        unreachable!("decimals are never dictionary-encoded")
    }

    /// Signed big-endian comparison of equal-length byte arrays is the integers' order.
    fn greater(self, other: Self) -> bool {
        self.0 > other.0
    }

    fn plain(values: &[Self], width: usize, out: &mut Plain) {
        // Each value is stored as 16 bytes whose first `width` are its low bytes, big-endian;
        // the next value overwrites the rest (fixed-size stores, no copy call per value).
        let (start, n) = (out.bytes.len(), values.len() * width);
        out.bytes.resize(start + n + 16, 0);
        let shift = 8 * (16 - width) as u32;
        for (at, v) in (start..).step_by(width).zip(values) {
            let b = ((v.0 as u128) << shift).to_be_bytes();
            out.bytes[at..at + 16].copy_from_slice(&b);
        }
        out.bytes.truncate(start + n);
    }

    fn bytes(self, width: usize) -> Vec<u8> {
        self.0.to_be_bytes()[16 - width..].to_vec()
    }

    fn statistics(min_max: Option<(Self, Self)>, width: usize, signed: bool) -> Statistics {
        let flba = |v: Dec| FixedLenByteArray::from(ByteArray::from(v.bytes(width)));
        stats(min_max.map(|(lo, hi)| (flba(lo), flba(hi))), signed)
    }
}

/// Chunk statistics without nulls, as parquet-rs builds them.
fn stats<T>(min_max: Option<(T, T)>, signed: bool) -> Statistics
where
    ValueStatistics<T>: Into<Statistics>,
{
    let (min, max) = min_max.unzip();
    ValueStatistics::new(min, max, None, Some(0), false)
        .with_backwards_compatible_min_max(signed)
        .into()
}

/// The smallest and largest non-NaN values of `values` as parquet-rs computes a batch's
/// (the first of equal values wins, then zeros are normalised).
pub(super) fn min_max<V: Value>(values: &[V]) -> Option<(V, V)> {
    let mut it = values.iter().copied().filter(|v| !v.is_nan());
    let first = it.next()?;
    let (mut min, mut max) = (first, first);
    for v in it {
        if min.greater(v) {
            min = v;
        }
        if v.greater(max) {
            max = v;
        }
    }
    Some((min.min_stat(), max.max_stat()))
}

/// Values below this key are looked up in a table rather than hashed.
const SMALL: usize = 256;

/// A dictionary: entries in first-seen order and each buffered value's entry.
pub(super) struct Dict<V> {
    entries: Vec<V>,
    small: Box<[u32; SMALL]>,
    map: FxHashMap<u64, u32>,
    /// Entries the map makes room for at once (about as many as fit before the fallback).
    room: usize,
    indices: Vec<u32>,
}

impl<V: Value> Dict<V> {
    /// A dictionary of up to about `room` entries.
    pub(super) fn new(room: usize) -> Self {
        Dict {
            entries: Vec::new(),
            small: Box::new([u32::MAX; SMALL]),
            map: FxHashMap::default(),
            room,
            indices: Vec::new(),
        }
    }

    /// Buffers `values`' entries, adding new values to the dictionary.
    pub(super) fn put(&mut self, values: &[V]) {
        self.indices.reserve(values.len());
        // The previous value's key and entry (values often repeat: zeros in lists).
        let mut last = None;
        for &v in values {
            let k = v.key();
            if let Some((lk, li)) = last {
                if lk == k {
                    self.indices.push(li);
                    continue;
                }
            }
            let slot = if (k as usize) < SMALL {
                &mut self.small[k as usize]
            } else {
                if self.map.capacity() == 0 {
                    self.map.reserve(self.room);
                }
                self.map.entry(k).or_insert(u32::MAX)
            };
            if *slot == u32::MAX {
                *slot = self.entries.len() as u32;
                self.entries.push(v);
            }
            self.indices.push(*slot);
            last = Some((k, *slot));
        }
    }

    /// Bytes of the dictionary page's values.
    pub(super) fn size(&self) -> usize {
        self.entries.len() * V::DICT_BYTES
    }

    fn width(&self) -> u8 {
        bits_for(self.entries.len().saturating_sub(1) as u64)
    }

    /// Estimated bytes of the buffered indices once encoded.
    pub(super) fn estimated_size(&self) -> usize {
        Rle::max_size(self.width(), self.indices.len())
    }

    /// The data page's bytes: the index width, then the indices RLE-encoded.
    pub(super) fn take_indices(&mut self) -> Vec<u8> {
        let w = self.width();
        let mut buf = Vec::with_capacity(self.estimated_size() + 1);
        buf.push(w);
        let mut rle = Rle::new(w, buf);
        rle.put_all(&self.indices);
        self.indices.clear();
        rle.into_bytes()
    }

    /// Number of entries.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The dictionary page's bytes: the entries, plain-encoded.
    pub(super) fn page(&self) -> Vec<u8> {
        let mut p = Plain::default();
        V::plain(&self.entries, 0, &mut p);
        p.take()
    }
}
