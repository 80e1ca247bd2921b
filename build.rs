//! Records a hash of the source that determines the outputs (`src/code_scope.rs` says which),
//! so the incremental planner can tell outputs made by other code apart (see `src/plan.rs`),
//! and the git commit for `GET /version`.
//! Puts the prebuilt DuckDB library's directory (`DUCKDB_LIB_DIR`) on the binaries' rpath.

use std::path::{Path, PathBuf};

#[path = "src/code_scope.rs"]
mod code_scope;

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn main() {
    let mut paths = vec![PathBuf::from("Cargo.toml"), PathBuf::from("Cargo.lock")];
    files(Path::new("src"), &mut paths);
    let contents: Vec<(String, Vec<u8>)> = paths
        .iter()
        .map(|p| {
            let name = p.to_string_lossy().replace('\\', "/");
            (name, std::fs::read(p).unwrap_or_default())
        })
        .collect();
    println!(
        "cargo:rustc-env=AML_PIPELINE_SOURCE_HASH={:016x}",
        code_scope::code_hash(&contents)
    );
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=AML_PIPELINE_COMMIT={commit}");
    if let Ok(dir) = std::env::var("DUCKDB_LIB_DIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    println!("cargo:rerun-if-env-changed=DUCKDB_LIB_DIR");
    // A commit moves the branch ref; watch it (and HEAD) when they are plain files.
    let head = std::fs::read_to_string(".git/HEAD").unwrap_or_default();
    let branch = head
        .strip_prefix("ref: ")
        .map(|r| format!(".git/{}", r.trim()));
    for p in [Some(".git/HEAD".to_string()), branch]
        .into_iter()
        .flatten()
    {
        if Path::new(&p).is_file() {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=Cargo.toml");
    println!("cargo:rerun-if-changed=Cargo.lock");
}
