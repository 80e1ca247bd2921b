//! `pipeline generate`: seeded synthetic batches.

use super::*;

/// Arguments of `pipeline generate`.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Input root to write into.
    #[arg(long, default_value = "input")]
    out: PathBuf,
    /// Network name.
    #[arg(long, default_value = "torus")]
    network: String,
    /// Dates: YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD.
    #[arg(long)]
    dates: String,
    /// Window of each batch, in days.
    #[arg(long, default_value_t = 195)]
    window_days: u32,
    /// Alerts per date (about 10 feature rows and 40 money flows per alert).
    #[arg(long, default_value_t = 1000)]
    alerts_per_day: usize,
    /// Random seed.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

/// `pipeline generate`: Write seeded synthetic batches in the upstream format, with planted laundering typologies.
pub fn generate(args: GenerateArgs) -> Result<i32> {
    let GenerateArgs {
        out,
        network,
        dates,
        window_days,
        alerts_per_day,
        seed,
    } = args;
    let dates = match dates.parse::<DateSelection>()? {
        DateSelection::Range(a, b) => crate::dates::days(a, b),
        _ => bail!("--dates for generate takes YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD"),
    };
    let pb = bar(dates.len(), "generate");
    let opts = GenerateOptions {
        out: out.clone(),
        network,
        dates,
        window_days,
        alerts_per_day,
        seed,
    };
    let s = crate::generate::generate(&opts, &mut |_| pb.inc(1))?;
    pb.finish_and_clear();
    println!(
            "wrote {} dates to {}: {} alerts, {} feature rows, {} clusters, {} money flows, {} labelled addresses, {} ground-truth alerts",
            s.dates, out.display(), s.alerts, s.features, s.clusters, s.money_flows, s.labelled_addresses, s.ground_truth
        );
    Ok(0)
}
