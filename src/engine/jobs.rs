//! Stage work on threads of their own: the operator that starts a date's work holds the date's
//! capability until the work is done, and the thread wakes the worker when it is, so stages
//! whose inputs are ready together run side by side while the worker parks.

use crate::batch::DateMsg;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::Result as ThreadResult;
use timely::dataflow::operators::CapabilitySet;
use timely::scheduling::SyncActivator;

/// One operator's running work: what it holds and how finished work reaches it.
pub(super) struct Jobs {
    name: String,
    wake: Arc<SyncActivator>,
    done_tx: Sender<(usize, ThreadResult<DateMsg>)>,
    done_rx: Receiver<(usize, ThreadResult<DateMsg>)>,
    held: HashMap<usize, CapabilitySet<u64>>,
    next: usize,
}

impl Jobs {
    /// No work yet, for the operator `wake` activates; threads are named `stage {name}`.
    pub(super) fn new(name: &str, wake: SyncActivator) -> Self {
        let (done_tx, done_rx) = channel();
        Self {
            name: format!("stage {name}"),
            wake: Arc::new(wake),
            done_tx,
            done_rx,
            held: HashMap::new(),
            next: 0,
        }
    }

    /// Runs `work` on a new thread, holding `caps` until its result is taken by [`Jobs::finished`].
    pub(super) fn start(
        &mut self,
        caps: CapabilitySet<u64>,
        work: impl FnOnce() -> DateMsg + Send + 'static,
    ) {
        let id = self.next;
        self.next += 1;
        let (tx, wake) = (self.done_tx.clone(), self.wake.clone());
        std::thread::Builder::new()
            .name(self.name.clone())
            .spawn(move || {
                let result = std::panic::catch_unwind(AssertUnwindSafe(work));
                // The result is sent before the worker is woken, so the wake-up finds it; both
                // fail only when the worker is gone, and then nobody waits for it.
                let _ = tx.send((id, result));
                let _ = wake.activate();
            })
            .expect("cannot start a stage thread");
        self.held.insert(id, caps);
    }

    /// The results of the work finished since the last call, each with the capabilities it
    /// held; a panic in the work resumes here, on the worker.
    pub(super) fn finished(&mut self) -> Vec<(CapabilitySet<u64>, DateMsg)> {
        let done: Vec<_> = self.done_rx.try_iter().collect();
        done.into_iter()
            .map(|(id, result)| {
                let caps = self
                    .held
                    .remove(&id)
                    .expect("finished work was started here");
                let msg = result.unwrap_or_else(|p| std::panic::resume_unwind(p));
                (caps, msg)
            })
            .collect()
    }
}
