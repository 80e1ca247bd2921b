//! Parquet's bit-level encodings, byte for byte as parquet-rs 57 writes them: the bit writer,
//! the RLE / bit-packing hybrid (levels and dictionary indices) and `DELTA_BINARY_PACKED`.
//! The state machines are parquet-rs's own; [`Rle::put_run`] and [`Rle::put_pattern`] only
//! take shortcuts that leave the state exactly as the same values put one by one would.

/// Writes values of any bit width, little-endian, and byte-aligned values.
#[derive(Default)]
pub(super) struct BitWriter {
    buf: Vec<u8>,
    acc: u64,
    bits: u8,
}

impl BitWriter {
    /// A writer appending to `buf`.
    pub(super) fn new(buf: Vec<u8>) -> Self {
        BitWriter {
            buf,
            acc: 0,
            bits: 0,
        }
    }

    /// Appends the low `n` bits of `v`.
    #[inline]
    pub(super) fn put_value(&mut self, v: u64, n: usize) {
        self.acc |= v << self.bits;
        self.bits += n as u8;
        if let Some(rest) = self.bits.checked_sub(64) {
            self.buf.extend_from_slice(&self.acc.to_le_bytes());
            self.bits = rest;
            self.acc = v.checked_shr((n as u8 - rest) as u32).unwrap_or(0);
        }
    }

    /// Appends `values`, `n` bits each: as many [`BitWriter::put_value`] calls would, but a word
    /// at a time when the writer is on a byte boundary and the values fill whole bytes.
    pub(super) fn put_packed(&mut self, values: &[u64], n: usize) {
        if !self.bits.is_multiple_of(8) || !(values.len() * n).is_multiple_of(8) {
            values.iter().for_each(|&v| self.put_value(v, n));
            return;
        }
        // Flushing on a byte boundary leaves the bytes as they would be.
        self.flush();
        let (mut acc, mut bits) = (0u128, 0);
        for &v in values {
            acc |= (v as u128) << bits;
            bits += n;
            if bits >= 64 {
                self.buf.extend_from_slice(&(acc as u64).to_le_bytes());
                acc >>= 64;
                bits -= 64;
            }
        }
        self.buf.extend_from_slice(&acc.to_le_bytes()[..bits / 8]);
    }

    /// Writes out the buffered bits, padding to a whole byte.
    pub(super) fn flush(&mut self) {
        let n = self.bits.div_ceil(8) as usize;
        self.buf.extend_from_slice(&self.acc.to_le_bytes()[..n]);
        self.acc = 0;
        self.bits = 0;
    }

    /// Bytes written, counting the buffered bits as whole bytes.
    pub(super) fn bytes_written(&self) -> usize {
        self.buf.len() + self.bits.div_ceil(8) as usize
    }

    /// Flushes, then reserves `n` zero bytes; returns where they start.
    pub(super) fn skip(&mut self, n: usize) -> usize {
        self.flush();
        let at = self.buf.len();
        self.buf.resize(at + n, 0);
        at
    }

    /// Overwrites the byte at `at`.
    pub(super) fn write_at(&mut self, at: usize, b: u8) {
        self.buf[at] = b;
    }

    /// Flushes, then appends `bytes`.
    pub(super) fn put_aligned(&mut self, bytes: &[u8]) {
        self.flush();
        self.buf.extend_from_slice(bytes);
    }

    /// Appends `v` as an unsigned LEB128 integer.
    pub(super) fn put_vlq(&mut self, mut v: u64) {
        while v & !0x7f != 0 {
            self.put_aligned(&[(v & 0x7f | 0x80) as u8]);
            v >>= 7;
        }
        self.put_aligned(&[v as u8]);
    }

    /// Appends `v` zigzag-encoded as LEB128.
    pub(super) fn put_zigzag(&mut self, v: i64) {
        self.put_vlq(((v << 1) ^ (v >> 63)) as u64);
    }

    /// Flushes and returns the bytes.
    pub(super) fn into_bytes(mut self) -> Vec<u8> {
        self.flush();
        self.buf
    }

