//! Run configuration (`configs/*.toml`) and the pipeline graph (`pipelines/*.toml`).
//!
//! Both are checked before any work starts: unknown keys, unknown stage kinds, missing or
//! cyclic inputs and tables no input provides are refused with the file and key named.

use crate::dates::DateSelection;
use crate::layout;
use crate::stages::{Kind, Stage, KINDS};
use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `configs/*.toml`: what to run, on which data, with which models.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The file this configuration was read from.
    pub path: PathBuf,
    /// The pipeline graph.
    pub pipeline: PipelineSpec,
    /// Network name, e.g. `torus`.
    pub network: String,
    /// Window size of the batches, e.g. 195.
    pub window_days: u32,
    /// Input root (`{input}/{network}/{date}/{window_days}/…`).
    pub input: PathBuf,
    /// Output root, same layout.
    pub output: PathBuf,
    /// Directory of trained models.
    pub models: PathBuf,
    /// Dates to process.
    pub dates: DateSelection,
    /// Worker threads.
    pub workers: usize,
    /// Where batches are fetched from (`s3://`, `gs://`, `az://`, `http(s)://`, `file://` or a
    /// directory), or `None` to use the input tree as it is.
    pub source: Option<String>,
    /// Endpoint of an S3-compatible store (default: `AWS_ENDPOINT_URL`, else AWS).
    pub endpoint: Option<String>,
    /// Region of the store (default: `AWS_REGION`).
    pub region: Option<String>,
    /// Downloads in flight at once.
    pub fetch_concurrency: usize,
    /// The public repository of the models' code, sent with every submitted score (the
    /// validator's Tier 1 requires it) and served as `/version`'s `github_url`.
    pub model_github_url: Option<String>,
    /// The date of the miner's first submission to the validator, for the expected reward
    /// (the first 29 days are paid a flat 0.1).
    pub first_submission_date: Option<chrono::NaiveDate>,
    /// The subnet validator's base URL; with `submitter_id`, `pipeline run` submits each
    /// validated date to it ([`crate::submit`]).
    pub validator_url: Option<String>,
    /// This miner's id at the validator.
    pub submitter_id: Option<String>,
    /// Rows per submission request.
    pub rows_per_request: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRunConfig {
    pipeline: PathBuf,
    network: String,
    window_days: u32,
    input: PathBuf,
    output: PathBuf,
    models: PathBuf,
    #[serde(default = "default_dates")]
    dates: String,
    #[serde(default = "default_workers")]
    workers: usize,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default = "default_fetch_concurrency")]
    fetch_concurrency: usize,
    #[serde(default)]
    model_github_url: Option<String>,
    #[serde(default)]
    first_submission_date: Option<String>,
    #[serde(default)]
    validator_url: Option<String>,
    #[serde(default)]
    submitter_id: Option<String>,
    #[serde(default = "default_rows_per_request")]
    rows_per_request: usize,
}

fn default_rows_per_request() -> usize {
    10_000
}

fn default_fetch_concurrency() -> usize {
    8
}

fn default_dates() -> String {
    "all".into()
}

fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl RunConfig {
    /// Reads a run configuration; relative paths in it are relative to the file's directory.
    pub fn load(path: &Path) -> Result<Self> {
        let text = crate::io::read_text(path)
            .with_context(|| format!("cannot read run config {}", path.display()))?;
        let raw: RawRunConfig =
            toml::from_str(&text).map_err(|e| anyhow!("{}: {}", path.display(), e.message()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let rel = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let dates = raw
            .dates
            .parse()
            .with_context(|| format!("{}: key `dates`", path.display()))?;
        if raw.workers == 0 {
            bail!("{}: key `workers` must be at least 1", path.display());
        }
        if raw.fetch_concurrency == 0 {
            bail!(
                "{}: key `fetch_concurrency` must be at least 1",
                path.display()
            );
        }
        // A plain directory as source is relative to the config file, like the other paths.
        let source = raw.source.filter(|s| !s.is_empty()).map(|s| {
            if s.contains("://") {
                s
            } else {
                rel(Path::new(&s)).display().to_string()
            }
        });
        let model_github_url = raw.model_github_url.filter(|s| !s.is_empty());
        if let Some(u) = &model_github_url {
            if !(u.starts_with("https://") || u.starts_with("http://"))
                || u.contains(char::is_whitespace)
            {
                bail!(
                    "{}: key `model_github_url` is {u:?}; expected the repository's URL, e.g. https://github.com/you/aml-pipeline",
                    path.display()
                );
            }
        }
        if raw.rows_per_request == 0 {
            bail!(
                "{}: key `rows_per_request` must be at least 1",
                path.display()
            );
        }
        let first_submission_date = raw
            .first_submission_date
            .filter(|s| !s.is_empty())
            .map(|s| {
                chrono::NaiveDate::parse_from_str(&s, "%Y-%m-%d").map_err(|_| {
                    anyhow!(
                        "{}: key `first_submission_date` is {s:?}; expected YYYY-MM-DD",
                        path.display()
                    )
                })
            })
            .transpose()?;
        let pipeline = PipelineSpec::load(&rel(&raw.pipeline))
            .with_context(|| format!("{}: key `pipeline`", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            pipeline,
            network: raw.network,
            window_days: raw.window_days,
            input: rel(&raw.input),
            output: rel(&raw.output),
            models: rel(&raw.models),
            dates,
            workers: raw.workers,
            source,
            endpoint: raw.endpoint.filter(|s| !s.is_empty()),
            region: raw.region.filter(|s| !s.is_empty()),
            fetch_concurrency: raw.fetch_concurrency,
            model_github_url,
            first_submission_date,
            validator_url: raw.validator_url.filter(|s| !s.is_empty()),
            submitter_id: raw.submitter_id.filter(|s| !s.is_empty()),
            rows_per_request: raw.rows_per_request,
        })
    }

    /// The batch directory of one date.
    pub fn input_dir(&self, date: chrono::NaiveDate) -> PathBuf {
        layout::batch_dir(&self.input, &self.network, date, self.window_days)
    }

    /// The output directory of one date.
    pub fn output_dir(&self, date: chrono::NaiveDate) -> PathBuf {
        layout::batch_dir(&self.output, &self.network, date, self.window_days)
    }

    /// Where the network's labels are (`{input}/{network}`).
    pub fn labels_dir(&self) -> PathBuf {
        layout::network_dir(&self.input, &self.network)
    }
}

/// One stage of the graph.
#[derive(Debug, Clone)]
pub struct StageSpec {
    /// Unique name, used by other stages' `inputs`.
    pub name: String,
    /// What the stage does, from the registry ([`crate::stages::KINDS`]).
    pub kind: &'static Kind,
    /// Names of the stages whose tables it reads.
    pub inputs: Vec<String>,
    /// The configured stage: its kind's parameters and behaviour.
    pub stage: Arc<dyn Stage>,
}

/// A checked pipeline graph, stages in a topological order.
#[derive(Debug, Clone)]
pub struct PipelineSpec {
    /// The file it was read from.
    pub path: PathBuf,
    /// The stages, each after all of its inputs.
    pub stages: Vec<StageSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    stage: Vec<RawStage>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStage {
    name: String,
    kind: String,
    #[serde(default)]
    inputs: Vec<String>,
    #[serde(default)]
    params: Option<toml::Table>,
}

impl PipelineSpec {
    /// Reads and checks a pipeline file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = crate::io::read_text(path)
            .with_context(|| format!("cannot read pipeline file {}", path.display()))?;
        Self::parse(&text, path)
    }

    /// Parses and checks a pipeline graph; `path` is used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let p = path.display();
        let raw: RawPipeline = toml::from_str(text).map_err(|e| anyhow!("{p}: {}", e.message()))?;
        let mut stages = Vec::new();
        let mut names = BTreeSet::new();
        for s in raw.stage {
            let kind = crate::stages::kind(&s.kind).ok_or_else(|| {
                let known: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
                anyhow!(
                    "{p}: stage `{}`: unknown kind `{}` (expected one of: {})",
                    s.name,
                    s.kind,
                    known.join(", ")
                )
            })?;
            if !names.insert(s.name.clone()) {
                bail!("{p}: stage name `{}` is used twice", s.name);
            }
            let stage = (kind.parse)(s.params)
                .map_err(|e| anyhow!("{p}: stage `{}` params: {e}", s.name))?;
            stages.push(StageSpec {
                name: s.name,
                kind,
                inputs: s.inputs,
                stage,
            });
        }
        if stages.is_empty() {
            bail!("{p}: no [[stage]] declared");
        }
        let stages = toposort(stages, &p.to_string())?;
        let by_name: BTreeMap<&str, &StageSpec> =
            stages.iter().map(|s| (s.name.as_str(), s)).collect();
        for s in &stages {
            for need in s.kind.consumes {
                let from: Vec<&str> = s
                    .inputs
                    .iter()
                    .map(String::as_str)
                    .filter(|i| by_name[i].kind.produces.contains(need))
                    .collect();
                match from.len() {
                    1 => {}
                    0 => bail!(
                        "{p}: stage `{}` needs table `{}`, which none of its inputs {:?} produces",
                        s.name,
                        need.name(),
                        s.inputs
                    ),
                    _ => bail!(
                        "{p}: stage `{}` gets table `{}` from several inputs {from:?}; keep one",
                        s.name,
                        need.name()
                    ),
                }
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            stages,
        })
    }

    /// Stages whose output no other stage reads: the ends of the graph.
    pub fn sinks(&self) -> Vec<&StageSpec> {
        self.stages
            .iter()
            .filter(|s| !self.stages.iter().any(|t| t.inputs.contains(&s.name)))
            .collect()
    }

    /// The first stage of a kind, if any.
    pub fn stage_of(&self, kind: &Kind) -> Option<&StageSpec> {
        self.stages.iter().find(|s| s.kind == kind)
    }

    /// The parameters of the first stage whose parameters are of type `T`, if any.
    pub fn params_of<T: 'static>(&self) -> Option<&T> {
        self.stages
            .iter()
            .find_map(|s| s.stage.as_any().downcast_ref::<T>())
    }
}

