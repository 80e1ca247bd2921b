//! `pipeline models` and `pipeline install-model`: the installed models.

use super::*;

/// Arguments of `pipeline models`.
#[derive(Args, Debug)]
pub struct ModelsArgs {
    /// Run configuration (TOML), e.g. configs/daily.toml.
    config: PathBuf,
    /// Directory of models (default: the config's `models`).
    #[arg(long)]
    models: Option<PathBuf>,
}

/// `pipeline models`: List the installed models with their training period and held-out metrics.
pub fn models(args: ModelsArgs) -> Result<i32> {
    let ModelsArgs { config, models } = args;
    let cfg = RunConfig::load(&config)?;
    let dir = models.unwrap_or(cfg.models);
    println!(
        "{:<15} {:<13} {:<24} {:<23} {:>7} {:>8} {:>8}  file",
        "model", "version", "created", "trained on", "samples", "auc", "ndcg@10"
    );
    for (path, m) in crate::model::installed(&dir)? {
        let f = |k: &str| {
            m.metrics[k]
                .as_f64()
                .map_or_else(|| "–".to_string(), |v| format!("{v:.4}"))
        };
        println!(
            "{:<15} {:<13} {:<24} {:<23} {:>7} {:>8} {:>8}  {}",
            m.model_type.name(),
            m.version,
            m.created_at,
            format!(
                "{}..{}",
                m.training_period.start_date, m.training_period.end_date
            ),
            m.data_stats.samples,
            f("auc_roc"),
            f("ndcg@10"),
            path.display()
        );
    }
    Ok(0)
}

/// Arguments of `pipeline install-model`.
#[derive(Args, Debug)]
pub struct InstallModelArgs {
    /// Run configuration (TOML), e.g. configs/daily.toml.
    config: PathBuf,
    /// The LightGBM model file (text format).
    file: PathBuf,
    /// Its role: alert_scorer, alert_ranker or cluster_scorer.
    #[arg(long = "type")]
    kind: String,
    /// Directory of models (default: the config's `models`).
    #[arg(long)]
    models: Option<PathBuf>,
}

/// `pipeline install-model`: Install a LightGBM text model trained elsewhere (e.g. in Python) after checking its features.
pub fn install_model(args: InstallModelArgs) -> Result<i32> {
    let InstallModelArgs {
        config,
        file,
        kind,
        models,
    } = args;
    let cfg = RunConfig::load(&config)?;
    let dir = models.unwrap_or(cfg.models.clone());
    let path = crate::model::install(&file, kind.parse()?, &dir, &cfg.network)?;
    println!("installed {}", path.display());
    Ok(0)
}
