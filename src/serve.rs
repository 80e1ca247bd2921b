//! `pipeline serve`: the outputs over HTTP (axum), in the upstream API's response shapes.
//!
//! Every request reads the output tree as it is now, so dates written by a concurrent run
//! appear without a restart; a date is served only once its `processing_metadata.json` exists,
//! which the write stage commits last. Dates are `YYYY-MM-DD` or `latest`, networks are plain
//! names, and every value that reaches DuckDB is a bound parameter, so no request can name a
//! file outside the output tree or change a query. Errors are JSON bodies with 400 or 404.

use crate::contract::{to_f64, to_str};
use crate::query::{completed_dates, is_network_name, parse_date, OutputDate, COMPLETE_MARKER};
use anyhow::{Context, Result};
use arrow::array::{Array, RecordBatch};
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{MatchedPath, Path as UrlPath, RawQuery, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use duckdb::Connection;
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

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
}

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
        let popped = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match popped {
            Some(c) => c,
            None => self
                .base
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .try_clone()
                .map_err(ApiError::unavailable)?,
        };
        let out = f(&conn).map_err(ApiError::unavailable);
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
        out
    }
}

/// Prometheus metrics of the server.
struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    dates: IntGauge,
}

impl Metrics {
    fn new() -> Result<Self> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "aml_http_requests_total",
                "HTTP requests by route and status",
            ),
            &["route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "aml_http_request_duration_seconds",
                "HTTP request latency by route",
            )
            .buckets(prometheus::exponential_buckets(0.0005, 2.0, 16)?),
            &["route"],
        )?;
        let dates = IntGauge::new(
            "aml_dates_served",
            "Completed dates found at the last listing",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(dates.clone()))?;
        Ok(Self {
            registry,
            requests,
            latency,
            dates,
        })
    }
}

struct AppState {
    cfg: ServeConfig,
    pool: Pool,
    cache: TableCache,
    metrics: Metrics,
}

/// Query parameters common to the endpoints; unknown names and malformed values are refused.
struct Params {
    network: String,
    window_days: u32,
    limit: usize,
    offset: usize,
    parquet: bool,
}

impl Params {
    fn parse(cfg: &ServeConfig, raw: Option<&str>) -> ApiResult<Self> {
        let mut p = Self {
            network: cfg.network.clone(),
            window_days: cfg.window_days,
            limit: 1000,
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
                    p.limit = number("rows per page")?;
                    if p.limit == 0 || p.limit > MAX_LIMIT {
                        return Err(ApiError::bad(format!(
                            "`limit` must be between 1 and {MAX_LIMIT}"
                        )));
                    }
                }
                "offset" => p.offset = number("rows to skip")?,
                "format" => {
                    p.parquet = match v.as_ref() {
                        "json" => false,
                        "parquet" => true,
                        _ => return Err(ApiError::bad("`format` must be json or parquet")),
                    }
                }
                _ => {
                    return Err(ApiError::bad(format!(
                        "unknown parameter `{k}` (expected network, window_days, limit, offset, format)"
                    )))
                }
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
        let dir = crate::config::batch_dir(&self.cfg.output, &p.network, date, p.window_days);
        if !dir.join(COMPLETE_MARKER).is_file() {
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

fn read_json(path: &Path) -> ApiResult<Value> {
    let bytes = std::fs::read(path).map_err(|_| {
        ApiError::not_found(format!(
            "{} does not exist",
            path.file_name().unwrap_or_default().to_string_lossy()
        ))
    })?;
    serde_json::from_slice(&bytes).map_err(ApiError::unavailable)
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
        .and_then(|d| read_json(&d.dir.join(COMPLETE_MARKER)).ok());
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
        .take(p.limit)
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
    let meta = read_json(&d.dir.join(COMPLETE_MARKER))?;
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
            Self::AlertScores => "alert_scores.parquet",
            Self::AlertRankings => "alert_rankings.parquet",
            Self::ClusterScores => "cluster_scores.parquet",
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
    let stamp = std::fs::metadata(&path)
        .and_then(|m| Ok((m.len(), m.modified()?)))
        .map_err(|_| ApiError::not_found(format!("{} does not exist", table.file())))?;
    let whole = match st.cache.get(&path, stamp) {
        Some(b) => b,
        None => {
            let name = path.display().to_string();
            let b = st.pool.with(|c| {
                let mut stmt = c.prepare_cached(table.sql())?;
                let arrow = stmt.query_arrow(duckdb::params![name])?;
                let schema = arrow.get_schema();
                let batches: Vec<RecordBatch> = arrow.collect();
                Ok(arrow::compute::concat_batches(&schema, &batches))
            })?;
            let b = Arc::new(b.map_err(ApiError::unavailable)?);
            st.cache.put(path, stamp, b.clone());
            b
        }
    };
    let start = p.offset.min(whole.num_rows());
    Ok(whole.slice(start, p.limit.min(whole.num_rows() - start)))
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
        let meta = read_json(&d.dir.join(COMPLETE_MARKER))?;
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
        let latency = meta["latencies_ms"]["total"].as_f64().unwrap_or(0.0);
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
                "total_latency_ms": latency,
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
            read_json(&d.dir.join(file)).map(Json)
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

/// Counts every request and its latency by matched route.
async fn track(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_string();
    let start = Instant::now();
    let resp = next.run(req).await;
    st.metrics
        .latency
        .with_label_values(&[route.as_str()])
        .observe(start.elapsed().as_secs_f64());
    st.metrics
        .requests
        .with_label_values(&[route.as_str(), resp.status().as_str()])
        .inc();
    resp
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
        metrics: Metrics::new()?,
    });
    Ok(Router::new()
        .route("/health", get(health))
        .route("/version", get(version))
        .route("/dates/available", get(dates_available))
        .route("/dates/latest", get(dates_latest))
        .route("/scores/alerts/{date}", table_route(Table::AlertScores))
        .route("/rankings/alerts/{date}", table_route(Table::AlertRankings))
        .route("/scores/clusters/{date}", table_route(Table::ClusterScores))
        .route("/metadata/{date}", file_route(COMPLETE_MARKER))
        .route("/validation/{date}", file_route("validation.json"))
        .route("/refresh", post(refresh))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(st.clone(), track))
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
        let app = router(cfg)?;
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .context("server failed")
    })
}