fn toposort(mut pending: Vec<StageSpec>, p: &str) -> Result<Vec<StageSpec>> {
    let names: BTreeSet<String> = pending.iter().map(|s| s.name.clone()).collect();
    let fetches: Vec<String> = pending
        .iter()
        .filter(|s| s.stage.brings_input())
        .map(|s| s.name.clone())
        .collect();
    if fetches.len() > 1 {
        bail!("{p}: stages {fetches:?} all bring the batches in place; keep one");
    }
    for s in &pending {
        for (k, i) in s.inputs.iter().enumerate() {
            if s.inputs[..k].contains(i) {
                bail!("{p}: stage `{}` lists input `{i}` twice", s.name);
            }
            if !names.contains(i) {
                bail!(
                    "{p}: stage `{}` has input `{i}`, which is not a stage of this pipeline",
                    s.name
                );
            }
        }
        let source = s.kind.consumes.is_empty();
        let after_fetch = |i: &String| fetches.contains(i);
        if source && s.stage.brings_input() && !s.inputs.is_empty() {
            bail!(
                "{p}: stage `{}`: a {} stage comes first and takes no inputs",
                s.name,
                s.kind.name
            );
        }
        if source && !s.stage.brings_input() && !s.inputs.iter().all(after_fetch) {
            bail!(
                "{p}: stage `{}`: a {} stage reads its data itself; its only inputs can be fetch stages (it runs after them)",
                s.name,
                s.kind.name
            );
        }
        if source && !s.stage.brings_input() && !fetches.is_empty() && s.inputs.is_empty() {
            bail!(
                "{p}: stage `{}` reads the batch that stage `{}` brings in place: add inputs = [\"{}\"]",
                s.name,
                fetches[0],
                fetches[0]
            );
        }
        if !source && s.inputs.is_empty() {
            bail!("{p}: stage `{}` has no inputs", s.name);
        }
    }
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    while !pending.is_empty() {
        let before = pending.len();
        let mut rest = Vec::new();
        for s in pending {
            if s.inputs.iter().all(|i| done.contains(i)) {
                done.insert(s.name.clone());
                out.push(s);
            } else {
                rest.push(s);
            }
        }
        if rest.len() == before {
            let cyc: Vec<_> = rest.iter().map(|s| s.name.as_str()).collect();
            bail!("{p}: the stages {cyc:?} form a cycle through their `inputs`");
        }
        pending = rest;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = include_str!("../pipelines/daily.toml");

    fn parse(t: &str) -> Result<PipelineSpec> {
        PipelineSpec::parse(t, Path::new("p.toml"))
    }

    #[test]
    fn shipped_pipeline_is_valid() {
        let p = parse(GOOD).unwrap();
        assert_eq!(p.stages[0].kind.name, "fetch");
        assert_eq!(p.stages[1].kind.name, "decode");
        assert_eq!(p.sinks().len(), 1);
    }

    #[test]
    fn a_kinds_parameters_are_found_by_type() {
        use crate::stages::{submit::SubmitParams, validate::ValidateParams};
        let p = parse(GOOD).unwrap();
        assert_eq!(
            p.params_of::<ValidateParams>().unwrap().max_latency_ms,
            100.0
        );
        assert_eq!(p.params_of::<SubmitParams>().unwrap().attempts, 5);
        assert!(p.params_of::<String>().is_none());
    }

    #[test]
    fn refuses_bad_graphs() {
        let err = |t: &str| format!("{:#}", parse(t).unwrap_err());
        let unknown = err("[[stage]]\nname='a'\nkind='frobnicate'");
        assert!(unknown.contains("unknown kind `frobnicate`"), "{unknown}");
        for k in crate::stages::KINDS {
            assert!(unknown.contains(k.name), "{unknown} lists every kind");
        }
        assert!(err("[[stage]]\nname='a'\nkind='feature_join'").contains("has no inputs"));
        assert!(err("[[stage]]\nname='a'\nkind='decode'\ncolour=1").contains("colour"));
        assert!(
            err("[[stage]]\nname='a'\nkind='decode'\n[stage.params]\nbogus=1").contains("bogus")
        );
        let cyc = "[[stage]]\nname='d'\nkind='decode'\n[[stage]]\nname='a'\nkind='score'\ninputs=['b']\n[[stage]]\nname='b'\nkind='score'\ninputs=['a']";
        assert!(err(cyc).contains("cycle"));
        assert!(err("[[stage]]\nname='a'\nkind='score'\ninputs=['x']").contains("input `x`"));
        let missing =
            "[[stage]]\nname='d'\nkind='decode'\n[[stage]]\nname='s'\nkind='score'\ninputs=['d']";
        assert!(err(missing).contains("needs table `matrix`"));
        let two = "[[stage]]\nname='d'\nkind='decode'\n[[stage]]\nname='e'\nkind='decode'\n[[stage]]\nname='f'\nkind='feature_join'\ninputs=['d', 'e']";
        assert!(
            err(two).contains("gets table `alerts` from several inputs [\"d\", \"e\"]"),
            "{}",
            err(two)
        );
        let twice = "[[stage]]\nname='d'\nkind='decode'\n[[stage]]\nname='f'\nkind='feature_join'\ninputs=['d', 'd']";
        assert!(
            err(twice).contains("lists input `d` twice"),
            "{}",
            err(twice)
        );
    }

    #[test]
    fn a_fetch_stage_comes_first_and_the_sources_follow_it() {
        let err = |t: &str| format!("{:#}", parse(t).unwrap_err());
        let f = "[[stage]]\nname='f'\nkind='fetch'\n";
        let ok = format!("{f}[[stage]]\nname='d'\nkind='decode'\ninputs=['f']");
        assert_eq!(parse(&ok).unwrap().stages[1].inputs, ["f"]);
        let unfollowed = format!("{f}[[stage]]\nname='d'\nkind='decode'");
        assert!(
            err(&unfollowed).contains(
                "stage `d` reads the batch that stage `f` brings in place: add inputs = [\"f\"]"
            ),
            "{}",
            err(&unfollowed)
        );
        let late = format!("{ok}\n[[stage]]\nname='g'\nkind='fetch'\ninputs=['d']");
        assert!(
            err(&late).contains("all bring the batches in place"),
            "{}",
            err(&late)
        );
        let fed = "[[stage]]\nname='d'\nkind='decode'\ninputs=['f']\n[[stage]]\nname='f'\nkind='fetch'\ninputs=['d']";
        assert!(
            err(fed).contains("comes first and takes no inputs"),
            "{}",
            err(fed)
        );
        let after_decode =
            "[[stage]]\nname='a'\nkind='decode'\n[[stage]]\nname='b'\nkind='decode'\ninputs=['a']";
        assert!(err(after_decode).contains("its only inputs can be fetch stages"));
        assert!(err(&format!("{f}[stage.params]\nahead=2")).contains("ahead"));
    }
}