    /// Flushes and moves the bytes out, leaving the writer empty.
    pub(super) fn take(&mut self) -> Vec<u8> {
        self.flush();
        std::mem::take(&mut self.buf)
    }
}

/// Most 8-value groups in one bit-packed run.
const MAX_GROUPS: usize = 64;

/// The RLE / bit-packing hybrid encoder of parquet-rs (`RleEncoder`).
pub(super) struct Rle {
    width: u8,
    out: BitWriter,
    buffered: [u64; 8],
    n_buffered: usize,
    current: u64,
    repeats: usize,
    packed: usize,
    indicator: Option<usize>,
}

impl Rle {
    /// An encoder of `width`-bit values appending to `buf`.
    pub(super) fn new(width: u8, buf: Vec<u8>) -> Self {
        Rle {
            width,
            out: BitWriter::new(buf),
            buffered: [0; 8],
            n_buffered: 0,
            current: 0,
            repeats: 0,
            packed: 0,
            indicator: None,
        }
    }

    /// Most bytes `n` values of `width` bits can take.
    pub(super) fn max_size(width: u8, n: usize) -> usize {
        let runs = n.div_ceil(8);
        let packed = runs + runs * width as usize;
        let rle = runs * (1 + (width as usize).div_ceil(8));
        packed.max(rle)
    }

    /// Encodes `v`.
    #[inline]
    pub(super) fn put(&mut self, v: u64) {
        if self.current == v {
            self.repeats += 1;
            if self.repeats > 8 {
                return;
            }
        } else {
            if self.repeats >= 8 {
                self.flush_rle_run();
            }
            self.repeats = 1;
            self.current = v;
        }
        self.buffered[self.n_buffered] = v;
        self.n_buffered += 1;
        if self.n_buffered == 8 {
            self.flush_buffered();
        }
    }

    /// Encodes `values` in order, taking two exact shortcuts: the rest of a run longer than 8
    /// is only counted (as `put` does value by value), and a group of 8 that starts with
    /// nothing buffered and no run pending, its values not all equal, is bit-packed as `put`
    /// would end up doing.
    pub(super) fn put_all(&mut self, values: &[u32]) {
        let mut i = 0;
        while i < values.len() {
            let v = values[i];
            if self.current == v as u64 && self.repeats >= 8 {
                let run = values[i..].iter().take_while(|&&x| x == v).count();
                self.repeats += run;
                i += run;
                continue;
            }
            if let Some(g) = values.get(i..i + 8) {
                if self.n_buffered == 0 && self.repeats == 0 && g.iter().any(|&x| x != g[0]) {
                    for (b, &x) in self.buffered.iter_mut().zip(g) {
                        *b = x as u64;
                    }
                    self.current = g[7] as u64;
                    self.n_buffered = 8;
                    self.flush_buffered();
                    i += 8;
                    continue;
                }
            }
            self.put(v as u64);
            i += 1;
        }
    }

    /// Encodes `v` `n` times.
    pub(super) fn put_run(&mut self, v: u64, mut n: usize) {
        while n > 0 {
            if self.current == v && self.repeats >= 8 {
                // Further repeats of a run only count (see `put`).
                self.repeats += n;
                return;
            }
            self.put(v);
            n -= 1;
        }
    }

    /// Encodes `rows` times a 0 followed by `width - 1` ones (the repetition levels of
    /// lists of `width` values).
    pub(super) fn put_pattern(&mut self, rows: usize, width: usize) {
        for _ in 0..rows {
            self.put(0);
            self.put_run(1, width - 1);
        }
    }

    /// Writes out what is buffered, ending the current run.
    pub(super) fn flush(&mut self) {
        if self.packed == 0 && self.repeats == 0 && self.n_buffered == 0 {
            return;
        }
        let all_repeat =
            self.packed == 0 && (self.repeats == self.n_buffered || self.n_buffered == 0);
        if self.repeats > 0 && all_repeat {
            self.flush_rle_run();
        } else {
            if self.n_buffered > 0 {
                self.buffered[self.n_buffered..].fill(0);
                self.n_buffered = 8;
            }
            self.packed += self.n_buffered;
            self.flush_packed_run(true);
            self.repeats = 0;
        }
    }