/// The OpenAPI 3 description of the API.
pub fn openapi_doc() -> Value {
    let param = |name: &str, desc: &str, ty: &str| json!({"name": name, "in": "query", "required": false, "description": desc, "schema": {"type": ty}});
    let common = vec![
        param("network", "Network (default: the config's)", "string"),
        param(
            "window_days",
            "Window in days (default: the config's)",
            "integer",
        ),
    ];
    let mut paged = common.clone();
    paged.push(param(
        "limit",
        "Rows per page, 1..100000 (default 1000)",
        "integer",
    ));
    paged.push(param("offset", "Rows to skip (default 0)", "integer"));
    let mut table = paged.clone();
    table.push(param("format", "json (default) or parquet", "string"));
    let date = json!({"name": "date", "in": "path", "required": true,
        "description": "YYYY-MM-DD or latest", "schema": {"type": "string"}});
    let with_date = |mut ps: Vec<Value>| {
        ps.insert(0, date.clone());
        Value::Array(ps)
    };
    let err = json!({"description": "JSON error {error, detail}"});
    let op = |summary: &str, params: Value, fields: &str| {
        json!({"get": {"summary": summary, "parameters": params, "responses": {
            "200": {"description": fields}, "400": err, "404": err}}})
    };
    json!({
        "openapi": "3.0.3",
        "info": {"title": "aml-pipeline results", "version": API_VERSION},
        "paths": {
            "/health": op("Liveness", json!([]), "{status, timestamp, version, database_connected}"),
            "/version": op("Versions of the API, models and code", Value::Array(common.clone()), "{api_version, models{alert_scorer, alert_ranker, cluster_scorer}, network, commit_hash}"),
            "/dates/available": op("Completed dates, newest first", Value::Array(paged), "{dates[], total_count}"),
            "/dates/latest": op("The newest completed date", Value::Array(common.clone()), "{latest_date, processed_at}"),
            "/scores/alerts/{date}": op("Alert scores, in the batch's alert order", with_date(table.clone()), "{processing_date, model_version, total_alerts, scores[{alert_id, score}], metadata{processed_at, total_latency_ms, avg_latency_ms}}, or Parquet"),
            "/rankings/alerts/{date}": op("Alert ranking, by rank", with_date(table.clone()), "{processing_date, model_version, total_alerts, rankings[{alert_id, rank, score}], metadata}, or Parquet"),
            "/scores/clusters/{date}": op("Cluster scores, in the batch's cluster order", with_date(table), "{processing_date, model_version, total_clusters, scores[{cluster_id, score}], metadata}, or Parquet"),
            "/metadata/{date}": op("The date's processing_metadata.json", with_date(common.clone()), "processing metadata"),
            "/validation/{date}": op("The date's validation.json", with_date(common.clone()), "validation report"),
            "/refresh": {"post": {"summary": "List the output tree again", "responses": {"200": {"description": "{status, total_count, latest_date}"}}}},
            "/metrics": op("Prometheus metrics", json!([]), "text/plain; version=0.0.4"),
            "/openapi.json": op("This document", json!([]), "OpenAPI 3 JSON"),
        }
    })
}
