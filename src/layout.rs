//! Every path of the input, output and state trees, in one place.
//!
//! ```text
//! {input}/{network}/{YYYY-MM-DD}/{window}/   alerts, features, clusters, money_flows .parquet, META.json
//! {input}/{network}/                         address_labels.parquet, ground_truth.parquet
//! {output}/{network}/{YYYY-MM-DD}/{window}/  alert_scores, alert_rankings, cluster_scores .parquet,
//!                                            processing_metadata.json, validation.json
//! {output}/{network}/validation_summary_{window}d.json
//! {output}/.state/{network}/{window}/dates/{date}.json       per-date run records
//! {output}/.state/{network}/{window}/cache/{date}/           cached stage tables
//! {output}/.state/history/{network}/{window}/{date}.parquet  address-history tables
//! {output}/.state/history/{network}/{window}/days/{date}.{hash}.arrow  per-date alert summaries
//! {output}/.state/submissions/{network}/{window}/{date}.json what was sent to the validator
//! {output}/.state/staging/                                   files before they are renamed into place
//! {output}/.state/file_hashes.json                           content hashes by size and mtime
//! {output}/.state/lock[.{process}]                           the run lock
//! ```

use chrono::NaiveDate;
use std::path::{Path, PathBuf};

/// A batch's manifest: sizes, row counts and sha256 of its files.
pub const META: &str = "META.json";
/// The files of a batch, as upstream names them.
pub const BATCH_FILES: [&str; 4] = [
    "alerts.parquet",
    "features.parquet",
    "clusters.parquet",
    "money_flows.parquet",
];
/// The network's alert labels (`alert_id`, `is_sar_filed`), beside its dates.
pub const GROUND_TRUTH: &str = "ground_truth.parquet";
/// The network's address labels (`address`, `risk_level`, …), beside its dates.
pub const ADDRESS_LABELS: &str = "address_labels.parquet";

/// A date's alert scores.
pub const ALERT_SCORES: &str = "alert_scores.parquet";
/// A date's alert rankings.
pub const ALERT_RANKINGS: &str = "alert_rankings.parquet";
/// A date's cluster scores.
pub const CLUSTER_SCORES: &str = "cluster_scores.parquet";
/// A date's processing metadata, written last: its presence marks the date's outputs complete.
pub const PROCESSING_METADATA: &str = "processing_metadata.json";
/// A date's validation report.
pub const VALIDATION: &str = "validation.json";
/// The files the write stage commits, in order.
pub const OUTPUTS: [&str; 4] = [
    ALERT_SCORES,
    ALERT_RANKINGS,
    CLUSTER_SCORES,
    PROCESSING_METADATA,
];

/// `{root}/{network}/{YYYY-MM-DD}/{window_days}`: a date's batch (input) or outputs (output).
pub fn batch_dir(root: &Path, network: &str, date: NaiveDate, window_days: u32) -> PathBuf {
    root.join(network)
        .join(date.format("%Y-%m-%d").to_string())
        .join(window_days.to_string())
}

/// `{input}/{network}`: where the network's dates and labels are.
pub fn network_dir(input: &Path, network: &str) -> PathBuf {
    input.join(network)
}

/// The validation summary over dates of one network and window.
pub fn validation_summary(output: &Path, network: &str, window_days: u32) -> PathBuf {
    output
        .join(network)
        .join(format!("validation_summary_{window_days}d.json"))
}

/// `{output}/.state`: the run's private state.
pub fn state_root(output: &Path) -> PathBuf {
    output.join(".state")
}

/// The state of one network and window: `dates/` and `cache/`.
pub fn state_dir(output: &Path, network: &str, window_days: u32) -> PathBuf {
    state_root(output)
        .join(network)
        .join(window_days.to_string())
}

/// Where temporary files are written before they are renamed into place: outside every date
/// directory, on the same file system.
pub fn staging(output: &Path) -> PathBuf {
    state_root(output).join("staging")
}

/// The run lock of process `process`.
pub fn lock(output: &Path, process: usize) -> PathBuf {
    state_root(output).join(if process == 0 {
        "lock".to_string()
    } else {
        format!("lock.{process}")
    })
}

/// The planner's cache of file content hashes.
pub fn file_hashes(output: &Path) -> PathBuf {
    state_root(output).join("file_hashes.json")
}

/// The address-history table of a date.
pub fn history(output: &Path, network: &str, window_days: u32, date: NaiveDate) -> PathBuf {
    history_root(output, network, window_days).join(format!("{}.parquet", date.format("%Y-%m-%d")))
}

/// The directory of the per-date alert summaries the history pass reads instead of a month of
/// `alerts.parquet` ([`crate::history`]).
pub fn history_days(output: &Path, network: &str, window_days: u32) -> PathBuf {
    history_root(output, network, window_days).join("days")
}

fn history_root(output: &Path, network: &str, window_days: u32) -> PathBuf {
    state_root(output)
        .join("history")
        .join(network)
        .join(window_days.to_string())
}

/// The record of what was submitted of a date.
pub fn submission(output: &Path, network: &str, window_days: u32, date: NaiveDate) -> PathBuf {
    state_root(output)
        .join("submissions")
        .join(network)
        .join(window_days.to_string())
        .join(format!("{date}.json"))
}
