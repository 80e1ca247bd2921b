//! Errors for users: an error and its causes on one line, each said once, and the typed
//! error a failed date carries through the graph, between processes and into the run report.

use serde::{Deserialize, Serialize};

/// What kind of failure stopped a date: what to do about it differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The batch is missing, unreadable or breaks the upstream contract: fix or refetch it.
    Input,
    /// An I/O failure that may pass (interrupted, timed out, reset) and outlasted the retries.
    Transient,
    /// A model could not be applied.
    Model,
    /// The written outputs failed validation.
    Validation,
    /// The validator refused the scores or did not answer.
    Submission,
    /// Writing the outputs, the cache or the run state failed.
    Output,
    /// A stage panicked: a bug to report.
    Internal,
}

impl ErrorKind {
    /// Its name in the run summary.
    pub fn name(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::Transient => "transient I/O",
            Self::Model => "model",
            Self::Validation => "validation",
            Self::Submission => "submission",
            Self::Output => "output",
            Self::Internal => "internal",
        }
    }
}

/// Why a date failed: its kind and the message for the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct DateError {
    /// What kind of failure it was.
    pub kind: ErrorKind,
    /// The error and its causes ([`error_text`]).
    pub message: String,
}

impl DateError {
    /// A date error of `kind` from `e`.
    pub fn new(kind: ErrorKind, e: &anyhow::Error) -> Self {
        Self {
            kind,
            message: error_text(e),
        }
    }

    /// A date error of `kind` with `message`.
    pub fn text(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// `e` and its causes joined by `: ` (as `{e:#}` does), leaving out a cause whose text the line
/// already holds: many library errors print their source inside their own message too (a
/// Parquet writer's "External: No space left on device" over the same I/O error), which would
/// otherwise say everything twice.
pub fn error_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn a_cause_already_in_the_message_is_said_once() {
        let io = std::io::Error::from(std::io::ErrorKind::StorageFull);
        let io_text = io.to_string();
        let parquet = parquet::errors::ParquetError::External(Box::new(io));
        let e = Err::<(), _>(parquet)
            .context("writing out/alert_scores.parquet")
            .unwrap_err();
        let text = error_text(&e);
        assert_eq!(text.matches(&io_text).count(), 1, "{text}");
        assert!(
            text.starts_with("writing out/alert_scores.parquet: "),
            "{text}"
        );
        assert_eq!(
            format!("{e:#}").matches(&io_text).count(),
            2,
            "the plain chain repeats it"
        );
    }

    #[test]
    fn distinct_causes_are_all_kept() {
        let e = anyhow::anyhow!("inner").context("middle").context("outer");
        assert_eq!(error_text(&e), "outer: middle: inner");
    }
}
