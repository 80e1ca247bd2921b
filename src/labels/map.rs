//! [`LabelMap`]: labels by string key, for a month of alerts or a network's addresses.

use crate::address_table::{hash, AddressTable};
use arrow::array::StringViewArray;

/// Values by string key. The keys are kept end to end in one buffer and numbered by an
/// [`AddressTable`], so building and dropping a map of a million labels costs no allocation
/// per key (a map of `String` keys spent most of its loading time in the allocator), and a
/// batch of keys is looked up with the reads of many lookups in flight at once
/// ([`get_many`](Self::get_many)): a 10× day's validation looks up 500K alert ids and 386K
/// addresses in maps larger than the caches.
#[derive(Clone)]
pub struct LabelMap<V> {
    /// The number of each key (its insertion order).
    table: AddressTable,
    /// The value of key `i`.
    values: Vec<V>,
}

impl<V> Default for LabelMap<V> {
    fn default() -> Self {
        Self::with_capacity(0, 0)
    }
}

impl<V> LabelMap<V> {
    /// An empty map with room for `keys` keys of `bytes` bytes in all.
    pub fn with_capacity(keys: usize, bytes: usize) -> Self {
        let mut table = AddressTable::with_capacity(keys);
        table.reserve_entries(keys, bytes);
        Self {
            table,
            values: Vec::with_capacity(keys),
        }
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the map has no key.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The value of `k`.
    pub fn get(&self, k: &str) -> Option<&V> {
        self.table.get(hash(k), k).map(|i| &self.values[i as usize])
    }

    /// The value of each of `keys`, in their order: one pass whose table reads are
    /// prefetched ahead of the lookups that need them.
    pub fn get_many<'k>(&self, keys: impl Iterator<Item = &'k str> + Clone) -> Vec<Option<&V>> {
        let hashes: Vec<u64> = keys.clone().map(hash).collect();
        keys.zip(&hashes)
            .enumerate()
            .map(|(i, (k, &h))| {
                self.table.prefetch_ahead(&hashes, i);
                self.table.get(h, k).map(|n| &self.values[n as usize])
            })
            .collect()
    }

    /// Whether each of `keys` has a value (a null has none), looked up in one prefetched pass
    /// ([`Self::get_many`]).
    pub fn contains_each(&self, keys: &StringViewArray) -> Vec<bool> {
        (self.get_many(keys.iter().map(|k| k.unwrap_or(""))).iter())
            .zip(keys.iter())
            .map(|(got, k)| got.is_some() && k.is_some())
            .collect()
    }

    /// Whether `k` has a value.
    pub fn contains_key(&self, k: &str) -> bool {
        self.get(k).is_some()
    }

    /// The value of `k`, inserted with `make` if `k` had none.
    pub fn get_or_insert_with(&mut self, k: &str, make: impl FnOnce() -> V) -> &mut V {
        let next = self.values.len();
        let n = u32::try_from(next).expect("fewer than 2^32 keys in a label map");
        let i = self
            .table
            .get_or_insert(hash(k), k, n)
            .expect("the keys of a label map fit in 4 GB") as usize;
        if i == next {
            self.values.push(make());
        }
        &mut self.values[i]
    }

    /// Sets the value of `k`; returns the value it replaces.
    pub fn insert(&mut self, k: impl AsRef<str>, value: V) -> Option<V> {
        let mut value = Some(value);
        let slot = self.get_or_insert_with(k.as_ref(), || value.take().expect("set once"));
        value.map(|v| std::mem::replace(slot, v))
    }

    /// The keys, in insertion order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.table.entries().map(|(k, _)| k)
    }

    /// The keys and their values, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.keys().zip(&self.values)
    }
}

impl<V> std::ops::Index<&str> for LabelMap<V> {
    type Output = V;

    fn index(&self, k: &str) -> &V {
        self.get(k)
            .unwrap_or_else(|| panic!("no label for key {k:?}"))
    }
}

impl<K: AsRef<str>, V> FromIterator<(K, V)> for LabelMap<V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut m = Self::default();
        for (k, v) in iter {
            m.insert(k, v);
        }
        m
    }
}

impl<V: std::fmt::Debug> std::fmt::Debug for LabelMap<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_each_says_which_keys_have_a_value_and_no_null_does() {
        let m: LabelMap<()> = ["a", "", "c"].iter().map(|k| (*k, ())).collect();
        let keys = StringViewArray::from(vec![Some("c"), None, Some("b"), Some(""), Some("a")]);
        assert_eq!(m.contains_each(&keys), [true, false, false, true, true]);
    }

    #[test]
    fn behaves_as_a_map_of_strings() {
        let mut m: LabelMap<u32> = LabelMap::default();
        let mut reference = std::collections::HashMap::new();
        for i in 0..5000u32 {
            let k = format!("addr{}", (i * 7919) % 3000);
            assert_eq!(m.insert(&k, i), reference.insert(k, i));
        }
        assert_eq!(m.len(), reference.len());
        for (k, v) in &reference {
            assert_eq!(m.get(k), Some(v));
            assert_eq!(m[k.as_str()], *v);
        }
        assert_eq!(m.get("nobody"), None);
        assert!(!m.contains_key(""));
        *m.get_or_insert_with("", || 1) += 1;
        assert_eq!(m.get(""), Some(&2));
        let copy: LabelMap<u32> = m.iter().map(|(k, v)| (k, *v)).collect();
        assert_eq!(copy.len(), m.len());
        assert!(m.keys().all(|k| copy.get(k) == m.get(k)));
        let asked = ["addr7", "nobody", "", "addr7", "addr2999"];
        let many = m.get_many(asked.iter().copied());
        assert_eq!(many, asked.map(|k| m.get(k)));
        assert_eq!(many[1], None);
    }
}
