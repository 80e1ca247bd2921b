//! Model matrices over many dates (`pipeline features`) and model training (`pipeline train`).
//!
//! Training is time-aware: the latest dates (a fifth, at least one) are held out and only
//! used for the metrics written to the model's metadata. LightGBM runs in deterministic mode
//! with a fixed seed and thread count, so the same data gives a byte-identical model file.

use crate::batch::Table;
use crate::config::RunConfig;
use crate::features::{build_cluster_matrix, cluster_memberships, row_major, severity_code};
use crate::labels::{Label, Labels};
use crate::metrics::{auc_roc, average_precision, best_f1, ndcg_at, recall_at_precision};
use crate::model::{
    meta_path, train_lightgbm, DataStats, ModelKind, ModelMeta, TrainSet, TrainingPeriod,
};
use crate::stages::{feature_join, prefix_context, run_prefix, Context, History};
use anyhow::{bail, Context as _, Result};
use arrow::array::{Array, ArrayRef, AsArray, Float64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod quality;
pub use quality::{feature_sets, quality_report};

/// One date's alert matrix and cluster matrix, with the alerts' severities.
pub struct DateMatrix {
    /// The processing date.
    pub date: NaiveDate,
    /// Alert matrix (`alert_id`, `address`, features).
    pub alerts: RecordBatch,
    /// Cluster matrix (`cluster_id`, features) and each cluster's member rows in `alerts`.
    pub clusters: RecordBatch,
    /// Member alert rows of each cluster.
    pub members: Vec<Vec<usize>>,
    /// Severity code per alert.
    pub severity: Vec<f64>,
}

/// A context that runs the graph up to feature join for `dates`, their address history
/// computed in memory (over the dates and the 30 before each, as a run does), with the graph
/// and flow-history features when `graph` (NaN otherwise, as in a run whose models use none).
fn matrix_context(cfg: &RunConfig, dates: &[NaiveDate], graph: bool) -> Result<Context> {
    let history = History::InMemory(crate::history::in_memory(cfg, dates, graph)?);
    let mut ctx = prefix_context(cfg, &feature_join::KIND, history)?;
    ctx.graph_features = graph;
    Ok(ctx)
}

/// Decodes one date and builds its matrices: the run's graph up to feature join, with the
/// pipeline file's parameters, then the cluster matrix.
pub fn date_matrix(cfg: &RunConfig, date: NaiveDate) -> Result<DateMatrix> {
    date_matrix_with(&matrix_context(cfg, &[date], true)?, date)
}

/// As [`date_matrix`], in a context from [`matrix_context`].
fn date_matrix_with(ctx: &Context, date: NaiveDate) -> Result<DateMatrix> {
    let tables = run_prefix(ctx, date, &feature_join::KIND)?;
    let alerts = tables[&Table::Matrix].0.clone();
    let clusters_in = &tables[&Table::Clusters].0;
    let members = cluster_memberships(clusters_in, &alerts)?;
    let clusters = build_cluster_matrix(clusters_in, &alerts, &members)?;
    let sev = tables[&Table::Alerts]
        .0
        .column_by_name("severity")
        .expect("severity")
        .as_string::<i32>()
        .clone();
    let severity = (0..sev.len())
        .map(|i| severity_code(sev.value(i)))
        .collect();
    Ok(DateMatrix {
        date,
        alerts,
        clusters,
        members,
        severity,
    })
}

fn alert_labels(m: &DateMatrix, labels: &Labels) -> Vec<Option<Label>> {
    let ids = m
        .alerts
        .column_by_name("alert_id")
        .expect("alert_id")
        .as_string::<i32>();
    let addr = m
        .alerts
        .column_by_name("address")
        .expect("address")
        .as_string::<i32>();
    (0..ids.len())
        .map(|i| labels.of_alert(ids.value(i), addr.value(i)))
        .collect()
}

/// Decodes `dates` in order, with their address history (computed in memory over the dates and
/// the 30 before each, as a run does), reporting each to `progress`; a date that fails is an error.
/// The graph and flow-history features are computed only when `graph`.
pub fn load_dates(
    cfg: &RunConfig,
    dates: &[NaiveDate],
    graph: bool,
    progress: &dyn Fn(NaiveDate),
) -> Result<Vec<DateMatrix>> {
    let ctx = matrix_context(cfg, dates, graph)?;
    dates
        .iter()
        .map(|&d| {
            let m = date_matrix_with(&ctx, d).with_context(|| format!("date {d}"))?;
            progress(d);
            Ok(m)
        })
        .collect()
}

/// Writes the alert matrices of `dates` as one Parquet file: `processing_date, alert_id, address`,
/// the features in model order, then `label` and `label_weight` (null where unknown).
pub fn write_features(matrices: &[DateMatrix], labels: &Labels, out: &Path) -> Result<usize> {
    let mut batches = Vec::new();
    for m in matrices {
        let l = alert_labels(m, labels);
        let n = m.alerts.num_rows();
        let mut cols: Vec<ArrayRef> = vec![Arc::new(StringArray::from(vec![
            m.date
                .format("%Y-%m-%d")
                .to_string();
            n
        ]))];
        let mut fields = vec![Field::new("processing_date", DataType::Utf8, false)];
        for (f, c) in m.alerts.schema().fields().iter().zip(m.alerts.columns()) {
            fields.push(f.as_ref().clone());
            cols.push(c.clone());
        }
        fields.push(Field::new("label", DataType::Float64, true));
        fields.push(Field::new("label_weight", DataType::Float64, true));
        cols.push(Arc::new(
            l.iter()
                .map(|l| l.map(|l| l.illicit as u8 as f64))
                .collect::<Float64Array>(),
        ));
        cols.push(Arc::new(
            l.iter()
                .map(|l| l.map(|l| l.weight as f64))
                .collect::<Float64Array>(),
        ));
        batches.push(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?);
    }
    let Some(first) = batches.first() else {
        bail!("no dates to export")
    };
    let all = arrow::compute::concat_batches(&first.schema(), &batches)?;
    crate::io::write_parquet(out, &all)?;
    Ok(all.num_rows())
}

/// Training options.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Models to train.
    pub kinds: Vec<ModelKind>,
    /// Boosting rounds.
    pub iterations: usize,
    /// Random seed.
    pub seed: u64,
    /// Where to write the models.
    pub out: PathBuf,
    /// Random-search trials over the LightGBM parameters, scored by CV (0 = defaults).
    pub tune: usize,
    /// Whether the models use the graph and flow-history features
    /// ([`crate::features::is_graph_feature`]); without them a daily run reads only the alerts'
    /// own money flows and no flows of earlier dates.
    pub graph_features: bool,
}

