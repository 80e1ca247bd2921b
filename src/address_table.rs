//! [`AddressTable`]: numbers by address, for the tens of millions of lookups decode makes into
//! a day's alerted addresses and money-flow ends.

use rustc_hash::FxBuildHasher;
use std::hash::BuildHasher;

/// How many keys ahead of the one it looks up a caller prefetches that key's slot (half as far
/// ahead, the key's bytes): far enough that the memory arrives in time, near enough that it is
/// still in the cache when used.
pub(crate) const AHEAD: usize = 16;

/// A number for each distinct string key, in one open-addressed table of 8-byte slots (the
/// key's hash, where its entry lies), the entries end to end in one buffer (the number, the
/// key's length, its bytes). A lookup reads one slot line and the entry, so it costs two memory
/// reads once the table has
/// outgrown the caches (a 10× day's tables do: a general hash map of string keys took three to
/// five, and its lookups grew 21× for 10× the flows). Callers that know their next keys
/// [`prefetch_slot`](Self::prefetch_slot) and [`prefetch_key`](Self::prefetch_key) them
/// [`AHEAD`] so the reads of many lookups overlap instead of waiting one after the other.
#[derive(Clone)]
pub(crate) struct AddressTable {
    slots: Vec<Slot>,
    bytes: Vec<u8>,
    len: usize,
}

#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct Slot {
    hash: u32,
    /// Where the key's entry starts in the buffer: its number and length (`u32` each), then
    /// its bytes.
    at: u32,
}

/// An unused slot ([`Slot::is_empty`]): no entry starts at `u32::MAX` (the buffer is kept
/// shorter).
const EMPTY: Slot = Slot {
    hash: 0,
    at: u32::MAX,
};

/// The bytes of an entry before its key's: the number, the length.
const HEAD: usize = 8;

/// The hash a key is looked up by (FxHash, the hash the alerted-address filter also takes its
/// bits from).
pub(crate) fn hash(k: &str) -> u64 {
    FxBuildHasher.hash_one(k)
}

fn fold(h: u64) -> u32 {
    (h >> 32) as u32 ^ h as u32
}

/// The slots a key of folded hash `h32` may lie in, in probe order: its own, then the next
/// (linear probing; the table is never more than half full, so an empty slot ends every probe).
fn probe(h32: u32, mask: usize) -> impl Iterator<Item = usize> {
    (0..).map(move |d| (h32 as usize + d) & mask)
}

impl Slot {
    fn is_empty(&self) -> bool {
        self.at == u32::MAX
    }
}

/// Asks the cache for the line at `p` (a hint: it never faults, whatever the address).
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint to the cache; it never faults and reads nothing into the
    // program, whatever the address.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// `n` empty slots, in memory asked to be backed by huge pages.
fn empty_slots(n: usize) -> Vec<Slot> {
    let mut slots = Vec::with_capacity(n);
    advise_huge_pages(&slots);
    slots.resize(n, EMPTY);
    slots
}

