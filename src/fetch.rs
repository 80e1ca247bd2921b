//! Fetch: mirrors daily batches from object storage (S3, GCS, Azure, HTTP or a local directory)
//! into the input tree, verifying every file against its batch's META.json.
//!
//! Source layout: `{source}/{network}/{YYYY-MM-DD}/{window_days}/{META.json, *.parquet}` and,
//! beside the snapshots prefix, `address-labels/{network}_address_labels.parquet`. Each file is
//! streamed to a temporary file in its destination directory while it is hashed; only when
//! every file of the date matches are they renamed into place, META.json last, so a date
//! directory with META.json is complete and a failed date leaves the input tree as it was.
//! Files whose local copy already matches are not downloaded again.
//! Transient errors (5xx, timeouts, dropped connections, also mid-body) are retried by
//! object_store with exponential backoff; a checksum mismatch is re-downloaded once.

use crate::config::RunConfig;
use crate::io::{sha256_file, TempFile};
use crate::stages::decode::Meta;
use anyhow::{anyhow, bail, Context, Result};
use chrono::NaiveDate;
use futures::{StreamExt, TryStreamExt};
use indicatif::ProgressBar;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::http::HttpBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as Key;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, ObjectStoreScheme, RetryConfig,
};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// One file of a fetched date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedFile {
    /// File name, e.g. `alerts.parquet`.
    pub name: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// `true` if it was downloaded now, `false` if the local copy already matched.
    pub downloaded: bool,
}

/// What fetching one date came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DateOutcome {
    /// Every file META.json lists is in place and verified (META.json itself too).
    Complete(Vec<FetchedFile>),
    /// The source has no META.json for the date: there is no batch to fetch.
    Missing,
    /// The date could not be fetched; the message names the file and what went wrong.
    /// Nothing unverified was left in the input tree.
    Failed(String),
}

/// What fetching the network's address labels came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelsOutcome {
    /// Downloaded (new or changed at the source); its size in bytes.
    Downloaded(u64),
    /// The local copy has the source's size and modification time.
    Unchanged,
    /// The source has no labels file (not an error).
    Missing,
}

/// Downloads batches from one source into a run's input tree. Blocking from the caller's point
/// of view; it holds its own tokio runtime and can be shared by many threads.
pub struct Fetcher {
    rt: tokio::runtime::Runtime,
    store: Arc<dyn ObjectStore>,
    prefix: Key,
    source: String,
    input: PathBuf,
    network: String,
    window_days: u32,
    concurrency: usize,
    permits: Arc<Semaphore>,
    progress: ProgressBar,
    files_total: AtomicUsize,
    files_done: AtomicUsize,
}

/// Retries for transient errors: 10 tries with exponential backoff from 100 ms to 15 s,
/// giving up after 3 minutes per request.
fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(15),
            base: 2.0,
        },
        max_retries: 10,
        retry_timeout: Duration::from_secs(180),
    }
}

fn truthy(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

/// Timeouts per connection and per read, none for a whole download (files can be gigabytes);
/// plain HTTP only when asked for (`AWS_ALLOW_HTTP`) or when the endpoint itself is `http://`.
fn client_options(url_or_endpoint: Option<&str>) -> ClientOptions {
    let http = url_or_endpoint.is_some_and(|e| e.starts_with("http://"));
    ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(10))
        .with_read_timeout(Duration::from_secs(60))
        .with_timeout_disabled()
        .with_allow_http(http || truthy("AWS_ALLOW_HTTP") || truthy("ALLOW_HTTP"))
}