impl TrainOptions {
    /// The features a model of `kind` is trained on, in matrix order.
    pub fn feature_names(&self, kind: ModelKind) -> Vec<String> {
        let mut names = kind.feature_names();
        if !self.graph_features {
            names.retain(|n| !crate::features::is_graph_feature(n));
        }
        names
    }
}

/// The LightGBM parameters searched by `--tune`, with the defaults as the first candidate.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Hyper {
    /// num_leaves
    pub num_leaves: u32,
    /// learning_rate
    pub learning_rate: f64,
    /// min_data_in_leaf
    pub min_data_in_leaf: u32,
    /// feature_fraction
    pub feature_fraction: f64,
    /// bagging_fraction (with bagging_freq 1)
    pub bagging_fraction: f64,
    /// lambda_l1
    pub lambda_l1: f64,
    /// lambda_l2
    pub lambda_l2: f64,
}

impl Hyper {
    /// The defaults for a kind of model.
    pub fn default_for(kind: ModelKind) -> Self {
        Hyper {
            num_leaves: 31,
            learning_rate: if kind == ModelKind::AlertRanker {
                0.1
            } else {
                0.05
            },
            min_data_in_leaf: 20,
            feature_fraction: 0.8,
            bagging_fraction: 0.8,
            lambda_l1: 0.1,
            lambda_l2: 0.1,
        }
    }

