//! `pipeline serve`: the outputs over HTTP (axum), in the upstream API's response shapes.
//!
//! Every request reads the output tree as it is now, so dates written by a concurrent run
//! appear without a restart; a date is served only once its `processing_metadata.json` exists,
//! which the write stage commits last. Dates are `YYYY-MM-DD` or `latest`, networks are plain
//! names, and every value that reaches DuckDB is a bound parameter, so no request can name a
//! file outside the output tree or change a query. Every error is a JSON `{error, detail}`
//! body: 400/404/405/414/431 for requests, 503 (naming the date and file, relative to the
//! output root) for an output file that cannot be read. Connections are capped and must send
//! their headers in time ([`conn`]).

mod conn;
mod metrics;
mod openapi;

pub use openapi::openapi_doc;

pub use conn::Limits;

use crate::contract::{to_f64, to_str};
use crate::layout;
use crate::query::{completed_dates, is_network_name, parse_date, OutputDate};
use anyhow::{Context, Result};
use arrow::array::{Array, RecordBatch};
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path as UrlPath, RawQuery, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use duckdb::Connection;
use prometheus::Encoder;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Version of the HTTP API.
pub const API_VERSION: &str = "1.0";

/// Largest page a request may ask for.
pub const MAX_LIMIT: usize = 100_000;

/// What the server serves.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Output root.
    pub output: PathBuf,
    /// Network served when a request does not name one.
    pub network: String,
    /// Window served when a request does not name one.
    pub window_days: u32,
    /// Connection limits.
    pub limits: Limits,
    /// Where the models' code lives (`/version`'s `github_url`; the run config's
    /// `model_github_url`).
    pub github_url: String,
    /// Name of the pipeline's cluster_score stage, whose latency the cluster pages report.
    pub cluster_stage: Option<String>,
}

/// Longest request URI answered (414 beyond).
pub const MAX_URI: usize = 8 * 1024;

/// Most request headers answered, in number and in bytes (431 beyond).
pub const MAX_HEADERS: usize = 100;
const MAX_HEADER_BYTES: usize = 16 * 1024;

/// An error answered as `{error, detail}` with its status.
#[derive(Debug)]
struct ApiError(StatusCode, String);

impl ApiError {
    fn bad(detail: impl Into<String>) -> Self {
        Self(StatusCode::BAD_REQUEST, detail.into())
    }
    fn not_found(detail: impl Into<String>) -> Self {
        Self(StatusCode::NOT_FOUND, detail.into())
    }
    fn unavailable(e: impl std::fmt::Display) -> Self {
        Self(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let error = match self.0 {
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::URI_TOO_LONG => "uri_too_long",
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers_too_large",
            s if s.is_client_error() => "bad_request",
            _ => "unavailable",
        };
        (self.0, Json(json!({"error": error, "detail": self.1}))).into_response()
    }
}

type ApiResult<T> = std::result::Result<T, ApiError>;

/// DuckDB connections to one in-memory database, reused across requests.
struct Pool {
    base: Mutex<Connection>,
    idle: Mutex<Vec<Connection>>,
}

impl Pool {
    fn with<T>(&self, f: impl FnOnce(&Connection) -> duckdb::Result<T>) -> ApiResult<T> {
        self.try_with(f).map_err(ApiError::unavailable)
    }

    /// Runs `f` on a pooled connection, with DuckDB's error as it is.
    fn try_with<T>(&self, f: impl FnOnce(&Connection) -> duckdb::Result<T>) -> duckdb::Result<T> {
        let popped = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match popped {
            Some(c) => c,
            None => self
                .base
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .try_clone()?,
        };
        let out = f(&conn);
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
        out
    }
}

struct AppState {
    cfg: ServeConfig,
    pool: Pool,
    cache: TableCache,
    metrics: metrics::Metrics,
}

/// Query parameters common to the endpoints. Malformed values of known names are refused;
/// unknown names are ignored, as the miner template's API does.
struct Params {
    network: String,
    window_days: u32,
    /// Rows per page; `None` is the whole day (the template has no paging).
    limit: Option<usize>,
    offset: usize,
    parquet: bool,
}

impl Params {
    fn parse(cfg: &ServeConfig, raw: Option<&str>) -> ApiResult<Self> {
        let mut p = Self {
            network: cfg.network.clone(),
            window_days: cfg.window_days,
            limit: None,
            offset: 0,
            parquet: false,
        };
        for (k, v) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            let number = |what: &str| {
                v.parse::<usize>().map_err(|_| {
                    ApiError::bad(format!("`{k}` must be a non-negative integer ({what})"))
                })
            };
            match k.as_ref() {
                "network" if is_network_name(&v) => p.network = v.to_string(),
                "network" => {
                    return Err(ApiError::bad(
                        "`network` must be letters, digits, `_` or `-`",
                    ))
                }
                "window_days" => {
                    p.window_days = u32::try_from(number("a window in days")?)
                        .map_err(|_| ApiError::bad("`window_days` is too large"))?
                }
                "limit" => {
                    let limit = number("rows per page")?;
                    if limit == 0 || limit > MAX_LIMIT {
                        return Err(ApiError::bad(format!(
                            "`limit` must be between 1 and {MAX_LIMIT}"
                        )));
                    }
                    p.limit = Some(limit);
                }
                "offset" => p.offset = number("rows to skip")?,
                "format" => {
                    p.parquet = match v.as_ref() {
                        "json" => false,
                        "parquet" => true,
                        _ => return Err(ApiError::bad("`format` must be json or parquet")),
                    }
                }
                _ => {}
            }
        }
        Ok(p)
    }
}

