//! The alerted addresses of a date, as decode tests the features' and money flows' addresses
//! against them.

use crate::address_table::{hash, AddressTable};

/// The alerted addresses, each with the row of its first alert, which the millions of
/// addresses of the features and money flows are tested against. A filter of two bits of one
/// word per address (about 8 bits per address, so it stays in cache as the day grows) answers
/// most misses; only what passes it is looked up in the table.
pub(crate) struct Alerted {
    first_row: AddressTable,
    words: Vec<u64>,
    repeats: Vec<(u32, u32)>,
}

impl Alerted {
    /// The addresses of `alerts` (row, address), in row order.
    pub(crate) fn new<'a>(alerts: impl Iterator<Item = (usize, &'a str)>) -> Self {
        let mut first_row = AddressTable::with_capacity(0);
        let mut hashes = Vec::new();
        let mut repeats = Vec::new();
        for (r, a) in alerts {
            let h = hash(a);
            let row = u32::try_from(r).expect("fewer than 2^32 alerts");
            let first = first_row
                .get_or_insert(h, a, row)
                .expect("an alerts file's addresses fit in 4 GB");
            if first != row {
                repeats.push((row, first));
            }
            hashes.push(h);
        }
        let mut words = vec![0u64; (first_row.len() / 8).max(1).next_power_of_two()];
        for h in hashes {
            let (w, bits) = Self::filter(words.len(), h);
            words[w] |= bits;
        }
        Self {
            first_row,
            words,
            repeats,
        }
    }

    /// The filter word of hash `h` and its two bits in it.
    fn filter(n_words: usize, h: u64) -> (usize, u64) {
        let w = (h >> 32) as usize & (n_words - 1);
        (w, 1 << (h & 63) | 1 << ((h >> 6) & 63))
    }

    /// Whether an address of hash `h` may be alerted (if not, it surely is not).
    #[inline]
    pub(crate) fn may_contain(&self, h: u64) -> bool {
        let (w, bits) = Self::filter(self.words.len(), h);
        self.words[w] & bits == bits
    }

    /// The row of the first alert of `a` (whose [`hash`] is `h`), if `a` is an alerted address.
    #[inline]
    pub(crate) fn first_row_hashed(&self, h: u64, a: &str) -> Option<i32> {
        if self.may_contain(h) {
            self.first_row.get(h, a).map(|r| r as i32)
        } else {
            None
        }
    }

    /// The row of the first alert of `a`, if `a` is an alerted address.
    pub(crate) fn first_row(&self, a: &str) -> Option<i32> {
        self.first_row_hashed(hash(a), a)
    }

    /// (row, row of the first alert of its address) of each alert whose address an earlier
    /// alert has, in row order.
    pub(crate) fn repeats(&self) -> &[(u32, u32)] {
        &self.repeats
    }

    /// The number of alerted addresses.
    pub(crate) fn addresses(&self) -> usize {
        self.first_row.len()
    }

    /// The table of first rows, for callers that prefetch their lookups.
    pub(crate) fn table(&self) -> &AddressTable {
        &self.first_row
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerted_addresses_are_told_exactly() {
        let addrs: Vec<String> = (0..5000).map(|i| format!("0x{i:040x}")).collect();
        let alerts = addrs.iter().step_by(3).chain(addrs.iter().step_by(6));
        let alerted = Alerted::new(alerts.map(String::as_str).enumerate());
        for (i, a) in addrs.iter().enumerate() {
            let want = (i % 3 == 0).then_some(i as i32 / 3);
            assert_eq!(alerted.first_row(a), want, "{a}");
        }
        // The second pass (every sixth address) repeats the first's rows 0, 2, 4, ...
        let repeats = alerted.repeats();
        assert_eq!(repeats.len(), 834);
        assert_eq!(alerted.addresses(), 1667);
        assert_eq!(repeats[..3], [(1667, 0), (1668, 2), (1669, 4)]);
        assert_eq!(Alerted::new(std::iter::empty()).first_row(""), None);
    }
}