    /// Flushes and returns the bytes.
    pub(super) fn into_bytes(mut self) -> Vec<u8> {
        self.flush();
        self.out.into_bytes()
    }

    fn flush_rle_run(&mut self) {
        self.out.put_vlq((self.repeats << 1) as u64);
        let n = (self.width as usize).div_ceil(8);
        self.out.put_aligned(&self.current.to_le_bytes()[..n]);
        self.n_buffered = 0;
        self.repeats = 0;
    }

    fn flush_packed_run(&mut self, close: bool) {
        let at = match self.indicator {
            Some(at) => at,
            None => *self.indicator.insert(self.out.skip(1)),
        };
        self.out
            .put_packed(&self.buffered[..self.n_buffered], self.width as usize);
        self.n_buffered = 0;
        if close {
            self.out.write_at(at, ((self.packed / 8) << 1 | 1) as u8);
            self.indicator = None;
            self.packed = 0;
        }
    }

    fn flush_buffered(&mut self) {
        if self.repeats >= 8 {
            self.n_buffered = 0;
            if self.packed > 0 {
                self.flush_packed_run(true);
            }
            return;
        }
        self.packed += self.n_buffered;
        let close = self.packed / 8 + 1 >= MAX_GROUPS;
        self.flush_packed_run(close);
        self.repeats = 0;
    }
}

/// Bits needed for `x`.
pub(super) fn bits_for(x: u64) -> u8 {
    64 - x.leading_zeros() as u8
}

/// Levels as a data page v1 holds them: RLE after their length in 4 bytes; `put` encodes them.
pub(super) fn levels_v1(max_level: i16, put: impl FnOnce(&mut Rle)) -> Vec<u8> {
    let mut rle = Rle::new(bits_for(max_level as u64), vec![0; 4]);
    put(&mut rle);
    let mut out = rle.into_bytes();
    let len = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&len.to_le_bytes());
    out
}

/// Values per block and per mini-block of `DELTA_BINARY_PACKED` for int64.
const BLOCK: usize = 256;
const MINI_BLOCKS: usize = 4;
const MINI: usize = BLOCK / MINI_BLOCKS;

/// The `DELTA_BINARY_PACKED` encoder of parquet-rs (`DeltaBitPackEncoder`) for int64.
pub(super) struct Delta {
    out: BitWriter,
    total: usize,
    first: i64,
    current: i64,
    in_block: usize,
    deltas: Box<[i64; BLOCK]>,
}

impl Default for Delta {
    fn default() -> Self {
        Delta {
            out: BitWriter::default(),
            total: 0,
            first: 0,
            current: 0,
            in_block: 0,
            deltas: Box::new([0; BLOCK]),
        }
    }
}

impl Delta {
    /// Encodes `values`.
    pub(super) fn put(&mut self, values: impl ExactSizeIterator<Item = i64>) {
        let mut values = values.peekable();
        let Some(&head) = values.peek() else {
            return;
        };
        let first = self.total == 0;
        self.total += values.len();
        if first {
            self.first = head;
            self.current = head;
            values.next();
        }
        for v in values {
            self.deltas[self.in_block] = v.wrapping_sub(self.current);
            self.current = v;
            self.in_block += 1;
            if self.in_block == BLOCK {
                self.flush_block();
            }
        }
    }

    /// Bytes of the blocks written so far (the page's estimated size).
    pub(super) fn estimated_size(&self) -> usize {
        self.out.bytes_written()
    }

    /// The page's bytes: header, then the blocks; the encoder starts a new page.
    pub(super) fn flush_page(&mut self) -> Vec<u8> {
        self.flush_block();
        let mut header = BitWriter::default();
        header.put_vlq(BLOCK as u64);
        header.put_vlq(MINI_BLOCKS as u64);
        header.put_vlq(self.total as u64);
        header.put_zigzag(self.first);
        let mut page = header.into_bytes();
        page.extend_from_slice(&self.out.take());
        self.total = 0;
        self.first = 0;
        self.current = 0;
        self.in_block = 0;
        page
    }