impl AppState {
    fn dates(&self, p: &Params) -> Vec<OutputDate> {
        let d = completed_dates(&self.cfg.output, Some(&p.network), Some(p.window_days));
        self.metrics.dates.set(d.len() as i64);
        d
    }

    /// The completed date a `{date}` segment names (`YYYY-MM-DD` or `latest`).
    fn resolve(&self, segment: &str, p: &Params) -> ApiResult<OutputDate> {
        if segment == "latest" {
            return self.dates(p).pop().ok_or_else(|| {
                ApiError::not_found(format!(
                    "no completed dates for network {} window {}",
                    p.network, p.window_days
                ))
            });
        }
        let date = parse_date(segment).map_err(|e| ApiError::bad(format!("{e:#} or latest")))?;
        let dir = layout::batch_dir(&self.cfg.output, &p.network, date, p.window_days);
        if !dir.join(layout::PROCESSING_METADATA).is_file() {
            return Err(ApiError::not_found(format!(
                "no completed outputs for {date} (network {}, window {})",
                p.network, p.window_days
            )));
        }
        Ok(OutputDate {
            network: p.network.clone(),
            date,
            window_days: p.window_days,
            dir,
        })
    }
}

/// Why an output file could not be opened, in words that name no path.
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::InvalidInput => e.to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ if e.raw_os_error() == Some(libc::ELOOP) => "symlink loop".to_string(),
        _ => "unreadable".to_string(),
    }
}

impl AppState {
    /// `path` relative to the output root, for messages (never the server's absolute path).
    fn shown(&self, path: &Path) -> String {
        path.strip_prefix(&self.cfg.output)
            .unwrap_or(path)
            .display()
            .to_string()
    }

    /// The 503 for an output file that exists but cannot be read; the full cause is logged.
    fn unreadable(&self, path: &Path, what: &str, cause: impl std::fmt::Display) -> ApiError {
        match cause.to_string() {
            c if c == what => tracing::warn!("{}: {what}", path.display()),
            c => tracing::warn!("{}: {what}: {c}", path.display()),
        }
        ApiError::unavailable(format!("{}: {what}", self.shown(path)))
    }

    /// An output JSON file of a date, parsed.
    fn read_json(&self, path: &Path) -> ApiResult<Value> {
        let bytes = crate::io::read_regular(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ApiError::not_found(format!(
                "{} does not exist",
                path.file_name().unwrap_or_default().to_string_lossy()
            )),
            _ => self.unreadable(path, &io_reason(&e), &e),
        })?;
        serde_json::from_slice(&bytes).map_err(|e| self.unreadable(path, "not valid JSON", e))
    }
}

/// A date segment from the path, with extractor failures answered as 400.
fn segment(p: DateSegment) -> ApiResult<String> {
    p.map(|UrlPath(s)| s)
        .map_err(|e| ApiError::bad(format!("bad path: {e}")))
}

async fn health(State(st): State<Arc<AppState>>) -> Json<Value> {
    let ok = tokio::task::spawn_blocking(move || {
        st.pool
            .with(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i32>(0)))
            .is_ok()
    })
    .await
    .unwrap_or(false);
    Json(json!({
        "status": if ok { "healthy" } else { "degraded" },
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "version": env!("CARGO_PKG_VERSION"),
        "database_connected": ok,
    }))
}