/// Credentials the S3 client would find in the environment; without them access is anonymous.
fn aws_credentials_given() -> bool {
    [
        "AWS_ACCESS_KEY_ID",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

/// Opens the store of `source` (a URL or a directory) and the key prefix of the snapshots in it.
fn open_store(
    source: &str,
    endpoint: Option<&str>,
    region: Option<&str>,
) -> Result<(Arc<dyn ObjectStore>, Key)> {
    if !source.contains("://") {
        let dir = std::fs::canonicalize(source)
            .with_context(|| format!("source directory {source} does not exist"))?;
        let key = Key::from_absolute_path(&dir)
            .with_context(|| format!("source directory {}", dir.display()))?;
        return Ok((Arc::new(LocalFileSystem::new()), key));
    }
    let url = url::Url::parse(source).with_context(|| {
        format!("source {source:?} is not a URL (expected s3://, gs://, az://, http(s)://, file:// or a directory)")
    })?;
    let (scheme, prefix) = ObjectStoreScheme::parse(&url)
        .map_err(|e| anyhow!("source {source}: {e} (expected s3://, gs://, az://, http(s)://, file:// or a directory)"))?;
    let retry = retry_config();
    let store: Arc<dyn ObjectStore> = match scheme {
        ObjectStoreScheme::Local => {
            let dir = url
                .to_file_path()
                .map_err(|_| anyhow!("source {source}: not a local path"))?;
            return open_store(&dir.display().to_string(), endpoint, region);
        }
        ObjectStoreScheme::AmazonS3 => {
            let env_endpoint = std::env::var("AWS_ENDPOINT_URL").ok();
            let mut b = AmazonS3Builder::from_env()
                .with_url(source)
                .with_client_options(client_options(endpoint.or(env_endpoint.as_deref())))
                .with_retry(retry)
                .with_skip_signature(!aws_credentials_given());
            if let Some(e) = endpoint {
                b = b.with_endpoint(e);
            }
            if let Some(r) = region {
                b = b.with_region(r);
            }
            Arc::new(b.build().with_context(|| format!("source {source}"))?)
        }
        ObjectStoreScheme::GoogleCloudStorage => Arc::new(
            GoogleCloudStorageBuilder::from_env()
                .with_url(source)
                .with_client_options(client_options(None))
                .with_retry(retry)
                .build()
                .with_context(|| format!("source {source} (GCS credentials come from GOOGLE_SERVICE_ACCOUNT or GOOGLE_APPLICATION_CREDENTIALS)"))?,
        ),
        ObjectStoreScheme::MicrosoftAzure => {
            let mut b = MicrosoftAzureBuilder::from_env()
                .with_url(source)
                .with_client_options(client_options(endpoint))
                .with_retry(retry);
            if let Some(e) = endpoint {
                b = b.with_endpoint(e.to_string());
            }
            Arc::new(b.build().with_context(|| {
                format!("source {source} (Azure credentials come from AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY or similar)")
            })?)
        }
        ObjectStoreScheme::Http => {
            let base = &url[..url::Position::BeforePath];
            Arc::new(
                HttpBuilder::new()
                    .with_url(base)
                    .with_client_options(client_options(Some(source)))
                    .with_retry(retry)
                    .build()
                    .with_context(|| format!("source {source}"))?,
            )
        }
        s => bail!("source {source}: {s:?} is not supported (expected s3://, gs://, az://, http(s)://, file:// or a directory)"),
    };
    Ok((store, prefix))
}

/// Removes temporary files of listed names left by an earlier fetch that was killed.
fn remove_stale_temps(dir: &Path, meta: &Meta) -> Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let name = e?.file_name();
        let name = name.to_string_lossy();
        let stale = meta
            .sha256
            .keys()
            .chain(std::iter::once(&crate::layout::META.to_string()))
            .any(|f| name.starts_with(&format!(".{f}.tmp-")));
        // Another live process (a second `pipeline fetch`, a process of the same cluster run)
        // may be fetching the same date: its files are not stale.
        if stale && crate::io::temp_orphaned(&name) {
            let p = dir.join(name.as_ref());
            std::fs::remove_file(&p).with_context(|| format!("cannot remove {}", p.display()))?;
        }
    }
    Ok(())
}

