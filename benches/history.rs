//! The address-history pass alone: time and peak memory of computing the history features of
//! every date of a run config (what `pipeline run` does before its dataflow).
//! `benches/e2e.sh` runs it on its 30 generated days; by hand:
//! `cargo bench --bench history -- bench-data/w30-a50000-laundering/config.toml [WORKERS] [flows]`
//! (`flows`: with the money-flow features, which read every date's flows).

use aml_pipeline::config::RunConfig;
use aml_pipeline::history;
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// The system allocator, counting the bytes in use and their peak, to tell the pass's own
/// memory from what the allocator keeps.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = IN_USE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The process's peak resident set (VmHWM), in MB.
fn peak_rss_mb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let path = PathBuf::from(
        args.first()
            .expect("usage: cargo bench --bench history -- CONFIG [WORKERS] [flows]"),
    );
    let cfg = RunConfig::load(&path).expect("readable run config");
    let workers = args
        .get(1)
        .map_or(cfg.workers, |w| w.parse().expect("a worker count"));
    let available = aml_pipeline::dates::available(&cfg.input, &cfg.network, cfg.window_days)
        .expect("listable input");
    let dates = cfg.dates.resolve(&available);
    let flows = args.get(2).is_some_and(|a| a == "flows");
    let cfg = RunConfig { workers, ..cfg };
    let start = Instant::now();
    let mut rows = 0;
    history::compute_for(&cfg, &dates, flows, &mut |_, r| {
        rows += r.map_err(|e| anyhow::anyhow!(e))?.num_rows();
        Ok(())
    })
    .expect("history features");
    println!(
        "history pass{}: {:.2} s for {} dates ({rows} rows), {workers} workers, peak RSS {} MB, peak heap {} MB",
        if flows { " with flows" } else { "" },
        start.elapsed().as_secs_f64(),
        dates.len(),
        peak_rss_mb(),
        PEAK.load(Ordering::Relaxed) >> 20
    );
}
