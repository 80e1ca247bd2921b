//! `pipeline compare`: two output trees judged against each other.

use super::*;

/// Arguments of `pipeline compare`.
#[derive(Args, Debug)]
pub struct CompareArgs {
    #[command(flatten)]
    common: Common,
    /// Output root of model A.
    #[arg(long)]
    a: PathBuf,
    /// Output root of model B.
    #[arg(long)]
    b: PathBuf,
    /// Report directory (default: validation_results/{a}_vs_{b}).
    #[arg(long)]
    report: Option<PathBuf>,
    /// Paired-bootstrap resamples for the AUC difference's confidence interval.
    #[arg(long, default_value_t = 1000)]
    bootstrap: usize,
    /// Seed of the bootstrap.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Ground truth (alert_id, is_sar_filed) to judge by, instead of the input's ground_truth.parquet.
    #[arg(long)]
    ground_truth: Option<PathBuf>,
}

/// `pipeline compare`: Compare two output trees (two models) tier by tier and by AUC, with a visual report.
pub fn compare(args: CompareArgs) -> Result<i32> {
    let CompareArgs {
        common,
        a,
        b,
        report,
        bootstrap,
        seed,
        ground_truth,
    } = args;
    let (cfg, dates) = common.load(&[])?;
    let report = report.unwrap_or_else(|| crate::compare::default_report_dir(&a, &b));
    let opts = crate::compare::CompareOptions {
        a,
        b,
        report: report.clone(),
        bootstrap,
        seed,
        ground_truth,
    };
    let v = crate::compare::compare(&cfg, &dates, &opts)?;
    println!(
        "winner: {} (AUC A {:?}, B {:?}, difference {:?}, 95% CI {:?}, {})",
        v.winner,
        v.auc_a,
        v.auc_b,
        v.difference,
        v.ci95,
        if v.significant {
            "significant"
        } else {
            "not significant"
        }
    );
    println!("report: {}", report.join("report.html").display());
    Ok(0)
}
