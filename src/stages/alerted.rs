//! The alerted addresses of a date, as decode tests the features' and money flows' addresses
//! against them.

use rustc_hash::{FxBuildHasher, FxHashMap as HashMap};
use std::hash::BuildHasher;

/// The alerted addresses, each with the row of its first alert, which the millions of
/// addresses of the features and money flows are tested against. A filter of two bits of one
/// word per address (about 8 bits per address, so it stays in cache as the day grows) answers
/// most misses; only what passes it is looked up in the map, whose keys lie wherever the
/// alerts' strings are.
pub(crate) struct Alerted<'a> {
    first_row: HashMap<&'a str, i32>,
    words: Vec<u64>,
}

impl<'a> Alerted<'a> {
    /// The addresses of `alerts` (row, address), in row order.
    pub(crate) fn new(alerts: impl Iterator<Item = (usize, &'a str)>) -> Self {
        let mut first_row: HashMap<&str, i32> = HashMap::default();
        for (r, a) in alerts {
            first_row.entry(a).or_insert(r as i32);
        }
        let mut words = vec![0u64; (first_row.len() / 8).max(1).next_power_of_two()];
        for a in first_row.keys() {
            let (w, bits) = Self::filter(words.len(), a);
            words[w] |= bits;
        }
        Self { first_row, words }
    }

    /// The filter word of `a` and its two bits in it.
    fn filter(n_words: usize, a: &str) -> (usize, u64) {
        let h = FxBuildHasher.hash_one(a);
        let w = (h >> 32) as usize & (n_words - 1);
        (w, 1 << (h & 63) | 1 << ((h >> 6) & 63))
    }

    /// The row of the first alert of `a`, if `a` is an alerted address.
    pub(crate) fn first_row(&self, a: &str) -> Option<i32> {
        let (w, bits) = Self::filter(self.words.len(), a);
        if self.words[w] & bits == bits {
            self.first_row.get(a).copied()
        } else {
            None
        }
    }

    /// Whether `a` is an alerted address.
    pub(crate) fn contains(&self, a: &str) -> bool {
        self.first_row(a).is_some()
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
        assert!(!Alerted::new(std::iter::empty()).contains(""));
    }
}
