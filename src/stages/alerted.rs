//! The alerted addresses of a date, as decode tests the features' and money flows' addresses
//! against them.

use rustc_hash::{FxBuildHasher, FxHashSet as HashSet};
use std::hash::BuildHasher;

/// The alerted addresses, which the millions of addresses of the features and money flows are
/// tested against. A filter of two bits of one word per address (about 8 bits per address, so
/// it stays in cache as the day grows) answers most misses; only what passes it is looked up in
/// the set, whose keys lie wherever the alerts' strings are.
pub(crate) struct Alerted<'a> {
    set: HashSet<&'a str>,
    words: Vec<u64>,
}

impl<'a> Alerted<'a> {
    /// The set of `addresses`.
    pub(crate) fn new(addresses: impl Iterator<Item = &'a str>) -> Self {
        let set: HashSet<&str> = addresses.collect();
        let mut words = vec![0u64; (set.len() / 8).max(1).next_power_of_two()];
        for a in &set {
            let (w, bits) = Self::filter(words.len(), a);
            words[w] |= bits;
        }
        Self { set, words }
    }

    /// The filter word of `a` and its two bits in it.
    fn filter(n_words: usize, a: &str) -> (usize, u64) {
        let h = FxBuildHasher.hash_one(a);
        let w = (h >> 32) as usize & (n_words - 1);
        (w, 1 << (h & 63) | 1 << ((h >> 6) & 63))
    }

    /// Whether `a` is an alerted address.
    pub(crate) fn contains(&self, a: &str) -> bool {
        let (w, bits) = Self::filter(self.words.len(), a);
        self.words[w] & bits == bits && self.set.contains(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerted_addresses_are_told_exactly() {
        let addrs: Vec<String> = (0..5000).map(|i| format!("0x{i:040x}")).collect();
        let alerted = Alerted::new(addrs.iter().step_by(3).map(String::as_str));
        for (i, a) in addrs.iter().enumerate() {
            assert_eq!(alerted.contains(a), i % 3 == 0, "{a}");
        }
        assert!(!Alerted::new(std::iter::empty()).contains(""));
    }
}
