//! The pipeline's stage kinds, one module each, and their registry.
//!
//! A stage kind is one file: a parameters type implementing [`Stage`] (parsed from
//! `[stage.params]` with serde, unknown keys refused) and a [`Kind`] constant that names the
//! kind and declares the tables it consumes and produces. [`KINDS`] lists every kind once; the
//! pipeline parser, its error messages, the planner and the engine derive all they know of a
//! kind from there. Adding a kind is one new file and one line in [`KINDS`].

mod alerted;
pub mod cluster_score;
pub mod decode;
pub mod feature_join;
pub mod fetch;
mod prefix;
pub mod rank;
pub mod score;
pub mod submit;
pub mod validate;
pub mod write;

pub use prefix::{prefix_context, run_prefix, History};

use crate::background::Background;
use crate::batch::{Table, Tables};
use crate::config::{RunConfig, StageSpec};
use crate::error::ErrorKind;
use crate::model::{Model, ModelKind};
use anyhow::{anyhow, Result};
use chrono::NaiveDate;
use serde::de::DeserializeOwned;
use std::any::Any;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Every stage kind, in the order a pipeline usually chains them.
pub const KINDS: &[&Kind] = &[
    &fetch::KIND,
    &decode::KIND,
    &feature_join::KIND,
    &score::KIND,
    &rank::KIND,
    &cluster_score::KIND,
    &write::KIND,
    &validate::KIND,
    &submit::KIND,
];

/// The kind named `name` in a pipeline file.
pub fn kind(name: &str) -> Option<&'static Kind> {
    KINDS.iter().copied().find(|k| k.name == name)
}

/// Parses a stage's `[stage.params]` into the configured stage, or says what is wrong.
pub type ParseFn = fn(Option<toml::Table>) -> Result<Arc<dyn Stage>, String>;

/// What the registry knows of a stage kind.
pub struct Kind {
    /// Its name in pipeline files (`kind = "…"`).
    pub name: &'static str,
    /// Tables it reads from its inputs; a kind that reads none is a source and takes no inputs.
    pub consumes: &'static [Table],
    /// Tables it produces; the first is its main output (rows in the run summary).
    pub produces: &'static [Table],
    /// What kind of failure its errors are (a panic is [`ErrorKind::Internal`], an I/O error
    /// that outlasted the retries [`ErrorKind::Transient`]).
    pub fails_as: ErrorKind,
    /// Parses `[stage.params]` (absent: the defaults) into the configured stage.
    pub parse: ParseFn,
    /// The tracing span of one run of a stage of this kind, named by the kind (traces and
    /// flamegraphs group by it).
    pub span: fn(stage: &str, date: NaiveDate) -> tracing::Span,
}

impl std::fmt::Debug for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl PartialEq for Kind {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Kind {
    /// Its tables kept in the state cache ([`Table::cached`]).
    pub fn cached(&self) -> Vec<Table> {
        self.produces
            .iter()
            .copied()
            .filter(|t| t.cached())
            .collect()
    }

    /// The table whose rows count as the stage's input in the run summary: the first it
    /// consumes, or for a source the first it produces.
    pub fn main_input(&self) -> Option<Table> {
        self.consumes
            .first()
            .or_else(|| self.produces.first())
            .copied()
    }
}

/// Something a stage reads from outside the graph for each date, which its fingerprint covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateInput {
    /// The date's batch files (their content hashes).
    Batch,
    /// The alerts of the earlier dates in the date's history window ([`crate::history`]).
    AlertHistory,
}

/// A fingerprint part shared by every date.
#[derive(Debug, Clone)]
pub enum Part {
    /// A file's content (hashed; an error if it cannot be read).
    File(PathBuf),
    /// A value as text.
    Text(String),
}

/// A configured stage: a kind's parameters, and what the kind does with them.
pub trait Stage: std::fmt::Debug + Send + Sync + AsAny {
    /// Runs the stage on one date's input tables.
    fn run(&self, ctx: &Context, stage: &StageSpec, input: &StageInput) -> Result<Tables>;

