//! Processing dates: parsing `--dates` selections and listing the dates present in an input tree.

use anyhow::{bail, Context, Result};
use chrono::NaiveDate;
use std::path::Path;

/// Which processing dates a command works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DateSelection {
    /// Every date found in the input tree.
    All,
    /// The newest date found in the input tree.
    Latest,
    /// An inclusive range (a single date is a range of one).
    Range(NaiveDate, NaiveDate),
}

impl std::str::FromStr for DateSelection {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        match s {
            "all" => return Ok(Self::All),
            "latest" => return Ok(Self::Latest),
            _ => {}
        }
        let (a, b) = s.split_once("..").unwrap_or((s, s));
        let a = parse_date(a)?;
        let b = parse_date(b)?;
        if b < a {
            bail!("date range {s:?} ends before it starts");
        }
        Ok(Self::Range(a, b))
    }
}

/// Parses a `YYYY-MM-DD` date with a message that says what was expected.
pub fn parse_date(s: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").with_context(|| {
        format!("{s:?} is not a date: expected YYYY-MM-DD, YYYY-MM-DD..YYYY-MM-DD, latest or all")
    })
}

/// Every date from `a` to `b` inclusive.
pub fn days(a: NaiveDate, b: NaiveDate) -> Vec<NaiveDate> {
    a.iter_days().take_while(|d| *d <= b).collect()
}

/// The dates under `{root}/{network}/` that have a `{window_days}` batch directory, ascending.
pub fn available(root: &Path, network: &str, window_days: u32) -> Result<Vec<NaiveDate>> {
    let dir = root.join(network);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Ok(d) = NaiveDate::parse_from_str(name, "%Y-%m-%d") {
            if entry.path().join(window_days.to_string()).is_dir() {
                out.push(d);
            }
        }
    }
    out.sort();
    Ok(out)
}

impl DateSelection {
    /// Resolves the selection against the dates available in the input tree.
    ///
    /// A range keeps every date in it, present or not: a missing batch is reported by the run
    /// as a failed date rather than silently skipped.
    pub fn resolve(&self, available: &[NaiveDate]) -> Vec<NaiveDate> {
        match self {
            Self::All => available.to_vec(),
            Self::Latest => available.last().copied().into_iter().collect(),
            Self::Range(a, b) => days(*a, *b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_selections() {
        let d = |s| parse_date(s).unwrap();
        assert_eq!(
            "latest".parse::<DateSelection>().unwrap(),
            DateSelection::Latest
        );
        assert_eq!(
            "2025-10-01..2025-10-03".parse::<DateSelection>().unwrap(),
            DateSelection::Range(d("2025-10-01"), d("2025-10-03"))
        );
        assert_eq!(
            "2025-10-01".parse::<DateSelection>().unwrap(),
            DateSelection::Range(d("2025-10-01"), d("2025-10-01"))
        );
        assert!("2025-10-03..2025-10-01".parse::<DateSelection>().is_err());
        assert!("yesterday".parse::<DateSelection>().is_err());
        assert_eq!(days(d("2025-10-30"), d("2025-11-02")).len(), 4);
    }
}
