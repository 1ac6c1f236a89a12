//! The admin HTTP server: Prometheus metrics, twemproxy-compatible stats,
//! the topology, health and readiness, recent events, the live status
//! page, the active configuration and reloads. Runs on the control
//! thread; reads only shared counters and snapshots, so it never slows
//! the data path. See `docs/admin.md`.
//!
//! # Layout
//! - `access`: who may use it: the bearer token, loopback or not.
//! - `prometheus`: `/metrics` in the Prometheus text format.
//! - `twemproxy`: `/stats` with twemproxy's field names.
//! - `overview`: `/topology` and `/api/overview` JSON.
//! - `history`: fifteen minutes of samples for the status page's charts
//!   (`/api/history`).
//! - `status.html`: the status page, embedded in the binary.

mod access;
mod history;
mod overview;
mod prometheus;
mod twemproxy;

use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use tokio::sync::watch;

use crate::control::ControlCommand;
use crate::pool::PoolState;
use crate::proxy_info::{ProxyInfo, ReloadResult};
use crate::reload::ReloadHandle;
use crate::reshard::ReshardCommand;
use crate::topology::Events;
pub use access::Access;

/// What the admin server reads.
pub struct Admin {
    pub events: Arc<Events>,
    pub proxy: Arc<ProxyInfo>,
    /// Host names the server answers to besides IP addresses, `localhost`
    /// and the machine's name (see [`host_allowed`]).
    pub hosts: Vec<String>,
    /// Asks for reloads (`POST /reload`).
    pub reloads: ReloadHandle,
    /// Reaches each pool's resharding coordinator.
    pub control: tokio::sync::mpsc::UnboundedSender<ControlCommand>,
    /// What the status page's charts draw.
    pub history: std::sync::Mutex<history::History>,
    /// The bearer token, and whether the server listens beyond loopback.
    pub access: Access,
}

impl Admin {
    /// The pools now.
    pub fn pools(&self) -> Arc<Vec<Arc<PoolState>>> {
        self.proxy.pools()
    }
}

const STATUS_PAGE: &str = include_str!("status.html");

/// A client must send its request headers within this long (also the
/// idle time allowed between requests on a kept-alive connection).
const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// No connection lives longer, however busy.
const MAX_LIFETIME: std::time::Duration = std::time::Duration::from_secs(300);
/// Connections open at once; a new one beyond this closes the oldest. The
/// admin server shares the process's descriptors with clients.
const MAX_CONNECTIONS: usize = 64;

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
    let proxy_retired = admin.proxy.retired();
    tokio::task::spawn_local(keep_history(admin.clone()));
    let tls = admin.proxy.admin_tls().cloned();
    let app = Router::new()
        .route("/", get(|| async { Html(STATUS_PAGE) }))
        .route("/metrics", get(metrics))
        .route("/stats", get(stats))
        .route("/topology", get(topology))
        .route("/health", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .route("/events", get(events))
        .route("/api/overview", get(overview))
        .route("/api/history", get(history_series))
        .route("/config", get(config))
        .route("/reload", axum::routing::post(reload))
        .route("/upgrade", axum::routing::post(upgrade))
        .route("/reshard", get(reshard_status))
        .route("/reshard/start", axum::routing::post(reshard_start))
        .route("/reshard/plan", axum::routing::post(reshard_plan))
        .route(
            "/reshard/pause",
            axum::routing::post(|s, q| reshard_op(s, q, ReshardOp::Pause)),
        )
        .route(
            "/reshard/resume",
            axum::routing::post(|s, q| reshard_op(s, q, ReshardOp::Resume)),
        )
        .route(
            "/reshard/abort",
            axum::routing::post(|s, q| reshard_op(s, q, ReshardOp::Abort)),
        )
        .layer(axum::middleware::from_fn_with_state(
            admin.clone(),
            check_access,
        ))
        .layer(axum::middleware::from_fn_with_state(
            admin.clone(),
            check_host,
        ))
        .with_state(admin);
    // Open connections by age; at the limit the oldest is closed, so
    // idle or half-open connections can neither pile up nor lock out a
    // new request.
    let open: std::rc::Rc<
        std::cell::RefCell<std::collections::BTreeMap<u64, tokio::task::AbortHandle>>,
    > = std::rc::Rc::default();
    let mut next_id = 0u64;
    let stop = crate::shutdown::until_shutdown(&mut shutdown);
    tokio::pin!(stop);
    // After an upgrade the new process answers on this socket.
    let mut retired = proxy_retired;
    let retire = async move {
        let _ = retired.wait_for(|r| *r).await;
    };
    tokio::pin!(retire);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    static LOG: crate::log_limit::LogLimit = crate::log_limit::LogLimit::new(60);
                    if LOG.allow() {
                        tracing::warn!("admin server: accept failed: {e}");
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => return,
            () = &mut retire => return,
        };
        if open.borrow().len() >= MAX_CONNECTIONS {
            if let Some((_, oldest)) = open.borrow_mut().pop_first() {
                oldest.abort();
            }
        }
        next_id += 1;
        let id = next_id;
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let registry = open.clone();
        let tls = tls.clone();
        let task = tokio::task::spawn_local(async move {
            let served = async {
                match tls.as_ref().and_then(|tls| tls.acceptor.current()) {
                    // The handshake counts against the header timeout.
                    Some(side) => {
                        let accept =
                            shardgate_tls::tokio_rustls::TlsAcceptor::from(side.config.clone())
                                .accept(stream);
                        match tokio::time::timeout(HEADER_TIMEOUT, accept).await {
                            Ok(Ok(stream)) => serve_connection(stream, service).await,
                            Ok(Err(e)) => {
                                static LOG: crate::log_limit::LogLimit =
                                    crate::log_limit::LogLimit::new(10);
                                if LOG.allow() {
                                    tracing::warn!(
                                        "admin server: TLS handshake refused: {}",
                                        shardgate_tls::describe(&e, shardgate_tls::Side::Client)
                                    );
                                }
                            }
                            Err(_) => {}
                        }
                    }
                    None => serve_connection(stream, service).await,
                }
            };
            let _ = tokio::time::timeout(MAX_LIFETIME, served).await;
            registry.borrow_mut().remove(&id);
        });
        open.borrow_mut().insert(id, task.abort_handle());
    }
}

