//! `pipeline status`: where each date stands.

use super::*;

/// Arguments of `pipeline status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    output: OutputArg,
    #[command(flatten)]
    models: ModelsArg,
}

/// `pipeline status`: Show each date's state: up to date, stale (and why), missing input, or failed (and its error).
pub fn status(args: StatusArgs) -> Result<i32> {
    let StatusArgs {
        common,
        output,
        models,
    } = args;
    let (cfg, dates) = common.load(&[&output, &models])?;
    let models = crate::stages::model_paths(&cfg)?;
    let plans = plan_dates(&cfg, &models, &dates, false)?;
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for p in &plans {
        let (word, detail) = match &p.status {
            DateStatus::UpToDate => ("up to date", String::new()),
            DateStatus::MissingInput => (
                "missing input",
                format!("{} does not exist", cfg.input_dir(p.date).display()),
            ),
            DateStatus::Failed(e) | DateStatus::Unreadable(e) => ("failed", e.clone()),
            DateStatus::Stale => ("stale", p.describe()),
            DateStatus::ToFetch => ("to fetch", p.describe()),
        };
        *counts.entry(word).or_default() += 1;
        println!("{}  {word:<13} {detail}", p.date);
    }
    let parts: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    println!("{} dates: {}", plans.len(), parts.join(", "));
    Ok(0)
}
