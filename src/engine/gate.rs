//! Large tables held at once: a stage that produces large tables ([`Table::large`]) and limits
//! how many dates may hold them ([`crate::stages::Stage::dates_at_once`]) waits before its
//! work for a date until fewer dates than that hold them; a date holds them from its
//! producer's work until every stage that reads them has had the date.
//!
//! [`Table::large`]: crate::batch::Table::large

use chrono::NaiveDate;
use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};

/// The dates of this process holding large tables, each with the readers still to have it.
#[derive(Default)]
pub(super) struct Gate {
    holding: Mutex<HashMap<NaiveDate, usize>>,
    changed: Condvar,
}

impl Gate {
    fn lock(&self) -> MutexGuard<'_, HashMap<NaiveDate, usize>> {
        self.holding.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until fewer than `at_once` dates hold large tables, then records that `date`
    /// holds them until `readers` stages have had it ([`Gate::read`]). With no readers the
    /// tables are dropped at once, so there is nothing to wait for.
    pub(super) fn enter(&self, date: NaiveDate, at_once: usize, readers: usize) {
        if readers == 0 {
            return;
        }
        let mut holding = self.lock();
        while holding.len() >= at_once.max(1) {
            holding = self
                .changed
                .wait(holding)
                .unwrap_or_else(|p| p.into_inner());
        }
        holding.insert(date, readers);
    }

    /// Records that one reader of `date`'s large tables has had it (run, skipped or failed).
    pub(super) fn read(&self, date: NaiveDate) {
        let mut holding = self.lock();
        if let Some(left) = holding.get_mut(&date) {
            *left -= 1;
            if *left == 0 {
                holding.remove(&date);
                self.changed.notify_all();
            }
        }
    }

    /// Records that `date` has left the graph: whatever it held is dropped.
    pub(super) fn left(&self, date: NaiveDate) {
        if self.lock().remove(&date).is_some() {
            self.changed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 10, d).unwrap()
    }

    #[test]
    fn a_date_enters_once_the_one_before_has_been_read_by_every_reader() {
        let gate = Arc::new(Gate::default());
        gate.enter(day(1), 1, 2);
        let (g, entered) = (gate.clone(), Arc::new(Mutex::new(false)));
        let e = entered.clone();
        let second = std::thread::spawn(move || {
            g.enter(day(2), 1, 2);
            *e.lock().unwrap() = true;
        });
        gate.read(day(1));
        std::thread::sleep(Duration::from_millis(50));
        assert!(!*entered.lock().unwrap(), "one reader of day 1 is left");
        gate.read(day(1));
        second.join().unwrap();
        assert!(*entered.lock().unwrap());
        gate.left(day(2));
        gate.enter(day(3), 1, 1);
    }

    #[test]
    fn several_dates_enter_when_allowed_and_readers_of_others_do_not_count() {
        let gate = Gate::default();
        gate.enter(day(1), 2, 1);
        gate.enter(day(2), 2, 1);
        gate.read(day(5));
        gate.enter(day(3), 2, 0);
        gate.read(day(1));
        gate.enter(day(4), 2, 1);
        assert_eq!(gate.lock().len(), 2);
    }
}
