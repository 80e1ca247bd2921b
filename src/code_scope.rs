//! Which source files make up the code part of the outputs' fingerprints ([`crate::plan`]):
//! all of `src/` but the commands and services around the outputs, so that editing the
//! server, the command line or the generator leaves every date up to date. `build.rs` includes
//! this file to hash the source it is built from.

/// Source paths (from the crate root, `/`-separated; a trailing `/` is a whole directory) whose
/// code determines no output of `pipeline run`. Everything else under `src/` counts, so a new
/// module counts until it is listed here.
pub const NOT_OUTPUT_CODE: &[&str] = &[
    "src/main.rs",
    "src/heap.rs",
    "src/cli/",
    "src/serve/",
    "src/query.rs",
    "src/fetch.rs",
    "src/arrivals.rs",
    "src/generate/",
    "src/train/",
    "src/compare.rs",
];

/// Whether the file at `path` (as in [`NOT_OUTPUT_CODE`]) is part of the outputs' code.
pub fn determines_outputs(path: &str) -> bool {
    !NOT_OUTPUT_CODE.iter().any(|p| match p.strip_suffix('/') {
        Some(dir) => path.starts_with(dir) && path[dir.len()..].starts_with('/'),
        None => path == *p,
    })
}

/// A hash of the files that determine outputs, from `(path, content)` pairs in any order.
pub fn code_hash(files: &[(String, Vec<u8>)]) -> u64 {
    use std::hash::{DefaultHasher, Hasher};
    let mut kept: Vec<&(String, Vec<u8>)> = files
        .iter()
        .filter(|(p, _)| !p.starts_with("src/") || determines_outputs(p))
        .collect();
    kept.sort();
    let mut h = DefaultHasher::new();
    for (p, bytes) in kept {
        h.write(p.as_bytes());
        h.write(bytes);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serving_and_command_line_code_leave_the_code_version_alone() {
        let tree = |serve: &str, cli: &str, decode: &str| {
            vec![
                ("Cargo.toml".to_string(), b"[package]".to_vec()),
                ("src/serve/mod.rs".to_string(), serve.as_bytes().to_vec()),
                ("src/serve/conn.rs".to_string(), serve.as_bytes().to_vec()),
                ("src/cli/run.rs".to_string(), cli.as_bytes().to_vec()),
                ("src/generate/mod.rs".to_string(), cli.as_bytes().to_vec()),
                (
                    "src/stages/decode.rs".to_string(),
                    decode.as_bytes().to_vec(),
                ),
            ]
        };
        let base = code_hash(&tree("a", "a", "a"));
        assert_eq!(code_hash(&tree("b", "b", "a")), base);
        assert_ne!(code_hash(&tree("a", "a", "b")), base);
        assert!(determines_outputs("src/stages/score.rs"));
        assert!(
            determines_outputs("src/serving.rs"),
            "only the listed paths are left out"
        );
        assert!(determines_outputs("src/new_module.rs"));
        assert!(!determines_outputs("src/serve/conn.rs"));
        // Every listed file exists (or is a directory that may), so the list does not rot.
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for p in NOT_OUTPUT_CODE.iter().filter(|p| !p.ends_with('/')) {
            assert!(root.join(p).is_file(), "{p} is listed but does not exist");
        }
    }
}