impl Fetcher {
    /// A fetcher for the run's `source`, writing into its input tree; fails if it has no source
    /// or the source cannot be opened.
    pub fn new(cfg: &RunConfig) -> Result<Self> {
        let source = cfg
            .source
            .clone()
            .ok_or_else(|| anyhow!("{}: no `source` to fetch from (set `source = \"s3://…\"` in the config or pass --source)", cfg.path.display()))?;
        let (store, prefix) = open_store(&source, cfg.endpoint.as_deref(), cfg.region.as_deref())?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fetch")
            .enable_all()
            .build()
            .context("cannot start the fetch runtime")?;
        Ok(Self {
            rt,
            store,
            prefix,
            source: source.trim_end_matches('/').to_string(),
            input: cfg.input.clone(),
            network: cfg.network.clone(),
            window_days: cfg.window_days,
            concurrency: cfg.fetch_concurrency.max(1),
            permits: Arc::new(Semaphore::new(cfg.fetch_concurrency.max(1))),
            progress: ProgressBar::hidden(),
            files_total: AtomicUsize::new(0),
            files_done: AtomicUsize::new(0),
        })
    }

    /// Shows downloaded bytes (position and length) and files (message) on `progress`.
    pub fn with_progress(mut self, progress: ProgressBar) -> Self {
        self.progress = progress;
        self
    }

    /// The progress bar downloads report to (hidden unless set with [`Fetcher::with_progress`]).
    pub fn progress(&self) -> &ProgressBar {
        &self.progress
    }

    /// The source, as configured (for messages).
    pub fn source(&self) -> &str {
        &self.source
    }

    fn date_key(&self, date: NaiveDate) -> Key {
        self.prefix
            .clone()
            .join(self.network.as_str())
            .join(date.format("%Y-%m-%d").to_string().as_str())
            .join(self.window_days.to_string().as_str())
    }

    fn labels_key(&self) -> Key {
        // `address-labels/` sits beside the snapshots prefix (or at the root if it has none).
        let parts: Vec<_> = self.prefix.parts().collect();
        let parent = parts[..parts.len().saturating_sub(1)].iter().cloned();
        Key::from_iter(parent)
            .join("address-labels")
            .join(format!("{}_address_labels.parquet", self.network).as_str())
    }

    fn url_of(&self, key: &Key) -> String {
        let rest = key
            .prefix_match(&self.prefix)
            .map(|p| p.map(|x| x.as_ref().to_string()).collect::<Vec<_>>())
            .unwrap_or_default();
        if rest.is_empty() {
            key.to_string()
        } else {
            format!("{}/{}", self.source, rest.join("/"))
        }
    }

