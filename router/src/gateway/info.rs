//! The small endpoints: models, health, readiness, metrics and the live event stream.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::Stream;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::{ApiError, AppState};

/// `GET /v1/models`: `auto` and the route sets, the routes, and the backends, OpenAI-shaped.
pub(crate) async fn models(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    state.authenticate(&headers, "models")?;
    let core = &state.inner.core;
    let mut data = Vec::new();
    for m in core.policy_models() {
        data.push(json!({
            "id": m.name, "object": "model", "created": 0, "owned_by": "triage",
            "triage": {"kind": "policy", "description": m.description},
        }));
    }
    for b in state.inner.backends.iter() {
        data.push(json!({
            "id": b.name, "object": "model", "created": 0, "owned_by": "triage",
            "triage": {"kind": "backend", "where": b.kind, "loaded": b.is_loaded(),
                       "upstream_model": b.upstream_model},
        }));
    }
    let routes: Vec<_> = core
        .routes()
        .into_iter()
        .map(|r| json!({"name": r.name, "description": r.description}))
        .collect();
    Ok(Json(
        json!({"object": "list", "data": data, "triage_routes": routes}),
    ))
}

/// `GET /healthz`: the process answers.
pub(crate) async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: 503 while a backend is still loading or when none can serve; otherwise 200,
/// `ready`, or `degraded` with the backends that are down (a remote whose key is missing, a
/// model that failed to load) — their routes fall back. Why a backend is down (which may name
/// files) is shown only to callers with a key, or on an open gateway. With a shared store,
/// `store` says whether it answers (`up` or `down`; down is `degraded`: admission follows
/// `store_failure`).
pub(crate) async fn readyz(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let detailed = state.inner.auth.check(&headers).is_ok();
    let mut loading = Vec::new();
    let mut failed = Vec::new();
    let mut ready = Vec::new();
    for b in state.inner.backends.iter() {
        if let Some(err) = b.load_error() {
            let error = if detailed {
                err
            } else {
                "down (details need an API key)"
            };
            failed.push(json!({"backend": b.name, "error": error}));
        } else if b.is_loaded() {
            ready.push(b.name.clone());
        } else {
            loading.push(b.name.clone());
        }
    }
    let store = state.inner.core.store_health().map(|h| h.is_up());
    if loading.is_empty() && !ready.is_empty() {
        let status = if failed.is_empty() && store != Some(false) {
            "ready"
        } else {
            "degraded"
        };
        let mut body = json!({"status": status, "backends": ready, "down": failed});
        if let Some(up) = store {
            body["store"] = json!(if up { "up" } else { "down" });
        }
        Json(body).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "loading", "loading": loading, "failed": failed})),
        )
            .into_response()
    }
}

/// `GET /metrics`: Prometheus/OpenMetrics text; local engine gauges are read now. Open unless
/// `server.metrics_require_key` is set.
pub(crate) async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if state.inner.options.metrics_require_key {
        if let Err(e) = state.authenticate(&headers, "metrics") {
            return e.into_response();
        }
    }
    let m = &state.inner.metrics;
    for (name, load) in state.inner.backends.local_loads() {
        m.set_local_load(&name, load.queue_depth, load.busy_slots, load.slots);
    }
    for b in state.inner.backends.iter() {
        m.set_backend_up(&b.name, b.is_loaded() && b.load_error().is_none());
    }
    for (name, time) in state.inner.backends.local_engine_times() {
        m.set_local_engine_time(&name, &time);
    }
    if let Some(h) = state.inner.core.store_health() {
        m.set_store("redis", h.is_up(), h.errors());
    }
    if let Some(stats) = state.inner.core.ledger_writer() {
        m.set_ledger_writer(&stats);
    }
    match m.encode() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "could not encode metrics",
        )
        .into_response(),
    }
}

/// `GET /v1/triage/events`: one `data:` JSON summary per finished request, until shutdown. A
/// tenant's key sees only its tenant's requests; an admin tenant's key (`server.admin_tenants`)
/// or an open gateway sees all.
pub(crate) async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let tenant = state.authenticate(&headers, "events")?;
    let viewer = state.inner.auth.viewer(tenant.as_deref());
    let mut rx = state.inner.events.subscribe();
    let shutdown = state.inner.shutdown.clone();
    let stream = async_stream::stream! {
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => break,
                next = rx.recv() => next,
            };
            match next {
                Ok(summary) if !viewer.sees(summary.key.as_deref()) => continue,
                Ok(summary) => match serde_json::to_string(&*summary) {
                    Ok(json) => yield Ok(Event::default().event("request").data(json)),
                    Err(e) => yield Ok(Event::default().comment(format!("unencodable summary: {e}"))),
                },
                Err(RecvError::Lagged(n)) => {
                    yield Ok(Event::default().comment(format!("lagged: skipped {n} summaries")));
                }
                Err(RecvError::Closed) => break,
            }
        }
    };
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
