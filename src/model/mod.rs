//! LightGBM models: the installed model files, their metadata, loading with a feature-order
//! check, prediction through the flattened evaluator ([`crate::forest`], bit-identical to
//! LightGBM's), SHAP contributions through its TreeSHAP (within rounding of LightGBM's), and
//! training through LightGBM's C API ([`train_lightgbm`]).

use crate::features::{row_major_rows, FeatureColumns};
use crate::forest::Forest;
use anyhow::{anyhow, bail, Context, Result};
use arrow::record_batch::RecordBatch;
use lightgbm3::Booster;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

mod train;
pub use train::{train_lightgbm, TrainSet, Trained};

/// The three models of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Binary alert scorer.
    AlertScorer,
    /// Lambdarank alert ranker.
    AlertRanker,
    /// Binary cluster scorer.
    ClusterScorer,
}

impl ModelKind {
    /// All kinds, in training order.
    pub const ALL: [ModelKind; 3] = [Self::AlertScorer, Self::AlertRanker, Self::ClusterScorer];

    /// The file-name prefix, e.g. `alert_scorer`.
    pub fn name(self) -> &'static str {
        match self {
            Self::AlertScorer => "alert_scorer",
            Self::AlertRanker => "alert_ranker",
            Self::ClusterScorer => "cluster_scorer",
        }
    }

    /// The feature names, in order, that this kind of model is trained and applied on.
    pub fn feature_names(self) -> Vec<String> {
        match self {
            Self::AlertScorer | Self::AlertRanker => crate::features::alert_feature_names(),
            Self::ClusterScorer => crate::features::cluster_feature_names(),
        }
    }
}

impl std::str::FromStr for ModelKind {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                anyhow!(
                    "unknown model {s:?}: expected alert_scorer, alert_ranker or cluster_scorer"
                )
            })
    }
}

/// The `.json` metadata written beside each model file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelMeta {
    /// Which model this is.
    pub model_type: ModelKind,
    /// First 12 hex digits of the sha256 of the model text.
    pub version: String,
    /// When it was trained (RFC 3339).
    pub created_at: String,
    /// Network of the training data.
    pub network: String,
    /// Dates and window of the training data.
    pub training_period: TrainingPeriod,
    /// Rows, features and positive rate of the training data.
    pub data_stats: DataStats,
    /// Held-out metrics.
    pub metrics: serde_json::Value,
    /// LightGBM parameters.
    pub hyperparameters: serde_json::Value,
    /// Feature names in the order the model expects them.
    pub feature_names: Vec<String>,
    /// Trees in the model.
    pub num_trees: i32,
    /// Iterations kept.
    pub best_iteration: i32,
    /// The isotonic map of a binary model's probabilities, fitted on its held-out dates
    /// (`calibration = "isotonic"` in the score stage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<crate::calibration::Isotonic>,
}

/// Training dates and window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainingPeriod {
    /// First training date.
    pub start_date: String,
    /// Last training date.
    pub end_date: String,
    /// Batch window.
    pub window_days: u32,
}

/// Size and balance of the training data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataStats {
    /// Training rows.
    pub samples: usize,
    /// Features per row.
    pub features: usize,
    /// Share of positive labels (for the ranker: of relevance > 0).
    pub positive_rate: f64,
}

/// One of the booster's methods on row-major rows (rows, features per row, row-major).
type BoosterCall = fn(&Booster, &[f64], i32, bool) -> lightgbm3::Result<Vec<f64>>;

/// A loaded model: the flattened evaluator, its metadata and LightGBM's booster (the reference).
pub struct Model {
    /// LightGBM's booster, parsed on first use: a run scores with `forest` only, and loading
    /// it would start LightGBM's thread pool, which spins on the cores the run needs.
    booster: OnceLock<Booster>,
    /// The model file's text, for `booster`.
    text: String,
    forest: Forest,
    /// Its metadata.
    pub meta: ModelMeta,
    /// The model file.
    pub path: PathBuf,
}