    /// A random candidate for the search.
    fn sample(rng: &mut impl rand::Rng) -> Self {
        Hyper {
            num_leaves: [7, 15, 31, 63, 127][rng.gen_range(0..5)],
            learning_rate: [0.02, 0.05, 0.1, 0.2][rng.gen_range(0..4)],
            min_data_in_leaf: [5, 10, 20, 50, 100][rng.gen_range(0..5)],
            feature_fraction: rng.gen_range(0.5..1.0f64).mul_add(100.0, 0.0).round() / 100.0,
            bagging_fraction: rng.gen_range(0.5..1.0f64).mul_add(100.0, 0.0).round() / 100.0,
            lambda_l1: [0.0, 0.1, 1.0, 5.0][rng.gen_range(0..4)],
            lambda_l2: [0.0, 0.1, 1.0, 5.0][rng.gen_range(0..4)],
        }
    }

    /// The LightGBM parameter string.
    fn params(&self, kind: ModelKind, seed: u64) -> String {
        let objective = match kind {
            ModelKind::AlertRanker => "objective=lambdarank metric=ndcg eval_at=10",
            _ => "objective=binary metric=auc",
        };
        format!(
            "{objective} num_leaves={} learning_rate={} min_data_in_leaf={} feature_fraction={} bagging_fraction={} \
             bagging_freq=1 lambda_l1={} lambda_l2={} seed={seed} deterministic=true force_row_wise=true num_threads=2 verbosity=-1",
            self.num_leaves, self.learning_rate, self.min_data_in_leaf, self.feature_fraction, self.bagging_fraction,
            self.lambda_l1, self.lambda_l2
        )
    }
}

/// Rounds without improvement on the validation fold before training stops.
const EARLY_STOPPING: usize = 50;

/// Cross-validation by date groups: the training dates are cut into at most 5 contiguous
/// blocks; each block is the validation fold (with early stopping) of a model trained on the
/// others. Returns the fold metrics and best iterations; empty with fewer than 2 dates.
fn cross_validate(
    kind: ModelKind,
    rows: &Rows,
    n_dates: usize,
    names: &[String],
    params: &str,
    iterations: usize,
) -> Result<(Vec<f64>, Vec<usize>)> {
    let k = n_dates.min(5);
    let (mut metrics, mut best) = (Vec::new(), Vec::new());
    if k < 2 {
        return Ok((metrics, best));
    }
    for f in 0..k {
        let in_fold = |d: usize| d * k / n_dates == f;
        let tr = subset(rows, names.len(), |d| d < n_dates && !in_fold(d));
        let va = subset(rows, names.len(), |d| d < n_dates && in_fold(d));
        if tr.label.is_empty() || va.label.is_empty() {
            continue;
        }
        let (gt, gv) = (groups(&tr.date), groups(&va.date));
        let ranker = kind == ModelKind::AlertRanker;
        let set = tr.train_set(names, ranker.then_some(gt.as_slice()));
        let vset = va.train_set(names, ranker.then_some(gv.as_slice()));
        let t = train_lightgbm(&set, params, iterations, Some((&vset, EARLY_STOPPING)))?;
        if let Some(m) = t.valid_metric.filter(|m| m.is_finite()) {
            metrics.push(m);
            best.push(t.best_iteration);
        }
    }
    Ok((metrics, best))
}

fn mean_std(v: &[f64]) -> (Option<f64>, Option<f64>) {
    crate::metrics::mean_std(v).map_or((None, None), |(m, s)| (Some(m), Some(s)))
}

/// Rows of one model's training set, with the date index of each row.
struct Rows {
    x: Vec<f64>,
    label: Vec<f32>,
    weight: Vec<f32>,
    date: Vec<usize>,
}

impl Rows {
    /// These rows as LightGBM training data with the given feature names and query groups.
    fn train_set<'a>(&'a self, names: &'a [String], groups: Option<&'a [i32]>) -> TrainSet<'a> {
        TrainSet {
            x: &self.x,
            names,
            label: &self.label,
            weight: &self.weight,
            groups,
        }
    }
}