async fn version(State(st): State<Arc<AppState>>, RawQuery(q): RawQuery) -> ApiResult<Json<Value>> {
    let p = Params::parse(&st.cfg, q.as_deref())?;
    let meta = st
        .dates(&p)
        .pop()
        .and_then(|d| st.read_json(&d.dir.join(layout::PROCESSING_METADATA)).ok());
    let model = |k: &str| {
        meta.as_ref()
            .and_then(|m| m["model_versions"][k].as_str())
            .unwrap_or("unknown")
            .to_string()
    };
    Ok(Json(json!({
        "api_version": API_VERSION,
        "models": {
            "alert_scorer": model("alert_scorer"),
            "alert_ranker": model("alert_ranker"),
            "cluster_scorer": model("cluster_scorer"),
        },
        "network": p.network,
        "github_url": st.cfg.github_url,
        "commit_hash": env!("AML_PIPELINE_COMMIT"),
    })))
}

async fn dates_available(
    State(st): State<Arc<AppState>>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let p = Params::parse(&st.cfg, q.as_deref())?;
    let all = st.dates(&p);
    let dates: Vec<String> = all
        .iter()
        .rev()
        .skip(p.offset)
        .take(p.limit.unwrap_or(usize::MAX))
        .map(|d| d.date.to_string())
        .collect();
    Ok(Json(json!({"dates": dates, "total_count": all.len()})))
}

async fn dates_latest(
    State(st): State<Arc<AppState>>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let p = Params::parse(&st.cfg, q.as_deref())?;
    let d = st.resolve("latest", &p)?;
    let meta = st.read_json(&d.dir.join(layout::PROCESSING_METADATA))?;
    Ok(Json(json!({
        "latest_date": d.date.to_string(),
        "processed_at": meta["processed_at"],
    })))
}

/// Which output table a page comes from.
#[derive(Clone, Copy)]
enum Table {
    AlertScores,
    AlertRankings,
    ClusterScores,
}

impl Table {
    fn file(self) -> &'static str {
        match self {
            Self::AlertScores => layout::ALERT_SCORES,
            Self::AlertRankings => layout::ALERT_RANKINGS,
            Self::ClusterScores => layout::CLUSTER_SCORES,
        }
    }
    fn id_column(self) -> &'static str {
        match self {
            Self::ClusterScores => "cluster_id",
            _ => "alert_id",
        }
    }
    fn sql(self) -> &'static str {
        match self {
            Self::AlertScores => "SELECT alert_id, score FROM read_parquet(?)",
            Self::AlertRankings => "SELECT alert_id, rank, score FROM read_parquet(?)",
            Self::ClusterScores => "SELECT cluster_id, score FROM read_parquet(?)",
        }
    }
    fn rows_key(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::AlertScores => ("alert_scores", "total_alerts", "scores"),
            Self::AlertRankings => ("alert_rankings", "total_alerts", "rankings"),
            Self::ClusterScores => ("cluster_scores", "total_clusters", "scores"),
        }
    }
    fn model(self) -> &'static str {
        match self {
            Self::AlertScores => "alert_scorer",
            Self::AlertRankings => "alert_ranker",
            Self::ClusterScores => "cluster_scorer",
        }
    }
}

/// Tables read whole by DuckDB, kept while their file is unchanged (same size and modification
/// time), so that a page is a slice. First in, first out beyond [`CACHED_TABLES`].
#[derive(Default)]
struct TableCache(Mutex<VecDeque<Cached>>);

/// A cached table: its file, the file's (size, modification time), and its rows.
type Cached = (PathBuf, (u64, SystemTime), Arc<RecordBatch>);

/// Tables the page cache holds (a realistic day's alert scores take a few MB).
const CACHED_TABLES: usize = 32;

impl TableCache {
    fn get(&self, path: &Path, stamp: (u64, SystemTime)) -> Option<Arc<RecordBatch>> {
        let q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        q.iter()
            .find(|(p, s, _)| p == path && *s == stamp)
            .map(|e| e.2.clone())
    }

    fn put(&self, path: PathBuf, stamp: (u64, SystemTime), batch: Arc<RecordBatch>) {
        let mut q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        q.retain(|(p, _, _)| *p != path);
        if q.len() >= CACHED_TABLES {
            q.pop_front();
        }
        q.push_back((path, stamp, batch));
    }
}