// SAFETY: LightGBM's C API prediction functions are thread-safe (they take a shared lock on
// the booster); the handle is only freed on drop, which needs exclusive ownership.
unsafe impl Send for Model {}
// SAFETY: see above; `&Model` only exposes prediction.
unsafe impl Sync for Model {}

/// Path of the metadata file beside a model file.
pub fn meta_path(model: &Path) -> PathBuf {
    model.with_extension("json")
}

/// The metadata beside a model file.
pub fn read_meta(model: &Path) -> Result<ModelMeta> {
    let mp = meta_path(model);
    serde_json::from_slice(
        &crate::io::read_regular(&mp)
            .with_context(|| format!("cannot read model metadata {}", mp.display()))?,
    )
    .with_context(|| format!("{}: not valid model metadata", mp.display()))
}

/// Checks a model's features: its metadata lists the model file's own `feature_names`, in
/// order, and each is a feature the pipeline computes (`computed`). The stages pick the
/// model's columns from the matrix by name, so a model trained before features were added to
/// the matrix keeps scoring the same.
fn check_features(path: &Path, text: &str, names: &[String], computed: &[String]) -> Result<()> {
    let in_file: Vec<&str> = text
        .lines()
        .find_map(|l| l.strip_prefix("feature_names="))
        .map(|l| l.split(' ').collect())
        .unwrap_or_default();
    if in_file != names {
        let first = names.iter().zip(&in_file).position(|(a, b)| a != b);
        bail!(
            "{}: feature order mismatch: its metadata lists {} features where the model file has {}{}; reinstall it, or retrain it with `pipeline train`",
            path.display(),
            names.len(),
            in_file.len(),
            first.map_or(String::new(), |i| format!(
                " (first difference at position {i}: metadata `{}`, model file `{}`)",
                names[i], in_file[i]
            ))
        );
    }
    let known: rustc_hash::FxHashSet<&str> = computed.iter().map(String::as_str).collect();
    if let Some(f) = names.iter().find(|f| !known.contains(f.as_str())) {
        bail!(
            "{}: the model needs feature `{f}`, which this pipeline does not compute; retrain it with `pipeline train`",
            path.display()
        );
    }
    let mut sorted: Vec<&str> = in_file;
    sorted.sort_unstable();
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        bail!(
            "{}: the model lists feature `{}` twice",
            path.display(),
            w[0]
        );
    }
    Ok(())
}

impl Model {
    /// Loads a model file and its metadata, checking that its features are ones `kind`'s matrix
    /// has ([`check_features`]).
    pub fn load(path: &Path, kind: ModelKind) -> Result<Self> {
        let text = crate::io::read_text(path).with_context(|| {
            format!(
                "cannot read model {}: train one with `pipeline train`",
                path.display()
            )
        })?;
        let meta = read_meta(path)?;
        if meta.model_type != kind {
            bail!(
                "{}: is a {} model, expected {}",
                path.display(),
                meta.model_type.name(),
                kind.name()
            );
        }
        check_features(path, &text, &meta.feature_names, &kind.feature_names())?;
        let forest = Forest::parse(&text)
            .with_context(|| format!("{}: the pipeline cannot score with it", path.display()))?;
        if forest.num_features() != meta.feature_names.len() {
            bail!(
                "{}: the model file has {} features but its metadata lists {}",
                path.display(),
                forest.num_features(),
                meta.feature_names.len()
            );
        }
        Ok(Self {
            booster: OnceLock::new(),
            text,
            forest,
            meta,
            path: path.to_path_buf(),
        })
    }

    /// Finds a model: `latest` is the newest installed model of `kind` in `dir` (by `created_at`,
    /// then version), anything else a path to a model file.
    pub fn resolve(dir: &Path, kind: ModelKind, spec: &str) -> Result<PathBuf> {
        if spec != "latest" {
            return Ok(PathBuf::from(spec));
        }
        let newest = installed(dir)
            .with_context(|| "train models with `pipeline train` or pass --models")?
            .into_iter()
            .find(|(_, meta)| meta.model_type == kind);
        newest.map(|(path, _)| path).ok_or_else(|| {
            anyhow!(
                "no {} model in {} (expected {}_v<version>.txt with its .json): train one with `pipeline train`",
                kind.name(),
                dir.display(),
                kind.name()
            )
        })
    }

