//! `triage serve` without the binary: the same `router::gateway::server` entry point, for the
//! overhead benchmark when the `triage` binary is not built or wired. Prints
//! `listening on http://ADDR`.
//!
//! `cargo run --release -p router --example serve -- CONFIG [ADDR]`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use router::gateway::{start, ServeOptions};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let config = args.next().expect("usage: serve CONFIG [ADDR]").into();
    let listen = args.next().map(|a| a.parse().expect("ADDR is host:port"));
    let server = match start(&ServeOptions {
        config,
        listen,
        allow_unauthenticated: false,
    })
    .await
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    println!("listening on http://{}", server.local_addr());
    server
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .unwrap();
}
