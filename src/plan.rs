//! The incremental planner: what each date's outputs were made from, and what a run must redo.
//!
//! Every stage of every date has a fingerprint: a hash of its *parts* — the content of the input
//! files it reads (sha256 from META.json, else computed once and cached by size and mtime), the
//! model file it applies, its own parameters, the code version and the fingerprints of its
//! upstream stages. [`crate::state`] records the fingerprint of each stage's last good output. A
//! stage reruns when its fingerprint changed (the differing parts say why), when its outputs are
//! gone, or when a rerunning stage needs its tables and no cache of them exists.

use crate::config::{RunConfig, StageSpec};
use crate::layout::{self, BATCH_FILES};
use crate::stages::{decode, feature_join, DateInput, Kind, Part};
use crate::state::{DateState, StageRecord, StateStore};
use anyhow::Result;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The version of the code, as recorded in fingerprints: the package version and a hash of the
/// source that determines outputs ([`crate::code_scope`]: not the server, command line,
/// fetcher, generator, trainer or comparison).
pub const CODE_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "+",
    env!("AML_PIPELINE_SOURCE_HASH")
);

/// Where a date stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DateStatus {
    /// Every stage's output is current.
    UpToDate,
    /// Some stages must run.
    Stale,
    /// The date has no input batch.
    MissingInput,
    /// The date or its history window is fetched first; it is planned once in place.
    ToFetch,
    /// The last run of the date failed with this error (and it is stale).
    Failed(String),
    /// The date's input cannot be read, so it cannot be planned (and fails in a run).
    Unreadable(String),
}

/// What a run does with one date.
#[derive(Debug, Clone)]
pub struct DatePlan {
    /// The processing date.
    pub date: NaiveDate,
    /// Where the date stands.
    pub status: DateStatus,
    /// Each stage's current fingerprint and parts.
    pub records: BTreeMap<String, StageRecord>,
    /// The stages that run, in pipeline order.
    pub run: Vec<String>,
    /// Fresh stages whose cached tables feed a running stage.
    pub load: BTreeSet<String>,
    /// Why each running stage runs.
    pub reasons: BTreeMap<String, Vec<String>>,
}

/// The end of the reason given to a stage that runs only to feed another.
const FEEDS: &str = " needs its tables";

impl DatePlan {
    /// One line: the stages that run and why (the reasons of the first stale stage, not of
    /// one that only runs to feed it).
    pub fn describe(&self) -> String {
        match &self.status {
            DateStatus::UpToDate => "up to date".into(),
            DateStatus::MissingInput => "missing input".into(),
            DateStatus::ToFetch => "to fetch (planned once in place)".into(),
            DateStatus::Unreadable(e) => format!("unreadable input: {e}"),
            _ => {
                let reasons = |feeding: bool| {
                    self.run.iter().find_map(|s| {
                        self.reasons.get(s).filter(|r| {
                            !r.is_empty() && (feeding || !r.iter().all(|x| x.ends_with(FEEDS)))
                        })
                    })
                };
                let why = reasons(false)
                    .or_else(|| reasons(true))
                    .map(|r| r.join(", "))
                    .unwrap_or_default();
                let failed = match &self.status {
                    DateStatus::Failed(e) => format!(" [last run failed: {e}]"),
                    _ => String::new(),
                };
                format!("run {} ({why}){failed}", self.run.join(", "))
            }
        }
    }

    /// The plan for machines (`pipeline run --dry-run --format json`): date, status (and the
    /// error of a failed or unreadable date), the stages that run, those whose cached tables
    /// are loaded, why each runs, and every stage's fingerprint.
    pub fn to_json(&self) -> serde_json::Value {
        let (status, error) = match &self.status {
            DateStatus::UpToDate => ("up_to_date", None),
            DateStatus::Stale => ("stale", None),
            DateStatus::MissingInput => ("missing_input", None),
            DateStatus::ToFetch => ("to_fetch", None),
            DateStatus::Failed(e) => ("failed", Some(e)),
            DateStatus::Unreadable(e) => ("unreadable", Some(e)),
        };
        let fingerprints: BTreeMap<&String, &String> = self
            .records
            .iter()
            .map(|(s, r)| (s, &r.fingerprint))
            .collect();
        serde_json::json!({
            "date": self.date.to_string(),
            "status": status,
            "error": error,
            "run": self.run,
            "load": self.load,
            "reasons": self.reasons,
            "fingerprints": fingerprints,
        })
    }
}

