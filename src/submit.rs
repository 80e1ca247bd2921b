//! Sending a date's scores to the subnet validator: `POST {validator}/api/v1/submissions?network=`
//! with `{"submissions": [row, …]}` in chunks of `rows_per_request`, only for dates whose
//! validation passed.
//!
//! The validator stores every row it is sent and its Tier 1 counts every stored row, so a day
//! must reach it exactly once. Each accepted chunk is recorded in `.state/submissions/` before
//! the next is sent, so a rerun resumes after the last accepted one; when an answer is lost (a
//! dropped connection, a timeout, a 5xx), the validator's read-back
//! (`GET /api/v1/submissions/{submitter}/latest`) tells whether the chunk was stored before it
//! is sent again. Since the read-back shows only the latest date, a run sends its dates in
//! ascending order (the submit stage waits for the run's earlier dates, see
//! [`crate::stages::Stage::in_date_order`]). A date already submitted whole is not sent again: unchanged, there is
//! nothing to do; changed (another model, other scores), a second submission would leave the
//! validator with both and fail Tier 1 on duplicates, so it takes `--force`.

use crate::config::RunConfig;
use anyhow::{anyhow, bail, Context, Result};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

/// Where and as whom to submit.
#[derive(Debug, Clone)]
pub struct SubmitConfig {
    /// The validator's base URL, e.g. `https://validator.example:8000`.
    pub validator_url: String,
    /// This miner's id at the validator.
    pub submitter_id: String,
    /// The models' repository, sent with every row (Tier 1 requires it).
    pub model_github_url: String,
    /// Rows per request.
    pub rows_per_request: usize,
    /// Attempts per request on a 5xx, a timeout or a dropped connection.
    pub attempts: u32,
    /// The first wait between attempts (doubled each time).
    pub retry_delay: Duration,
    /// Time one request may take.
    pub timeout: Duration,
}

impl SubmitConfig {
    /// The settings of `cfg` (its keys after any flag overrides), with the retry policy; `None`
    /// when it names no validator or no submitter. A validator without `model_github_url` is
    /// an error: every row would fail Tier 1.
    pub fn from_run(
        cfg: &RunConfig,
        attempts: u32,
        retry_delay: Duration,
        timeout: Duration,
    ) -> Result<Option<Self>> {
        let (Some(validator_url), Some(submitter_id)) = (&cfg.validator_url, &cfg.submitter_id)
        else {
            return Ok(None);
        };
        let Some(model_github_url) = &cfg.model_github_url else {
            bail!(
                "submitting needs model_github_url (the validator's Tier 1 fails every row without it): set it in {} or pass --model-github-url",
                cfg.path.display()
            );
        };
        Ok(Some(Self {
            validator_url: validator_url.clone(),
            submitter_id: submitter_id.clone(),
            model_github_url: model_github_url.clone(),
            rows_per_request: cfg.rows_per_request.max(1),
            attempts: attempts.max(1),
            retry_delay,
            timeout,
        }))
    }
}

/// What `.state/submissions/` records of a date.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// Hash of what was sent: scores file, validator, submitter and GitHub URL.
    pub fingerprint: String,
    /// The `submission_id` of every row sent.
    pub submission_id: String,
    /// Rows of the date.
    pub rows: usize,
    /// Rows the validator accepted so far (whole chunks).
    pub accepted_rows: usize,
    /// Rows of this submitter for the date at the validator before this submission began.
    pub baseline: Option<u64>,
}

/// How a date's submission ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Rows sent now (and the requests it took).
    Submitted { rows: usize, requests: usize },
    /// Already submitted whole with these scores.
    Unchanged,
    /// Submitted whole earlier with other scores: not sent again without `--force`.
    Changed,
    /// Not sent: the date's validation did not pass (or is missing).
    NotValidated(String),
    /// Request bodies written instead of sent (`--dry-run`).
    DryRun { rows: usize, requests: usize },
    /// The date has no alerts: nothing to send.
    Empty,
}

impl Outcome {
    /// One line for the user on a date's submission to `validator_url`.
    pub fn describe(&self, validator_url: &str) -> String {
        match self {
            Self::Submitted { rows, requests } => {
                format!("{rows} scores sent in {requests} requests to {validator_url}")
            }
            Self::Unchanged => "already submitted".to_string(),
            Self::Empty => "no alerts, nothing to send".to_string(),
            Self::Changed => "changed since it was submitted; not sent again (the validator keeps every row, so a second submission fails Tier 1 on duplicates; `pipeline submit --force` sends it anyway)".to_string(),
            Self::NotValidated(why) => format!("not sent: {why}"),
            Self::DryRun { rows, requests } => {
                format!("{rows} scores in {requests} requests (dry run)")
            }
        }
    }

