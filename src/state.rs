//! The run state kept under `{output}/.state/`: per date, the fingerprint of every stage's
//! last good output (see [`crate::plan`]), the cached intermediate tables those fingerprints
//! vouch for, and the lock that keeps two runs off one output directory.
//!
//! Consistency rule: a stage's record is removed before the stage reruns and written only after
//! its outputs (cache files named by fingerprint, or the date's output files) are in place, so
//! after a crash every record still describes outputs that exist.

use crate::batch::{ArrowBatch, Table, Tables};
use crate::config::RunConfig;
use crate::layout;
use anyhow::{bail, Context, Result};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// Rows per IPC batch in a cache file, which bounds the writer's in-memory encoding.
const CACHE_CHUNK_ROWS: usize = 8192;

/// How cache files are encoded: LZ4-compressed buffers (read back transparently, and files
/// written before compression still read). A realistic date's cache shrinks 94 → 49 MB (the
/// alert matrix 75 → 33 MB), which every date keeps; writing it costs less CPU than before,
/// as fresh page-cache pages cost more than compressing (docs/scaling.md, "Fresh memory
/// costs more than the data on this machine").
fn cache_write_options() -> Result<arrow::ipc::writer::IpcWriteOptions> {
    Ok(arrow::ipc::writer::IpcWriteOptions::default()
        .try_with_compression(Some(arrow::ipc::CompressionType::LZ4_FRAME))?)
}

/// What one stage's last good output was made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageRecord {
    /// The fingerprint: a hash of `parts`.
    pub fingerprint: String,
    /// The named ingredients of the fingerprint (input files, model, parameters, code, upstream
    /// fingerprints), kept to explain why a stage is stale.
    pub parts: BTreeMap<String, String>,
    /// The run that produced the output.
    pub run_id: String,
}

/// The recorded state of one date.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DateState {
    /// Stage name → its last good output.
    pub stages: BTreeMap<String, StageRecord>,
    /// The error of the last run of this date, if it failed.
    pub error: Option<String>,
}

/// The state store of one network and window under an output root.
#[derive(Debug, Clone)]
pub struct StateStore {
    root: PathBuf,
    staging: PathBuf,
}

impl StateStore {
    /// The store for `cfg`'s output root, network and window.
    pub fn new(cfg: &RunConfig) -> Self {
        Self {
            root: layout::state_dir(&cfg.output, &cfg.network, cfg.window_days),
            staging: layout::staging(&cfg.output),
        }
    }

    fn date_file(&self, date: NaiveDate) -> PathBuf {
        self.root.join("dates").join(format!("{date}.json"))
    }

    /// The cache directory of one date.
    pub fn cache_dir(&self, date: NaiveDate) -> PathBuf {
        self.root.join("cache").join(date.to_string())
    }

    fn cache_file(&self, date: NaiveDate, stage: &str, fp: &str, table: Table) -> PathBuf {
        self.cache_dir(date)
            .join(format!("{stage}.{}.{fp}.arrow", table.name()))
    }

