//! Work started on a thread of its own when a run starts and waited for where its result is
//! first needed, so loading what the last stages use (labels, the address history) overlaps
//! the first stages of the graph instead of delaying them; [`Progress`] lets others wait for
//! such work date by date (the downloads of a run, the address history pass).

use anyhow::{anyhow, Result};
use chrono::NaiveDate;
use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;

/// A value computed on its own thread; [`Background::get`] waits for it.
pub struct Background<T> {
    what: &'static str,
    handle: Mutex<Option<JoinHandle<Result<T>>>>,
    value: OnceLock<Result<T, String>>,
}

/// Lowers the calling thread's scheduling priority (nice 19), so it runs on what the other
/// threads leave idle: work needed late (the labels validation judges with) then no longer
/// slows the stages that run meanwhile. A no-op where threads have no priority of their own.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority has no memory effects; `who = 0` is the calling thread on Linux.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 19);
    }
}

/// What a scoped thread returned; its panic goes on in the caller.
pub fn joined<T>(t: std::thread::ScopedJoinHandle<'_, T>) -> T {
    t.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

impl<T: Send + 'static> Background<T> {
    /// Starts computing `what` with `f` on a new thread (named `what`).
    pub fn spawn(what: &'static str, f: impl FnOnce() -> Result<T> + Send + 'static) -> Self {
        Self::start(what, f)
    }

    /// Like [`Background::spawn`], at the lowest priority (nice 19): for a value
    /// needed well after the work that runs meanwhile.
    pub fn spawn_idle(what: &'static str, f: impl FnOnce() -> Result<T> + Send + 'static) -> Self {
        Self::start(what, move || {
            lower_priority();
            f()
        })
    }

    fn start(what: &'static str, f: impl FnOnce() -> Result<T> + Send + 'static) -> Self {
        let span = tracing::Span::current();
        let handle = std::thread::Builder::new()
            .name(what.to_string())
            .spawn(move || span.in_scope(f));
        let out = Self::empty(what);
        match handle {
            Ok(h) => *out.handle.lock().unwrap_or_else(|p| p.into_inner()) = Some(h),
            Err(e) => {
                let _ = out.value.set(Err(format!("cannot start a thread: {e}")));
            }
        }
        out
    }
}

impl<T> Background<T> {
    /// A value already at hand.
    pub fn ready(what: &'static str, value: T) -> Self {
        let out = Self::empty(what);
        let _ = out.value.set(Ok(value));
        out
    }

    fn empty(what: &'static str) -> Self {
        Self {
            what,
            handle: Mutex::new(None),
            value: OnceLock::new(),
        }
    }

    /// The value, once computed (the first caller waits for the thread, any other for the
    /// first); its error, naming what was computed, if it failed or panicked.
    pub fn get(&self) -> Result<&T> {
        self.value
            .get_or_init(|| {
                let handle = self.handle.lock().unwrap_or_else(|p| p.into_inner()).take();
                match handle.map(JoinHandle::join) {
                    Some(Ok(Ok(v))) => Ok(v),
                    Some(Ok(Err(e))) => Err(format!("{e:#}")),
                    Some(Err(_)) => Err("panicked".to_string()),
                    None => Err("never started".to_string()),
                }
            })
            .as_ref()
            .map_err(|e| anyhow!("{}: {e}", self.what))
    }
}

/// What work on another thread has reached so far, date by date: a value per date it is done
/// with, and whether it has ended (however it ended); others wait for the dates they need.
pub struct Progress<V> {
    state: Mutex<(BTreeMap<NaiveDate, V>, bool)>,
    changed: Condvar,
}

impl<V> Default for Progress<V> {
    fn default() -> Self {
        Self {
            state: Mutex::new((BTreeMap::new(), false)),
            changed: Condvar::new(),
        }
    }
}

impl<V: Clone> Progress<V> {
    fn lock(&self) -> MutexGuard<'_, (BTreeMap<NaiveDate, V>, bool)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The work is done with `date`.
    pub fn add(&self, date: NaiveDate, value: V) {
        self.lock().0.insert(date, value);
        self.changed.notify_all();
    }

    /// The work has ended.
    pub fn end(&self) {
        self.lock().1 = true;
        self.changed.notify_all();
    }

    /// Ends the progress when dropped: held by the work, so work that fails or panics still
    /// ends the waits.
    pub fn ends_with(self: &Arc<Self>) -> EndsOnDrop<V> {
        EndsOnDrop(self.clone())
    }

    /// Waits until the work is done with every date of `dates` or has ended; the value of
    /// each of them it is done with.
    pub fn wait(&self, dates: &[NaiveDate]) -> BTreeMap<NaiveDate, V> {
        let mut st = self.lock();
        while !st.1 && dates.iter().any(|d| !st.0.contains_key(d)) {
            st = self.changed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        dates
            .iter()
            .filter_map(|d| st.0.get(d).map(|v| (*d, v.clone())))
            .collect()
    }
}

/// Ends a [`Progress`] when dropped ([`Progress::ends_with`]).
pub struct EndsOnDrop<V: Clone>(Arc<Progress<V>>);

impl<V: Clone> Drop for EndsOnDrop<V> {
    fn drop(&mut self) {
        self.0.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_caller_gets_the_value_computed_once() {
        let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let r = runs.clone();
        let b = Background::spawn("answer", move || {
            r.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(42)
        });
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| assert_eq!(*b.get().unwrap(), 42));
            }
        });
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(*Background::ready("x", 7).get().unwrap(), 7);
    }

    #[test]
    fn an_error_or_a_panic_names_what_was_computed() {
        let b: Background<u8> = Background::spawn("the labels", || Err(anyhow!("bad row 3")));
        assert_eq!(b.get().unwrap_err().to_string(), "the labels: bad row 3");
        assert!(b.get().is_err(), "the error stays");
        let p: Background<u8> = Background::spawn("the history", || panic!("boom"));
        assert_eq!(p.get().unwrap_err().to_string(), "the history: panicked");
    }

    #[test]
    fn progress_waits_for_its_dates_or_for_the_end() {
        let d = |k| NaiveDate::from_ymd_opt(2025, 10, k).unwrap();
        let p: Arc<Progress<u8>> = Arc::default();
        let work = {
            let p = p.clone();
            std::thread::spawn(move || {
                let _end = p.ends_with();
                p.add(d(1), 1);
                p.add(d(2), 2);
                panic!("the work fails before date 3");
            })
        };
        assert_eq!(p.wait(&[d(1), d(2)]).len(), 2);
        assert_eq!(p.wait(&[d(3)]), BTreeMap::new(), "ended without it");
        assert!(work.join().is_err());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn idle_work_runs_at_the_lowest_priority_and_leaves_the_caller_alone() {
        // SAFETY: getpriority only reads the calling thread's nice value.
        let nice = || unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let before = nice();
        let b = Background::spawn_idle("idle", move || Ok(nice()));
        assert_eq!(*b.get().unwrap(), 19);
        assert_eq!(nice(), before);
        let normal = Background::spawn("normal", move || Ok(nice()));
        assert_eq!(*normal.get().unwrap(), before);
    }
}
