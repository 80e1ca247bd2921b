//! Each date's plan, made when the date enters the graph: after the stage that brings its
//! input in place (fetch), or at its first stage in a pipeline without one. A fetched date is
//! so planned from what was fetched, while later dates still download.

use crate::error::{DateError, ErrorKind};
use crate::plan::{invalidate, DatePlan, Planner};
use crate::stages::Context;
use anyhow::Result;
use chrono::NaiveDate;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The plans of a run's dates, made once each.
pub(super) struct Plans {
    planner: Mutex<Planner>,
    made: Mutex<HashMap<NaiveDate, Result<Arc<DatePlan>, DateError>>>,
    force: bool,
}

impl Plans {
    /// Plans for the dates of `ctx`'s run; `force` reruns every stage.
    pub(super) fn new(ctx: &Context, force: bool) -> Result<Self> {
        Ok(Self {
            planner: Mutex::new(Planner::new(&ctx.config, &ctx.model_paths())?),
            made: Mutex::default(),
            force,
        })
    }

    /// The plan of `date`, made now if it has none yet, with the records of the stages it
    /// reruns forgotten (so no record outlives its outputs). An input or state that cannot be
    /// read fails the date.
    pub(super) fn of(&self, date: NaiveDate) -> Result<Arc<DatePlan>, DateError> {
        let mut made = self.made.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = made.get(&date) {
            return p.clone();
        }
        let mut planner = self.planner.lock().unwrap_or_else(|p| p.into_inner());
        let plan = match planner.plan(date, self.force) {
            Ok(p) => match invalidate(planner.store(), &p) {
                Ok(()) => Ok(Arc::new(p)),
                Err(e) => Err(DateError::new(ErrorKind::Output, &e)),
            },
            Err(e) => Err(DateError::new(ErrorKind::Input, &e)),
        };
        made.insert(date, plan.clone());
        plan
    }

    /// The plan of `date` if it was made.
    pub(super) fn made(&self, date: NaiveDate) -> Option<Arc<DatePlan>> {
        let made = self.made.lock().unwrap_or_else(|p| p.into_inner());
        made.get(&date).and_then(|p| p.as_ref().ok().cloned())
    }

    /// Keeps the content hashes the planning computed, for the next run.
    pub(super) fn finish(&self) -> Result<()> {
        let planner = self.planner.lock().unwrap_or_else(|p| p.into_inner());
        planner.finish()
    }
}
