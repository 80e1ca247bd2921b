//! `pipeline validate`: re-judges written outputs, and the expected-reward line runs print too.

use super::*;

/// Arguments of `pipeline validate`.
#[derive(Args, Debug)]
pub struct ValidateArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    output: OutputArg,
}

/// `pipeline validate`: Re-validate existing outputs (all tiers) and write validation.json per date plus a summary.
pub fn validate(args: ValidateArgs) -> Result<i32> {
    let ValidateArgs { common, output } = args;
    let (cfg, dates) = common.load(&[&output])?;
    let params = cfg
        .pipeline
        .params_of::<ValidateParams>()
        .cloned()
        .unwrap_or_default();
    let known = Knowledge::load(&cfg, &params, Some(&dates))?;
    let decode = &crate::stages::decode::KIND;
    let ctx = crate::stages::prefix_context(&cfg, decode, crate::stages::History::prepared())?;
    let mut failed = 0;
    for &date in &dates {
        let result = (|| {
            let t = crate::stages::run_prefix(&ctx, date, decode)?;
            let facts = BatchFacts::from_tables(&t)?;
            let (report, failures) = judge(&params, &cfg, &known, date, &facts, None)?;
            crate::state::write_output_json(
                &cfg.output,
                &cfg.output_dir(date).join(crate::layout::VALIDATION),
                &report,
            )?;
            let v = &report.validator;
            let (t1, t3a) = (&v.tier1, &v.tier3a);
            let t2 = match v.tier2.score {
                Some(s) => format!("{s:.3}"),
                None => format!("{:.3}–{:.3}", v.tier2.bounds[0], v.tier2.bounds[1]),
            };
            let auc = t3a.auc.map_or("–".to_string(), |a| format!("{a:.3}"));
            println!(
                    "{date}: template total {:.4} (integrity {}, behaviour {:.3}, ground truth {:.3}); validator tier1 {:.2}, tier2 {t2}, tier3a AUC {auc} × coverage {:.3}, reward {}{}",
                    report.total,
                    report.integrity.score,
                    report.behaviour.score,
                    report.ground_truth.score,
                    t1.score,
                    t3a.coverage,
                    reward_line(&v.reward),
                    if failures.is_empty() { String::new() } else { format!("  FAILED: {}", failures.join("; ")) }
                );
            anyhow::Ok(failures.is_empty())
        })();
        match result {
            Ok(true) => {}
            Ok(false) => failed += 1,
            Err(e) => {
                failed += 1;
                eprintln!("{date}: {}", crate::error::error_text(&e));
            }
        }
    }
    let (path, reward) = summarize(&cfg, &dates)?;
    println!("validation summary: {}", path.display());
    print_reward(&cfg, reward.as_ref());
    Ok(if failed == 0 { 0 } else { 1 })
}

/// The run summary's line on what the subnet's validator would pay, and what to fix first.
pub(super) fn print_reward(cfg: &RunConfig, reward: Option<&crate::validator::Reward>) {
    let Some(r) = reward else { return };
    println!("expected reward (mean per date): {}", reward_line(r));
    if cfg.model_github_url.is_none() {
        println!(
            "  the validator's Tier 1 gate fails without a model_github_url: set it in {}",
            cfg.path.display()
        );
    }
}
