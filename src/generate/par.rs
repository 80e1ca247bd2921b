//! Deterministic parallelism: results never depend on the number of threads.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

/// Runs `job(i)` for `i` in `0..n` on up to `threads` threads (taken in index order) and hands
/// the results to `sink` on the calling thread, in index order.
pub(super) fn ordered<R: Send>(
    threads: usize,
    n: usize,
    job: impl Fn(usize) -> R + Sync,
    mut sink: impl FnMut(R),
) {
    if threads <= 1 || n <= 1 {
        (0..n).for_each(|i| sink(job(i)));
        return;
    }
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|s| {
        for _ in 0..threads.min(n) {
            let (tx, next, job) = (tx.clone(), &next, &job);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n || tx.send((i, job(i))).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let (mut pending, mut want) = (BTreeMap::new(), 0);
        for (i, r) in rx {
            pending.insert(i, r);
            while let Some(r) = pending.remove(&want) {
                sink(r);
                want += 1;
            }
        }
    });
}

/// Sorts `v` by `key` on up to `threads` threads. The keys must be distinct (a total order),
/// so the result is the same whatever the thread count.
pub(super) fn sort_by_key<T: Send, K: Ord + Copy + Send + Sync>(
    v: &mut [T],
    key: impl Fn(&T) -> K + Sync + Copy + Send,
    threads: usize,
) {
    if threads <= 1 || v.len() < 1 << 16 {
        v.sort_unstable_by_key(key);
        return;
    }
    // Split around the median of a sample, then sort both sides at once.
    let step = v.len() / 1023;
    let mut sample: Vec<K> = (0..1023).map(|i| key(&v[i * step])).collect();
    sample.sort_unstable();
    let pivot = sample[511];
    let mut mid = 0;
    for i in 0..v.len() {
        if key(&v[i]) < pivot {
            v.swap(i, mid);
            mid += 1;
        }
    }
    let (lo, hi) = v.split_at_mut(mid);
    let half = threads / 2;
    std::thread::scope(|s| {
        s.spawn(move || sort_by_key(lo, key, half));
        sort_by_key(hi, key, threads - half);
    });
}

/// Splits `v` into up to `threads` contiguous parts and runs `f(offset, part)` on each at once.
pub(super) fn for_parts<T: Send>(v: &mut [T], threads: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    let per = v.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        for (k, part) in v.chunks_mut(per).enumerate() {
            let f = &f;
            s.spawn(move || f(k * per, part));
        }
    });
}