/// Content hashes of files computed by the pipeline, cached by path, size and mtime.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct HashCache {
    entries: BTreeMap<PathBuf, (u64, i128, String)>,
    #[serde(skip)]
    dirty: bool,
}

impl HashCache {
    fn path(output: &Path) -> PathBuf {
        layout::file_hashes(output)
    }

    /// Loads the cache of an output root (empty if absent or unreadable).
    pub fn load(output: &Path) -> Self {
        crate::io::read_regular(&Self::path(output))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Saves the cache if it changed.
    pub fn save(&self, output: &Path) -> Result<()> {
        if self.dirty {
            std::fs::create_dir_all(layout::state_root(output))?;
            crate::io::write_json(&Self::path(output), self)?;
        }
        Ok(())
    }

    /// The sha256 of `path`, from the cache when its size and mtime are unchanged.
    pub fn sha256(&mut self, path: &Path) -> Result<String> {
        self.hash(path, None)
    }

    /// The content hash of a file whose sha256 META.json lists as `listed`: on first sight the
    /// listed value is trusted (decode verifies it), but once the file's size or mtime change
    /// it is hashed, so a file edited or corrupted behind META.json's back shows as changed.
    /// A missing file hashes as `missing`.
    pub fn listed(&mut self, path: &Path, listed: &str) -> Result<String> {
        if !crate::io::present(path)? {
            return Ok("missing".to_string());
        }
        self.hash(path, Some(listed))
    }

    fn hash(&mut self, path: &Path, trust: Option<&str>) -> Result<String> {
        let md = std::fs::metadata(path).map_err(|e| crate::io::read_error(path, e))?;
        if !md.is_file() {
            // Says what it is (a directory, a named pipe) without reading it.
            crate::io::open_regular(path).map_err(|e| crate::io::read_error(path, e))?;
        }
        let mtime = md
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i128);
        let h = match (self.entries.get(path), trust) {
            (Some((size, m, h)), _) if *size == md.len() && *m == mtime => return Ok(h.clone()),
            (None, Some(listed)) => listed.to_string(),
            _ => crate::io::sha256_file(path)?,
        };
        self.entries
            .insert(path.to_path_buf(), (md.len(), mtime, h.clone()));
        self.dirty = true;
        Ok(h)
    }
}

/// Plans runs of one configuration.
pub struct Planner {
    cfg: std::sync::Arc<RunConfig>,
    store: StateStore,
    hashes: HashCache,
    /// Content hashes of the input files of dates seen so far (for history windows), by
    /// date: `input:{file}` → hash, or why the date has none (`absent`, `unreadable: …`).
    window_inputs: BTreeMap<NaiveDate, Result<BTreeMap<String, String>, String>>,
    /// Whether the runs compute the graph and flow-history features, whose history is also
    /// made of the window's money flows.
    graph: bool,
    /// Fingerprint parts shared by every date, per stage (code, parameters, models, ground truth).
    common: BTreeMap<String, BTreeMap<String, String>>,
}

impl Planner {
    /// A planner for `cfg`; `models` gives the model file each model stage applies.
    pub fn new(cfg: &RunConfig, models: &BTreeMap<String, PathBuf>) -> Result<Self> {
        let mut hashes = HashCache::load(&cfg.output);
        let mut common = BTreeMap::new();
        let metas = models
            .values()
            .map(|m| crate::model::read_meta(m))
            .collect::<Result<Vec<_>>>()?;
        let graph = crate::features::graph_features_needed(
            metas.iter().map(|m| m.feature_names.as_slice()),
        );
        for s in &cfg.pipeline.stages {
            let mut parts = BTreeMap::new();
            parts.insert("code".to_string(), CODE_VERSION.to_string());
            parts.insert("stage".to_string(), stage_json(s));
            // Decode keeps every flow and feature join computes the graph features only for
            // a model that uses them: a matrix made without them is no use to one that does.
            let graph_stage = [decode::KIND.name, feature_join::KIND.name].contains(&s.kind.name);
            if graph && graph_stage {
                parts.insert("graph_features".to_string(), "computed".to_string());
            }
            if let Some(m) = models.get(&s.name) {
                parts.insert("model".to_string(), hashes.sha256(m)?);
            }
            for (name, part) in s.stage.common_parts(cfg)? {
                let value = match part {
                    Part::File(path) => hashes.sha256(&path)?,
                    Part::Text(text) => text,
                };
                parts.insert(name, value);
            }
            common.insert(s.name.clone(), parts);
        }
        Ok(Self {
            cfg: std::sync::Arc::new(cfg.clone()),
            store: StateStore::new(cfg),
            hashes,
            window_inputs: BTreeMap::new(),
            graph,
            common,
        })
    }

