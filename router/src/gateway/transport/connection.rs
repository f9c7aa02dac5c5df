//! One accepted connection: hyper's HTTP/1 connection over a socket whose writes time out, a
//! watchdog for the header and idle timeouts, and the `429` answer beyond the connection limit.
//!
//! hyper's own header-read timeout restarts whenever a keep-alive connection goes idle, so it
//! cannot tell a slow header from an idle connection: both would get one timeout. The watchdog
//! here follows the connection's phase instead ([`ConnState`]): *waiting for a head* (from the
//! connection's start, or from the first byte after an idle spell: `header_read_timeout`),
//! *idle* (no request and no byte since the last response ended: `idle_timeout`), or *busy* (a
//! request is being answered: its body, deadline and writes have their own limits).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response};
use axum::response::IntoResponse;
use axum::Router;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::{TransportLimits, OVERFLOW_ANSWERS};
use crate::gateway::{ApiError, AppState};

/// Body bytes read (and dropped) from a refused request before answering it, so that closing
/// the socket does not reset the connection under the client's feet.
const REFUSED_BODY_BYTES: usize = 64 * 1024;

/// Hands accepted sockets to connection tasks, within the connection limit.
pub(super) struct Acceptor {
    router: Router,
    limits: TransportLimits,
    state: AppState,
    connections: Arc<Semaphore>,
    overflow: Arc<Semaphore>,
}

impl Acceptor {
    pub(super) fn new(router: Router, limits: TransportLimits, state: AppState) -> Self {
        Self {
            connections: Arc::new(Semaphore::new(limits.max_connections)),
            overflow: Arc::new(Semaphore::new(OVERFLOW_ANSWERS)),
            router,
            limits,
            state,
        }
    }

    /// Serve `stream` (or refuse it when `max_connections` are open) on a task in `tasks`.
    pub(super) fn accept(
        &self,
        stream: TcpStream,
        stop: &CancellationToken,
        tasks: &mut JoinSet<()>,
    ) {
        // Streamed tokens are small writes: send each at once.
        let _ = stream.set_nodelay(true);
        match self.connections.clone().try_acquire_owned() {
            Ok(permit) => {
                tasks.spawn(serve(
                    stream,
                    self.router.clone(),
                    self.limits.clone(),
                    self.state.clone(),
                    stop.clone(),
                    permit,
                ));
            }
            Err(_) => {
                self.state.metrics().transport_rejected("connections");
                if let Ok(permit) = self.overflow.clone().try_acquire_owned() {
                    tasks.spawn(refuse(stream, self.limits.clone(), permit));
                }
                // Otherwise `stream` is dropped here: closed at once.
            }
        }
    }
}

/// Where a connection is between requests, shared by its socket, its service and its watchdog.
pub(crate) struct ConnState {
    activity: Mutex<Activity>,
    changed: Notify,
    write_timed_out: AtomicBool,
}

struct Activity {
    /// Requests being answered (more than one only if a client pipelines).
    requests: usize,
    /// Bytes of a new request head have arrived (or the connection is new).
    head_started: bool,
    /// When the current phase began.
    since: Instant,
}

/// Which timeout a waiting connection runs into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expiry {
    Header,
    Idle,
}

impl ConnState {
    fn new() -> Self {
        Self {
            // A new connection owes its first head within the header timeout.
            activity: Mutex::new(Activity {
                requests: 0,
                head_started: true,
                since: Instant::now(),
            }),
            changed: Notify::new(),
            write_timed_out: AtomicBool::new(false),
        }
    }

    /// Whether a response write on this connection made no progress for the write timeout.
    pub(crate) fn write_timed_out(&self) -> bool {
        self.write_timed_out.load(Ordering::Acquire)
    }

    fn lock(&self) -> MutexGuard<'_, Activity> {
        self.activity.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn bytes_read(&self) {
        let mut a = self.lock();
        if a.requests == 0 && !a.head_started {
            a.head_started = true;
            a.since = Instant::now();
            drop(a);
            self.changed.notify_one();
        }
    }

    fn request_started(self: &Arc<Self>) -> RequestGuard {
        let mut a = self.lock();
        a.requests += 1;
        a.head_started = false;
        drop(a);
        self.changed.notify_one();
        RequestGuard(self.clone())
    }

