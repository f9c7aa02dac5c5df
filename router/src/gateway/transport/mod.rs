//! The transport layer: how connections are accepted, read, written and closed, and every limit
//! that protects the gateway from slow, stuck or too many clients (issue 14).
//!
//! `axum::serve` has no header, body, idle or write timeouts and waits on open connections
//! without limit at shutdown, so one client sending half a header block could hold a connection
//! (and 50 of them 50) for ever. Instead [`serve_listener`] runs its own accept loop and serves
//! each connection with hyper's HTTP/1 connection builder, under [`TransportLimits`]:
//!
//! | limit | where | beyond it |
//! |---|---|---|
//! | `max_connections` | accept loop (`connection.rs`) | the connection is answered `429` + `Retry-After: 1` and closed |
//! | `header_read_timeout` | per-connection watchdog, from the first byte of a request | the connection is closed |
//! | `idle_timeout` | watchdog, while a keep-alive connection waits for its next request | the connection is closed |
//! | `max_header_bytes` | `layers.rs` (OpenAI-shaped `431`); hyper at twice the limit (bare `431`) | `431` |
//! | `body_read_timeout` | `layers.rs`: the whole body must arrive within it, counted from arrival | `408` |
//! | `max_in_flight` | `layers.rs`, chat completions only | `429` + `Retry-After: 1` |
//! | `write_timeout` | `connection.rs`: no write progress for that long | the connection is cut, the request's stream (and its upstream) dropped and ledgered `408 write_timeout` |
//! | `shutdown_grace` | [`serve_listener`] | connections still open are dropped |
//!
//! The request deadline (`server.request_timeout`) counts from the moment the request's headers
//! arrived ([`Arrival`]), so a slow body eats into it rather than extending it. A panic inside a
//! handler is answered `500` with an OpenAI error body, logged without its message (which may
//! quote request text) and counted (`triage_handler_panics_total`); the request's ledger row
//! records 500.
//!
//! Over the connection limit the gateway answers rather than stops accepting: OpenAI SDKs and most
//! HTTP clients retry a 429 after its `Retry-After`, while a connection left in the kernel's
//! backlog hangs until the client's connect timeout (often minutes) and a refused one is retried
//! blindly. Those answers are themselves bounded ([`OVERFLOW_ANSWERS`] at a time, each within the
//! header timeout); beyond that a connection is closed at once.

mod connection;
mod layers;
mod parse_error;

use std::future::Future;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub(crate) use connection::ConnState;
pub(crate) use layers::{body_timed_out, guard_request, limit_in_flight, panic_response, Arrival};

use super::AppState;

/// Connections answered `429` at once beyond `max_connections`; further ones are closed at once.
pub const OVERFLOW_ANSWERS: usize = 64;

/// Every transport limit of one gateway (`server:` in `triage.yaml`; defaults in
/// [`TransportLimits::default`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportLimits {
    /// A request's header block must arrive within this, counted from its first byte (10 s).
    pub header_read_timeout: Duration,
    /// A request's whole body must arrive within this, counted from the headers' arrival (30 s).
    pub body_read_timeout: Duration,
    /// A keep-alive connection waiting for its next request is closed after this (75 s).
    pub idle_timeout: Duration,
    /// A response write that makes no progress for this long cuts the connection (30 s).
    pub write_timeout: Duration,
    /// After a shutdown signal, how long open connections may finish before they are dropped
    /// (30 s).
    pub shutdown_grace: Duration,
    /// Largest request line plus headers, bytes (32 KiB); beyond it `431`.
    pub max_header_bytes: usize,
    /// Connections served at once (1024).
    pub max_connections: usize,
    /// Chat completions answered at once (512); beyond it `429`.
    pub max_in_flight: usize,
}

impl Default for TransportLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(75),
            write_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
            max_header_bytes: 32 * 1024,
            max_connections: 1024,
            max_in_flight: 512,
        }
    }
}

impl TransportLimits {
    /// The header size at which hyper itself answers a bare `431` and stops buffering: twice
    /// the configured limit, so headers up to that get the OpenAI-shaped `431` of
    /// [`guard_request`] while no connection buffers more than this.
    pub(crate) fn hyper_header_limit(&self) -> usize {
        self.max_header_bytes.saturating_mul(2).max(8192)
    }
}

/// Accept connections on `listener` and serve `router` on each under `limits` until `shutdown`
/// resolves; then stop accepting, ask every connection to finish its running request, wait up
/// to `limits.shutdown_grace` and drop the ones still open.
pub(crate) async fn serve_listener(
    listener: TcpListener,
    router: Router,
    limits: TransportLimits,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let accepting = connection::Acceptor::new(router, limits.clone(), state);
    let stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => accepting.accept(stream, &stop, &mut tasks),
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin (as axum does).
                    tracing::error!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
        }
    }
    drop(listener);
    stop.cancel();
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = tasks.len(),
            grace = ?limits.shutdown_grace,
            "shutdown grace period over: dropping the connections still open"
        );
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    Ok(())
}

/// Errors of one connection that do not concern the listener.
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}