    /// The state store the plans refer to.
    pub fn store(&self) -> &StateStore {
        &self.store
    }

    /// Saves the file-hash cache (call after planning).
    pub fn finish(&self) -> Result<()> {
        self.hashes.save(&self.cfg.output)
    }

    /// The content hashes of a date's input files, or `None` if the date has no batch.
    fn input_parts(&mut self, date: NaiveDate) -> Result<Option<BTreeMap<String, String>>> {
        let dir = self.cfg.input_dir(date);
        if !dir.is_dir() {
            return Ok(None);
        }
        let meta: Option<serde_json::Value> = crate::io::read_if_present(&dir.join(layout::META))?
            .and_then(|b| serde_json::from_slice(&b).ok());
        let sums = meta
            .as_ref()
            .and_then(|m| m.get("sha256"))
            .and_then(|v| v.as_object());
        let mut parts = BTreeMap::new();
        for f in BATCH_FILES {
            let listed = sums.and_then(|s| s.get(f)).and_then(|v| v.as_str());
            let h = match listed {
                Some(h) => self.hashes.listed(&dir.join(f), &h.to_ascii_lowercase())?,
                None if crate::io::present(&dir.join(f))? => self.hashes.sha256(&dir.join(f))?,
                None => "absent".to_string(),
            };
            parts.insert(format!("input:{f}"), h);
        }
        Ok(Some(parts))
    }

    /// The content hash of a date's input `file` (`absent` without a batch), memoized.
    fn input_hash(&mut self, date: NaiveDate, file: &str) -> String {
        if !self.window_inputs.contains_key(&date) {
            // An unreadable date in the window counts as such in the others' history (and
            // fails on its own plan), so the dates around it still plan.
            let parts = match self.input_parts(date) {
                Ok(Some(parts)) => Ok(parts),
                Ok(None) => Err("absent".to_string()),
                Err(e) => Err(format!("unreadable: {}", crate::error::error_text(&e))),
            };
            self.window_inputs.insert(date, parts);
        }
        match &self.window_inputs[&date] {
            Ok(parts) => parts[&format!("input:{file}")].clone(),
            Err(why) => why.clone(),
        }
    }

    /// What a date's address history is made from: the `file` of the dates in its window
    /// ([`crate::history::window_dates`]; the date's own alerts reach it through decode).
    fn history_part(&mut self, date: NaiveDate, file: &str) -> String {
        let mut window = String::new();
        for d in crate::history::window_dates(date) {
            window.push_str(&format!("{d}={};", self.input_hash(d, file)));
        }
        crate::io::sha256_bytes(window.as_bytes())
    }