    fn request_finished(&self) {
        let mut a = self.lock();
        a.requests = a.requests.saturating_sub(1);
        if a.requests == 0 {
            a.head_started = false;
            a.since = Instant::now();
        }
        drop(a);
        self.changed.notify_one();
    }

    /// When the connection's current phase times out, if it can.
    fn deadline(&self, limits: &TransportLimits) -> Option<(Instant, Expiry)> {
        let a = self.lock();
        if a.requests > 0 {
            None
        } else if a.head_started {
            Some((a.since + limits.header_read_timeout, Expiry::Header))
        } else {
            Some((a.since + limits.idle_timeout, Expiry::Idle))
        }
    }
}

/// A request being answered; its end (the response body dropped) makes the connection idle.
struct RequestGuard(Arc<ConnState>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// Serve one connection until it ends, times out, or shutdown asks it to finish.
async fn serve(
    stream: TcpStream,
    router: Router,
    limits: TransportLimits,
    state: AppState,
    stop: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    let metrics = state.metrics();
    metrics.connections(1);
    let conn_state = Arc::new(ConnState::new());
    let io = TokioIo::new(TimedIo {
        inner: stream,
        write_timeout: limits.write_timeout,
        stall: None,
        conn: conn_state.clone(),
        rewrite: None,
        request_start: Vec::new(),
        answered: true,
    });
    let service = ConnService {
        router,
        conn: conn_state.clone(),
    };
    let conn = builder(&limits, true).serve_connection(io, service);
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        let deadline = conn_state.deadline(&limits);
        let changed = conn_state.changed.notified();
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                break;
            }
            () = stop.cancelled(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            () = changed => {}
            () = sleep_until(deadline) => {
                if let Some((_, Expiry::Header)) = deadline {
                    metrics.transport_rejected("header_timeout");
                    tracing::debug!(after = ?limits.header_read_timeout, "closing a connection whose request head did not arrive in time");
                }
                break;
            }
        }
    }
    if conn_state.write_timed_out() {
        metrics.transport_rejected("write_timeout");
        tracing::debug!(after = ?limits.write_timeout, "cut a connection whose client stopped reading");
    }
    metrics.connections(-1);
}

async fn sleep_until(deadline: Option<(Instant, Expiry)>) {
    match deadline {
        Some((at, _)) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// hyper's HTTP/1 builder under `limits`. Its own header timeout stays off: the watchdog in
/// [`serve`] times heads and idle spells apart (and bounds refused connections by their task).
fn builder(limits: &TransportLimits, keep_alive: bool) -> http1::Builder {
    let hyper_limit = limits.hyper_header_limit();
    let mut builder = http1::Builder::new();
    builder
        .header_read_timeout(None)
        .keep_alive(keep_alive)
        .max_header_size(hyper_limit)
        .max_buf_size(hyper_limit);
    builder
}

/// Answer one request on a connection beyond the limit with `429` and close it.
async fn refuse(stream: TcpStream, limits: TransportLimits, _permit: OwnedSemaphorePermit) {
    let max = limits.max_connections;
    let service = hyper::service::service_fn(move |request: Request<Incoming>| async move {
        // Read a little of the body so that closing does not reset the connection.
        let _ = Limited::new(request.into_body(), REFUSED_BODY_BYTES)
            .collect()
            .await;
        let mut response = ApiError::too_many_requests(
            format!(
                "The gateway is serving its maximum of {max} connections; retry after a second"
            ),
            "too_many_connections",
        )
        .into_response();
        let headers = response.headers_mut();
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        Ok::<_, Infallible>(response)
    });
    let conn = builder(&limits, false).serve_connection(TokioIo::new(stream), service);
    let _ = tokio::time::timeout(limits.header_read_timeout, conn).await;
}

/// The axum router as a hyper service that tells the connection's state when each request
/// starts and when its response has been sent (or dropped).
#[derive(Clone)]
struct ConnService {
    router: Router,
    conn: Arc<ConnState>,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<Body>, Infallible>>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        let guard = self.conn.request_started();
        request.extensions_mut().insert(self.conn.clone());
        let router = self.router.clone();
        Box::pin(async move {
            let response = match router.oneshot(request.map(Body::new)).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            Ok(response.map(|body| {
                Body::new(body.map_frame(move |frame| {
                    // The guard lives as long as the body: the request ends when it is dropped.
                    let _held: &RequestGuard = &guard;
                    frame
                }))
            }))
        })
    }
}

/// A socket whose writes fail with `TimedOut` after the write timeout without progress (a client
/// that stopped reading), and which tells the connection's state when bytes arrive.
struct TimedIo {
    inner: TcpStream,
    write_timeout: Duration,
    /// Armed when a write could not proceed; disarmed by any progress.
    stall: Option<Pin<Box<Sleep>>>,
    conn: Arc<ConnState>,
    /// hyper's bare parse-error answer being replaced by an OpenAI-shaped one
    /// (`parse_error.rs`): the bytes to write and how many are written.
    rewrite: Option<(Vec<u8>, usize)>,
    /// The first bytes of the request being read (its request line, so far), to tell which
    /// API's error shape a parse-error answer takes.
    request_start: Vec<u8>,
    /// A response head was written since `request_start` was last reset: the next bytes read
    /// begin a new request.
    answered: bool,
}

/// How many bytes of a request's start are kept: enough for `POST /v1/messages`.
const REQUEST_START_BYTES: usize = 64;

impl TimedIo {
    fn progress<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if r.is_ready() {
            self.stall = None;
            return r;
        }
        let after = self.write_timeout;
        let stall = self
            .stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(after)));
        if stall.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.stall = None;
        self.conn.write_timed_out.store(true, Ordering::Release);
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no write progress for {after:?}: the client stopped reading"),
        )))
    }
}