    /// Rows sent to the validator.
    pub fn rows_sent(&self) -> usize {
        match self {
            Self::Submitted { rows, .. } => *rows,
            _ => 0,
        }
    }
}

/// One date's rows, in the order of its `alert_scores.parquet`.
struct DateRows {
    ids: Vec<String>,
    scores: Vec<f64>,
    versions: Vec<String>,
    fingerprint: String,
}

fn record_path(cfg: &RunConfig, date: NaiveDate) -> PathBuf {
    crate::layout::submission(&cfg.output, &cfg.network, cfg.window_days, date)
}

fn load_record(cfg: &RunConfig, date: NaiveDate) -> Result<Option<Record>> {
    let path = record_path(cfg, date);
    crate::io::read_if_present(&path)?
        .map(|b| {
            serde_json::from_slice(&b)
                .with_context(|| format!("{}: unreadable submission record", path.display()))
        })
        .transpose()
}

fn save_record(cfg: &RunConfig, date: NaiveDate, r: &Record) -> Result<()> {
    let path = record_path(cfg, date);
    std::fs::create_dir_all(path.parent().expect("has a parent"))?;
    crate::state::write_output_json(&cfg.output, &path, r)
}

/// Why a date's outputs may not be submitted, if they may not.
fn not_validated(cfg: &RunConfig, date: NaiveDate) -> Result<Option<String>> {
    let path = cfg.output_dir(date).join(crate::layout::VALIDATION);
    let Some(v) = crate::stages::validate::Report::read(&path)? else {
        return Ok(Some(format!(
            "{} missing: run or validate the date first",
            path.display()
        )));
    };
    let t1 = &v.validator.tier1;
    let own = [
        ("completeness", t1.completeness),
        ("score_range", t1.score_range),
        ("no_duplicates", t1.no_duplicates),
    ];
    let failed: Vec<&str> = own
        .iter()
        .filter(|(_, f)| *f != 1.0)
        .map(|(k, _)| *k)
        .collect();
    Ok(match (v.integrity.passed, failed.is_empty()) {
        (true, true) => None,
        (true, false) => Some(format!("Tier 1 would fail: {}", failed.join(", "))),
        _ => Some("the integrity tier failed".to_string()),
    })
}

fn read_rows(cfg: &RunConfig, sc: &SubmitConfig, date: NaiveDate) -> Result<DateRows> {
    let path = cfg.output_dir(date).join(crate::layout::ALERT_SCORES);
    let table = crate::stages::validate::read_scores(&path)?;
    let mut out = DateRows {
        ids: Vec::new(),
        scores: Vec::new(),
        versions: Vec::new(),
        fingerprint: String::new(),
    };
    for r in table.rows() {
        let score = r.score.filter(|s| (0.0..=1.0).contains(s)).ok_or_else(|| {
            anyhow!(
                "{}: alert {} has no score in [0, 1]",
                path.display(),
                r.alert_id
            )
        })?;
        out.ids.push(r.alert_id.to_string());
        out.scores.push(score);
        out.versions.push(r.model_version.to_string());
    }
    let what = format!(
        "{}|{}|{}|{}",
        crate::io::sha256_file(&path)?,
        sc.validator_url,
        sc.submitter_id,
        sc.model_github_url
    );
    out.fingerprint = crate::io::sha256_bytes(what.as_bytes())[..16].to_string();
    Ok(out)
}

/// The body of one request: rows `range` of the date.
fn body(
    cfg: &RunConfig,
    sc: &SubmitConfig,
    date: NaiveDate,
    rows: &DateRows,
    submission_id: &str,
    range: std::ops::Range<usize>,
) -> Value {
    let day = date.format("%Y-%m-%d").to_string();
    let submissions: Vec<Value> = range
        .map(|i| {
            json!({
                "submission_id": submission_id,
                "submitter_id": sc.submitter_id,
                "processing_date": day,
                "window_days": cfg.window_days,
                "alert_id": rows.ids[i],
                "score": rows.scores[i],
                "model_version": rows.versions[i],
                "model_github_url": sc.model_github_url,
                "score_metadata": null,
            })
        })
        .collect();
    json!({ "submissions": submissions })
}

/// The HTTP side: a blocking facade over reqwest.
struct Client {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
}

/// A request's result as far as the submission cares.
enum Answer {
    Ok,
    /// The validator refused the request (4xx): its words.
    Refused(String),
    /// No usable answer (5xx, timeout, dropped connection): the request may or may not have
    /// been stored.
    Lost(String),
}