    /// Plans one date; `force` reruns every stage.
    pub fn plan(&mut self, date: NaiveDate, force: bool) -> Result<DatePlan> {
        let state = self.store.load(date)?;
        let mut plan = DatePlan {
            date,
            status: DateStatus::UpToDate,
            records: BTreeMap::new(),
            run: Vec::new(),
            load: BTreeSet::new(),
            reasons: BTreeMap::new(),
        };
        let Some(inputs) = self.input_parts(date)? else {
            plan.status = DateStatus::MissingInput;
            return Ok(plan);
        };
        let cfg = self.cfg.clone();
        let stages = &cfg.pipeline.stages;
        let mut must: BTreeSet<String> = BTreeSet::new();
        for s in stages {
            let mut parts = self.common[&s.name].clone();
            for input in s.stage.date_inputs() {
                match input {
                    DateInput::Batch => parts.extend(inputs.clone()),
                    DateInput::AlertHistory => {
                        let alerts = self.history_part(date, "alerts.parquet");
                        parts.insert("history".to_string(), alerts);
                        // The flow-history features are made of the window's money flows.
                        if self.graph {
                            let flows = self.history_part(date, "money_flows.parquet");
                            parts.insert("flow_history".to_string(), flows);
                        }
                    }
                }
            }
            for i in &s.inputs {
                parts.insert(format!("upstream:{i}"), plan.records[i].fingerprint.clone());
            }
            let rec = StageRecord {
                fingerprint: fingerprint(&parts),
                parts,
                run_id: String::new(),
            };
            let mut why = Vec::new();
            match state.stages.get(&s.name) {
                _ if force => why.push("forced".to_string()),
                None => why.push(if state.stages.is_empty() {
                    "never run".to_string()
                } else {
                    format!("no output of `{}` recorded", s.name)
                }),
                Some(old) if old.fingerprint != rec.fingerprint => {
                    why.extend(changed_parts(&s.name, &old.parts, &rec.parts))
                }
                Some(_) if !self.outputs_exist(s, date) => {
                    why.push(format!("outputs of `{}` missing", s.name))
                }
                Some(_) => {}
            }
            if !why.is_empty() {
                must.insert(s.name.clone());
                plan.reasons.insert(s.name.clone(), why);
            }
            plan.records.insert(s.name.clone(), rec);
        }
        // A running stage needs the tables of each input: from the input running too, or from
        // its cache; without a cache, the input runs as well.
        loop {
            let mut added = false;
            for s in stages.iter().rev() {
                if !must.contains(&s.name) {
                    continue;
                }
                for i in &s.inputs {
                    if must.contains(i) {
                        continue;
                    }
                    let spec = stages.iter().find(|x| &x.name == i).expect("checked graph");
                    let fp = &plan.records[i].fingerprint;
                    if !self.store.has_cache(date, i, fp, &spec.kind.cached())
                        || needs_uncached(s.kind, spec.kind)
                    {
                        must.insert(i.clone());
                        plan.reasons
                            .entry(i.clone())
                            .or_default()
                            .push(format!("`{}`{FEEDS}", s.name));
                        added = true;
                    }
                }
            }
            if !added {
                break;
            }
        }
        plan.run = stages
            .iter()
            .filter(|s| must.contains(&s.name))
            .map(|s| s.name.clone())
            .collect();
        plan.load = stages
            .iter()
            .filter(|s| must.contains(&s.name))
            .flat_map(|s| s.inputs.iter())
            .filter(|i| !must.contains(*i))
            .cloned()
            .collect();
        plan.status = match (&state.error, plan.run.is_empty()) {
            (_, true) => DateStatus::UpToDate,
            (Some(e), false) => DateStatus::Failed(e.clone()),
            (None, false) => DateStatus::Stale,
        };
        Ok(plan)
    }

    fn outputs_exist(&self, s: &StageSpec, date: NaiveDate) -> bool {
        let dir = self.cfg.output_dir(date);
        s.stage.output_files().iter().all(|f| dir.join(f).exists())
    }
}

/// Whether a consumer of kind `consumer` reads tables of `producer` that are never cached.
fn needs_uncached(consumer: &Kind, producer: &Kind) -> bool {
    consumer
        .consumes
        .iter()
        .any(|t| producer.produces.contains(t) && !t.cached())
}

/// A stage's kind, inputs and parameters as canonical JSON. The kind is spelled in CamelCase
/// (`FeatureJoin`), as fingerprints have recorded it from the start.
fn stage_json(s: &StageSpec) -> String {
    let kind: String = s
        .kind
        .name
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    serde_json::json!({"kind": kind, "inputs": s.inputs, "params": s.stage.params_json()})
        .to_string()
}

/// The fingerprint of a set of parts.
pub fn fingerprint(parts: &BTreeMap<String, String>) -> String {
    let json = serde_json::to_vec(parts).expect("strings serialise");
    crate::io::sha256_bytes(&json)[..16].to_string()
}