/// The labelled rows of `ms` for a model of `kind`, with the features `names`.
fn collect_rows(
    kind: ModelKind,
    names: &[String],
    ms: &[DateMatrix],
    labels: &Labels,
) -> Result<Rows> {
    let mut r = Rows {
        x: Vec::new(),
        label: Vec::new(),
        weight: Vec::new(),
        date: Vec::new(),
    };
    for (di, m) in ms.iter().enumerate() {
        let l = alert_labels(m, labels);
        match kind {
            ModelKind::AlertScorer | ModelKind::AlertRanker => {
                let x = row_major(&m.alerts, names)?;
                for (i, li) in l.iter().enumerate() {
                    let (y, w) = match (kind, li) {
                        (ModelKind::AlertScorer, Some(li)) => (li.illicit as u8 as f32, li.weight),
                        (ModelKind::AlertScorer, None) => continue,
                        (_, Some(li)) if li.illicit => (2.0, 1.0),
                        _ if m.severity[i] >= 3.0 => (1.0, 1.0),
                        _ => (0.0, 1.0),
                    };
                    r.x.extend_from_slice(&x[i * names.len()..(i + 1) * names.len()]);
                    r.label.push(y);
                    r.weight.push(w);
                    r.date.push(di);
                }
            }
            ModelKind::ClusterScorer => {
                let x = row_major(&m.clusters, names)?;
                for (c, members) in m.members.iter().enumerate() {
                    let known: Vec<Label> = members.iter().filter_map(|&i| l[i]).collect();
                    if known.is_empty() {
                        continue;
                    }
                    let y = known.iter().any(|l| l.illicit);
                    let w = known.iter().map(|l| l.weight).fold(0.0f32, f32::max);
                    r.x.extend_from_slice(&x[c * names.len()..(c + 1) * names.len()]);
                    r.label.push(y as u8 as f32);
                    r.weight.push(w);
                    r.date.push(di);
                }
            }
        }
    }
    Ok(r)
}

fn subset(r: &Rows, width: usize, keep: impl Fn(usize) -> bool) -> Rows {
    let mut s = Rows {
        x: Vec::new(),
        label: Vec::new(),
        weight: Vec::new(),
        date: Vec::new(),
    };
    for i in 0..r.label.len() {
        if keep(r.date[i]) {
            s.x.extend_from_slice(&r.x[i * width..(i + 1) * width]);
            s.label.push(r.label[i]);
            s.weight.push(r.weight[i]);
            s.date.push(r.date[i]);
        }
    }
    s
}

fn groups(dates: &[usize]) -> Vec<i32> {
    let mut g: Vec<i32> = Vec::new();
    let mut last = None;
    for &d in dates {
        if last == Some(d) {
            *g.last_mut().unwrap() += 1;
        } else {
            g.push(1);
            last = Some(d);
        }
    }
    g
}

