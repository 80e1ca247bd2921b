//! Transparent huge pages for the heap. A run writes hundreds of MB into fresh memory (a
//! day's columns, Parquet pages, hash tables); in 4 KiB pages that is one fault, one zeroing
//! and one TLB entry per page, in 2 MiB pages one per 512 of them. glibc backs its heap with
//! huge pages when the `glibc.malloc.hugetlb=1` tunable is set, which it reads from the
//! environment when a process starts only: so where the kernel gives huge pages on request
//! (`madvise` mode, the common default), `pipeline` starts itself again with the tunable set.
//! On the 50,000-alert day, 6% less CPU and wall clock; on the 10× day, feature join, score
//! and cluster score 10–18% faster (`docs/profiling.md`). A `GLIBC_TUNABLES` that already sets
//! `glibc.malloc.hugetlb` (to anything, `0` included) is left as it is.

/// The tunable that asks glibc for huge pages.
const TUNABLE: &str = "glibc.malloc.hugetlb";

/// The `GLIBC_TUNABLES` value with huge pages requested, given the current one; `None` when
/// it already says something about them.
pub fn tunables_with_huge_pages(current: Option<&str>) -> Option<String> {
    match current {
        Some(t) if t.split(':').any(|kv| kv.split('=').next() == Some(TUNABLE)) => None,
        Some(t) if !t.is_empty() => Some(format!("{t}:{TUNABLE}=1")),
        _ => Some(format!("{TUNABLE}=1")),
    }
}

/// Starts the program again with huge pages requested, when the kernel gives them on request
/// and they were not asked about; returns (and the program goes on with ordinary pages) when
/// there is nothing to do or the restart fails. Call it first thing in `main`.
pub fn restart_with_huge_pages() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        let mode = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled");
        if !mode.is_ok_and(|m| m.contains("[madvise]")) {
            return;
        }
        // SAFETY: getauxval reads the process's auxiliary vector, nothing else.
        if unsafe { libc::getauxval(libc::AT_SECURE) } != 0 {
            // Secure execution (setuid): glibc drops GLIBC_TUNABLES, so it would start again
            // and again.
            return;
        }
        let current = match std::env::var("GLIBC_TUNABLES") {
            Ok(t) => Some(t),
            Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(_)) => return,
        };
        let Some(tunables) = tunables_with_huge_pages(current.as_deref()) else {
            return;
        };
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let mut args = std::env::args_os();
        let arg0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
        // Only returns if the program could not be started again.
        let _ = std::process::Command::new(exe)
            .arg0(arg0)
            .args(args)
            .env("GLIBC_TUNABLES", tunables)
            .exec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_pages_are_added_to_other_tunables_unless_already_set() {
        assert_eq!(
            tunables_with_huge_pages(None).as_deref(),
            Some("glibc.malloc.hugetlb=1")
        );
        assert_eq!(
            tunables_with_huge_pages(Some("")).as_deref(),
            Some("glibc.malloc.hugetlb=1")
        );
        assert_eq!(
            tunables_with_huge_pages(Some("glibc.malloc.arena_max=2")).as_deref(),
            Some("glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1")
        );
        for set in [
            "glibc.malloc.hugetlb=0",
            "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1",
        ] {
            assert_eq!(tunables_with_huge_pages(Some(set)), None, "{set}");
        }
        // A tunable whose name only starts like it is another one.
        assert!(tunables_with_huge_pages(Some("glibc.malloc.hugetlbx=0")).is_some());
    }
}
