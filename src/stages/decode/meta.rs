//! A batch's META.json: what decode and fetch read of it, and decode's checks against it.

use crate::io::{present, read_if_present, sha256_file};
use anyhow::{anyhow, bail, Context as _, Result};
use chrono::NaiveDate;
use std::path::Path;

/// What decode and fetch read from a batch's META.json: the batch's date and window and the
/// producer's `"sha256": {"<file>.parquet": hex, …}` checksums (the consumers' `files` variants
/// are not read; see the upstream notes).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Meta {
    /// `processing_date`, if present.
    pub processing_date: Option<String>,
    /// `window_days`, if present.
    pub window_days: Option<u64>,
    /// File name → lower-case hex sha256, in name order.
    pub sha256: std::collections::BTreeMap<String, String>,
}

impl Meta {
    /// Parses META.json's bytes; `path` names the file in errors. A checksum key that is not a
    /// plain file name (`../x`, `a/b`, hidden) is refused: it would name a file outside the batch.
    pub fn parse(bytes: &[u8], path: &str) -> Result<Self> {
        let meta: serde_json::Value =
            serde_json::from_slice(bytes).with_context(|| format!("{path}: not valid JSON"))?;
        let mut sha256 = std::collections::BTreeMap::new();
        for (f, want) in meta
            .get("sha256")
            .and_then(|v| v.as_object())
            .into_iter()
            .flatten()
        {
            check_file_name(f).with_context(|| path.to_string())?;
            let want = want
                .as_str()
                .ok_or_else(|| anyhow!("{path}: sha256 of {f} is not a string"))?;
            sha256.insert(f.clone(), want.to_ascii_lowercase());
        }
        Ok(Self {
            processing_date: meta
                .get("processing_date")
                .and_then(|v| v.as_str())
                .map(str::to_string),
            window_days: meta.get("window_days").and_then(|v| v.as_u64()),
            sha256,
        })
    }

    /// Fails unless the batch is for `date` and `window_days` (where META.json says).
    pub fn check(&self, path: &str, date: NaiveDate, window_days: u32) -> Result<()> {
        if let Some(d) = &self.processing_date {
            if *d != date.format("%Y-%m-%d").to_string() {
                bail!("{path}: processing_date is {d}, but the batch directory is for {date}");
            }
        }
        if let Some(w) = self.window_days {
            if w != window_days as u64 {
                bail!("{path}: window_days is {w}, but the batch directory is for {window_days}");
            }
        }
        Ok(())
    }
}

/// A file name listed in META.json that names a file of the batch directory itself.
pub fn check_file_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.starts_with('.')
        || name.contains(['/', '\\'])
        || name.chars().any(char::is_control)
    {
        bail!("META.json lists {name:?}, which is not a plain file name");
    }
    Ok(())
}

/// Checks META.json: the batch's date and window, and (with `verify_checksums`) every listed
/// file's sha256. Without META.json the batch cannot be verified, so it is refused unless
/// `verify_checksums = false` says to run unverified batches.
pub(super) fn check_meta(
    verify: bool,
    dir: &Path,
    date: NaiveDate,
    window_days: u32,
) -> Result<()> {
    let path = dir.join(crate::layout::META);
    let Some(text) = read_if_present(&path)? else {
        if verify {
            bail!(
                "{}: missing file; upstream batches always have one, so this batch cannot be verified \
                 (set verify_checksums = false in the decode stage's params to run unverified batches)",
                path.display()
            );
        }
        tracing::warn!("{}: missing; checksums not verified", path.display());
        return Ok(());
    };
    let shown = path.display().to_string();
    let meta = Meta::parse(&text, &shown)?;
    meta.check(&shown, date, window_days)?;
    for f in crate::layout::BATCH_FILES {
        let fp = dir.join(f);
        if !present(&fp)? {
            bail!(
                "{}: missing file{}",
                fp.display(),
                if meta.sha256.contains_key(f) {
                    " (listed in META.json)"
                } else {
                    ""
                }
            );
        }
    }
    if verify {
        for (f, want) in &meta.sha256 {
            let fp = dir.join(f);
            let got = sha256_file(&fp)?;
            if got != *want {
                bail!(
                    "{}: sha256 is {got}, but META.json says {want} (corrupt or partial file?)",
                    fp.display()
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_refuses_checksum_keys_that_leave_the_batch() {
        let meta = |key: &str| {
            let json = serde_json::json!({"sha256": {key: "ab"}}).to_string();
            Meta::parse(json.as_bytes(), "META.json")
        };
        assert!(meta("alerts.parquet").is_ok());
        for bad in [
            "",
            "../../../../etc/passwd",
            "/etc/passwd",
            "a/b.parquet",
            ".hidden",
            "a\\b",
            "x\ny",
        ] {
            let e = meta(bad).expect_err(bad);
            assert!(
                format!("{e:#}").contains("not a plain file name"),
                "{bad:?}: {e:#}"
            );
        }
    }
}