    /// The model's version.
    pub fn version(&self) -> &str {
        &self.meta.version
    }

    /// Number of features a row must have.
    pub fn num_features(&self) -> usize {
        self.meta.feature_names.len()
    }

    /// LightGBM's booster of this model, parsed on first use.
    fn booster(&self) -> Result<&Booster> {
        if let Some(b) = self.booster.get() {
            return Ok(b);
        }
        let b = Booster::from_string(&self.text)
            .map_err(|e| anyhow!("{}: LightGBM cannot load it: {e}", self.path.display()))?;
        Ok(self.booster.get_or_init(|| b))
    }

    /// `call` (one of the booster's row-major methods) on `rows`, none for no rows; `what` names
    /// it in an error.
    fn lightgbm(&self, rows: &[f64], what: &str, call: BoosterCall) -> Result<Vec<f64>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        call(self.booster()?, rows, self.num_features() as i32, true)
            .map_err(|e| anyhow!("{}: {what} failed: {e}", self.path.display()))
    }

    /// TreeSHAP feature contributions for row-major rows, by the flattened forest on all cores
    /// ([`Forest::contributions`]): per row, one value per feature and then the bias, in raw
    /// score; each row sums to the raw margin. Within 1e-9 of LightGBM's
    /// [`Model::contributions`], and several times faster.
    pub fn shap(&self, rows: &[f64]) -> Result<Vec<f64>> {
        let threads = cores();
        self.forest
            .contributions(rows, threads)
            .map_err(|e| anyhow!("{}: feature contributions failed: {e}", self.path.display()))
    }

    /// LightGBM's TreeSHAP feature contributions for row-major rows: per row, one value per
    /// feature and then the bias; each row sums to the raw margin. The reference
    /// [`Model::shap`] matches.
    pub fn contributions(&self, rows: &[f64]) -> Result<Vec<f64>> {
        self.lightgbm(rows, "feature contributions", Booster::predict_contrib)
    }

    /// LightGBM's raw margin (before the sigmoid) for row-major rows.
    pub fn raw_margin(&self, rows: &[f64]) -> Result<Vec<f64>> {
        self.lightgbm(rows, "prediction", Booster::raw_scores)
    }

    /// `explain_json` for each row: the score and the 5 features with the largest |SHAP value|
    /// ([`Model::shap`]).
    pub fn explain(&self, rows: &[f64], scores: &[f64]) -> Result<Vec<String>> {
        Ok(self.explain_from(&self.shap(rows)?, scores))
    }

    /// [`Model::explain`] from LightGBM's own contributions ([`Model::contributions`]): the
    /// reference.
    pub fn explain_lightgbm(&self, rows: &[f64], scores: &[f64]) -> Result<Vec<String>> {
        Ok(self.explain_from(&self.contributions(rows)?, scores))
    }

    fn explain_from(&self, contrib: &[f64], scores: &[f64]) -> Vec<String> {
        let width = self.num_features() + 1;
        contrib
            .chunks(width)
            .zip(scores)
            .map(|(c, &score)| {
                let mut idx: Vec<usize> = (0..width - 1).collect();
                idx.sort_by(|&a, &b| c[b].abs().total_cmp(&c[a].abs()).then(a.cmp(&b)));
                let top: Vec<serde_json::Value> = idx
                    .iter()
                    .take(5)
                    .map(|&i| serde_json::json!({ "feature": self.meta.feature_names[i], "impact": c[i] }))
                    .collect();
                serde_json::json!({ "score": score, "top_features": top }).to_string()
            })
            .collect()
    }

    /// [`Model::predict`] of every row of `matrix` (its columns named by the model). The rows
    /// are split among the cores; each lays out [`PREDICT_BLOCK`] rows at a time row-major
    /// and predicts them while they are still in its cache. Every row's prediction is its own,
    /// so the result does not depend on the split.
    pub fn predict_matrix(&self, matrix: &RecordBatch) -> Result<Vec<f64>> {
        let cols = FeatureColumns::of(matrix, &self.meta.feature_names)?;
        let n = matrix.num_rows();
        let blocks: Vec<_> = (0..n)
            .step_by(PREDICT_BLOCK)
            .map(|s| s..(s + PREDICT_BLOCK).min(n))
            .collect();
        let threads = cores().min(n.div_ceil(ROWS_PER_CORE)).max(1);
        let predict = |blocks: &[std::ops::Range<usize>]| -> Result<Vec<f64>> {
            let mut out = Vec::with_capacity(blocks.iter().map(|b| b.len()).sum());
            for b in blocks {
                let x = cols.row_major(b.clone());
                out.extend(
                    self.forest
                        .predict(&x, 1)
                        .map_err(|e| anyhow!("{}: prediction failed: {e}", self.path.display()))?,
                );
            }
            Ok(out)
        };
        let parts: Vec<Result<Vec<f64>>> = std::thread::scope(|s| {
            let share = blocks.len().div_ceil(threads).max(1);
            let handles: Vec<_> = blocks
                .chunks(share)
                .map(|p| s.spawn(|| predict(p)))
                .collect();
            handles.into_iter().map(crate::background::joined).collect()
        });
        let mut out = Vec::with_capacity(n);
        for p in parts {
            out.extend(p?);
        }
        Ok(out)
    }

    /// [`Model::explain`] of every row of `matrix` with its score in `scores`, made
    /// [`ROW_BLOCK`] rows at a time.
    pub fn explain_matrix(&self, matrix: &RecordBatch, scores: &[f64]) -> Result<Vec<String>> {
        let mut out = Vec::with_capacity(matrix.num_rows());
        for rows in row_blocks(matrix.num_rows()) {
            let x = row_major_rows(matrix, &self.meta.feature_names, rows.clone())?;
            out.extend(self.explain(&x, &scores[rows])?);
        }
        Ok(out)
    }

    /// The prediction for row-major rows (probabilities for binary models, scores for the
    /// ranker), by the flattened evaluator on all cores: bit-identical to LightGBM's predict.
    pub fn predict(&self, rows: &[f64]) -> Result<Vec<f64>> {
        let threads = cores();
        self.forest
            .predict(rows, threads)
            .map_err(|e| anyhow!("{}: prediction failed: {e}", self.path.display()))
    }

    /// LightGBM's own prediction for row-major rows: the reference [`Model::predict`] matches.
    pub fn predict_lightgbm(&self, rows: &[f64]) -> Result<Vec<f64>> {
        self.lightgbm(rows, "prediction", Booster::predict)
    }
}

