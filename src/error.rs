//! Error text for users: an error and its causes on one line, each said once.

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