    fn flush_block(&mut self) {
        if self.in_block == 0 {
            return;
        }
        let deltas = &self.deltas[..self.in_block];
        let min = deltas.iter().copied().min().expect("a delta");
        self.out.put_zigzag(min);
        let widths_at = self.out.skip(MINI_BLOCKS);
        let mut packed = [0u64; MINI];
        for (i, mini) in deltas.chunks(MINI).enumerate() {
            let max = mini.iter().copied().max().expect("a delta");
            let width = bits_for(max.wrapping_sub(min) as u64) as usize;
            self.out.write_at(widths_at + i, width as u8);
            // A short last mini-block is padded with zeros.
            packed.fill(0);
            for (p, &d) in packed.iter_mut().zip(mini) {
                *p = d.wrapping_sub(min) as u64;
            }
            self.out.put_packed(&packed, width);
        }
        self.in_block = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values with runs of every length, from a hash.
    fn sequence(n: usize, seed: u64, max: u32) -> Vec<u32> {
        let mut out = Vec::new();
        let mut h = seed;
        while out.len() < n {
            h = crate::generate::world::mix(h);
            let (v, run) = ((h % max as u64) as u32, (h >> 32) % 20);
            out.extend(std::iter::repeat_n(
                v,
                1 + run as usize * (h >> 60 & 1) as usize,
            ));
        }
        out.truncate(n);
        out
    }

    fn one_by_one(values: &[u32], width: u8) -> Vec<u8> {
        let mut r = Rle::new(width, vec![7]);
        values.iter().for_each(|&v| r.put(v as u64));
        r.into_bytes()
    }

    #[test]
    fn shortcuts_encode_as_put_does() {
        for (seed, max) in [(1, 2), (2, 3), (3, 17), (4, 1000)] {
            let width = bits_for(max as u64 - 1);
            for n in [0, 1, 7, 8, 9, 100, 5000] {
                let v = sequence(n, seed, max);
                let mut r = Rle::new(width, vec![7]);
                r.put_all(&v);
                assert_eq!(r.into_bytes(), one_by_one(&v, width), "put_all {seed} {n}");
                let mut r = Rle::new(width, vec![7]);
                v.chunks(13).for_each(|c| r.put_run(c[0] as u64, c.len()));
                let runs: Vec<u32> = v.chunks(13).flat_map(|c| vec![c[0]; c.len()]).collect();
                assert_eq!(
                    r.into_bytes(),
                    one_by_one(&runs, width),
                    "put_run {seed} {n}"
                );
            }
        }
        for (rows, width) in [(1, 1), (5, 3), (43, 24), (1000, 7)] {
            let mut r = Rle::new(1, vec![]);
            r.put_pattern(rows, width);
            let levels: Vec<u32> = (0..rows * width).map(|i| (i % width != 0) as u32).collect();
            assert_eq!(r.into_bytes(), one_by_one_from(&levels, 1, vec![]));
        }
    }

    fn one_by_one_from(values: &[u32], width: u8, buf: Vec<u8>) -> Vec<u8> {
        let mut r = Rle::new(width, buf);
        values.iter().for_each(|&v| r.put(v as u64));
        r.into_bytes()
    }

    #[test]
    fn packing_writes_the_bits_put_value_does() {
        for width in [0, 1, 3, 8, 13, 31, 57, 64] {
            let mask = if width == 64 {
                u64::MAX
            } else {
                (1 << width) - 1
            };
            let v: Vec<u64> = (0..64)
                .map(|i| crate::generate::world::mix(i) & mask)
                .collect();
            for lead in [0, 8, 5] {
                let (mut a, mut b) = (BitWriter::default(), BitWriter::default());
                let head = 0x15 & ((1 << lead) - 1);
                a.put_value(head, lead);
                b.put_value(head, lead);
                a.put_packed(&v, width);
                v.iter().for_each(|&x| b.put_value(x, width));
                assert_eq!(a.into_bytes(), b.into_bytes(), "width {width} lead {lead}");
            }
        }
    }
}
