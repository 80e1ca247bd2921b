//! Per-date alert summaries: a date's alerts aggregated per address key, kept under the output
//! root so that the next run reads a month of history from small Arrow files instead of
//! decoding a month of `alerts.parquet`.
//!
//! A summary is written whenever a run aggregates all of a date's alerts anyway: for every
//! date of a backfill, and for each date a run processes. Its name holds the content hash of
//! the `alerts.parquet` it was made from (the planner's [`HashCache`]), so a changed file is
//! never read through a stale summary. Running D after D−1 (or after a backfill) then reads D's
//! own alerts and 30 summaries. The money flows' per-address aggregates ([`super::flows`]) are
//! kept the same way, in a `flows` folder beside them, named by the content hash of
//! `money_flows.parquet`: a flow summary is written whenever a date's flows are read.

use super::dataflow::Agg;
use crate::plan::HashCache;
use anyhow::{anyhow, bail, Context, Result};
use arrow::array::{Array, ArrayRef, AsArray, Int32Array, Int64Array, UInt64Array};
use arrow::datatypes::{Int32Type, Int64Type, UInt64Type};
use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// One list of a summary: aggregates by address key.
pub(super) type Aggs = Vec<(u128, Agg)>;

/// Where the summaries of one run configuration live, and the content hashes that name them.
pub(super) struct Summaries {
    dir: PathBuf,
    staging: PathBuf,
    hashes: Arc<Mutex<HashCache>>,
}

impl Summaries {
    /// The alert summaries under `output` for `network` and `window_days`.
    pub(super) fn new(output: &Path, network: &str, window_days: u32) -> Self {
        Self {
            dir: crate::layout::history_days(output, network, window_days),
            staging: crate::layout::staging(output),
            hashes: Arc::new(Mutex::new(HashCache::load(output))),
        }
    }

    /// The money-flow summaries beside the alert summaries of `output`, `network` and
    /// `window_days` (in a `flows` folder), sharing the content hashes of `alerts`.
    pub(super) fn flows(alerts: &Summaries) -> Self {
        Self {
            dir: alerts.dir.join("flows"),
            staging: alerts.staging.clone(),
            hashes: alerts.hashes.clone(),
        }
    }

    /// The summary file of `date` made from an alerts file of content hash `hash`.
    fn path(&self, date: NaiveDate, hash: &str) -> PathBuf {
        let short = hash.get(..16).unwrap_or(hash);
        self.dir
            .join(format!("{}.{short}.arrow", date.format("%Y-%m-%d")))
    }

    /// The content hash of a date's input file.
    pub(super) fn hash(&self, alerts: &Path) -> Result<String> {
        self.hashes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .sha256(alerts)
    }

    /// Keeps the content hashes computed for the next run (the planner's cache).
    pub(super) fn save_hashes(&self, output: &Path) -> Result<()> {
        self.hashes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .save(output)
    }

    /// The summary of `date` for an input of content hash `hash`, if one was written: the
    /// lists [`Summaries::write`] wrote, in order.
    pub(super) fn read(&self, date: NaiveDate, hash: &str) -> Result<Option<Vec<Aggs>>> {
        let path = self.path(date, hash);
        let Some(bytes) = crate::io::read_if_present(&path)? else {
            return Ok(None);
        };
        decode(&bytes)
            .with_context(|| format!("{}: corrupt history summary; delete it", path.display()))
            .map(Some)
    }

    /// Writes the summary of `date`, one or more lists of aggregates (atomically), unless it
    /// exists, replacing those of other content.
    pub(super) fn write(
        &self,
        date: NaiveDate,
        hash: &str,
        lists: &[&[(u128, Agg)]],
    ) -> Result<()> {
        if self.path(date, hash).exists() {
            return Ok(());
        }
        for d in [&self.dir, &self.staging] {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
        }
        let prefix = format!("{}.", date.format("%Y-%m-%d"));
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let batches = lists
            .iter()
            .map(|l| encode(l))
            .collect::<Result<Vec<_>>>()?;
        crate::io::TempFile::write_in(&self.staging, &self.path(date, hash), |w| {
            let schema = batches
                .first()
                .map(|b| b.schema())
                .unwrap_or_else(|| encode(&[]).expect("an empty summary encodes").schema());
            let mut writer = arrow::ipc::writer::FileWriter::try_new(w, &schema)?;
            for b in &batches {
                writer.write(b)?;
            }
            writer.finish()?;
            Ok(())
        })?
        .commit()
    }
}

/// The columns of a summary: the key and the volume as 64-bit halves.
fn encode(aggs: &[(u128, Agg)]) -> Result<RecordBatch> {
    let col = |f: &dyn Fn(&(u128, Agg)) -> u64| -> ArrayRef {
        Arc::new(UInt64Array::from_iter_values(aggs.iter().map(f)))
    };
    let (alerts, days, vol_hi) = (
        Int32Array::from_iter_values(aggs.iter().map(|r| r.1.parts().0)),
        Int32Array::from_iter_values(aggs.iter().map(|r| r.1.parts().1)),
        Int64Array::from_iter_values(aggs.iter().map(|r| r.1.parts().2)),
    );
    Ok(RecordBatch::try_from_iter([
        ("key_hi", col(&|r| (r.0 >> 64) as u64)),
        ("key_lo", col(&|r| r.0 as u64)),
        ("alerts", Arc::new(alerts) as ArrayRef),
        ("days", Arc::new(days) as ArrayRef),
        ("volume_hi", Arc::new(vol_hi) as ArrayRef),
        ("volume_lo", col(&|r| r.1.parts().3)),
    ])?)
}

fn decode(bytes: &[u8]) -> Result<Vec<Aggs>> {
    let reader = arrow::ipc::reader::FileReader::try_new(std::io::Cursor::new(bytes), None)?;
    let mut lists = Vec::new();
    for b in reader {
        let b = b?;
        let mut out = Vec::with_capacity(b.num_rows());
        if b.num_columns() != 6 || b.columns().iter().any(|c| c.null_count() > 0) {
            bail!("unexpected columns");
        }
        let u = |i: usize| {
            b.column(i)
                .as_primitive_opt::<UInt64Type>()
                .ok_or_else(|| anyhow!("column {i} is not u64"))
        };
        let i32s = |i: usize| {
            b.column(i)
                .as_primitive_opt::<Int32Type>()
                .ok_or_else(|| anyhow!("column {i} is not i32"))
        };
        let (hi, lo, alerts, days, vhi, vlo) =
            (u(0)?, u(1)?, i32s(2)?, i32s(3)?, b.column(4), u(5)?);
        let vhi = vhi
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| anyhow!("column 4 is not i64"))?;
        for i in 0..b.num_rows() {
            let key = ((hi.value(i) as u128) << 64) | lo.value(i) as u128;
            out.push((
                key,
                Agg::from_parts(alerts.value(i), days.value(i), vhi.value(i), vlo.value(i)),
            ));
        }
        lists.push(out);
    }
    Ok(lists)
}
