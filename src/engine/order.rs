//! Dates in order, for a stage whose work must see the dates one after another
//! ([`crate::stages::Stage::in_date_order`]): its work for a date waits until every earlier date
//! of the run has left the graph, in every process.
//!
//! Each date enters the graph at its own timestamp ([`time`]), and a probe at the end of the
//! graph tells each worker the frontier there: the earliest timestamp some worker of some
//! process may still deliver. The workers publish it here ([`DateOrder::reached`]), and the
//! waiting work (on a thread of its own) wakes when it passes the date's timestamp.

use chrono::{Datelike, NaiveDate};
use std::sync::{Condvar, Mutex, MutexGuard};

/// The timestamp of a date in the graph: its day number, the same in every process, and
/// ascending with the date, as each worker takes its dates.
pub(super) fn time(date: NaiveDate) -> u64 {
    date.num_days_from_ce().max(0) as u64
}

/// The frontier at the end of the graph, as the workers last saw it: every date whose
/// timestamp is below it has left the graph.
#[derive(Default)]
pub(super) struct DateOrder {
    frontier: Mutex<u64>,
    changed: Condvar,
}

impl DateOrder {
    fn lock(&self) -> MutexGuard<'_, u64> {
        self.frontier.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the frontier a worker saw at the end of the graph (`None`: empty, every date
    /// has left). Frontiers only advance, so an older view from another worker is ignored.
    pub(super) fn reached(&self, frontier: Option<u64>) {
        let t = frontier.unwrap_or(u64::MAX);
        let mut f = self.lock();
        if t > *f {
            *f = t;
            self.changed.notify_all();
        }
    }

    /// Waits until every date before `date` has left the graph. Deadlock-free because each
    /// worker holds one date and takes its process's dates in order: the earliest date in the
    /// graph waits for none, and a date not yet taken is later than every date its process's
    /// workers hold.
    pub(super) fn wait_before(&self, date: NaiveDate) {
        let t = time(date);
        let mut f = self.lock();
        while *f < t {
            f = self.changed.wait(f).unwrap_or_else(|p| p.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 10, d).unwrap()
    }

    #[test]
    fn a_date_waits_until_the_frontier_passes_every_earlier_one() {
        let order = Arc::new(DateOrder::default());
        order.reached(Some(time(day(1))));
        order.wait_before(day(1));
        let (o, seen) = (order.clone(), Arc::new(Mutex::new(Vec::new())));
        let s = seen.clone();
        let third = std::thread::spawn(move || {
            o.wait_before(day(3));
            s.lock().unwrap().push(3);
        });
        order.reached(Some(time(day(2))));
        order.reached(Some(time(day(1))));
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(seen.lock().unwrap().is_empty(), "date 2 has not left yet");
        seen.lock().unwrap().push(2);
        order.reached(None);
        third.join().unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![2, 3]);
        assert!(time(day(1)) < time(day(2)));
    }
}