/// One page of `table` for the date, in file order (DuckDB preserves insertion order: the
/// rankings by rank, the scores in the batch's alert and cluster order). The file path is a
/// bound parameter.
fn page(st: &AppState, d: &OutputDate, table: Table, p: &Params) -> ApiResult<RecordBatch> {
    let path = d.dir.join(table.file());
    // Only a regular file reaches DuckDB: a named pipe would hang its reader.
    let stamp = crate::io::open_regular(&path)
        .and_then(|f| f.metadata())
        .and_then(|m| Ok((m.len(), m.modified()?)))
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                ApiError::not_found(format!("{} does not exist", table.file()))
            }
            _ => st.unreadable(&path, &io_reason(&e), &e),
        })?;
    let whole = match st.cache.get(&path, stamp) {
        Some(b) => b,
        None => {
            let name = path.display().to_string();
            let b = st
                .pool
                .try_with(|c| {
                    let mut stmt = c.prepare_cached(table.sql())?;
                    let arrow = stmt.query_arrow(duckdb::params![name])?;
                    let schema = arrow.get_schema();
                    let batches: Vec<RecordBatch> = arrow.collect();
                    Ok(arrow::compute::concat_batches(&schema, &batches))
                })
                .map_err(|e| e.to_string())
                .and_then(|b| b.map_err(|e| e.to_string()))
                .map_err(|e| st.unreadable(&path, "not a readable Parquet file", e))?;
            let b = Arc::new(b);
            st.cache.put(path, stamp, b.clone());
            b
        }
    };
    let start = p.offset.min(whole.num_rows());
    let len = p.limit.unwrap_or(usize::MAX).min(whole.num_rows() - start);
    Ok(whole.slice(start, len))
}

/// A page's rows as JSON objects: the id, the rank for rankings, and the score.
fn rows_json(table: Table, b: &RecordBatch) -> ApiResult<Vec<Value>> {
    let bad = |e: anyhow::Error| ApiError::unavailable(format!("{e:#}"));
    let (file, id) = (table.file(), table.id_column());
    let ids = to_str(b.column(0), file, id).map_err(bad)?;
    let scores = to_f64(b.column(b.num_columns() - 1), file, "score").map_err(bad)?;
    let score = |i: usize| (!scores.is_null(i)).then(|| scores.value(i));
    if let Table::AlertRankings = table {
        let ranks = to_f64(b.column(1), file, "rank").map_err(bad)?;
        return Ok((0..b.num_rows())
            .map(|i| json!({id: ids.value(i), "rank": ranks.value(i) as i64, "score": score(i)}))
            .collect());
    }
    Ok((0..b.num_rows())
        .map(|i| json!({id: ids.value(i), "score": score(i)}))
        .collect())
}

async fn table_page(
    st: Arc<AppState>,
    table: Table,
    date: String,
    q: Option<String>,
) -> ApiResult<Response> {
    let p = Params::parse(&st.cfg, q.as_deref())?;
    tokio::task::spawn_blocking(move || {
        let d = st.resolve(&date, &p)?;
        let meta = st.read_json(&d.dir.join(layout::PROCESSING_METADATA))?;
        let rows = page(&st, &d, table, &p)?;
        if p.parquet {
            let bytes = crate::io::parquet_bytes(&rows).map_err(ApiError::unavailable)?;
            return Ok((
                [(header::CONTENT_TYPE, "application/vnd.apache.parquet")],
                Body::from(bytes),
            )
                .into_response());
        }
        let (count_key, total_key, rows_key) = table.rows_key();
        let total = meta["output_counts"][count_key].as_u64().unwrap_or(0);
        // As the template: the whole date's latency for alerts, the cluster stage's for
        // clusters; whole milliseconds (its model declares an int).
        let stage = match table {
            Table::ClusterScores => st.cfg.cluster_stage.as_deref().unwrap_or("total"),
            _ => "total",
        };
        let latency = meta["latencies_ms"][stage].as_f64().unwrap_or(0.0).round();
        let rows = rows_json(table, &rows)?;
        let returned = rows.len();
        Ok(Json(json!({
            "processing_date": d.date.to_string(),
            "network": d.network,
            "window_days": d.window_days,
            "model_version": meta["model_versions"][table.model()],
            total_key: total,
            rows_key: rows,
            "pagination": {"limit": p.limit, "offset": p.offset, "returned": returned},
            "metadata": {
                "processed_at": meta["processed_at"],
                "total_latency_ms": latency as i64,
                "avg_latency_ms": if total > 0 { latency / total as f64 } else { 0.0 },
            },
        }))
        .into_response())
    })
    .await
    .map_err(ApiError::unavailable)?
}

/// A `{date}` path segment, or why it could not be extracted.
type DateSegment = std::result::Result<UrlPath<String>, PathRejection>;

