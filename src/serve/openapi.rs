//! The OpenAPI description of the server's API.

use super::API_VERSION;
use serde_json::{json, Value};

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
            "200": {"description": fields}, "400": err, "404": err, "503": err}}})
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