    /// The parameters as JSON, as the fingerprint records them (`null` for none).
    fn params_json(&self) -> serde_json::Value;

    /// The model it applies: its kind, and `latest` or a path.
    fn model(&self) -> Option<(ModelKind, &str)> {
        None
    }

    /// Checks the run configuration (and the model it applies, loaded) for what this stage
    /// needs, before any work.
    fn check(&self, _cfg: &RunConfig, _model: Option<&Model>) -> Result<()> {
        Ok(())
    }

    /// Fingerprint parts beyond code, parameters, model and upstream that every date shares.
    fn common_parts(&self, _cfg: &RunConfig) -> Result<Vec<(String, Part)>> {
        Ok(Vec::new())
    }

    /// What it reads per date from outside the graph.
    fn date_inputs(&self) -> &'static [DateInput] {
        &[]
    }

    /// Files it leaves in the date's output directory; the stage reruns if one is missing.
    fn output_files(&self) -> &'static [&'static str] {
        &[]
    }

    /// Whether its work for a date must wait until the run's earlier dates (in every process)
    /// have left the graph, so that it sees the dates in ascending order.
    fn in_date_order(&self, _cfg: &RunConfig) -> bool {
        false
    }

    /// How many dates of this process may hold the large tables it produces
    /// ([`Table::large`]) at once: its work for a date waits while that many do, until every
    /// stage that reads them has had one of those dates.
    fn dates_at_once(&self) -> usize {
        usize::MAX
    }

    /// Whether it brings the date's input in place: it runs before the date is planned (the
    /// plan reads the input), and the engine plans the date when it is done.
    fn brings_input(&self) -> bool {
        false
    }
}

/// Downcasting of configured stages, so a command can find a kind's parameters.
pub trait AsAny {
    /// `self` as [`Any`].
    fn as_any(&self) -> &dyn Any;
}

impl<T: Any> AsAny for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// [`Kind::parse`] for a parameters type: serde with its defaults for what is not given.
pub fn parse<T: Stage + DeserializeOwned + Default + 'static>(
    t: Option<toml::Table>,
) -> Result<Arc<dyn Stage>, String> {
    let params = match t {
        None => T::default(),
        Some(t) => T::deserialize(toml::Value::Table(t)).map_err(|e| e.message().to_string())?,
    };
    Ok(Arc::new(params))
}

/// What every stage may use: the run configuration and the loaded models.
pub struct Context {
    /// The run configuration.
    pub config: RunConfig,
    /// Models by the name of the stage that applies them.
    pub models: BTreeMap<String, Arc<Model>>,
    /// The labels and traps validation judges with (empty without a validate stage), read
    /// while the first stages run.
    pub knowledge: Background<validate::Knowledge>,
    /// Where feature join finds each date's address history.
    pub history: History,
    /// The dates coming into the input tree, which the fetch stage waits for.
    pub arrivals: crate::arrivals::Arrivals,
    /// Whether decode keeps every money flow and feature join computes the graph features
    /// ([`crate::features::graph_features_needed`] of the models loaded).
    pub graph_features: bool,
}

/// What a run reports as it goes, to whoever shows it (a progress display, a log); the engine
/// and the stages hold no display of their own.
pub trait Observer: Send + Sync {
    /// A line worth showing the user about one date, e.g. what was submitted.
    fn note(&self, date: NaiveDate, stage: &str, text: &str);

    /// A date left the graph, with the error that failed it, if any.
    fn date_done(&self, date: NaiveDate, error: Option<&crate::error::DateError>);

    /// A date passed through the graph with nothing to run (up to date once fetched, or
    /// missing at the source).
    fn date_skipped(&self, _date: NaiveDate) {}
}

/// An observer that only logs.
pub struct LogObserver;