impl TimedIo {
    /// Write the replacement of hyper's parse-error answer (if one is under way, or `head` is
    /// one); `Some(Ready(Ok(claimed)))` once it is all written, telling hyper its own `claimed`
    /// bytes went out. `None`: `head` is an ordinary write.
    fn poll_rewrite(
        &mut self,
        cx: &mut Context<'_>,
        head: &[u8],
        claimed: usize,
    ) -> Option<Poll<io::Result<usize>>> {
        if self.rewrite.is_none() {
            let dialect = super::parse_error::Dialect::of_request_start(&self.request_start);
            self.rewrite = Some((super::parse_error::replacement(head, dialect)?, 0));
        }
        loop {
            let (out, written) = self.rewrite.as_mut()?;
            if *written >= out.len() {
                self.rewrite = None;
                return Some(Poll::Ready(Ok(claimed)));
            }
            let r = Pin::new(&mut self.inner).poll_write(cx, &out[*written..]);
            match self.progress(cx, r) {
                Poll::Ready(Ok(n)) => {
                    if let Some((_, w)) = self.rewrite.as_mut() {
                        *w += n;
                    }
                    if n == 0 {
                        return Some(Poll::Ready(Err(io::ErrorKind::WriteZero.into())));
                    }
                }
                Poll::Ready(Err(e)) => return Some(Poll::Ready(Err(e))),
                Poll::Pending => return Some(Poll::Pending),
            }
        }
    }
}

impl AsyncRead for TimedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.conn.bytes_read();
            if this.answered {
                this.answered = false;
                this.request_start.clear();
            }
            let room = REQUEST_START_BYTES.saturating_sub(this.request_start.len());
            let new = &buf.filled()[before..];
            this.request_start
                .extend_from_slice(&new[..new.len().min(room)]);
        }
        r
    }
}

impl AsyncWrite for TimedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.rewrite.is_some() || buf.starts_with(b"HTTP/1.") {
            this.answered = true;
            if let Some(r) = this.poll_rewrite(cx, buf, buf.len()) {
                return r;
            }
        }
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.progress(cx, r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        // hyper's automatic answer is one short head; only such writes are looked at.
        let head_like = bufs
            .iter()
            .find(|b| !b.is_empty())
            .is_some_and(|b| b.starts_with(b"HTTP/1."));
        if head_like {
            this.answered = true;
        }
        if this.rewrite.is_some() || (head_like && total <= 256) {
            let head: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            if let Some(r) = this.poll_rewrite(cx, &head, total) {
                return r;
            }
        }
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.progress(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        this.progress(cx, r)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
