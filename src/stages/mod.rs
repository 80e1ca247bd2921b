//! The pipeline's stages, one module each. Every stage is a function from one date's input
//! tables to its output tables; [`crate::engine`] wraps each in a timely operator.

pub mod cluster_score;
pub mod decode;
pub mod feature_join;
pub mod rank;
pub mod score;
pub mod validate;
pub mod write;

use crate::batch::Tables;
use crate::config::{RunConfig, StageKind, StageParams, StageSpec};
use crate::model::{Model, ModelKind};
use anyhow::{anyhow, Result};
use chrono::NaiveDate;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What every stage may use: the run configuration and the loaded models.
pub struct Context {
    /// The run configuration.
    pub config: RunConfig,
    /// Models by the name of the stage that applies them.
    pub models: BTreeMap<String, Arc<Model>>,
    /// The labels and traps validation judges with (empty without a validate stage).
    pub knowledge: validate::Knowledge,
}

/// One date's inputs to a stage.
pub struct StageInput<'a> {
    /// The processing date.
    pub date: NaiveDate,
    /// All tables of the stage's inputs, by name.
    pub tables: &'a Tables,
    /// Milliseconds spent so far in each upstream stage, by stage name.
    pub timings: &'a BTreeMap<String, f64>,
}

/// The model a stage kind applies, if any.
pub fn model_kind(kind: StageKind) -> Option<ModelKind> {
    match kind {
        StageKind::Score => Some(ModelKind::AlertScorer),
        StageKind::Rank => Some(ModelKind::AlertRanker),
        StageKind::ClusterScore => Some(ModelKind::ClusterScorer),
        _ => None,
    }
}

impl Context {
    /// Loads every model the pipeline's stages need; fails before any work if one is missing.
    pub fn new(config: RunConfig) -> Result<Self> {
        let mut models = BTreeMap::new();
        for s in &config.pipeline.stages {
            if let (Some(kind), StageParams::Model(p)) = (model_kind(s.kind), &s.params) {
                let path = Model::resolve(&config.models, kind, &p.model)?;
                let model =
                    Model::load(&path, kind).map_err(|e| anyhow!("stage `{}`: {e:#}", s.name))?;
                tracing::info!(stage = %s.name, model = %path.display(), version = model.version(), "model loaded");
                models.insert(s.name.clone(), Arc::new(model));
            }
        }
        let knowledge = match config
            .pipeline
            .stage_of(StageKind::Validate)
            .map(|s| &s.params)
        {
            Some(StageParams::Validate(p)) => validate::Knowledge::load(&config, p)?,
            _ => validate::Knowledge::default(),
        };
        Ok(Self {
            config,
            models,
            knowledge,
        })
    }

    /// The model file each model stage applies, by stage name.
    pub fn model_paths(&self) -> BTreeMap<String, std::path::PathBuf> {
        self.models
            .iter()
            .map(|(k, m)| (k.clone(), m.path.clone()))
            .collect()
    }

    /// The version of the model of the first stage of `kind`, or `unknown`.
    pub fn model_version(&self, kind: StageKind) -> String {
        self.config
            .pipeline
            .stage_of(kind)
            .and_then(|s| self.models.get(&s.name))
            .map_or_else(|| "unknown".to_string(), |m| m.version().to_string())
    }

    fn model(&self, stage: &StageSpec) -> Result<&Model> {
        self.models
            .get(&stage.name)
            .map(|m| m.as_ref())
            .ok_or_else(|| anyhow!("stage `{}`: no model loaded", stage.name))
    }
}

/// The model file each model stage of `cfg` would apply, without loading the models.
pub fn model_paths(cfg: &RunConfig) -> Result<BTreeMap<String, std::path::PathBuf>> {
    let mut out = BTreeMap::new();
    for s in &cfg.pipeline.stages {
        if let (Some(kind), StageParams::Model(p)) = (model_kind(s.kind), &s.params) {
            out.insert(s.name.clone(), Model::resolve(&cfg.models, kind, &p.model)?);
        }
    }
    Ok(out)
}

/// Runs one stage on one date.
pub fn run(stage: &StageSpec, ctx: &Context, input: &StageInput) -> Result<Tables> {
    let cfg = &ctx.config;
    match (&stage.kind, &stage.params) {
        (StageKind::Decode, StageParams::Decode(p)) => {
            decode::run(p, &cfg.input_dir(input.date), input.date, cfg.window_days)
        }
        (StageKind::FeatureJoin, _) => feature_join::run(ctx, input),
        (StageKind::Score, StageParams::Model(p)) => score::run(ctx.model(stage)?, p, input),
        (StageKind::Rank, _) => rank::run(ctx.model(stage)?, input),
        (StageKind::ClusterScore, StageParams::Model(p)) => {
            cluster_score::run(ctx.model(stage)?, p, input)
        }
        (StageKind::Write, _) => write::run(ctx, input),
        (StageKind::Validate, StageParams::Validate(p)) => validate::run(p, ctx, input),
        (k, _) => Err(anyhow!(
            "stage `{}`: parameters do not match kind {k:?}",
            stage.name
        )),
    }
}

/// The table `name` from a stage's inputs.
pub fn table<'a>(t: &'a Tables, name: &str) -> Result<&'a arrow::record_batch::RecordBatch> {
    t.get(name)
        .map(|b| &b.0)
        .ok_or_else(|| anyhow!("internal: input table `{name}` missing"))
}