/// Asks the kernel to back the whole 2 MB pages of `v`'s allocation by huge pages: the
/// table's lookups land anywhere in it, and with 4 kB pages nearly each one also missed the
/// TLB (and each page of it first touched cost a page fault).
fn advise_huge_pages<T>(v: &Vec<T>) {
    const HUGE: usize = 2 << 20;
    let start = v.as_ptr() as usize;
    let end = start + v.capacity() * std::mem::size_of::<T>();
    let (first, last) = ((start + HUGE - 1) & !(HUGE - 1), end & !(HUGE - 1));
    #[cfg(target_os = "linux")]
    if last > first {
        // SAFETY: advice on pages of an allocation this process owns; it changes how they are
        // backed, never their contents.
        unsafe {
            libc::madvise(
                first as *mut libc::c_void,
                last - first,
                libc::MADV_HUGEPAGE,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (first, last);
}

impl AddressTable {
    /// An empty table with room for `keys` keys before it grows.
    pub(crate) fn with_capacity(keys: usize) -> Self {
        let n = (keys.max(4) * 2).next_power_of_two();
        Self {
            slots: empty_slots(n),
            bytes: Vec::new(),
            len: 0,
        }
    }

    /// The number of keys.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Makes room in the entries' buffer for `keys` more keys of `bytes` bytes in all.
    pub(crate) fn reserve_entries(&mut self, keys: usize, bytes: usize) {
        let capacity = self.bytes.capacity();
        self.bytes.reserve(keys * HEAD + bytes);
        if self.bytes.capacity() != capacity {
            advise_huge_pages(&self.bytes);
        }
    }

    /// The keys and their numbers, in the order they were inserted.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&str, u32)> {
        let mut at = 0;
        std::iter::from_fn(move || {
            let head = self.bytes.get(at..at + HEAD)?;
            let value = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
            let len = u32::from_le_bytes(head[4..].try_into().expect("4 bytes")) as usize;
            let key = &self.bytes[at + HEAD..at + HEAD + len];
            at += HEAD + len;
            Some((
                std::str::from_utf8(key).expect("keys are inserted as strings"),
                value,
            ))
        })
    }

    fn word(&self, at: usize) -> u32 {
        u32::from_le_bytes(self.bytes[at..at + 4].try_into().expect("4 bytes"))
    }

    fn key(&self, s: &Slot) -> &[u8] {
        let at = s.at as usize;
        let len = self.word(at + 4) as usize;
        &self.bytes[at + HEAD..at + HEAD + len]
    }

    fn value(&self, s: &Slot) -> u32 {
        self.word(s.at as usize)
    }

    /// The slot holding `k` (`Ok`) or the empty slot where it would go (`Err`).
    fn find(&self, h: u64, k: &str) -> Result<usize, usize> {
        let h32 = fold(h);
        for i in probe(h32, self.slots.len() - 1) {
            let s = &self.slots[i];
            if s.is_empty() {
                return Err(i);
            }
            if s.hash == h32 && self.key(s) == k.as_bytes() {
                return Ok(i);
            }
        }
        unreachable!("a probe ends at an empty slot")
    }

    /// The number of `k`, whose [`hash`] is `h`.
    pub(crate) fn get(&self, h: u64, k: &str) -> Option<u32> {
        self.find(h, k).ok().map(|i| self.value(&self.slots[i]))
    }

    /// The number of `k` (hash `h`); if `k` has none, it is given `value`. `None` if the keys
    /// would outgrow the table's 4 GB of key bytes.
    pub(crate) fn get_or_insert(&mut self, h: u64, k: &str, value: u32) -> Option<u32> {
        let i = match self.find(h, k) {
            Ok(i) => return Some(self.value(&self.slots[i])),
            Err(i) => i,
        };
        let at = u32::try_from(self.bytes.len()).ok()?;
        let len = u32::try_from(k.len()).ok()?;
        let end = at.checked_add(HEAD as u32)?.checked_add(len)?;
        if end == u32::MAX {
            return None;
        }
        let capacity = self.bytes.capacity();
        self.bytes.extend_from_slice(&value.to_le_bytes());
        self.bytes.extend_from_slice(&len.to_le_bytes());
        self.bytes.extend_from_slice(k.as_bytes());
        if self.bytes.capacity() != capacity {
            advise_huge_pages(&self.bytes);
        }
        self.slots[i] = Slot { hash: fold(h), at };
        self.len += 1;
        if self.len * 2 > self.slots.len() {
            self.grow();
        }
        Some(value)
    }

    fn grow(&mut self) {
        let grown = empty_slots(self.slots.len() * 2);
        let old = std::mem::replace(&mut self.slots, grown);
        let mask = self.slots.len() - 1;
        for s in old.into_iter().filter(|s| !s.is_empty()) {
            let i = probe(s.hash, mask)
                .find(|&i| self.slots[i].is_empty())
                .expect("a probe ends at an empty slot");
            self.slots[i] = s;
        }
    }

    /// Asks the cache for the slot line a lookup of hash `h` starts at.
    #[inline]
    pub(crate) fn prefetch_slot(&self, h: u64) {
        let i = fold(h) as usize & (self.slots.len() - 1);
        prefetch(&self.slots[i]);
    }

    /// Asks the cache for the bytes of the first key whose hash matches `h` (the key a lookup
    /// of `h` will almost always compare against); the slot line should be cached by now.
    #[inline]
    pub(crate) fn prefetch_key(&self, h: u64) {
        let h32 = fold(h);
        let first = probe(h32, self.slots.len() - 1)
            .map(|i| &self.slots[i])
            .take_while(|s| !s.is_empty())
            .find(|s| s.hash == h32);
        if let Some(s) = first {
            prefetch(self.bytes.as_ptr().wrapping_add(s.at as usize));
        }
    }

    /// Before the lookup of `hashes[i]`: prefetches the slot of the key [`AHEAD`] of it and
    /// the bytes of the key half as far.
    #[inline]
    pub(crate) fn prefetch_ahead(&self, hashes: &[u64], i: usize) {
        if let Some(&h) = hashes.get(i + AHEAD) {
            self.prefetch_slot(h);
        }
        if let Some(&h) = hashes.get(i + AHEAD / 2) {
            self.prefetch_key(h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_each_key_once_across_growth_and_colliding_hashes() {
        let keys: Vec<String> = (0..20_000).map(|i| format!("0x{i:040x}")).collect();
        let mut t = AddressTable::with_capacity(0);
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(t.get_or_insert(hash(k), k, i as u32), Some(i as u32));
        }
        for (i, k) in keys.iter().enumerate().rev() {
            assert_eq!(t.get_or_insert(hash(k), k, 7), Some(i as u32), "{k}");
            assert_eq!(t.get(hash(k), k), Some(i as u32));
        }
        assert_eq!(t.len(), keys.len());
        assert_eq!(t.get(hash("absent"), "absent"), None);
        let entries: Vec<(&str, u32)> = t.entries().collect();
        assert_eq!(entries.len(), keys.len());
        assert!(entries
            .iter()
            .enumerate()
            .all(|(i, &(k, n))| k == keys[i] && n == i as u32));
        // Keys given the same hash are still told apart by their bytes; the empty key is a key.
        let mut t = AddressTable::with_capacity(1);
        for (i, k) in ["", "a", "b", "ab"].iter().enumerate() {
            assert_eq!(t.get_or_insert(42, k, i as u32), Some(i as u32));
            t.prefetch_slot(42);
            t.prefetch_key(42);
        }
        assert_eq!(
            (t.get(42, "b"), t.get(42, ""), t.get(42, "c")),
            (Some(2), Some(0), None)
        );
    }
}
