//! The baseline of the gateway overhead benchmark: a minimal axum + reqwest pass-through that
//! forwards `POST /v1/chat/completions` bodies to an upstream and returns its answer, doing
//! nothing else. Prints `listening on http://ADDR`.
//!
//! `cargo run --release -p router --example passthrough -- UPSTREAM_BASE_URL [ADDR]`
//! (e.g. `http://127.0.0.1:9000/v1`)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

#[derive(Clone)]
struct Upstream {
    client: reqwest::Client,
    url: String,
}

async fn chat(State(up): State<Upstream>, body: Bytes) -> Response {
    match up
        .client
        .post(&up.url)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
    {
        Ok(r) => {
            let status =
                StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let content_type = r
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/json")
                .to_string();
            match r.bytes().await {
                Ok(b) => (status, [(header::CONTENT_TYPE, content_type)], b).into_response(),
                Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
            }
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let base = args
        .next()
        .expect("usage: passthrough UPSTREAM_BASE_URL [ADDR]");
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:0".into());
    let upstream = Upstream {
        client: reqwest::Client::new(),
        url: format!("{}/chat/completions", base.trim_end_matches('/')),
    };
    let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
    println!("listening on http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .with_state(upstream);
    axum::serve(listener, app).await.unwrap();
}