/// One HTTP/1.1 connection (over TCP or TLS), to its end.
async fn serve_connection<S>(stream: S, service: hyper_util::service::TowerToHyperService<Router>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
{
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .await;
}

/// The bearer token, where it is needed (see [`access`]).
async fn check_access(State(admin): State<Arc<Admin>>, request: Request, next: Next) -> Response {
    let presented = access::bearer(
        request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok()),
    );
    let changes_state = request.method() == axum::http::Method::POST;
    match access::decide(&admin.access, request.uri().path(), changes_state, presented) {
        access::Decision::Serve => next.run(request).await,
        access::Decision::Unauthorized => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"shardgate\"")],
            "shardgate admin: this needs the admin token (Authorization: Bearer ...; shardgate reload --admin-token-file FILE)\n",
        )
            .into_response(),
        access::Decision::NoTokenConfigured => (
            StatusCode::FORBIDDEN,
            "shardgate admin: this admin server listens beyond loopback without --admin-token-file: nothing may change the proxy through it\n",
        )
            .into_response(),
    }
}

/// Refuses requests whose `Host` is not this server's: a web page the
/// operator visits could otherwise read the admin API through DNS
/// rebinding (its own name, resolving to 127.0.0.1). IP addresses,
/// `localhost`, the machine's host name and `--admin-host` names pass.
async fn check_host(State(admin): State<Arc<Admin>>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    match host {
        Some(host) if !host_allowed(host, &admin.hosts) => (
            StatusCode::MISDIRECTED_REQUEST,
            format!("shardgate admin: host '{host}' is not allowed (start with --admin-host {host} to allow it)\n"),
        )
            .into_response(),
        // A browser sends `Origin` with every cross-site POST: a web page
        // must not reload the proxy (curl and `shardgate reload` send none).
        _ if request.method() == axum::http::Method::POST
            && !same_origin(request.headers().get(header::ORIGIN), host) =>
        {
            (
                StatusCode::FORBIDDEN,
                "shardgate admin: cross-site requests may not change the proxy\n",
            )
                .into_response()
        }
        _ => next.run(request).await,
    }
}

/// Whether a request's `Origin` (if any) is the admin server itself.
fn same_origin(origin: Option<&header::HeaderValue>, host: Option<&str>) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let origin = origin.to_str().unwrap_or_default();
    let origin = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    origin.is_some_and(|o| Some(o) == host)
}

/// Whether a `Host` header names this server (see [`check_host`]).
pub fn host_allowed(host: &str, names: &[String]) -> bool {
    let name = match host.strip_prefix('[') {
        // [v6]:port
        Some(rest) => {
            return rest
                .split(']')
                .next()
                .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok())
        }
        None => host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                name
            } else {
                host
            }
        }),
    };
    if name.parse::<std::net::IpAddr>().is_ok() || name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    names
        .iter()
        .any(|allowed| allowed.eq_ignore_ascii_case(name))
        || machine_name().is_some_and(|machine| machine.eq_ignore_ascii_case(name))
}

/// The machine's host name.
fn machine_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
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

/// A sample every second for the charts (stops with the control thread).
async fn keep_history(admin: Arc<Admin>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        lock(&admin.history).record(&admin.proxy);
    }
}

