//! Retries of a stage's work: transient I/O errors are tried again with backoff, panics are
//! caught and become the date's error, so the other dates go on.

use crate::error::{DateError, ErrorKind};
use anyhow::{anyhow, Result};
use chrono::NaiveDate;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

/// Runs a stage's work `f` for `date`: retried while it fails with a transient I/O error; a
/// failure is a [`DateError`] of kind `fails_as`, [`ErrorKind::Transient`] for an I/O error
/// that outlasted the retries, or [`ErrorKind::Internal`] for a panic (caught, so the other
/// dates go on).
pub fn guarded<T>(
    stage: &str,
    fails_as: ErrorKind,
    date: NaiveDate,
    mut f: impl FnMut() -> Result<T>,
) -> Result<T, DateError> {
    let mut panicked = false;
    retry_transient(stage, date, || {
        std::panic::catch_unwind(AssertUnwindSafe(&mut f)).unwrap_or_else(|p| {
            panicked = true;
            let what = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
            Err(anyhow!(
                "stage `{stage}` panicked: {}",
                what.unwrap_or_default()
            ))
        })
    })
    .map_err(|e| {
        let kind = if panicked {
            ErrorKind::Internal
        } else if is_transient(&e) {
            ErrorKind::Transient
        } else {
            fails_as
        };
        DateError::new(kind, &e)
    })
}

/// Attempts of a stage that fails with a transient I/O error.
const ATTEMPTS: u32 = 4;

/// Runs `f`, again after 100 ms, 400 ms, 1.6 s while it fails with a transient I/O error
/// (interrupted, timed out, would block, connection reset).
pub fn retry_transient<T>(
    stage: &str,
    date: NaiveDate,
    mut f: impl FnMut() -> Result<T>,
) -> Result<T> {
    let mut delay = Duration::from_millis(100);
    for attempt in 1.. {
        match f() {
            Err(e) if attempt < ATTEMPTS && is_transient(&e) => {
                tracing::warn!(%stage, %date, attempt, "transient error, retrying: {e:#}");
                std::thread::sleep(delay);
                delay *= 4;
            }
            r => return r,
        }
    }
    unreachable!("the loop returns")
}

/// Whether an error comes from an I/O failure that may pass if tried again.
pub fn is_transient(e: &anyhow::Error) -> bool {
    use std::io::ErrorKind::*;
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                Interrupted | TimedOut | WouldBlock | ConnectionReset | ConnectionAborted
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_errors_are_retried_then_succeed() {
        let date = NaiveDate::from_ymd_opt(2025, 10, 1).unwrap();
        let mut calls = 0;
        let r = retry_transient("decode", date, || {
            calls += 1;
            if calls < 3 {
                Err(
                    anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::TimedOut))
                        .context("reading alerts.parquet"),
                )
            } else {
                Ok(calls)
            }
        });
        assert_eq!(r.unwrap(), 3);
    }

    #[test]
    fn a_panic_is_an_internal_error_and_not_retried() {
        let date = NaiveDate::from_ymd_opt(2025, 10, 1).unwrap();
        let mut calls = 0;
        let r: Result<(), DateError> = guarded("score", ErrorKind::Model, date, || {
            calls += 1;
            panic!("index out of bounds")
        });
        let e = r.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Internal);
        assert!(
            e.message
                .contains("stage `score` panicked: index out of bounds"),
            "{e}"
        );
        assert_eq!(calls, 1);
    }

    #[test]
    fn errors_take_the_kind_of_the_stage_or_transient() {
        let date = NaiveDate::from_ymd_opt(2025, 10, 1).unwrap();
        let r: Result<(), DateError> = guarded("score", ErrorKind::Model, date, || {
            Err(anyhow!("no such feature"))
        });
        assert_eq!(r.unwrap_err().kind, ErrorKind::Model);
        let r: Result<(), DateError> = guarded("decode", ErrorKind::Input, date, || {
            Err(anyhow::Error::new(std::io::Error::from(
                std::io::ErrorKind::ConnectionReset,
            )))
        });
        assert_eq!(r.unwrap_err().kind, ErrorKind::Transient);
    }

    #[test]
    fn other_errors_fail_at_once() {
        let date = NaiveDate::from_ymd_opt(2025, 10, 1).unwrap();
        let mut calls = 0;
        let r: Result<()> = retry_transient("decode", date, || {
            calls += 1;
            Err(anyhow::Error::new(std::io::Error::from(
                std::io::ErrorKind::NotFound,
            )))
        });
        assert!(r.is_err());
        assert_eq!(calls, 1);
    }
}
