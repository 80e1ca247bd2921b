//! The heap's huge pages (`src/huge_pages.rs`): `pipeline` starts itself again with glibc's
//! `glibc.malloc.hugetlb=1` where the kernel gives huge pages on request, leaves a setting of
//! the caller's alone, and makes the same outputs either way.

use crate::common::*;
use std::process::Command;

/// Runs the fixture's dates into `tmp/out` with `GLIBC_TUNABLES` as given (`None`: unset);
/// returns the tunables the run saw.
fn run_with(tmp: &std::path::Path, tunables: Option<&str>) -> String {
    let cfg = fixture_config(tmp);
    let mut cmd = Command::new(bin());
    cmd.args(["run", cfg.to_str().unwrap()])
        .env("RUST_LOG", "aml_pipeline::cli=debug")
        .env_remove("GLIBC_TUNABLES");
    if let Some(t) = tunables {
        cmd.env("GLIBC_TUNABLES", t);
    }
    let out = ok(cmd.output().unwrap());
    let log = without_colours(&String::from_utf8_lossy(&out.stderr));
    let line = (log.lines())
        .find(|l| l.contains("glibc tunables"))
        .unwrap_or_else(|| panic!("no tunables line in:\n{log}"));
    let value = line.split("tunables=").nth(1).unwrap_or_default();
    value.trim().trim_matches('"').to_string()
}

#[test]
fn runs_ask_glibc_for_huge_pages_unless_told_otherwise_with_the_same_outputs() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mode = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled");
    let on_request = mode.is_ok_and(|m| m.contains("[madvise]"));
    let seen = run_with(a.path(), None);
    let want = if on_request {
        "glibc.malloc.hugetlb=1"
    } else {
        ""
    };
    assert_eq!(seen, want);
    // The caller's word stands, other tunables kept.
    let theirs = "glibc.malloc.arena_max=4:glibc.malloc.hugetlb=0";
    assert_eq!(run_with(b.path(), Some(theirs)), theirs);
    assert!(
        deterministic_view(&a.path().join("out")) == deterministic_view(&b.path().join("out")),
        "outputs differ with and without huge pages"
    );
}