impl Observer for LogObserver {
    fn note(&self, date: NaiveDate, stage: &str, text: &str) {
        tracing::info!(%date, stage, "{text}");
    }

    fn date_done(&self, date: NaiveDate, error: Option<&crate::error::DateError>) {
        match error {
            None => tracing::info!(%date, "date done"),
            Some(e) => tracing::warn!(%date, kind = e.kind.name(), "date failed: {e}"),
        }
    }
}

/// One date's inputs to a stage.
pub struct StageInput<'a> {
    /// The processing date.
    pub date: NaiveDate,
    /// All tables of the stage's inputs, by name.
    pub tables: &'a Tables,
    /// Milliseconds spent so far in each upstream stage, by stage name.
    pub timings: &'a BTreeMap<String, f64>,
    /// Where the stage reports what the user should see.
    pub observer: &'a dyn Observer,
}

impl Context {
    /// Loads every model the pipeline's stages need and checks what each stage needs of the
    /// configuration; fails before any work if something is missing. The labels validation
    /// judges with are read on a thread of their own meanwhile (an unreadable labels file
    /// fails the dates at validate). Feature join reads the address history `pipeline run`
    /// prepares ([`crate::history::prepare`], [`History::start`]). `judged`: the dates validate
    /// may judge, their batches in the input tree (the ground truth of their alerts is all that
    /// is read), or `None` for any date (all of it is).
    pub fn new(config: RunConfig, judged: Option<&[NaiveDate]>) -> Result<Self> {
        Self::for_stages(config, |_| true, History::prepared(), judged)
    }

    /// A context for the stages `include` selects only (their models, their checks), with
    /// `history` for feature join and the labels of the `judged` dates ([`Context::new`]): what
    /// [`run_prefix`] needs.
    pub fn for_stages(
        config: RunConfig,
        include: impl Fn(&StageSpec) -> bool,
        history: History,
        judged: Option<&[NaiveDate]>,
    ) -> Result<Self> {
        let mut models = BTreeMap::new();
        for s in config.pipeline.stages.iter().filter(|s| include(s)) {
            if let Some((kind, spec)) = s.stage.model() {
                let path = Model::resolve(&config.models, kind, spec)?;
                let model =
                    Model::load(&path, kind).map_err(|e| anyhow!("stage `{}`: {e:#}", s.name))?;
                tracing::info!(stage = %s.name, model = %path.display(), version = model.version(), "model loaded");
                models.insert(s.name.clone(), Arc::new(model));
            }
            s.stage
                .check(&config, models.get(&s.name).map(|m| m.as_ref()))
                .map_err(|e| anyhow!("stage `{}`: {e:#}", s.name))?;
        }
        let validates = config
            .pipeline
            .stages
            .iter()
            .any(|s| s.kind == &validate::KIND && include(s));
        const LABELS: &str = "the labels validation judges with";
        let knowledge = match config.pipeline.params_of::<validate::ValidateParams>() {
            Some(p) if validates => {
                let traps = validate::load_traps(p, &config)?;
                let (cfg, judged) = (config.clone(), judged.map(<[NaiveDate]>::to_vec));
                Background::spawn_idle(LABELS, move || {
                    validate::Knowledge::with_traps(&cfg, traps, judged.as_deref())
                })
            }
            _ => Background::ready(LABELS, validate::Knowledge::default()),
        };
        let graph_features = crate::features::graph_features_needed(
            models.values().map(|m| m.meta.feature_names.as_slice()),
        );
        Ok(Self {
            config,
            models,
            knowledge,
            history,
            arrivals: Default::default(),
            graph_features,
        })
    }

    /// The model file each model stage applies, by stage name.
    pub fn model_paths(&self) -> BTreeMap<String, PathBuf> {
        self.models
            .iter()
            .map(|(k, m)| (k.clone(), m.path.clone()))
            .collect()
    }