    /// The recorded state of `date` (empty if never run).
    pub fn load(&self, date: NaiveDate) -> Result<DateState> {
        let path = self.date_file(date);
        match crate::io::read_regular(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "{}: unreadable run state; delete it to recompute {date}",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DateState::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Replaces the recorded state of `date`, atomically.
    pub fn save(&self, date: NaiveDate, state: &DateState) -> Result<()> {
        let path = self.date_file(date);
        create_dir(path.parent().expect("date file has a parent"))?;
        crate::io::TempFile::write_in(&self.staging, &path, |w| {
            serde_json::to_writer(&mut *w, state)?;
            Ok(())
        })?
        .commit()
    }

    /// Whether the cached tables of a stage's output exist.
    pub fn has_cache(&self, date: NaiveDate, stage: &str, fp: &str, tables: &[Table]) -> bool {
        tables
            .iter()
            .all(|&t| self.cache_file(date, stage, fp, t).exists())
    }

    /// Writes the cached tables of a stage's output (each atomically).
    pub fn write_cache(
        &self,
        date: NaiveDate,
        stage: &str,
        fp: &str,
        tables: &Tables,
    ) -> Result<()> {
        let dir = self.cache_dir(date);
        create_dir(&dir)?;
        for (name, batch) in tables {
            let path = self.cache_file(date, stage, fp, *name);
            crate::io::TempFile::write_direct_in(&self.staging, &path, |w| {
                let mut writer = arrow::ipc::writer::FileWriter::try_new_with_options(
                    w,
                    &batch.0.schema(),
                    cache_write_options()?,
                )?;
                // In slices: the writer encodes each batch in memory before writing it, and
                // the blocks of a slice go to the disk before the next is encoded.
                let rows = batch.0.num_rows();
                for start in (0..rows.max(1)).step_by(CACHE_CHUNK_ROWS) {
                    writer.write(&batch.0.slice(start, CACHE_CHUNK_ROWS.min(rows - start)))?;
                }
                writer.finish()?;
                Ok(())
            })?
            .commit()?;
        }
        Ok(())
    }

    /// Reads the cached tables of a stage's output.
    pub fn read_cache(
        &self,
        date: NaiveDate,
        stage: &str,
        fp: &str,
        tables: &[Table],
    ) -> Result<Tables> {
        let mut out = Tables::new();
        for &t in tables {
            let path = self.cache_file(date, stage, fp, t);
            let file = crate::io::open_regular(&path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            let corrupt = || format!("{}: corrupt cache file", path.display());
            let reader =
                arrow::ipc::reader::FileReader::try_new(file, None).with_context(corrupt)?;
            let schema = reader.schema();
            let slices = reader
                .collect::<Result<Vec<_>, _>>()
                .with_context(corrupt)?;
            if slices.is_empty() {
                bail!("{}: empty cache file", path.display());
            }
            let batch = arrow::compute::concat_batches(&schema, &slices).with_context(corrupt)?;
            t.check(&batch).map_err(|e| {
                anyhow::anyhow!("{}: not what the stage writes: {e}", path.display())
            })?;
            out.insert(t, ArrowBatch(batch));
        }
        Ok(out)
    }

    /// Removes a date's cache files that no record of `state` vouches for.
    pub fn prune_cache(&self, date: NaiveDate, state: &DateState) -> Result<()> {
        let dir = self.cache_dir(date);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(());
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let keep = name.split('.').collect::<Vec<_>>();
            let vouched = matches!(keep.as_slice(), [stage, _, fp, "arrow"]
                if state.stages.get(*stage).is_some_and(|r| r.fingerprint == *fp));
            if !vouched {
                std::fs::remove_file(e.path())
                    .with_context(|| format!("cannot remove {}", e.path().display()))?;
            }
        }
        Ok(())
    }
}

/// Writes stages' cached tables on a thread of its own, so that a date's next stage need not
/// wait for them (an IPC encoding and an fsync); [`CacheWriter::wait`] tells when all of a
/// date's are in place, which its state record must wait for (the consistency rule above).
///
/// The thread runs at normal priority, beside the stages. At the lowest priority it got a core
/// only when a stage left one idle, so on a big day most of the cache (the 10× day's matrix:
/// 326 MB LZ4, ~1.8 CPU-s) was written after validate on one core while the other idled, and
/// the date waited ~1 s for it (`docs/performance-log.md`, "The cache writer beside the stages").
pub struct CacheWriter {
    jobs: Mutex<Option<Sender<CacheJob>>>,
    pending: Arc<Pending>,
    thread: Option<JoinHandle<()>>,
}

struct CacheJob {
    date: NaiveDate,
    stage: String,
    fingerprint: String,
    tables: Tables,
}

/// Per date: cache writes not yet done, and the first that failed.
#[derive(Default)]
struct Pending {
    dates: Mutex<HashMap<NaiveDate, (usize, Option<String>)>>,
    done: Condvar,
}

impl Pending {
    fn lock(&self) -> MutexGuard<'_, HashMap<NaiveDate, (usize, Option<String>)>> {
        self.dates.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn finish(&self, date: NaiveDate, result: Result<()>) {
        let mut dates = self.lock();
        let entry = dates.entry(date).or_default();
        entry.0 = entry.0.saturating_sub(1);
        if let Err(e) = result {
            entry.1.get_or_insert_with(|| crate::error::error_text(&e));
        }
        self.done.notify_all();
    }
}

impl CacheWriter {
    /// A writer into `store`, with its thread started.
    pub fn new(store: StateStore) -> Result<Self> {
        let (tx, rx) = std::sync::mpsc::channel::<CacheJob>();
        let pending = Arc::new(Pending::default());
        let p = pending.clone();
        let thread = std::thread::Builder::new()
            .name("cache writer".to_string())
            .spawn(move || {
                for job in rx {
                    let r = store.write_cache(job.date, &job.stage, &job.fingerprint, &job.tables);
                    p.finish(job.date, r);
                }
            })
            .context("cannot start the cache writer thread")?;
        Ok(Self {
            jobs: Mutex::new(Some(tx)),
            pending,
            thread: Some(thread),
        })
    }

    /// Queues the cached tables of a stage's output for `date` (nothing if `tables` is empty).
    pub fn submit(&self, date: NaiveDate, stage: &str, fingerprint: &str, tables: Tables) {
        if tables.is_empty() {
            return;
        }
        self.pending.lock().entry(date).or_default().0 += 1;
        let job = CacheJob {
            date,
            stage: stage.to_string(),
            fingerprint: fingerprint.to_string(),
            tables,
        };
        let sent = self
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|tx| tx.send(job));
        if !matches!(sent, Some(Ok(()))) {
            let why = anyhow::anyhow!("the cache writer thread stopped");
            self.pending.finish(date, Err(why));
        }
    }

    /// Waits until the tables queued for `date` are written; the first error, if one failed.
    pub fn wait(&self, date: NaiveDate) -> Result<(), String> {
        let mut dates = self.pending.lock();
        while dates.get(&date).is_some_and(|e| e.0 > 0) {
            dates = self
                .pending
                .done
                .wait(dates)
                .unwrap_or_else(|p| p.into_inner());
        }
        match dates.remove(&date) {
            Some((_, Some(e))) => Err(e),
            _ => Ok(()),
        }
    }
}

impl Drop for CacheWriter {
    fn drop(&mut self) {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Writes JSON to `path` under the output root `output` through a temporary file in the
/// staging directory, so no partial file ever shows beside the outputs.
pub fn write_output_json(output: &Path, path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let staging = layout::staging(output);
    create_dir(&staging)?;
    crate::io::json_temp(&staging, path, value)?.commit()
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

/// An exclusive lock on an output directory, held for the life of a run and released by the
/// operating system when the process ends, however it ends.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Takes the lock of `output` (one per process index in a multi-process run), or explains
    /// who holds it. Removes temporary files left in the staging directory by dead processes.
    pub fn acquire(output: &Path, process: usize) -> Result<Self> {
        create_dir(&layout::state_root(output))?;
        let path = layout::lock(output, process);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                bail!(
                    "another `pipeline run` ({}) is writing to {}; wait for it to finish (the lock is released when it exits)",
                    lock_holder(&path),
                    output.display()
                );
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
        file.set_len(0)?;
        writeln!(file, "pid {}", std::process::id())?;
        let staging = layout::staging(output);
        // Temporary files of processes that no longer run (e.g. killed) are garbage.
        for e in std::fs::read_dir(&staging).into_iter().flatten().flatten() {
            if crate::io::temp_orphaned(&e.file_name().to_string_lossy()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
        create_dir(&staging)?;
        Ok(Self { _file: file })
    }
}

/// Who holds the lock at `path`, as its holder wrote it (`pid N`). The holder writes it just
/// after taking the lock, so a run that started at the same instant waits a moment for it.
fn lock_holder(path: &Path) -> String {
    for _ in 0..40 {
        let text = crate::io::read_text(path).unwrap_or_default();
        if !text.trim().is_empty() {
            return text.trim().to_string();
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    "pid unknown".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Int64Array, StringArray};
    use arrow::record_batch::RecordBatch;
    use std::sync::Arc;

    #[test]
    fn cached_tables_of_several_slices_read_back_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StateStore {
            root: tmp.path().join("state"),
            staging: tmp.path().join("staging"),
        };
        std::fs::create_dir_all(&store.staging).unwrap();
        let n = 2 * CACHE_CHUNK_ROWS + 17;
        let table = |n: usize| {
            let ids: ArrayRef = Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| format!("a{i}")),
            ));
            let x: ArrayRef = Arc::new(Int64Array::from_iter_values((0..n).map(|i| i as i64)));
            ArrowBatch(RecordBatch::try_from_iter([("file", ids), ("rows", x)]).unwrap())
        };
        let tables: Tables = [(Table::Written, table(n))].into();
        let date = NaiveDate::from_ymd_opt(2025, 10, 1).unwrap();
        store.write_cache(date, "stage", "fp", &tables).unwrap();
        let back = store
            .read_cache(date, "stage", "fp", &[Table::Written])
            .unwrap();
        assert_eq!(back, tables);
        // Compressed: at least a quarter smaller than the same table written plainly (the
        // alert matrix, floats with NaN columns, shrinks 2.3×).
        let mut plain = arrow::ipc::writer::FileWriter::try_new(
            Vec::new(),
            &tables[&Table::Written].0.schema(),
        )
        .unwrap();
        plain.write(&tables[&Table::Written].0).unwrap();
        let plain = plain.into_inner().unwrap().len();
        let file = store.cache_file(date, "stage", "fp", Table::Written);
        let size = std::fs::metadata(file).unwrap().len() as usize;
        assert!(
            4 * size < 3 * plain,
            "{size} bytes where plain IPC takes {plain}"
        );
        let empty: Tables = [(Table::Written, table(0))].into();
        store.write_cache(date, "empty", "fp", &empty).unwrap();
        let back = store.read_cache(date, "empty", "fp", &[Table::Written]);
        assert_eq!(back.unwrap(), empty);
        // A cache file that is not what the stage writes is refused, not handed on.
        let wrong: Tables = [(Table::Validation, table(1))].into();
        store.write_cache(date, "wrong", "fp", &wrong).unwrap();
        let e = store
            .read_cache(date, "wrong", "fp", &[Table::Validation])
            .unwrap_err();
        assert!(
            format!("{e:#}")
                .contains("table `validation`, column 0: `file` where `check` is declared"),
            "{e:#}"
        );
    }

    #[test]
    fn the_cache_writer_says_when_a_dates_tables_are_in_place_or_failed() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StateStore {
            root: tmp.path().join("state"),
            staging: tmp.path().join("staging"),
        };
        std::fs::create_dir_all(&store.staging).unwrap();
        let ids: ArrayRef = Arc::new(StringArray::from(vec!["a", "b"]));
        let x: ArrayRef = Arc::new(Int64Array::from(vec![1, 2]));
        let batch = ArrowBatch(RecordBatch::try_from_iter([("file", ids), ("rows", x)]).unwrap());
        let tables: Tables = [(Table::Written, batch)].into();
        let (ok, blocked) = (
            NaiveDate::from_ymd_opt(2025, 10, 1).unwrap(),
            NaiveDate::from_ymd_opt(2025, 10, 2).unwrap(),
        );
        // A file where the second date's cache directory belongs: its writes fail.
        std::fs::create_dir_all(store.cache_dir(blocked).parent().unwrap()).unwrap();
        std::fs::write(store.cache_dir(blocked), b"in the way").unwrap();
        let writer = CacheWriter::new(store.clone()).unwrap();
        for stage in ["a", "b", "c"] {
            writer.submit(ok, stage, "fp", tables.clone());
            writer.submit(blocked, stage, "fp", tables.clone());
        }
        writer.submit(ok, "nothing", "fp", Tables::new());
        assert_eq!(writer.wait(ok), Ok(()));
        for stage in ["a", "b", "c"] {
            assert!(
                store.has_cache(ok, stage, "fp", &[Table::Written]),
                "{stage}"
            );
        }
        let e = writer.wait(blocked).unwrap_err();
        assert!(e.contains("cannot create"), "{e}");
        assert_eq!(writer.wait(blocked), Ok(()), "an error is told once");
    }

    #[test]
    fn a_lock_refusal_names_the_holder_even_when_both_start_together() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(".state").join("lock");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        // The holder has taken the lock but not yet written its pid.
        let holder = File::create(&path).unwrap();
        holder.try_lock().unwrap();
        let writer = {
            let path = path.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(150));
                std::fs::write(path, "pid 4242\n").unwrap();
            })
        };
        let e = RunLock::acquire(tmp.path(), 0).unwrap_err();
        writer.join().unwrap();
        assert!(format!("{e:#}").contains("(pid 4242)"), "{e:#}");
    }
}
