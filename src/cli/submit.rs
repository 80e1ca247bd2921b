//! `pipeline submit`: sends validated dates' scores to the subnet validator ([`crate::submit`]);
//! `pipeline run` does the same after its dates when the config names a validator.

use super::*;
use crate::submit::{submit_date, Outcome, SubmitConfig};

/// Where to submit; each flag overrides the run config's key of the same name.
#[derive(Args, Debug, Default)]
pub struct SubmitTarget {
    /// The validator's base URL (key `validator_url`).
    #[arg(long)]
    validator_url: Option<String>,
    /// This miner's id at the validator (key `submitter_id`).
    #[arg(long)]
    submitter_id: Option<String>,
    /// The models' public repository, sent with every row (key `model_github_url`).
    #[arg(long)]
    model_github_url: Option<String>,
    /// Rows per request (key `rows_per_request`).
    #[arg(long)]
    rows_per_request: Option<usize>,
    /// Attempts per request when the validator does not answer (5xx, timeout, dropped connection).
    #[arg(long, default_value_t = 5)]
    attempts: u32,
    /// Milliseconds before the first retry (doubled at each).
    #[arg(long, default_value_t = 500)]
    retry_delay_ms: u64,
}

impl SubmitTarget {
    /// The submission settings, or `None` when the config and flags name no validator.
    pub(super) fn config(&self, cfg: &RunConfig) -> Result<Option<SubmitConfig>> {
        let pick = |flag: &Option<String>, key: &Option<String>| flag.clone().or(key.clone());
        let (Some(validator_url), Some(submitter_id)) = (
            pick(&self.validator_url, &cfg.validator_url),
            pick(&self.submitter_id, &cfg.submitter_id),
        ) else {
            return Ok(None);
        };
        let Some(model_github_url) = pick(&self.model_github_url, &cfg.model_github_url) else {
            bail!(
                "submitting needs model_github_url (the validator's Tier 1 fails every row without it): set it in {} or pass --model-github-url",
                cfg.path.display()
            );
        };
        Ok(Some(SubmitConfig {
            validator_url,
            submitter_id,
            model_github_url,
            rows_per_request: self.rows_per_request.unwrap_or(cfg.rows_per_request).max(1),
            attempts: self.attempts.max(1),
            retry_delay: std::time::Duration::from_millis(self.retry_delay_ms),
            timeout: std::time::Duration::from_secs(60),
        }))
    }
}

/// Arguments of `pipeline submit`.
#[derive(Args, Debug)]
pub struct SubmitArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    target: SubmitTarget,
    /// Output root (default: the config's `output`).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Send dates again even if already submitted (the validator keeps every row it gets).
    #[arg(long)]
    force: bool,
    /// Write the request bodies to this file (JSON lines) instead of sending them.
    #[arg(long)]
    dry_run: Option<PathBuf>,
}

/// `pipeline submit`: sends the scores of validated dates to the validator, each date once.
pub fn submit(args: SubmitArgs) -> Result<i32> {
    let (mut cfg, dates) = args.common.load()?;
    if let Some(o) = args.output {
        cfg.output = o;
    }
    let Some(sc) = args.target.config(&cfg)? else {
        bail!(
            "no validator to submit to: set validator_url and submitter_id in {} (or pass --validator-url and --submitter-id)",
            cfg.path.display()
        );
    };
    let dates: Vec<NaiveDate> = dates
        .into_iter()
        .filter(|d| {
            cfg.output_dir(*d)
                .join("processing_metadata.json")
                .is_file()
        })
        .collect();
    let mut bodies = args.dry_run.as_ref().map(|_| Vec::new());
    let failed = submit_dates(&cfg, &sc, &dates, args.force, bodies.as_mut());
    if let (Some(path), Some(bodies)) = (&args.dry_run, bodies) {
        crate::io::write_atomic(path, |w| {
            for b in &bodies {
                serde_json::to_writer(&mut *w, b)?;
                std::io::Write::write_all(w, b"\n")?;
            }
            Ok(())
        })?;
        println!(
            "{} request bodies written to {}",
            bodies.len(),
            path.display()
        );
    }
    Ok(if failed == 0 { 0 } else { 1 })
}

/// Submits each date, printing one line per date; returns how many failed.
pub(super) fn submit_dates(
    cfg: &RunConfig,
    sc: &SubmitConfig,
    dates: &[NaiveDate],
    force: bool,
    mut dry_run: Option<&mut Vec<serde_json::Value>>,
) -> usize {
    let mut failed = 0;
    for &date in dates {
        match submit_date(cfg, sc, date, force, dry_run.as_deref_mut()) {
            Ok(Outcome::Submitted { rows, requests }) => {
                println!("submit {date}: {rows} scores sent in {requests} requests to {}", sc.validator_url)
            }
            Ok(Outcome::Unchanged) => println!("submit {date}: already submitted"),
            Ok(Outcome::Empty) => println!("submit {date}: no alerts, nothing to send"),
            Ok(Outcome::Changed) => println!(
                "submit {date}: changed since it was submitted; not sent again (the validator keeps every row, so a second submission fails Tier 1 on duplicates; --force sends it anyway)"
            ),
            Ok(Outcome::NotValidated(why)) => {
                failed += 1;
                eprintln!("submit {date}: not sent: {why}");
            }
            Ok(Outcome::DryRun { rows, requests }) => {
                println!("submit {date}: {rows} scores in {requests} requests (dry run)")
            }
            Err(e) => {
                failed += 1;
                eprintln!("submit {date}: {}", crate::error::error_text(&e));
            }
        }
    }
    failed
}
