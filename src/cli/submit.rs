//! `pipeline submit`: sends validated dates' scores to the subnet validator ([`crate::submit`]);
//! `pipeline run` does the same in its submit stage when the config names a validator.

use super::*;
use crate::stages::submit::SubmitParams;
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
}

impl Override for SubmitTarget {
    fn apply(&self, cfg: &mut RunConfig) -> Result<()> {
        let set = |key: &mut Option<String>, flag: &Option<String>| {
            if let Some(v) = flag.as_ref().filter(|v| !v.is_empty()) {
                *key = Some(v.clone());
            }
        };
        set(&mut cfg.validator_url, &self.validator_url);
        set(&mut cfg.submitter_id, &self.submitter_id);
        set(&mut cfg.model_github_url, &self.model_github_url);
        if let Some(n) = self.rows_per_request {
            cfg.rows_per_request = n.max(1);
        }
        Ok(())
    }
}

/// Arguments of `pipeline submit`.
#[derive(Args, Debug)]
pub struct SubmitArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    target: SubmitTarget,
    /// Attempts per request when the validator does not answer (5xx, timeout, dropped
    /// connection); default: the pipeline's submit stage's `attempts`, else 5.
    #[arg(long)]
    attempts: Option<u32>,
    /// Milliseconds before the first retry, doubled at each (default: the submit stage's
    /// `retry_delay_ms`, else 500).
    #[arg(long)]
    retry_delay_ms: Option<u64>,
    #[command(flatten)]
    output: OutputArg,
    /// Send dates again even if already submitted (the validator keeps every row it gets).
    #[arg(long)]
    force: bool,
    /// Write the request bodies to this file (JSON lines) instead of sending them.
    #[arg(long)]
    dry_run: Option<PathBuf>,
}

/// `pipeline submit`: sends the scores of validated dates to the validator, each date once.
pub fn submit(args: SubmitArgs) -> Result<i32> {
    let (cfg, dates) = args.common.load(&[&args.output, &args.target])?;
    let mut retry = cfg
        .pipeline
        .params_of::<SubmitParams>()
        .cloned()
        .unwrap_or_default();
    retry.attempts = args.attempts.unwrap_or(retry.attempts);
    retry.retry_delay_ms = args.retry_delay_ms.unwrap_or(retry.retry_delay_ms);
    let Some(sc) = retry.target(&cfg)? else {
        bail!(
            "no validator to submit to: set validator_url and submitter_id in {} (or pass --validator-url and --submitter-id)",
            cfg.path.display()
        );
    };
    let dates: Vec<NaiveDate> = dates
        .into_iter()
        .filter(|d| {
            cfg.output_dir(*d)
                .join(crate::layout::PROCESSING_METADATA)
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
fn submit_dates(
    cfg: &RunConfig,
    sc: &SubmitConfig,
    dates: &[NaiveDate],
    force: bool,
    mut dry_run: Option<&mut Vec<serde_json::Value>>,
) -> usize {
    let mut failed = 0;
    for &date in dates {
        match submit_date(cfg, sc, date, force, dry_run.as_deref_mut()) {
            Ok(o @ Outcome::NotValidated(_)) => {
                failed += 1;
                eprintln!("submit {date}: {}", o.describe(&sc.validator_url));
            }
            Ok(o) => println!("submit {date}: {}", o.describe(&sc.validator_url)),
            Err(e) => {
                failed += 1;
                eprintln!("submit {date}: {}", crate::error::error_text(&e));
            }
        }
    }
    failed
}