/// Rows a model is applied to at once by [`Model::predict_matrix`] and
/// [`Model::explain_matrix`]: the row-major copy (and the SHAP values) of a day's matrix are
/// made one block at a time, so they do not grow with the day (16,384 rows × 130 features is
/// 17 MB).
pub const ROW_BLOCK: usize = 16_384;

/// Rows [`Model::predict_matrix`] lays out and predicts at once: 512 rows of 129 features
/// take 0.5 MB, which stays in a core's cache from the layout to the trees' reads.
const PREDICT_BLOCK: usize = 512;

/// The fewest rows worth a core of their own in [`Model::predict_matrix`].
const ROWS_PER_CORE: usize = 4096;

/// The cores the models predict and explain on.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `0..n` in consecutive ranges of [`ROW_BLOCK`] rows.
fn row_blocks(n: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    (0..n)
        .step_by(ROW_BLOCK)
        .map(move |start| start..(start + ROW_BLOCK).min(n))
}

/// Every installed model in `dir` (files `{kind}_v{version}.txt` with readable metadata), by kind then newest first.
pub fn installed(dir: &Path) -> Result<Vec<(PathBuf, ModelMeta)>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list models in {}", dir.display()))?;
    let mut out = Vec::new();
    for e in entries {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "txt") {
            if let Some(meta) = crate::io::read_regular(&meta_path(&p))
                .ok()
                .and_then(|b| serde_json::from_slice::<ModelMeta>(&b).ok())
            {
                out.push((p, meta));
            }
        }
    }
    out.sort_by(|a, b| {
        (a.1.model_type.name(), &b.1.created_at, &b.1.version).cmp(&(
            b.1.model_type.name(),
            &a.1.created_at,
            &a.1.version,
        ))
    });
    Ok(out)
}

