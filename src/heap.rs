//! glibc malloc's settings, made once at the start: how freed memory is kept
//! ([`keep_freed_memory`], from `main`) and how many arenas the threads share
//! ([`limit_arenas`], when a run starts).
//!
//! A run allocates and frees blocks of megabytes all along (Parquet pages, a batch's columns,
//! hash tables). By default glibc maps each block above its mmap threshold on its own and
//! unmaps it when freed, and hands the top of a heap back once 128 KiB of it is free, so the
//! next block is fresh memory again: faulted in and zeroed by the kernel a page at a time and,
//! on a virtual machine that reports its free memory to the host, often faulted in by the host
//! as well (`docs/scaling.md`, "Fresh memory and huge pages").

/// Blocks up to this size come from the heap rather than a mapping of their own (glibc's
/// largest threshold on 64-bit targets).
pub const MMAP_THRESHOLD: usize = 32 << 20;

/// Free memory at the top of a heap is handed back to the kernel only beyond this.
pub const TRIM_THRESHOLD: usize = 1 << 30;

/// Sets glibc's mmap and trim thresholds so freed memory is reused rather than handed back.
/// Call it first thing in `main`, before other threads allocate. Elsewhere than glibc it does
/// nothing; a `GLIBC_TUNABLES` setting of either threshold is overridden.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt changes two of the allocator's parameters; it takes its own lock and is
    // safe to call at any time.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int);
    }
}

/// Limits glibc's malloc to one arena (a heap of its own) per worker, for the process's
/// threads started after the call. By default glibc gives up to eight per core, one per thread
/// while they last: memory a date freed in one heap is not reused by the next date's stage threads,
/// which get others, so a 30-date backfill with one worker peaked at 2.3× one date's RSS
/// (934 MB against 400); with one heap, 508 MB, at the same speed. Call it before the run
/// starts threads. A no-op off glibc.
pub fn limit_arenas(workers: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; M_ARENA_MAX takes any positive count.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, workers.clamp(1, 64) as libc::c_int);
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    /// Blocks glibc holds as mappings of their own, the whole process's.
    fn mapped_blocks() -> i64 {
        // SAFETY: mallinfo2 reads the allocator's counters.
        unsafe { libc::mallinfo2() }.hblks as i64
    }

    #[test]
    fn a_block_just_under_the_threshold_comes_from_the_heap_not_a_mapping_of_its_own() {
        keep_freed_memory();
        // glibc's default threshold starts at 128 KiB and rises to the largest mapped block
        // freed so far, so by default each of these growing blocks is mapped (unless one as
        // large was freed before). Other tests of this process may map or unmap blocks
        // meanwhile: one quiet try of three is enough.
        let heap = (1..=3).rev().any(|mib| {
            let before = mapped_blocks();
            let block = std::hint::black_box(vec![1u8; MMAP_THRESHOLD - (mib << 20)]);
            let during = mapped_blocks();
            drop(block);
            during == before
        });
        assert!(heap, "blocks of 29 to 31 MiB were mapped on their own");
    }
}
