//! The admin HTTP server: Prometheus metrics, twemproxy-compatible stats,
//! the topology, health and readiness, recent events, and the live status
//! page. Runs on the control thread; reads only shared counters and
//! snapshots, so it never slows the data path. See `docs/admin.md`.
//!
//! # Layout
//! - `prometheus`: `/metrics` in the Prometheus text format.
//! - `twemproxy`: `/stats` with twemproxy's field names.
//! - `overview`: `/topology` and `/api/overview` JSON.
//! - `status.html`: the status page, embedded in the binary.

mod overview;
mod prometheus;
mod twemproxy;

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use tokio::sync::watch;

use crate::proxy_info::ProxyInfo;
use crate::topology::{Events, PoolState};

/// What the admin server reads.
pub struct Admin {
    pub pools: Vec<Arc<PoolState>>,
    pub events: Arc<Events>,
    pub proxy: Arc<ProxyInfo>,
}

const STATUS_PAGE: &str = include_str!("status.html");

/// Serves until shutdown.
pub async fn serve(
    listener: std::net::TcpListener,
    admin: Arc<Admin>,
    mut shutdown: watch::Receiver<bool>,
) {
    let listener = match listener
        .set_nonblocking(true)
        .and_then(|()| tokio::net::TcpListener::from_std(listener))
    {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!("admin server cannot start: {e}");
            return;
        }
    };
    let app = Router::new()
        .route("/", get(|| async { Html(STATUS_PAGE) }))
        .route("/metrics", get(metrics))
        .route("/stats", get(stats))
        .route("/topology", get(topology))
        .route("/health", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .route("/events", get(events))
        .route("/api/overview", get(overview))
        .with_state(admin);
    let stop = async move { crate::lifecycle::until_shutdown(&mut shutdown).await };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
    {
        tracing::error!("admin server stopped: {e}");
    }
}

async fn metrics(State(admin): State<Arc<Admin>>) -> Response {
    let body = prometheus::render(&admin);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn stats(State(admin): State<Arc<Admin>>) -> Response {
    Json(twemproxy::stats(&admin)).into_response()
}

async fn topology(State(admin): State<Arc<Admin>>) -> Response {
    Json(overview::topology(&admin)).into_response()
}

async fn overview(State(admin): State<Arc<Admin>>) -> Response {
    Json(overview::overview(&admin)).into_response()
}

/// Ready when every shard of every pool has a usable master (or is
/// ejected: its keys are served by the others).
async fn ready(State(admin): State<Arc<Admin>>) -> Response {
    let mut missing = Vec::new();
    for pool in &admin.pools {
        for shard in &pool.topology().shards {
            if shard.master.is_none() && !shard.ejected {
                let reason = shard.down.as_deref().unwrap_or("no master");
                missing.push(format!(
                    "pool '{}' shard '{}': {reason}",
                    pool.config.name, shard.name
                ));
            }
        }
    }
    if missing.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready:\n{}\n", missing.join("\n")),
        )
            .into_response()
    }
}

#[derive(Deserialize)]
struct EventsQuery {
    limit: Option<usize>,
}

async fn events(State(admin): State<Arc<Admin>>, Query(query): Query<EventsQuery>) -> Response {
    Json(admin.events.recent(query.limit.unwrap_or(100))).into_response()
}
