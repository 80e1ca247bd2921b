//! submit: sends the date's validated scores to the subnet validator ([`crate::submit`]) when
//! the run config names one (`validator_url`, `submitter_id`, `model_github_url`); otherwise
//! it does nothing. It runs after validate, so a date whose validation failed never reaches it.
//! A date already submitted whole is not sent again, even when the stage reruns: a changed
//! date takes `pipeline submit --force`, since the validator keeps every row it is sent.

use super::{output, Context, Kind, Part, Stage, StageInput};
use crate::batch::{Table, Tables};
use crate::config::{RunConfig, StageSpec};
use crate::stages::decode::make_batch;
use crate::submit::{submit_date, Outcome, SubmitConfig};
use anyhow::{anyhow, bail, Result};
use arrow::array::{Int64Array, StringArray};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Held while a date is being submitted by this process.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The submit stage kind.
pub const KIND: Kind = Kind {
    name: "submit",
    consumes: &[Table::Validation],
    produces: &[Table::Submission],
    fails_as: crate::error::ErrorKind::Submission,
    parse: super::parse::<SubmitParams>,
    span: |stage, date| tracing::debug_span!("submit", stage = %stage, %date),
};

/// Parameters of the submit stage: how patiently a request is retried. Where to submit is the
/// run config's (`validator_url`, `submitter_id`, `model_github_url`, `rows_per_request`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubmitParams {
    /// Attempts per request when the validator does not answer (5xx, timeout, dropped
    /// connection).
    pub attempts: u32,
    /// Milliseconds before the first retry (doubled at each).
    pub retry_delay_ms: u64,
    /// Seconds one request may take.
    pub timeout_s: u64,
}

impl Default for SubmitParams {
    fn default() -> Self {
        Self {
            attempts: 5,
            retry_delay_ms: 500,
            timeout_s: 60,
        }
    }
}

impl SubmitParams {
    /// The submission settings of `cfg` with this retry policy, or `None` without a validator.
    pub fn target(&self, cfg: &RunConfig) -> Result<Option<SubmitConfig>> {
        SubmitConfig::from_run(
            cfg,
            self.attempts,
            Duration::from_millis(self.retry_delay_ms),
            Duration::from_secs(self.timeout_s.max(1)),
        )
    }
}

impl Stage for SubmitParams {
    fn run(&self, ctx: &Context, stage: &StageSpec, input: &StageInput) -> Result<Tables> {
        let (outcome, rows) = match self.target(&ctx.config)? {
            None => ("not configured".to_string(), 0),
            Some(sc) => {
                // One date at a time: the validator's read-back, which tells whether a chunk
                // whose answer was lost is stored, shows only the latest date submitted.
                let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
                // The error is flattened to text: the submission retries on its own, and a
                // lost answer must not be retried blindly by the engine.
                let outcome = submit_date(&ctx.config, &sc, input.date, false, None)
                    .map_err(|e| anyhow!("{}", crate::error::error_text(&e)))?;
                let line = outcome.describe(&sc.validator_url);
                if let Outcome::NotValidated(_) = outcome {
                    bail!("submit: {line}");
                }
                input.observer.note(input.date, &stage.name, &line);
                (line, outcome.rows_sent())
            }
        };
        let batch = make_batch(vec![
            ("outcome", Arc::new(StringArray::from(vec![outcome]))),
            ("rows_sent", Arc::new(Int64Array::from(vec![rows as i64]))),
        ])?;
        Ok(output(Table::Submission, batch))
    }

    fn params_json(&self) -> serde_json::Value {
        serde_json::json!(self)
    }

    fn check(&self, cfg: &RunConfig, _: Option<&crate::model::Model>) -> Result<()> {
        self.target(cfg).map(|_| ())
    }

    /// Where and as whom it submits (a change reruns the stage, which sends only what the
    /// validator has not got).
    fn common_parts(&self, cfg: &RunConfig) -> Result<Vec<(String, Part)>> {
        let target = serde_json::json!({
            "validator_url": cfg.validator_url,
            "submitter_id": cfg.submitter_id,
            "model_github_url": cfg.model_github_url,
        });
        Ok(vec![("target".to_string(), Part::Text(target.to_string()))])
    }

    /// The validator's read-back, which tells whether a chunk whose answer was lost is
    /// stored, shows only the latest date: dates are sent in ascending order, or an earlier
    /// date's lost chunk could not be checked once a later date is stored.
    fn in_date_order(&self, cfg: &RunConfig) -> bool {
        matches!(self.target(cfg), Ok(Some(_)))
    }
}