/// Trains the requested models on `ms` (ascending dates) and writes them; returns their paths.
pub fn train(
    cfg: &RunConfig,
    ms: &[DateMatrix],
    labels: &Labels,
    opts: &TrainOptions,
) -> Result<Vec<PathBuf>> {
    if ms.is_empty() {
        bail!("no dates to train on");
    }
    if labels.is_empty() {
        bail!(
            "no labels under {}: expected ground_truth.parquet or address_labels.parquet",
            cfg.input.join(&cfg.network).display()
        );
    }
    let holdout = if ms.len() >= 2 {
        ms.len().div_ceil(5)
    } else {
        0
    };
    let first_holdout = ms.len() - holdout;
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("cannot create {}", opts.out.display()))?;
    let mut written = Vec::new();
    for &kind in &opts.kinds {
        let names = opts.feature_names(kind);
        let rows = collect_rows(kind, &names, ms, labels)?;
        let train_rows = subset(&rows, names.len(), |d| d < first_holdout);
        let test_rows = subset(&rows, names.len(), |d| d >= first_holdout);
        if train_rows.label.is_empty() {
            bail!(
                "{}: no labelled training rows in {} .. {}",
                kind.name(),
                ms[0].date,
                ms[first_holdout - 1].date
            );
        }
        // Choose parameters (defaults, or the best of a seeded random search) by CV.
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(opts.seed);
        let mut trials = Vec::new();
        let mut chosen: Option<(Hyper, Vec<f64>, Vec<usize>)> = None;
        for t in 0..=opts.tune {
            let h = if t == 0 {
                Hyper::default_for(kind)
            } else {
                Hyper::sample(&mut rng)
            };
            let (cv, best) = cross_validate(
                kind,
                &rows,
                first_holdout,
                &names,
                &h.params(kind, opts.seed),
                opts.iterations,
            )?;
            let score = mean_std(&cv).0;
            trials.push(json!({ "params": h, "cv_mean": score }));
            if chosen
                .as_ref()
                .is_none_or(|c| score.unwrap_or(f64::MIN) > mean_std(&c.1).0.unwrap_or(f64::MIN))
            {
                chosen = Some((h, cv, best));
            }
        }
        let (hyper, cv, cv_best) = chosen.expect("at least the default trial");
        let iterations = if cv_best.is_empty() {
            opts.iterations
        } else {
            (cv_best.iter().sum::<usize>() as f64 / cv_best.len() as f64)
                .round()
                .max(1.0) as usize
        };
        let g = groups(&train_rows.date);
        let set = train_rows.train_set(
            &names,
            (kind == ModelKind::AlertRanker).then_some(g.as_slice()),
        );
        let p = hyper.params(kind, opts.seed);
        let text = train_lightgbm(&set, &p, iterations, None)?.text;
        let version = crate::io::sha256_bytes(text.as_bytes())[..12].to_string();
        let booster = lightgbm3::Booster::from_string(&text).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut metrics = evaluate(kind, &booster, &test_rows, names.len())?;
        let calibration = isotonic(kind, &booster, &test_rows, names.len())?;
        let (cv_mean, cv_std) = mean_std(&cv);
        metrics["cv_metric"] = json!(if kind == ModelKind::AlertRanker {
            "ndcg@10"
        } else {
            "auc_roc"
        });
        metrics["cv_mean"] = json!(cv_mean);
        metrics["cv_std"] = json!(cv_std);
        metrics["cv_folds"] = json!(cv.len());
        let positives = train_rows.label.iter().filter(|&&y| y > 0.0).count();
        let meta = ModelMeta {
            model_type: kind,
            version: version.clone(),
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            network: cfg.network.clone(),
            training_period: TrainingPeriod {
                start_date: ms[0].date.to_string(),
                end_date: ms[first_holdout - 1].date.to_string(),
                window_days: cfg.window_days,
            },
            data_stats: DataStats {
                samples: train_rows.label.len(),
                features: names.len(),
                positive_rate: positives as f64 / train_rows.label.len() as f64,
            },
            metrics,
            hyperparameters: json!({
                "params": p, "chosen": hyper, "num_iterations": iterations, "max_iterations": opts.iterations,
                "early_stopping_rounds": EARLY_STOPPING, "cv_best_iterations": cv_best, "tuning_trials": trials,
            }),
            feature_names: names,
            num_trees: booster.num_iterations(),
            best_iteration: iterations as i32,
            calibration,
        };
        let path = opts.out.join(format!("{}_v{version}.txt", kind.name()));
        crate::io::write_atomic(&path, |w| {
            Ok(std::io::Write::write_all(w, text.as_bytes())?)
        })?;
        crate::io::write_json(&meta_path(&path), &meta)?;
        tracing::info!(model = kind.name(), %version, "trained");
        written.push(path);
    }
    Ok(written)
}