/// `GET` of a page of an output table of a date.
fn table_route(table: Table) -> MethodRouter<Arc<AppState>> {
    get(
        move |State(st): State<Arc<AppState>>, date: DateSegment, RawQuery(q): RawQuery| async move {
            table_page(st, table, segment(date)?, q).await
        },
    )
}

/// `GET` of a JSON file of a date, as it is on disk.
fn file_route(file: &'static str) -> MethodRouter<Arc<AppState>> {
    get(
        move |State(st): State<Arc<AppState>>, date: DateSegment, RawQuery(q): RawQuery| async move {
            let date = segment(date)?;
            let p = Params::parse(&st.cfg, q.as_deref())?;
            let d = st.resolve(&date, &p)?;
            st.read_json(&d.dir.join(file)).map(Json)
        },
    )
}

/// Lists the output tree again; every request already reads it fresh, so this only reports.
async fn refresh(State(st): State<Arc<AppState>>, RawQuery(q): RawQuery) -> ApiResult<Json<Value>> {
    let p = Params::parse(&st.cfg, q.as_deref())?;
    let dates = st.dates(&p);
    Ok(Json(json!({
        "status": "refreshed",
        "total_count": dates.len(),
        "latest_date": dates.last().map(|d| d.date.to_string()),
    })))
}

async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    let mut buf = Vec::new();
    match prometheus::TextEncoder::new().encode(&st.metrics.registry.gather(), &mut buf) {
        Ok(()) => ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], buf).into_response(),
        Err(e) => ApiError::unavailable(e).into_response(),
    }
}

async fn openapi() -> Json<Value> {
    Json(openapi_doc())
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; see /openapi.json")
}

/// Refuses requests over the URI and header limits, and gives every error answer of the
/// router that has no JSON body (axum's 405, for one) the `{error, detail}` body.
async fn json_errors(req: Request, next: Next) -> Response {
    let uri_len = req.uri().to_string().len();
    if uri_len > MAX_URI {
        return ApiError(
            StatusCode::URI_TOO_LONG,
            format!("the request URI has {uri_len} bytes; at most {MAX_URI} are answered"),
        )
        .into_response();
    }
    let headers = req.headers();
    let bytes: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if headers.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        return ApiError(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "{} headers of {bytes} bytes; at most {MAX_HEADERS} headers and {MAX_HEADER_BYTES} bytes are answered",
                headers.len()
            ),
        )
        .into_response();
    }
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let detail = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            format!("{method} is not allowed on {path}; see /openapi.json")
        }
        s => s.canonical_reason().unwrap_or("error").to_string(),
    };
    ApiError(status, detail).into_response()
}

/// The API's router over `cfg`'s output tree.
pub fn router(cfg: ServeConfig) -> Result<Router> {
    let base = Connection::open_in_memory().context("cannot open an in-memory DuckDB")?;
    // Pages are small: one thread per query, and concurrency from the requests themselves.
    base.execute_batch("SET threads = 1; SET preserve_insertion_order = true;")
        .context("cannot configure DuckDB")?;
    let st = Arc::new(AppState {
        cfg,
        pool: Pool {
            base: Mutex::new(base),
            idle: Mutex::new(Vec::new()),
        },
        cache: TableCache::default(),
        metrics: metrics::Metrics::new()?,
    });
    Ok(Router::new()
        .route("/health", get(health))
        .route("/version", get(version))
        .route("/dates/available", get(dates_available))
        .route("/dates/latest", get(dates_latest))
        .route("/scores/alerts/{date}", table_route(Table::AlertScores))
        .route("/rankings/alerts/{date}", table_route(Table::AlertRankings))
        .route("/scores/clusters/{date}", table_route(Table::ClusterScores))
        .route("/metadata/{date}", file_route(layout::PROCESSING_METADATA))
        .route("/validation/{date}", file_route(layout::VALIDATION))
        .route("/refresh", post(refresh))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(json_errors))
        .layer(axum::middleware::from_fn_with_state(
            st.clone(),
            metrics::track,
        ))
        .with_state(st))
}

/// Serves `cfg` on `bind` until Ctrl-C; prints the address once listening.
pub fn serve(cfg: ServeConfig, bind: &str) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .with_context(|| format!("cannot listen on {bind}"))?;
        let addr = listener.local_addr()?;
        println!(
            "serving {} (network {}, window {}) on http://{addr}",
            cfg.output.display(),
            cfg.network,
            cfg.window_days
        );
        let limits = cfg.limits;
        let app = router(cfg)?;
        conn::serve(listener, app, limits, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
        Ok(())
    })
}
