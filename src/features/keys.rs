//! [`KeyRows`]: the rows of a string column grouped by value: the day's alerts by address,
//! built once for every feature group that works per address or joins a table on it, and the
//! alerts by id for the clusters' members.

use crate::address_table::{hash, AddressTable};
use arrow::array::{Array, StringArray};

/// The distinct values (keys) of a string column numbered by first appearance (key `g`'s first
/// row comes before key `g + 1`'s), each key's rows end to end in row order, and a table from
/// key to number. One prefetched table lookup per row or joined row: on a 10× day a general map
/// of string keys to a vector of rows per address cost one allocation and several cache misses
/// per alert.
pub(crate) struct KeyRows {
    table: AddressTable,
    /// Per row, its key's number.
    number: Vec<u32>,
    /// Key `g`'s rows are `rows[start[g]..start[g + 1]]`.
    start: Vec<usize>,
    rows: Vec<usize>,
}

impl KeyRows {
    /// Groups the rows of `keys` (a null groups as the empty string).
    pub(crate) fn new(keys: &StringArray) -> Self {
        let n = keys.len();
        let mut table = AddressTable::with_capacity(n);
        // Room for every key's bytes up front: grown by doubling, the 10× day's 500K alert ids
        // (22 MB) were copied four times over into memory the process had not touched yet.
        table.reserve_entries(n, keys.value_data().len());
        let mut number = Vec::with_capacity(n);
        let mut counts: Vec<usize> = Vec::new();
        let hashes: Vec<u64> = (0..n).map(|i| hash(keys.value(i))).collect();
        for (i, &h) in hashes.iter().enumerate() {
            table.prefetch_ahead(&hashes, i);
            let next = counts.len() as u32;
            let g = table
                .get_or_insert(h, keys.value(i), next)
                .expect("a string column's bytes (under 2 GB) and 8 more per key fit in 4 GB");
            if g == next {
                counts.push(0);
            }
            counts[g as usize] += 1;
            number.push(g);
        }
        let mut start = Vec::with_capacity(counts.len() + 1);
        start.push(0);
        for c in counts {
            start.push(start[start.len() - 1] + c);
        }
        let mut next = start[..start.len() - 1].to_vec();
        let mut rows = vec![0; n];
        for (i, &g) in number.iter().enumerate() {
            rows[next[g as usize]] = i;
            next[g as usize] += 1;
        }
        Self {
            table,
            number,
            start,
            rows,
        }
    }

    /// The number of distinct keys.
    pub(crate) fn len(&self) -> usize {
        self.start.len() - 1
    }

    /// The number of row `i`'s key.
    pub(crate) fn number(&self, i: usize) -> usize {
        self.number[i] as usize
    }

    /// The rows of key `g`, ascending.
    pub(crate) fn rows(&self, g: usize) -> &[usize] {
        &self.rows[self.start[g]..self.start[g + 1]]
    }

    /// Each key's rows, in key order.
    pub(crate) fn groups(&self) -> impl Iterator<Item = &[usize]> {
        (0..self.len()).map(|g| self.rows(g))
    }

    /// The number of key `a`, if a row has it.
    pub(crate) fn find(&self, a: &str) -> Option<usize> {
        self.table.get(hash(a), a).map(|g| g as usize)
    }

    /// The last row with key `a`, if any.
    pub(crate) fn last(&self, a: &str) -> Option<usize> {
        self.find(a).and_then(|g| self.rows(g).last().copied())
    }

    /// The number of each value of `keys` (`None` for a null or a key no row has), looked up
    /// in one pass whose lookups are prefetched ([`AddressTable::prefetch_ahead`]).
    pub(crate) fn numbers(&self, keys: &StringArray) -> Vec<Option<usize>> {
        let hashes: Vec<u64> = (0..keys.len()).map(|r| hash(keys.value(r))).collect();
        let mut numbers = Vec::with_capacity(keys.len());
        for (r, &h) in hashes.iter().enumerate() {
            self.table.prefetch_ahead(&hashes, r);
            let g = keys.is_valid(r).then(|| self.table.get(h, keys.value(r)));
            numbers.push(g.flatten().map(|g| g as usize));
        }
        numbers
    }

    /// The first row of a table whose key (`table_keys`, nulls skipped) is each row's: one
    /// entry per row, `table_keys.len()` where the table has none.
    pub(crate) fn join(&self, table_keys: &StringArray) -> Vec<u32> {
        let none = table_keys.len() as u32;
        let mut first = vec![none; self.len()];
        for (r, g) in self.numbers(table_keys).into_iter().enumerate() {
            if let Some(g) = g {
                first[g] = first[g].min(r as u32);
            }
        }
        self.number.iter().map(|&g| first[g as usize]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_rows_by_address_in_order_of_first_appearance() {
        let addr = StringArray::from(vec![Some("b"), Some("a"), Some("b"), None, Some("c")]);
        let a = KeyRows::new(&addr);
        assert_eq!(a.len(), 4);
        let groups: Vec<&[usize]> = a.groups().collect();
        assert_eq!(groups, [&[0, 2][..], &[1], &[3], &[4]]);
        assert_eq!(
            (0..5).map(|i| a.number(i)).collect::<Vec<_>>(),
            [0, 1, 0, 2, 3]
        );
        assert_eq!(
            (a.find("a"), a.find("c"), a.find("d")),
            (Some(1), Some(3), None)
        );
        assert_eq!(
            (a.last("b"), a.last("a"), a.last("d")),
            (Some(2), Some(1), None)
        );

        // First matching row wins; null table addresses and addresses of no alert are skipped.
        let table = StringArray::from(vec![Some("x"), Some("b"), None, Some("a"), Some("b")]);
        assert_eq!(a.join(&table), [1, 3, 1, 5, 5]);
        assert_eq!(a.numbers(&table), [None, Some(0), None, Some(1), Some(0)]);
    }
}
