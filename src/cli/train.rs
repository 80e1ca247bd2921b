//! `pipeline train` and `pipeline features`: models and the model matrix from labelled dates.

use super::*;

/// Arguments of `pipeline features`.
#[derive(Args, Debug)]
pub struct FeaturesArgs {
    #[command(flatten)]
    common: Common,
    /// The Parquet file to write.
    #[arg(long)]
    out: PathBuf,
}

/// `pipeline features`: Export the model matrix (one row per alert, with labels where known) as Parquet.
pub fn features(args: FeaturesArgs) -> Result<i32> {
    let FeaturesArgs { common, out } = args;
    let (cfg, dates) = common.load(&[])?;
    let pb = bar(dates.len(), "features");
    let ms = load_dates(&cfg, &dates, true, &|_| pb.inc(1))?;
    pb.finish_and_clear();
    let labels = Labels::load(&cfg.input, &cfg.network)?;
    let rows = write_features(&ms, &labels, &out)?;
    println!(
        "wrote {rows} rows × {} features to {}",
        crate::features::alert_feature_names().len(),
        out.display()
    );
    Ok(0)
}

/// Arguments of `pipeline train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    common: Common,
    /// Which model: alert_scorer, alert_ranker, cluster_scorer or all.
    #[arg(long, default_value = "all")]
    model: String,
    #[command(flatten)]
    models: ModelsArg,
    /// Boosting rounds.
    #[arg(long, default_value_t = 200)]
    iterations: usize,
    /// Random seed (same data + same seed = identical model file).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Random-search trials over LightGBM parameters, scored by cross-validation (0 = defaults).
    #[arg(long, default_value_t = 0)]
    tune: usize,
    /// Instead of installing models, write a Markdown table of held-out alert-scorer quality
    /// per feature set (raw alert and address features versus network, cluster, within-day) to this file.
    #[arg(long)]
    quality_report: Option<PathBuf>,
    /// Train without the graph and flow-history features (`graph_*`, `hist_*` of money flows,
    /// and the cluster means and maxima of them; docs/features.md): a daily run with such
    /// models reads only the alerts' own money flows and no flows of earlier dates, at some
    /// cost in quality (docs/model-quality.md). The shipped models are trained so.
    #[arg(long, conflicts_with = "quality_report")]
    no_graph_features: bool,
}

/// `pipeline train`: Train LightGBM models on labelled dates and install them in the models directory.
pub fn train(args: TrainArgs) -> Result<i32> {
    let TrainArgs {
        common,
        model,
        models,
        iterations,
        seed,
        tune,
        quality_report,
        no_graph_features,
    } = args;
    let (cfg, dates) = common.load(&[&models])?;
    let kinds = if model == "all" {
        ModelKind::ALL.to_vec()
    } else {
        vec![model.parse()?]
    };
    let pb = bar(dates.len(), "decode");
    let ms = load_dates(&cfg, &dates, !no_graph_features, &|_| pb.inc(1))?;
    pb.finish_and_clear();
    let labels = Labels::load(&cfg.input, &cfg.network)?;
    // --quality-report conflicts with --no-graph-features: it compares every feature set.
    let opts = TrainOptions {
        kinds,
        iterations,
        seed,
        out: cfg.models.clone(),
        tune,
        graph_features: !no_graph_features,
    };
    if let Some(path) = quality_report {
        let table = crate::train::quality_report(&ms, &labels, &opts)?;
        crate::io::write_atomic(&path, |w| {
            Ok(std::io::Write::write_all(w, table.as_bytes())?)
        })?;
        print!("{table}");
        return Ok(0);
    }
    for p in crate::train::train(&cfg, &ms, &labels, &opts)? {
        let meta: crate::model::ModelMeta =
            serde_json::from_slice(&crate::io::read_regular(&crate::model::meta_path(&p))?)?;
        println!("{}  {}", p.display(), meta.metrics);
    }
    Ok(0)
}