/// Human reasons for the parts that differ between two records of stage `name`.
fn changed_parts(
    name: &str,
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> Vec<String> {
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let mut why = Vec::new();
    for k in keys {
        if old.get(k) == new.get(k) || k.starts_with("upstream:") {
            continue;
        }
        why.push(match k.split_once(':') {
            Some(("input", f)) => format!("input {f} changed"),
            _ if k == "code" => "code version changed".to_string(),
            _ if k == "stage" => format!("parameters of `{name}` changed"),
            _ if k == "model" => format!("model of `{name}` changed"),
            _ if k == "history" => "alerts in the 30-date history window changed".to_string(),
            _ if k == "flow_history" => {
                "money flows in the 30-date history window changed".to_string()
            }
            _ => format!("{k} changed"),
        });
    }
    if why.is_empty() {
        why.push("upstream changed".into());
    }
    why
}

/// Plans every date in `dates` (the planner's hash cache is saved afterwards). A date whose
/// input or state cannot be read is planned as [`DateStatus::Unreadable`]: it fails alone.
pub fn plan_dates(
    cfg: &RunConfig,
    models: &BTreeMap<String, PathBuf>,
    dates: &[NaiveDate],
    force: bool,
) -> Result<Vec<DatePlan>> {
    let mut planner = Planner::new(cfg, models)?;
    let plans = dates
        .iter()
        .map(|&d| {
            planner.plan(d, force).unwrap_or_else(|e| DatePlan {
                date: d,
                status: DateStatus::Unreadable(crate::error::error_text(&e)),
                records: BTreeMap::new(),
                run: Vec::new(),
                load: BTreeSet::new(),
                reasons: BTreeMap::new(),
            })
        })
        .collect::<Vec<_>>();
    planner.finish()?;
    Ok(plans)
}

/// Records a date's outcome: the stages that produced output in this run, and its error.
pub fn record(
    store: &StateStore,
    date: NaiveDate,
    done: &BTreeMap<String, StageRecord>,
    error: Option<String>,
) -> Result<()> {
    let mut state = store.load(date)?;
    state.stages.extend(done.clone());
    state.error = error;
    store.save(date, &state)?;
    store.prune_cache(date, &state)
}

/// Forgets the records of the stages about to rerun, so no record outlives its outputs.
pub fn invalidate(store: &StateStore, plan: &DatePlan) -> Result<()> {
    let mut state: DateState = store.load(plan.date)?;
    let before = state.stages.len();
    state.stages.retain(|k, _| !plan.run.contains(k));
    if state.stages.len() != before {
        store.save(plan.date, &state)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(v: &[(&str, &str)]) -> BTreeMap<String, String> {
        v.iter()
            .map(|(k, x)| (k.to_string(), x.to_string()))
            .collect()
    }

    #[test]
    fn changed_parts_say_what_changed_in_words() {
        let old = parts(&[
            ("code", "1"),
            ("input:alerts.parquet", "a"),
            ("model", "m"),
            ("upstream:decode", "u"),
        ]);
        let new = parts(&[
            ("code", "2"),
            ("input:alerts.parquet", "b"),
            ("model", "m"),
            ("upstream:decode", "v"),
            ("traps", "t"),
        ]);
        assert_eq!(
            changed_parts("score", &old, &new),
            vec![
                "code version changed",
                "input alerts.parquet changed",
                "traps changed"
            ]
        );
        let only_upstream = parts(&[("upstream:decode", "w")]);
        assert_eq!(
            changed_parts("score", &parts(&[("upstream:decode", "u")]), &only_upstream),
            vec!["upstream changed"]
        );
    }

    #[test]
    fn a_plan_names_the_first_stale_stages_reasons_and_reads_as_json() {
        let date = NaiveDate::from_ymd_opt(2025, 10, 1).unwrap();
        let plan = DatePlan {
            date,
            status: DateStatus::Failed("boom".into()),
            records: BTreeMap::new(),
            run: vec!["decode".into(), "score".into()],
            load: BTreeSet::new(),
            reasons: BTreeMap::from([
                ("decode".to_string(), vec![format!("`score`{FEEDS}")]),
                (
                    "score".to_string(),
                    vec!["model of `score` changed".to_string()],
                ),
            ]),
        };
        assert_eq!(
            plan.describe(),
            "run decode, score (model of `score` changed) [last run failed: boom]"
        );
        let j = plan.to_json();
        assert_eq!(j["status"], "failed");
        assert_eq!(j["error"], "boom");
        assert_eq!(j["run"], serde_json::json!(["decode", "score"]));
        assert_eq!(j["reasons"]["score"][0], "model of `score` changed");
    }
}