impl Client {
    fn new(timeout: Duration) -> Result<Self> {
        Ok(Self {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
            http: reqwest::Client::builder()
                .timeout(timeout)
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
        })
    }

    fn post(&self, url: &str, body: &Value) -> Answer {
        let bytes = body.to_string();
        self.rt.block_on(async {
            let sent = self
                .http
                .post(url)
                .header("content-type", "application/json")
                .body(bytes)
                .send()
                .await;
            match sent {
                Err(e) => Answer::Lost(e.to_string()),
                Ok(r) if r.status().is_success() => Answer::Ok,
                Ok(r) => {
                    let status = r.status();
                    let moved = r
                        .headers()
                        .get("location")
                        .and_then(|l| l.to_str().ok())
                        .map(str::to_string);
                    let text = r.text().await.unwrap_or_default();
                    if status.is_redirection() {
                        Answer::Refused(format!(
                            "{status}: redirected to {}; set validator_url to the final address",
                            moved.unwrap_or_default()
                        ))
                    } else if status.is_client_error() {
                        Answer::Refused(format!("{status}: {}", text.trim()))
                    } else {
                        Answer::Lost(format!("{status}: {}", text.trim()))
                    }
                }
            }
        })
    }

    /// The number of rows the validator holds for this submitter on `date`, if its read-back
    /// can tell (it shows only the submitter's latest date).
    fn stored(&self, cfg: &RunConfig, sc: &SubmitConfig, date: NaiveDate) -> Result<Option<u64>> {
        let url = endpoint(
            sc,
            &["api", "v1", "submissions", &sc.submitter_id, "latest"],
            &cfg.network,
        )?;
        self.rt.block_on(async {
            let r = self.http.get(url.clone()).send().await?;
            let status = r.status();
            let body = r.bytes().await?;
            // Only the validator's own "no submissions" 404 means none; any other (a wrong
            // base path, a proxy) tells nothing.
            if status == reqwest::StatusCode::NOT_FOUND
                && String::from_utf8_lossy(&body).contains("No submissions found")
            {
                return Ok(Some(0));
            }
            if !status.is_success() {
                bail!("{url}: {status}");
            }
            let v: Value = serde_json::from_slice(&body)?;
            let same = v["processing_date"].as_str() == Some(&date.format("%Y-%m-%d").to_string())
                && v["window_days"].as_u64() == Some(cfg.window_days as u64);
            Ok(if same {
                v["submission_count"].as_u64()
            } else if v["processing_date"]
                .as_str()
                .is_some_and(|d| d < date.format("%Y-%m-%d").to_string().as_str())
            {
                Some(0)
            } else {
                None
            })
        })
    }
}

/// `{validator_url}/{segments…}?network={network}`, every part escaped.
fn endpoint(sc: &SubmitConfig, segments: &[&str], network: &str) -> Result<url::Url> {
    let mut url = url::Url::parse(&sc.validator_url)
        .with_context(|| format!("validator_url {:?} is not a URL", sc.validator_url))?;
    url.path_segments_mut()
        .map_err(|_| anyhow!("validator_url {:?} cannot take a path", sc.validator_url))?
        .pop_if_empty()
        .extend(segments);
    url.query_pairs_mut().append_pair("network", network);
    Ok(url)
}

/// Holds the date's submission lock: one submission of a date at a time, across processes.
fn lock_date(cfg: &RunConfig, date: NaiveDate) -> Result<std::fs::File> {
    let path = record_path(cfg, date).with_extension("lock");
    std::fs::create_dir_all(path.parent().expect("has a parent"))?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    file.lock()
        .with_context(|| format!("cannot lock {}", path.display()))?;
    Ok(file)
}

/// Whether the next chunk (`len` rows after the accepted ones) is already stored, by the
/// validator's read-back: its count is the baseline plus the accepted rows (not stored) or
/// plus this chunk too (stored). Anything else cannot be told apart, and is an error.
fn chunk_stored(
    client: &Client,
    cfg: &RunConfig,
    sc: &SubmitConfig,
    date: NaiveDate,
    rec: &Record,
    len: usize,
) -> Result<bool> {
    let expect = rec.baseline.map(|b| b + rec.accepted_rows as u64);
    match (client.stored(cfg, sc, date).ok().flatten(), expect) {
        (Some(now), Some(before)) if now == before + len as u64 => Ok(true),
        (Some(now), Some(before)) if now == before => Ok(false),
        (now, _) => bail!(
            "cannot tell whether rows {}..{} of {date} are stored: the validator's read-back {}; check it before sending again with --force",
            rec.accepted_rows,
            rec.accepted_rows + len,
            match (now, expect) {
                (Some(c), Some(e)) => format!("shows {c} rows, not the {e} or {} expected", e + len as u64),
                _ => "does not show this date".to_string(),
            }
        ),
    }
}

