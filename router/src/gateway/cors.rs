//! CORS, only for the origins `server.cors_allow_origins` lists.
//!
//! A gateway on 127.0.0.1 is reachable from every web page its user opens: without CORS
//! headers the browser refuses to hand any response to another site's script (and a JSON POST
//! needs a preflight the gateway does not grant), so by default no CORS headers are sent at
//! all. A web app the operator trusts is listed by origin; `*` is refused at config load.

use axum::http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

use crate::headers;

/// The layer for `origins`; `None` when the list is empty.
pub(super) fn layer(origins: &[String]) -> Option<CorsLayer> {
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if allowed.is_empty() {
        return None;
    }
    let triage_headers = [
        headers::TASK,
        headers::BACKEND,
        headers::ROUTE,
        headers::COST,
        headers::ESCALATED,
        headers::ESCALATION_FAILED,
        headers::REQUEST_ID,
        headers::SIGNAL,
        headers::CLASSIFIER,
    ]
    .into_iter()
    .map(HeaderName::from_static);
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(allowed))
            .allow_methods([Method::GET, Method::POST])
            // The origin list is the decision; SDKs add their own headers (`x-stainless-*`).
            .allow_headers(AllowHeaders::mirror_request())
            .expose_headers(triage_headers.collect::<Vec<_>>()),
    )
}
