//! Deterministic parallelism: results never depend on the number of threads.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Condvar, Mutex};

/// Runs `job(i)` for `i` in `0..n` on up to `threads` threads (taken in index order) and hands
/// the results to `sink` on the calling thread, in index order. A job starts only when fewer
/// than `2 · threads` results are ahead of the sink, so a slow job holds back at most that many
/// finished results (encoded column chunks waiting for their turn, say).
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
    let window = 2 * threads;
    let next = AtomicUsize::new(0);
    let sunk = Sunk::default();
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|s| {
        for _ in 0..threads.min(n) {
            let (tx, next, job, sunk) = (tx.clone(), &next, &job, &sunk);
            s.spawn(move || {
                let _stop = StopOnPanic(sunk);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n || !sunk.wait_for(i, window) || tx.send((i, job(i))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let _stop = StopOnPanic(&sunk);
        let (mut pending, mut want) = (BTreeMap::new(), 0);
        for (i, r) in rx {
            pending.insert(i, r);
            while let Some(r) = pending.remove(&want) {
                sink(r);
                want += 1;
                sunk.advance(want);
            }
        }
    });
}

/// How far the sink of [`ordered`] has got: the index it waits for, and whether it stopped.
#[derive(Default)]
struct Sunk {
    state: Mutex<(usize, bool)>,
    turn: Condvar,
}

impl Sunk {
    /// Waits until job `i` is fewer than `window` ahead of the sink; false if it stopped.
    fn wait_for(&self, i: usize, window: usize) -> bool {
        let mut s = self.state.lock().expect("sink state");
        while i >= s.0 + window && !s.1 {
            s = self.turn.wait(s).expect("sink state");
        }
        !s.1
    }

    fn advance(&self, want: usize) {
        self.state.lock().expect("sink state").0 = want;
        self.turn.notify_all();
    }
}

/// Stops the sink's waiters if the thread holding it panics (a job or the sink), so that no
/// worker waits for a result that will never come.
struct StopOnPanic<'a>(&'a Sunk);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Ok(mut s) = self.0.state.lock() {
                s.1 = true;
            }
            self.0.turn.notify_all();
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_hands_results_over_in_order_whatever_the_threads() {
        for threads in 1..=4 {
            let mut got = Vec::new();
            let slow_first = |i: usize| {
                if i == 0 {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                i * i
            };
            ordered(threads, 50, slow_first, |r| got.push(r));
            assert_eq!(got, (0..50).map(|i| i * i).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_panicking_job_does_not_leave_workers_waiting() {
        let r = std::panic::catch_unwind(|| {
            ordered(3, 100, |i| assert!(i != 1, "job 1 fails"), |_: ()| {})
        });
        assert!(r.is_err());
    }
}
