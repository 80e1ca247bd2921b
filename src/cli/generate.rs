//! `pipeline generate`: seeded synthetic batches.

use super::*;
use crate::generate::{PatternMix, Profile};

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
    /// World to draw: `laundering` (AMLworld's eight patterns hidden in the money flows among a
    /// heavy-tailed background, ~3% of alerts SAR-filed; docs/generator.md) or `classic` (the
    /// earlier world: illicit addresses' own features shifted, ~25% SAR-filed; the integration
    /// tests' fixture). The knobs below apply to `laundering` only.
    #[arg(long, default_value = "laundering", value_parser = ["laundering", "classic"])]
    profile: String,
    /// Target share of labelled alerts with a SAR filed [default: 0.03].
    #[arg(long)]
    sar_rate: Option<f64>,
    /// Share of alerts on laundering addresses without a SAR [default: 0.1].
    #[arg(long)]
    missed_sar: Option<f64>,
    /// Share of alerts on clean addresses with a SAR on weak evidence [default: 0.004].
    #[arg(long)]
    weak_sar: Option<f64>,
    /// Share of alerts with a ground-truth row [default: 0.5].
    #[arg(long)]
    truth_coverage: Option<f64>,
    /// Share of alerted addresses with an address label [default: 0.3].
    #[arg(long)]
    label_coverage: Option<f64>,
    /// Share of never-alerted addresses with an address label [default: 0.01].
    #[arg(long)]
    background_label_coverage: Option<f64>,
    /// Share of labelled laundering addresses labelled low or medium risk [default: 0.1].
    #[arg(long)]
    label_missed: Option<f64>,
    /// Share of labelled clean addresses labelled high or critical risk [default: 0.01].
    #[arg(long)]
    label_false: Option<f64>,
    /// Shift of laundering addresses' own score features, as a fraction of the classic
    /// world's [default: 0.1].
    #[arg(long)]
    feature_shift: Option<f64>,
    /// Share of addresses that take part in laundering [default: 0.015].
    #[arg(long)]
    pool_share: Option<f64>,
    /// Pattern instances started per day, per alert on a laundering address [default: 0.25].
    #[arg(long)]
    patterns_per_laundering_alert: Option<f64>,
    /// Relative weights of fan-out, fan-in, gather-scatter, scatter-gather, cycle, random
    /// walk, bipartite and stack [default: 1.5,1.5,1,1,1,1,1,1].
    #[arg(long)]
    pattern_mix: Option<PatternMix>,
    /// Also write the answer key to this Parquet file: one row per planted transfer of the
    /// generated dates (`processing_date`, `pattern_id`, `pattern`, `pattern_start`,
    /// `from_address`, `to_address`, `amount_usd`, `tx_count`), as AMLworld publishes its
    /// patterns; `scripts/pattern_recall.py` scores a run's outputs against it. Laundering
    /// profile only.
    #[arg(long)]
    patterns: Option<PathBuf>,
}

impl GenerateArgs {
    /// The profile the arguments ask for, with the knobs given on the command line.
    fn profile(&self) -> Result<Profile> {
        let knobs = [
            self.sar_rate,
            self.missed_sar,
            self.weak_sar,
            self.truth_coverage,
            self.label_coverage,
            self.background_label_coverage,
            self.label_missed,
            self.label_false,
            self.feature_shift,
            self.pool_share,
            self.patterns_per_laundering_alert,
        ];
        let mut profile = Profile::named(&self.profile)?;
        let Profile::Laundering(l) = &mut profile else {
            if knobs.iter().any(Option::is_some) || self.pattern_mix.is_some() {
                bail!(
                    "the world's knobs (--sar-rate, --pattern-mix, ...) need --profile laundering"
                );
            }
            return Ok(profile);
        };
        let fields = [
            &mut l.sar_rate,
            &mut l.missed_sar,
            &mut l.weak_sar,
            &mut l.truth_coverage,
            &mut l.label_coverage,
            &mut l.background_label_coverage,
            &mut l.label_missed,
            &mut l.label_false,
            &mut l.feature_shift,
            &mut l.pool_share,
            &mut l.patterns_per_laundering_alert,
        ];
        for (field, v) in fields.into_iter().zip(knobs) {
            if let Some(v) = v {
                *field = v;
            }
        }
        if let Some(m) = self.pattern_mix {
            l.mix = m;
        }
        l.check()?;
        Ok(profile)
    }
}

/// `pipeline generate`: Write seeded synthetic batches in the upstream format, with planted laundering typologies.
pub fn generate(args: GenerateArgs) -> Result<i32> {
    let profile = args.profile()?;
    let GenerateArgs {
        out,
        network,
        dates,
        window_days,
        alerts_per_day,
        seed,
        patterns,
        ..
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
    let key = match (&patterns, &profile) {
        (None, _) => None,
        (Some(p), Profile::Laundering(l)) => Some((p, l)),
        (Some(_), Profile::Classic) => bail!("--patterns needs --profile laundering"),
    };
    let s = crate::generate::generate_profile(&opts, &profile, None, &mut |_| pb.inc(1))?;
    pb.finish_and_clear();
    if let Some((path, l)) = key {
        let key = crate::generate::answer_key(&opts, l, &opts.dates)?;
        crate::io::write_parquet(path, &key)?;
        println!(
            "wrote {} planted transfers to {}",
            key.num_rows(),
            path.display()
        );
    }
    println!(
            "wrote {} dates to {}: {} alerts, {} feature rows, {} clusters, {} money flows, {} labelled addresses, {} ground-truth alerts",
            s.dates, out.display(), s.alerts, s.features, s.clusters, s.money_flows, s.labelled_addresses, s.ground_truth
        );
    Ok(0)
}
