#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Live reload of `triage.yaml` (`router::gateway::reload`) on a real gateway (`start`, as
//! `triage serve` runs it) whose two remote backends are mock upstreams served over HTTP (TEST
//! DOUBLEs: `router::testing` gateways answering with `backends::mock`).
//!
//! A stream that began before a reload finishes intact on the old route while a request sent
//! after it follows the new one; a broken file keeps the configuration in force; unchanged
//! backends are kept, changed ones started; the file watcher reloads on its own; every reload
//! is counted in `/metrics`.

use std::path::Path;
use std::time::{Duration, Instant};

use router::gateway::{start, Locality, ReloadReport, ServeOptions};
use router::testing::{chat_body, sse_data, streamed_text, Served, TestGateway};

const UPSTREAM: &str = "backends:\n  up: { kind: openai, base_url: \"http://127.0.0.1:9/v1\", model: m }\npricing:\n  up: { input: 1.0, output: 1.0 }\nroutes:\n  - { name: d, to: up }\n";

/// A mock upstream (TEST DOUBLE) answering with `behaviour`, over real HTTP.
async fn upstream(behaviour: &str) -> (TestGateway, Served) {
    let gw = TestGateway::from_yaml(UPSTREAM)
        .mock("up", Locality::Remote, behaviour)
        .build()
        .unwrap();
    let served = gw.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    (gw, served)
}

fn config(a: &Served, b: &Served, b_model: &str, route: &str, to: &str) -> String {
    format!(
        "server: {{ ledger: ledger.sqlite }}\n\
         backends:\n  \
           a: {{ kind: openai, base_url: \"{}\", model: up }}\n  \
           b: {{ kind: openai, base_url: \"{}\", model: {b_model} }}\n\
         pricing:\n  a: {{ input: 1.0, output: 1.0 }}\n  b: {{ input: 2.0, output: 2.0 }}\n\
         reference_backend: a\n\
         routes:\n  - {{ name: {route}, to: {to} }}\n",
        a.url("/v1"),
        b.url("/v1"),
    )
}

fn write(path: &Path, text: &str) {
    // Written whole and renamed, as editors do: the watcher never reads half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// `(route, backend)` of a non-streamed answer.
async fn route_of(http: &reqwest::Client, url: &str) -> (String, String) {
    let r = http
        .post(format!("{url}/v1/chat/completions"))
        .json(&chat_body("ping", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = |n: &str| r.headers()[n].to_str().unwrap().to_string();
    (h("x-triage-route"), h("x-triage-backend"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_finishes_on_the_old_config_while_new_requests_follow_the_new_one() {
    let (_ga, a) = upstream("slow_150ms").await;
    let (_gb, b) = upstream("echo").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("triage.yaml");
    write(&path, &config(&a, &b, "auto", "first", "a"));

    let server = start(&ServeOptions {
        config: path.clone(),
        listen: Some("127.0.0.1:0".parse().unwrap()),
        allow_unauthenticated: false,
    })
    .await
    .unwrap();
    let url = format!("http://{}", server.local_addr());
    let reloader = server.reloader();
    let shutdown = server.state().shutdown_token();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();

    // A stream through route `first` (upstream a: 8 tokens, 150 ms apart).
    let prompt = "one two three four five six seven eight";
    let mut stream = http
        .post(format!("{url}/v1/chat/completions"))
        .json(&chat_body(prompt, true))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["x-triage-route"], "first");
    let mut body = String::from_utf8(stream.chunk().await.unwrap().unwrap().to_vec()).unwrap();

    // Reload mid-stream: route everything to b. Both backends' specs are unchanged: kept.
    write(&path, &config(&a, &b, "auto", "second", "b"));
    let report = reloader.reload().await.unwrap();
    assert_eq!(
        report,
        ReloadReport {
            kept: vec!["a".into(), "b".into()],
            ..ReloadReport::default()
        }
    );
    assert_eq!(
        route_of(&http, &url).await,
        ("second".into(), "b".into()),
        "a request after the reload follows the new route"
    );

    // The stream that began before the reload ends intact, on its old route.
    while let Some(chunk) = stream.chunk().await.unwrap() {
        body.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let data = sse_data(&body);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{body}");
    assert_eq!(
        streamed_text(&data).split_whitespace().collect::<Vec<_>>(),
        prompt.split_whitespace().collect::<Vec<_>>(),
        "every token of the stream arrived"
    );

    // A broken file: the error is located, the configuration in force stays.
    write(
        &path,
        &config(&a, &b, "auto", "third", "a").replace("to: a", "to: nowhere"),
    );
    let err = reloader.reload().await.unwrap_err().to_string();
    assert!(err.contains("triage.yaml:"), "{err}");
    assert!(err.contains("routes[0].to"), "{err}");
    assert!(err.contains("unknown backend"), "{err}");
    assert_eq!(route_of(&http, &url).await, ("second".into(), "b".into()));

    // b's spec changes: b is started anew, a kept.
    write(&path, &config(&a, &b, "up", "third", "b"));
    let report = reloader.reload().await.unwrap();
    assert_eq!(
        (report.kept, report.started),
        (vec!["a".into()], vec!["b".into()])
    );
    assert_eq!(route_of(&http, &url).await, ("third".into(), "b".into()));

    // The watcher picks up a changed file by itself.
    let watching = tokio::spawn(
        reloader
            .clone()
            .watch(Duration::from_millis(50), shutdown.clone()),
    );
    write(&path, &config(&a, &b, "up", "fourth", "a"));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if route_of(&http, &url).await.0 == "fourth" {
            break;
        }
        assert!(Instant::now() < deadline, "the watcher never reloaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(route_of(&http, &url).await, ("fourth".into(), "a".into()));
    assert_eq!(reloader.config().await.policy.rules()[0].name, "fourth");

    // Reloads are counted by result.
    let metrics = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("triage_config_reloads_total{result=\"ok\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("triage_config_reloads_total{result=\"error\"} 1"),
        "{metrics}"
    );

    let _ = stop.send(());
    running.await.unwrap().unwrap();
    watching.await.unwrap();
}