/// Installs a LightGBM text model trained elsewhere (e.g. Python's `lightgbm`) as a `kind`
/// model in `dir`: checks that its features are the pipeline's, in order, and writes it as
/// `{kind}_v{version}.txt` with metadata. Returns the installed path.
pub fn install(file: &Path, kind: ModelKind, dir: &Path, network: &str) -> Result<PathBuf> {
    let text =
        crate::io::read_text(file).with_context(|| format!("cannot read {}", file.display()))?;
    let names: Vec<String> = text
        .lines()
        .find_map(|l| l.strip_prefix("feature_names="))
        .ok_or_else(|| {
            anyhow!(
                "{}: not a LightGBM text model (no feature_names line)",
                file.display()
            )
        })?
        .split(' ')
        .map(str::to_owned)
        .collect();
    let expected = kind.feature_names();
    if names != expected {
        let first = names.iter().zip(&expected).position(|(a, b)| a != b);
        bail!(
            "{}: feature order mismatch: the model has {} features, a {} needs the pipeline's {}{}; \
             train on the matrix from `pipeline features`, keeping its column order",
            file.display(),
            names.len(),
            kind.name(),
            expected.len(),
            first.map_or(String::new(), |i| format!(" (first difference at position {i}: model `{}`, pipeline `{}`)", names[i], expected[i]))
        );
    }
    let booster = Booster::from_string(&text)
        .map_err(|e| anyhow!("{}: LightGBM cannot load it: {e}", file.display()))?;
    Forest::parse(&text)
        .with_context(|| format!("{}: the pipeline cannot score with it", file.display()))?;
    let version = crate::io::sha256_bytes(text.as_bytes())[..12].to_string();
    let meta = ModelMeta {
        model_type: kind,
        version: version.clone(),
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        network: network.to_string(),
        training_period: TrainingPeriod {
            start_date: "unknown".into(),
            end_date: "unknown".into(),
            window_days: 0,
        },
        data_stats: DataStats {
            samples: 0,
            features: names.len(),
            positive_rate: 0.0,
        },
        metrics: serde_json::json!({ "installed_from": file.display().to_string() }),
        hyperparameters: serde_json::Value::Null,
        feature_names: names,
        num_trees: booster.num_iterations(),
        best_iteration: booster.num_iterations(),
        calibration: None,
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(format!("{}_v{version}.txt", kind.name()));
    crate::io::write_atomic(&path, |w| {
        Ok(std::io::Write::write_all(w, text.as_bytes())?)
    })?;
    crate::io::write_json(&meta_path(&path), &meta)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_may_use_any_subset_of_the_computed_features_in_any_order() {
        let computed: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let p = Path::new("m.txt");
        let text = "tree\nfeature_names=c a\nend\n";
        assert!(check_features(p, text, &names(&["c", "a"]), &computed).is_ok());
        let e = check_features(p, text, &names(&["a", "c"]), &computed).unwrap_err();
        assert!(e.to_string().contains("position 0"), "{e}");
        let e =
            check_features(p, "feature_names=c z\n", &names(&["c", "z"]), &computed).unwrap_err();
        assert!(e.to_string().contains("feature `z`"), "{e}");
        let e =
            check_features(p, "feature_names=c c\n", &names(&["c", "c"]), &computed).unwrap_err();
        assert!(e.to_string().contains("`c` twice"), "{e}");
    }

    #[test]
    fn lightgbm_parses_a_model_only_when_its_reference_is_asked_for() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("trained_models");
        let kind = ModelKind::AlertScorer;
        let model = Model::load(&Model::resolve(&dir, kind, "latest").unwrap(), kind).unwrap();
        assert!(
            model.booster.get().is_none(),
            "loaded before it was asked for"
        );
        let row = vec![0.5; model.num_features()];
        let lightgbm = model.predict_lightgbm(&row).unwrap();
        assert!(model.booster.get().is_some());
        assert_eq!(model.predict(&row).unwrap(), lightgbm);
    }
}