/// Submits one date (see the module doc); `dry_run` collects the request bodies instead.
pub fn submit_date(
    cfg: &RunConfig,
    sc: &SubmitConfig,
    date: NaiveDate,
    force: bool,
    dry_run: Option<&mut Vec<Value>>,
) -> Result<Outcome> {
    let _lock = lock_date(cfg, date)?;
    let rows = read_rows(cfg, sc, date)?;
    let n = rows.ids.len();
    if n == 0 {
        return Ok(Outcome::Empty);
    }
    if let Some(why) = not_validated(cfg, date)? {
        return Ok(Outcome::NotValidated(why));
    }
    let per = sc.rows_per_request.max(1);
    let fresh = || Record {
        fingerprint: rows.fingerprint.clone(),
        submission_id: format!("{}-{date}-{}", sc.submitter_id, &rows.fingerprint[..8]),
        rows: n,
        accepted_rows: 0,
        baseline: None,
    };
    let mut rec = match load_record(cfg, date)? {
        None => fresh(),
        Some(r) if r.accepted_rows == r.rows && !force => {
            return Ok(if r.fingerprint == rows.fingerprint {
                Outcome::Unchanged
            } else {
                Outcome::Changed
            });
        }
        // Partly sent with these scores: resume after the accepted chunks, --force or not.
        Some(r) if r.fingerprint == rows.fingerprint && r.accepted_rows < r.rows => r,
        Some(r) if !force => bail!(
            "{date} was partly submitted ({} of {} rows) with other scores, which the validator keeps; --force sends these from the start (the day then holds both)",
            r.accepted_rows,
            r.rows
        ),
        Some(_) => fresh(),
    };
    if let Some(bodies) = dry_run {
        let mut requests = 0;
        for start in (rec.accepted_rows..n).step_by(per) {
            let range = start..(start + per).min(n);
            bodies.push(body(cfg, sc, date, &rows, &rec.submission_id, range));
            requests += 1;
        }
        return Ok(Outcome::DryRun {
            rows: n - rec.accepted_rows,
            requests,
        });
    }
    let client = Client::new(sc.timeout)?;
    let url = endpoint(sc, &["api", "v1", "submissions"], &cfg.network)?;
    let resuming = rec.baseline.is_some();
    if !resuming {
        rec.baseline = client.stored(cfg, sc, date).unwrap_or(None);
        save_record(cfg, date, &rec)?;
    }
    let (mut sent, mut requests) = (0, 0);
    let mut check = resuming;
    while rec.accepted_rows < n {
        let range = rec.accepted_rows..(rec.accepted_rows + per).min(n);
        let len = range.len();
        // Before any send whose predecessor's fate is unknown (a resumed submission, a lost
        // answer), the read-back must say whether the chunk is already in.
        if std::mem::take(&mut check) && chunk_stored(&client, cfg, sc, date, &rec, len)? {
            rec.accepted_rows += len;
            save_record(cfg, date, &rec)?;
            continue;
        }
        let b = body(cfg, sc, date, &rows, &rec.submission_id, range);
        let mut delay = sc.retry_delay;
        let mut attempt = 1;
        loop {
            requests += 1;
            match client.post(url.as_str(), &b) {
                Answer::Ok => break,
                Answer::Refused(msg) => bail!(
                    "the validator refused rows {}..{} of {date}: {msg}",
                    rec.accepted_rows,
                    rec.accepted_rows + len
                ),
                Answer::Lost(msg) if attempt >= sc.attempts => bail!(
                    "rows {}..{} of {date} not accepted after {attempt} attempts: {msg}",
                    rec.accepted_rows,
                    rec.accepted_rows + len
                ),
                Answer::Lost(msg) => {
                    tracing::warn!(%date, attempt, "submission not answered, retrying: {msg}");
                    // Wait first, so a request still being stored is in before the read-back.
                    std::thread::sleep(delay);
                    delay *= 2;
                    attempt += 1;
                    if chunk_stored(&client, cfg, sc, date, &rec, len)
                        .with_context(|| format!("no answer to the last request ({msg})"))?
                    {
                        break;
                    }
                }
            }
        }
        rec.accepted_rows += len;
        sent += len;
        save_record(cfg, date, &rec)?;
    }
    Ok(Outcome::Submitted {
        rows: sent,
        requests,
    })
}
