//! The server's Prometheus metrics: requests and latency by route, dates served.

use super::AppState;
use anyhow::Result;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};
use std::sync::Arc;
use std::time::Instant;

/// Prometheus metrics of the server.
pub(super) struct Metrics {
    pub(super) registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    pub(super) dates: IntGauge,
}

impl Metrics {
    pub(super) fn new() -> Result<Self> {
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

/// Counts every request and its latency by matched route.
pub(super) async fn track(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
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
