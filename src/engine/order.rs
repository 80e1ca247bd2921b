//! Dates in order, for a stage whose work must see the dates one after another
//! ([`crate::stages::Stage::in_date_order`]): its work for a date waits until every earlier date
//! of this process's run has left the graph.

use std::sync::{Condvar, Mutex, MutexGuard};

/// Which of the run's dates (by position among its plans, ascending) have left the graph.
pub(super) struct DateOrder {
    left: Mutex<Vec<bool>>,
    changed: Condvar,
}

impl DateOrder {
    /// `dates` dates, none left yet.
    pub(super) fn new(dates: usize) -> Self {
        Self {
            left: Mutex::new(vec![false; dates]),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<bool>> {
        self.left.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that date `i` has left the graph (done, failed or never entered).
    pub(super) fn left(&self, i: usize) {
        if let Some(l) = self.lock().get_mut(i) {
            *l = true;
        }
        self.changed.notify_all();
    }

    /// Waits until every date before date `i` has left the graph. Deadlock-free because each
    /// worker holds one date and takes them in order: the earliest date in the graph waits for
    /// none.
    pub(super) fn wait_before(&self, i: usize) {
        let mut left = self.lock();
        while left[..i.min(left.len())].iter().any(|l| !l) {
            left = self.changed.wait(left).unwrap_or_else(|p| p.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_date_waits_for_every_earlier_one() {
        let order = Arc::new(DateOrder::new(3));
        order.wait_before(0);
        let (o, seen) = (order.clone(), Arc::new(Mutex::new(Vec::new())));
        let s = seen.clone();
        let third = std::thread::spawn(move || {
            o.wait_before(2);
            s.lock().unwrap().push(2);
        });
        order.left(1);
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(seen.lock().unwrap().is_empty(), "date 0 has not left yet");
        seen.lock().unwrap().push(0);
        order.left(0);
        third.join().unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![0, 2]);
    }
}