async fn history_series(State(admin): State<Arc<Admin>>) -> Response {
    Json(lock(&admin.history).series(&admin.events)).into_response()
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The status page's data: `/topology`, traffic, events, and each pool's
/// migration while one is under way or has ended (`reshard`).
async fn overview(State(admin): State<Arc<Admin>>) -> Response {
    let mut overview = overview::overview(&admin);
    let pools = overview.get_mut("pools").and_then(|p| p.as_array_mut());
    for pool in pools.into_iter().flatten() {
        let Some(name) = pool
            .get("pool")
            .and_then(|n| n.as_str())
            .map(str::to_string)
        else {
            continue;
        };
        let Some(status) = ask(&admin, &name, ReshardCommand::Status).await else {
            continue;
        };
        if let (Some(pool), true) = (pool.as_object_mut(), status.phase != "none") {
            pool.insert("reshard".into(), serde_json::json!(status));
        }
    }
    Json(overview).into_response()
}

/// Ready once startup is over and while every shard of every pool has a
/// usable master (or is ejected: its keys are served by the others).
async fn ready(State(admin): State<Arc<Admin>>) -> Response {
    if !admin.proxy.serving() {
        return (StatusCode::SERVICE_UNAVAILABLE, "not ready: starting\n").into_response();
    }
    let mut missing = Vec::new();
    for pool in admin.pools().iter() {
        for shard in &pool.topology().shards {
            if shard.master.is_none() && !shard.ejected {
                let reason = shard.down.as_deref().unwrap_or("no master");
                missing.push(format!(
                    "pool '{}' shard '{}': {reason}",
                    pool.name, shard.name
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

/// The active configuration (secrets redacted), its hash and epoch, and
/// the last reload attempt.
async fn config(State(admin): State<Arc<Admin>>) -> Response {
    let record = admin.proxy.config();
    let attempt = record.last_attempt.as_ref().map(|a| {
        serde_json::json!({
            "at": a.at_unix,
            "result": a.result.as_str(),
            "lines": a.lines,
        })
    });
    Json(serde_json::json!({
        "epoch": record.epoch,
        "hash": record.hash,
        "applied_at": record.applied_unix,
        "last_reload": attempt,
        "config": record.redacted,
    }))
    .into_response()
}

/// Reloads the configuration file: 200 when applied, 422 when the file is
/// invalid, 409 when a change is refused, 500 when it could not be applied.
async fn reload(State(admin): State<Arc<Admin>>) -> Response {
    let Some(outcome) = admin.reloads.reload_async().await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    };
    let status = match outcome.result {
        ReloadResult::Applied => StatusCode::OK,
        ReloadResult::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        ReloadResult::Refused => StatusCode::CONFLICT,
        ReloadResult::Failed => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let body = serde_json::json!({
        "result": outcome.result.as_str(),
        "epoch": outcome.epoch,
        "lines": outcome.lines,
    });
    (status, Json(body)).into_response()
}

/// A binary upgrade, as SIGUSR2 starts one: answers once the new process
/// serves (`200`, its pid) or the upgrade failed (`500`, why; this
/// process carries on). The old process then hands its clients over and
/// exits.
async fn upgrade(State(admin): State<Arc<Admin>>) -> Response {
    let reloads = admin.reloads.clone();
    let outcome = tokio::task::spawn_blocking(move || reloads.upgrade()).await;
    match outcome {
        Ok(Ok(pid)) => Json(serde_json::json!({ "pid": pid })).into_response(),
        Ok(Err(error)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({ "error": error.to_string() })),
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

/// What an operator asks of migrations under way.
#[derive(Debug, Clone, Copy)]
enum ReshardOp {
    Pause,
    Resume,
    Abort,
}

/// Asks pool `pool`'s coordinator.
async fn ask<T>(
    admin: &Admin,
    pool: &str,
    command: impl FnOnce(tokio::sync::oneshot::Sender<T>) -> ReshardCommand,
) -> Option<T> {
    let (reply, outcome) = tokio::sync::oneshot::channel();
    let sent = admin
        .control
        .send(ControlCommand::Reshard(pool.into(), command(reply)));
    sent.ok()?;
    outcome.await.ok()
}

/// Every pool's migration: phase, progress, rate, proxies not in step.
async fn reshard_status(State(admin): State<Arc<Admin>>) -> Response {
    let mut statuses = Vec::new();
    for pool in admin.pools().iter() {
        if let Some(status) = ask(&admin, &pool.name, ReshardCommand::Status).await {
            statuses.push(status);
        }
    }
    Json(statuses).into_response()
}

/// Starts moving each pool's keys to the placement its entry in the
/// configuration file gives (`200`, a line per pool), or says why not
/// (`409`).
async fn reshard_start(State(admin): State<Arc<Admin>>) -> Response {
    let records = match admin.reloads.reshard_plan(None).await {
        Ok(records) => records,
        Err(problems) => return lines_response(Err(problems)),
    };
    let mut started = Vec::new();
    let mut problems = Vec::new();
    for (pool, record) in records {
        let to = record.to.servers.join(", ");
        let record = Box::new(record);
        match ask(&admin, &pool, |reply| ReshardCommand::Start(record, reply)).await {
            Some(Ok(generation)) => started.push(format!(
                "pool '{pool}': migration {generation} started: keys move to {to}"
            )),
            Some(Err(e)) => problems.push(e.to_string()),
            None => problems.push(format!("pool '{pool}': no coordinator")),
        }
    }
    lines_response(if problems.is_empty() {
        Ok(started)
    } else {
        Err(problems)
    })
}

#[derive(Deserialize)]
struct PlanQuery {
    /// Keys scanned per source database at most (default 100,000); the
    /// figures are scaled up from that sample.
    max_keys: Option<u64>,
}

/// What `reshard start` would move, measured and changing nothing: the
/// body is a configuration to compare with (empty: the proxy's file).
/// 200 when every migration may start, 409 when one is refused.
async fn reshard_plan(
    State(admin): State<Arc<Admin>>,
    Query(query): Query<PlanQuery>,
    body: String,
) -> Response {
    let text = (!body.trim().is_empty()).then_some(body);
    let records = match admin.reloads.reshard_plan(text).await {
        Ok(records) => records,
        Err(problems) => return lines_response(Err(problems)),
    };
    let max_keys = query.max_keys.unwrap_or(100_000).max(1);
    let (mut lines, mut surveys, mut refused) = (Vec::new(), Vec::new(), false);
    for (pool, record) in records {
        let Some(state) = admin.pools().iter().find(|p| *p.name == *pool).cloned() else {
            continue;
        };
        match crate::reshard::survey::survey(&state, &record, max_keys).await {
            Ok(survey) => {
                refused |= !survey.refused.is_empty();
                lines.extend(survey.lines());
                surveys.push(survey);
            }
            Err(e) => {
                refused = true;
                lines.push(format!("pool '{pool}': cannot survey: {e}"));
            }
        }
    }
    let status = if refused {
        StatusCode::CONFLICT
    } else {
        StatusCode::OK
    };
    let body = serde_json::json!({ "ok": !refused, "lines": lines, "pools": surveys });
    (status, Json(body)).into_response()
}

#[derive(Deserialize)]
struct PoolQuery {
    pool: Option<String>,
}

/// Pauses, resumes or aborts (moves the keys back) the migration of
/// `?pool=` (default: every pool with one under way).
async fn reshard_op(
    State(admin): State<Arc<Admin>>,
    Query(query): Query<PoolQuery>,
    op: ReshardOp,
) -> Response {
    let pools: Vec<String> = match query.pool {
        Some(pool) => vec![pool],
        None => {
            let mut under_way = Vec::new();
            for pool in admin.pools().iter() {
                let status = ask(&admin, &pool.name, ReshardCommand::Status).await;
                if status.is_some_and(|s| !matches!(s.phase.as_str(), "none" | "done" | "aborted"))
                {
                    under_way.push(pool.name.to_string());
                }
            }
            under_way
        }
    };
    if pools.is_empty() {
        return lines_response(Err(vec!["no migration under way".into()]));
    }
    let (mut done, mut problems) = (Vec::new(), Vec::new());
    for pool in pools {
        let command = |reply| match op {
            ReshardOp::Pause => ReshardCommand::Pause(reply),
            ReshardOp::Resume => ReshardCommand::Resume(reply),
            ReshardOp::Abort => ReshardCommand::Abort(reply),
        };
        match ask(&admin, &pool, command).await {
            Some(Ok(generation)) => done.push(format!(
                "pool '{pool}': {} (migration {generation})",
                format!("{op:?}").to_lowercase()
            )),
            Some(Err(e)) => problems.push(e.to_string()),
            None => problems.push(format!("pool '{pool}': no such pool")),
        }
    }
    lines_response(if problems.is_empty() {
        Ok(done)
    } else {
        Err(problems)
    })
}

fn lines_response(outcome: Result<Vec<String>, Vec<String>>) -> Response {
    match outcome {
        Ok(lines) => Json(serde_json::json!({ "ok": true, "lines": lines })).into_response(),
        Err(lines) => (
            StatusCode::CONFLICT,
            Json(serde_json::json!({ "ok": false, "lines": lines })),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct EventsQuery {
    limit: Option<usize>,
}

async fn events(State(admin): State<Arc<Admin>>, Query(query): Query<EventsQuery>) -> Response {
    Json(admin.events.recent(query.limit.unwrap_or(100))).into_response()
}