    /// The model of the first stage that applies one of `kind`.
    pub fn model_of(&self, kind: ModelKind) -> Option<&Arc<Model>> {
        self.config
            .pipeline
            .stages
            .iter()
            .find(|s| s.stage.model().is_some_and(|(k, _)| k == kind))
            .and_then(|s| self.models.get(&s.name))
    }

    /// The version of the first model of `kind` the pipeline applies, or `unknown`.
    pub fn model_version(&self, kind: ModelKind) -> String {
        self.model_of(kind)
            .map_or_else(|| "unknown".to_string(), |m| m.version().to_string())
    }

    /// The model `stage` applies.
    pub fn model(&self, stage: &StageSpec) -> Result<&Model> {
        self.models
            .get(&stage.name)
            .map(|m| m.as_ref())
            .ok_or_else(|| anyhow!("stage `{}`: no model loaded", stage.name))
    }
}

/// The model file each model stage of `cfg` would apply, without loading the models.
pub fn model_paths(cfg: &RunConfig) -> Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    for s in &cfg.pipeline.stages {
        if let Some((kind, spec)) = s.stage.model() {
            out.insert(s.name.clone(), Model::resolve(&cfg.models, kind, spec)?);
        }
    }
    Ok(out)
}

/// The table `t` from a stage's inputs.
pub fn table(tables: &Tables, t: Table) -> Result<&arrow::record_batch::RecordBatch> {
    tables
        .get(&t)
        .map(|b| &b.0)
        .ok_or_else(|| anyhow!("internal: input table `{}` missing", t.name()))
}

/// Checks what a stage of `kind` handed on: exactly the tables the kind produces, each as its
/// schema declares ([`Table::check`]). A failure is a bug in the stage.
pub fn check_output(kind: &Kind, tables: &Tables) -> Result<(), String> {
    for t in kind.produces {
        let b = tables
            .get(t)
            .ok_or_else(|| format!("table `{}` is missing", t.name()))?;
        t.check(&b.0)?;
    }
    match tables.keys().find(|t| !kind.produces.contains(t)) {
        Some(t) => Err(format!("table `{}` is not one it declares", t.name())),
        None => Ok(()),
    }
}

/// One table as a stage's output.
pub fn output(t: Table, batch: arrow::record_batch::RecordBatch) -> Tables {
    Tables::from([(t, crate::batch::ArrowBatch(batch))])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn registry_names_are_unique_and_found() {
        let names: BTreeSet<&str> = KINDS.iter().map(|k| k.name).collect();
        assert_eq!(names.len(), KINDS.len());
        for k in KINDS {
            assert_eq!(kind(k.name), Some(*k));
        }
        assert!(kind("frobnicate").is_none());
    }

    #[test]
    fn every_kind_parses_its_defaults_and_refuses_unknown_keys() {
        for k in KINDS {
            let stage = (k.parse)(None).unwrap_or_else(|e| panic!("{}: {e}", k.name));
            // What the fingerprint records must parse back to the same stage.
            if let serde_json::Value::Object(map) = stage.params_json() {
                let t: toml::Table = toml::from_str(&toml::to_string(&map).unwrap()).unwrap();
                let back = (k.parse)(Some(t)).unwrap();
                assert_eq!(back.params_json(), stage.params_json(), "{}", k.name);
            }
            let mut bogus = toml::Table::new();
            bogus.insert("bogus".into(), toml::Value::Integer(1));
            let err = (k.parse)(Some(bogus)).unwrap_err();
            assert!(err.contains("bogus"), "{}: {err}", k.name);
        }
    }

    #[test]
    fn every_consumed_table_is_produced_by_some_kind() {
        let produced: BTreeSet<Table> = KINDS
            .iter()
            .flat_map(|k| k.produces.iter().copied())
            .collect();
        for k in KINDS {
            for t in k.consumes {
                assert!(produced.contains(t), "{} consumes {t:?}", k.name);
            }
        }
    }
}
