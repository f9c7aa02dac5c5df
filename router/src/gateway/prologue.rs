//! The start every model endpoint shares — chat completions, messages and embeddings — written
//! once so the three cannot drift apart:
//!
//! - [`start`]: the key check first (a refusal is a 401 counted in metrics, with no ledger
//!   row), then the request's [`Tracker`] (from here on every outcome is its one ledger row)
//!   with the key noted, and the request deadline counted from the headers' arrival
//!   ([`Arrival`]), so a body that is slow to arrive eats into it;
//! - [`parse_json`]: a JSON body into the endpoint's wire type, the error naming the field that
//!   is wrong (`param`) and the endpoint (`Invalid chat completion request body at …`).
//!
//! Reading the body (content type, size and time limits) is `chat::read_body`, shared the same
//! way; what differs per endpoint starts after the parse.

use axum::extract::Extension;
use axum::http::HeaderMap;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::chat::tracker::Tracker;
use super::error::ApiError;
use super::transport::Arrival;
use super::AppState;

/// A request past its key check: its tracker and its deadline.
pub(crate) struct Started {
    /// Records the request's one ledger row, metrics and event.
    pub(crate) t: Tracker,
    /// When the request must be answered by (arrival + `request_deadline`).
    pub(crate) deadline: Instant,
}

/// Check the key of a request to `endpoint` (the metrics label of a refusal) and start
/// following it. A refusal is answered as is (no tracker, so no ledger row).
pub(crate) fn start(
    state: &AppState,
    arrival: Option<Extension<Arrival>>,
    headers: &HeaderMap,
    endpoint: &'static str,
) -> Result<Started, ApiError> {
    let key = state.authenticate(headers, endpoint)?;
    let arrival = arrival.map_or_else(Arrival::now, |Extension(a)| a);
    let deadline = arrival.at + state.inner.options.request_deadline;
    let mut t = Tracker::new(state.clone(), arrival);
    t.s.key = key;
    Ok(Started { t, deadline })
}

/// Parse a `what` request body (`chat completion`, `messages`, …) as `T`. A wrong field is a
/// 400 whose `param` is the field's path; `hint` adds a sentence for a path (or nothing).
pub(crate) fn parse_json<T: DeserializeOwned>(
    bytes: &[u8],
    what: &str,
    hint: fn(&str) -> &'static str,
) -> Result<T, ApiError> {
    // The well-formed body, the common case, is parsed without tracking paths (measurably
    // cheaper: `triage_stage_seconds{stage="parse"}`); only a body that fails is parsed again
    // to name the field that is wrong.
    match serde_json::from_slice(bytes) {
        Ok(request) => Ok(request),
        Err(plain) => Err(explain_json::<T>(bytes, what, hint, plain)),
    }
}

/// The error for a body `serde_json` refused (`plain`), naming the field when a path-tracking
/// parse finds one.
fn explain_json<T: DeserializeOwned>(
    bytes: &[u8],
    what: &str,
    hint: fn(&str) -> &'static str,
    plain: serde_json::Error,
) -> ApiError {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let at = if path == "." {
                String::new()
            } else {
                format!(" at `{path}`")
            };
            ApiError::bad_request(
                format!("Invalid {what} request body{at}: {inner}{}", hint(&path)),
                (path != ".").then_some(path),
            )
        }
        Ok(_) => match de.end() {
            Err(e) => ApiError::bad_request(format!("Invalid {what} request body: {e}"), None),
            Ok(()) => ApiError::bad_request(format!("Invalid {what} request body: {plain}"), None),
        },
    }
}

/// No hint for any path.
pub(crate) fn no_hint(_path: &str) -> &'static str {
    ""
}