    /// The dates that have a directory for the network at the source, ascending.
    pub fn available(&self) -> Result<Vec<NaiveDate>> {
        let dir = self.prefix.clone().join(self.network.as_str());
        let listed = self
            .rt
            .block_on(self.store.list_with_delimiter(Some(&dir)))
            .with_context(|| {
                format!(
                    "cannot list the dates at {}/{} (give --dates as YYYY-MM-DD..YYYY-MM-DD instead)",
                    self.source, self.network
                )
            })?;
        let mut dates: Vec<NaiveDate> = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename())
            .filter_map(|n| NaiveDate::parse_from_str(n, "%Y-%m-%d").ok())
            .collect();
        dates.sort();
        Ok(dates)
    }

    /// Fetches one date (blocking).
    pub fn fetch_date(&self, date: NaiveDate) -> DateOutcome {
        self.rt.block_on(self.date(date))
    }

    /// Fetches `dates`, at most `fetch_concurrency` downloads at a time; `done` is called as
    /// each date finishes. Returns the outcomes in date order.
    pub fn fetch_dates(
        &self,
        dates: &[NaiveDate],
        done: impl Fn(NaiveDate, &DateOutcome),
    ) -> Vec<(NaiveDate, DateOutcome)> {
        let mut out = self.rt.block_on(
            futures::stream::iter(dates.iter().copied())
                .map(|d| async move { (d, self.date(d).await) })
                .buffer_unordered(self.concurrency)
                .inspect(|(d, o)| done(*d, o))
                .collect::<Vec<_>>(),
        );
        out.sort_by_key(|(d, _)| *d);
        out
    }

    /// Fetches the network's address labels into `{input}/{network}/address_labels.parquet`
    /// (blocking). There is no checksum for them: a copy with the source's size and
    /// modification time is kept, anything else downloaded again.
    pub fn fetch_labels(&self) -> Result<LabelsOutcome> {
        self.rt.block_on(self.labels())
    }

    async fn labels(&self) -> Result<LabelsOutcome> {
        let key = self.labels_key();
        let meta = match self.store.head(&key).await {
            Ok(m) => m,
            Err(object_store::Error::NotFound { .. }) => return Ok(LabelsOutcome::Missing),
            Err(e) => return Err(e).with_context(|| format!("cannot read {key}")),
        };
        let dir = self.input.join(&self.network);
        let local = dir.join(crate::layout::ADDRESS_LABELS);
        let modified: std::time::SystemTime = meta.last_modified.into();
        if let Ok(m) = std::fs::metadata(&local) {
            if m.len() == meta.size && m.modified().ok() == Some(modified) {
                return Ok(LabelsOutcome::Unchanged);
            }
        }
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let _permit = self.permits.acquire().await?;
        let (tmp, _, n) = self
            .download(&key, &local, Some(modified))
            .await
            .with_context(|| format!("{key}"))?;
        if n != meta.size {
            bail!("{key}: got {n} bytes, but the source says {} (changed while downloading?); nothing written", meta.size);
        }
        tmp.commit()?;
        Ok(LabelsOutcome::Downloaded(n))
    }

    async fn date(&self, date: NaiveDate) -> DateOutcome {
        match self.date_inner(date).await {
            Ok(Some(files)) => DateOutcome::Complete(files),
            Ok(None) => DateOutcome::Missing,
            Err(e) => DateOutcome::Failed(format!("{date}: {e:#}")),
        }
    }

    async fn date_inner(&self, date: NaiveDate) -> Result<Option<Vec<FetchedFile>>> {
        let dir_key = self.date_key(date);
        let meta_key = dir_key.clone().join(crate::layout::META);
        let meta_url = self.url_of(&meta_key);
        let meta_bytes = match self.store.get(&meta_key).await {
            Ok(r) => r
                .bytes()
                .await
                .with_context(|| format!("cannot read {meta_url}"))?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {meta_url}")),
        };
        let meta = Meta::parse(&meta_bytes, &meta_url)?;
        meta.check(&meta_url, date, self.window_days)?;
        if meta.sha256.is_empty() {
            bail!("{meta_url} lists no sha256 checksums (expected \"sha256\": {{\"<file>.parquet\": hex}}), so nothing can be verified");
        }
        let dir = crate::layout::batch_dir(&self.input, &self.network, date, self.window_days);
        let created = !dir.exists();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let result = self
            .date_files(date, &dir, &dir_key, &meta, &meta_bytes)
            .await;
        if result.is_err() && created {
            // Leave no empty date directory behind: it would look like a batch.
            let _ = std::fs::remove_dir(&dir);
            let _ = dir.parent().map(std::fs::remove_dir);
        }
        result.map(Some)
    }

    async fn date_files(
        &self,
        date: NaiveDate,
        dir: &Path,
        dir_key: &Key,
        meta: &Meta,
        meta_bytes: &[u8],
    ) -> Result<Vec<FetchedFile>> {
        remove_stale_temps(dir, meta)?;
        self.files_total
            .fetch_add(meta.sha256.len(), Ordering::Relaxed);
        self.show_files();
        let results =
            futures::future::join_all(meta.sha256.iter().map(|(name, want)| {
                self.file(dir, dir_key.clone().join(name.as_str()), name, want)
            }))
            .await;
        let mut files = Vec::new();
        let mut temps = Vec::new();
        let mut errors = Vec::new();
        for r in results {
            match r {
                Ok((f, tmp)) => {
                    files.push(f);
                    temps.extend(tmp);
                }
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        if !errors.is_empty() {
            // Dropping the verified temporary files removes them: the date stays as it was.
            bail!("{}", errors.join("; "));
        }
        // Every file is verified: move them into place, META.json last. A changed batch loses
        // its old META.json first, so the directory never claims to be complete while mixed.
        let local_meta = dir.join(crate::layout::META);
        if !temps.is_empty() && local_meta.exists() {
            std::fs::remove_file(&local_meta)
                .with_context(|| format!("cannot remove {}", local_meta.display()))?;
        }
        for t in temps {
            t.commit()?;
        }
        if crate::io::read_regular(&local_meta).ok().as_deref() != Some(meta_bytes) {
            crate::io::write_atomic(&local_meta, |w| Ok(w.write_all(meta_bytes)?))?;
        }
        tracing::debug!(%date, files = files.len(), "fetched");
        Ok(files)
    }

    fn show_files(&self) {
        self.progress.set_message(format!(
            "{}/{} files",
            self.files_done.load(Ordering::Relaxed),
            self.files_total.load(Ordering::Relaxed)
        ));
    }

    /// One listed file: kept if the local copy matches, else downloaded (twice at most if the
    /// bytes do not match META.json) into a verified temporary file for the caller to commit.
    async fn file(
        &self,
        dir: &Path,
        key: Key,
        name: &str,
        want: &str,
    ) -> Result<(FetchedFile, Option<TempFile>)> {
        let local = dir.join(name);
        let url = self.url_of(&key);
        let _permit = self.permits.acquire().await?;
        if local.exists() {
            let l = local.clone();
            let got = tokio::task::spawn_blocking(move || sha256_file(&l)).await??;
            if got == want {
                self.files_done.fetch_add(1, Ordering::Relaxed);
                self.show_files();
                let f = FetchedFile {
                    name: name.to_string(),
                    bytes: std::fs::metadata(&local)?.len(),
                    downloaded: false,
                };
                return Ok((f, None));
            }
        }
        let mut got = String::new();
        for _attempt in 0..2 {
            let (tmp, sha, n) = match self.download(&key, &local, None).await {
                Err(e)
                    if e.downcast_ref::<object_store::Error>()
                        .is_some_and(|e| matches!(e, object_store::Error::NotFound { .. })) =>
                {
                    bail!("{name} is listed in META.json, but {url} does not exist")
                }
                r => r.with_context(|| format!("{name}: cannot download {url}"))?,
            };
            if sha == want {
                self.files_done.fetch_add(1, Ordering::Relaxed);
                self.show_files();
                let f = FetchedFile {
                    name: name.to_string(),
                    bytes: n,
                    downloaded: true,
                };
                return Ok((f, Some(tmp)));
            }
            tracing::warn!(%url, expected = want, got = %sha, "checksum mismatch");
            got = sha;
        }
        bail!("{name}: the downloaded bytes have sha256 {got}, but META.json says {want} (twice; the object at {url} is corrupt or does not belong to this META.json); nothing was written")
    }

    /// Streams `key` into a temporary file beside `local` while hashing it; returns the
    /// uncommitted file, its hex sha256 and its size.
    async fn download(
        &self,
        key: &Key,
        local: &Path,
        modified: Option<std::time::SystemTime>,
    ) -> Result<(TempFile, String, u64)> {
        let got = self.store.get(key).await?;
        self.progress.inc_length(got.meta.size);
        let mut stream = got.into_stream();
        let handle = tokio::runtime::Handle::current();
        let (local, progress) = (local.to_path_buf(), self.progress.clone());
        tokio::task::spawn_blocking(move || {
            let mut hash = Sha256::new();
            let mut n = 0u64;
            let tmp = TempFile::write(&local, |w| {
                while let Some(chunk) = handle.block_on(stream.try_next())? {
                    hash.update(&chunk);
                    w.write_all(&chunk)?;
                    n += chunk.len() as u64;
                    progress.inc(chunk.len() as u64);
                }
                if let Some(t) = modified {
                    w.flush()?;
                    w.get_ref().set_modified(t)?;
                }
                Ok(())
            })?;
            Ok((tmp, hex::encode(hash.finalize()), n))
        })
        .await?
    }
}