/// The isotonic map of a binary model's held-out probabilities ([`crate::calibration`]);
/// `None` for the ranker or without both classes held out.
fn isotonic(
    kind: ModelKind,
    b: &lightgbm3::Booster,
    test: &Rows,
    width: usize,
) -> Result<Option<crate::calibration::Isotonic>> {
    if kind == ModelKind::AlertRanker || test.label.is_empty() {
        return Ok(None);
    }
    let pred = b
        .predict(&test.x, width as i32, true)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let y: Vec<bool> = test.label.iter().map(|&l| l > 0.0).collect();
    Ok(crate::calibration::Isotonic::fit(&pred, &y))
}

fn evaluate(
    kind: ModelKind,
    b: &lightgbm3::Booster,
    test: &Rows,
    width: usize,
) -> Result<serde_json::Value> {
    if test.label.is_empty() {
        return Ok(json!({ "holdout_samples": 0 }));
    }
    let pred = b
        .predict(&test.x, width as i32, true)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if kind == ModelKind::AlertRanker {
        let mut out = serde_json::Map::new();
        for k in [10, 50, 100] {
            let mut vals = Vec::new();
            let mut start = 0;
            for g in groups(&test.date) {
                let end = start + g as usize;
                let rel: Vec<f64> = test.label[start..end].iter().map(|&y| y as f64).collect();
                vals.extend(ndcg_at(&pred[start..end], &rel, k));
                start = end;
            }
            let mean = if vals.is_empty() {
                None
            } else {
                Some(vals.iter().sum::<f64>() / vals.len() as f64)
            };
            out.insert(format!("ndcg@{k}"), json!(mean));
        }
        out.insert("holdout_samples".into(), json!(test.label.len()));
        return Ok(serde_json::Value::Object(out));
    }
    let y: Vec<bool> = test.label.iter().map(|&l| l > 0.0).collect();
    let f1 = best_f1(&pred, &y);
    Ok(json!({
        "holdout_samples": y.len(),
        "holdout_positive_rate": y.iter().filter(|&&v| v).count() as f64 / y.len() as f64,
        "auc_roc": auc_roc(&pred, &y),
        "pr_auc": average_precision(&pred, &y),
        "best_f1": f1.map(|f| f.0),
        "best_f1_threshold": f1.map(|f| f.1),
        "precision_at_best_f1": f1.map(|f| f.2),
        "recall_at_best_f1": f1.map(|f| f.3),
        "recall_at_precision_50": recall_at_precision(&pred, &y, 0.5),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_graph_features_every_graph_and_flow_history_column_is_dropped() {
        let opts = |graph_features| TrainOptions {
            kinds: vec![],
            iterations: 1,
            seed: 1,
            out: PathBuf::new(),
            tune: 0,
            graph_features,
        };
        for kind in ModelKind::ALL {
            let all = opts(true).feature_names(kind);
            let cheap = opts(false).feature_names(kind);
            assert_eq!(all, kind.feature_names());
            assert!(cheap.len() < all.len(), "{}: nothing dropped", kind.name());
            assert!(!crate::features::graph_features_needed([cheap.as_slice()]));
            let kept: Vec<&String> = all.iter().filter(|n| cheap.contains(n)).collect();
            assert_eq!(kept, cheap.iter().collect::<Vec<_>>(), "matrix order kept");
        }
    }

    /// The shipped models are trained without them: a daily run reads only the alerts' own
    /// flows (and `../shared/peer`'s references build the same 129 columns).
    #[test]
    fn the_shipped_models_need_no_graph_feature() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("trained_models");
        let mut seen = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "json") {
                let meta: ModelMeta = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
                let graph: Vec<&String> = meta
                    .feature_names
                    .iter()
                    .filter(|n| crate::features::is_graph_feature(n))
                    .collect();
                assert!(graph.is_empty(), "{} uses {graph:?}", p.display());
                seen += 1;
            }
        }
        assert_eq!(seen, 3, "three shipped models in {}", dir.display());
    }

    #[test]
    fn one_query_group_per_date_in_row_order() {
        assert_eq!(groups(&[0, 0, 0, 1, 1, 3]), vec![3, 2, 1]);
        assert!(groups(&[]).is_empty());
    }
}
