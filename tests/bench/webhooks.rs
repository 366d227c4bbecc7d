//! Webhook delivery benchmark through the real daemon: prints figures,
//! asserts nothing but that every delivery arrived verified.
//!
//! `cargo bench -p talon-cli --bench webhooks` starts a local receiver (axum,
//! `TCP_NODELAY`) that checks every HMAC-SHA256 signature itself, subscribes
//! it to `hook_wake`, and fires `POST /api/hooks/wake` from 16 concurrent
//! clients. Measured: deliveries per second from the first wake to the last
//! verified delivery (each event queued in a synced transaction, signed, sent
//! and its outcome recorded), and the wakes' own rate for comparison.

mod daemon;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use hmac::{KeyInit, Mac};

const SECRET: &str = "bench-secret";
const TOKEN: &str = "bench-token";
const WARMUP: usize = 200;
const EVENTS: usize = 5_000;
const CLIENTS: usize = 16;

fn verified(headers: &HeaderMap, body: &str) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(timestamp), Some(signature)) =
        (header("x-talon-timestamp"), header("x-talon-signature"))
    else {
        return false;
    };
    let mut mac =
        <hmac::Hmac<sha2_v11::Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{body}").as_bytes());
    let expected = format!("sha256={}", hex(&mac.finalize().into_bytes()));
    expected == signature
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn receiver(count: Arc<AtomicUsize>) -> String {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let count = count.clone();
            async move {
                if !verified(&headers, &body) {
                    return StatusCode::UNAUTHORIZED;
                }
                count.fetch_add(1, Ordering::SeqCst);
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use axum::serve::ListenerExt;
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{addr}/hook")
}

async fn wake(http: &reqwest::Client, url: &str, n: usize) {
    let response = http
        .post(format!("{url}/api/hooks/wake"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"text": format!("event {n}")}))
        .send()
        .await
        .expect("wake");
    assert_eq!(response.status(), 200);
}

async fn fire(http: &reqwest::Client, url: &str, from: usize, n: usize) -> Duration {
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(from));
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (http, url, next) = (http.clone(), url.to_string(), next.clone());
        clients.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= from + n {
                    return;
                }
                wake(&http, &url, i).await;
            }
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
    started.elapsed()
}

async fn until(count: &AtomicUsize, n: usize) {
    while count.load(Ordering::SeqCst) < n {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::main]
async fn main() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("config.toml"),
        format!("[plugins]\nbundled = false\n[webhooks]\nwake_token = \"{TOKEN}\"\n"),
    )
    .unwrap();
    let (child, url) = daemon::spawn(home.path());
    let count = Arc::new(AtomicUsize::new(0));
    let target = receiver(count.clone()).await;
    let http = reqwest::Client::new();
    let made = http
        .post(format!("{url}/api/webhooks"))
        .json(&serde_json::json!({"url": target, "secret": SECRET, "events": ["hook_wake"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);

    fire(&http, &url, 0, WARMUP).await;
    until(&count, WARMUP).await;

    let started = Instant::now();
    let fired = fire(&http, &url, WARMUP, EVENTS).await;
    until(&count, WARMUP + EVENTS).await;
    let delivered = started.elapsed();
    println!(
        "{EVENTS} wakes from {CLIENTS} clients: accepted in {:.3} s ({:.0}/s); \
         all delivered signed and verified in {:.3} s: {:.0} deliveries/s",
        fired.as_secs_f64(),
        EVENTS as f64 / fired.as_secs_f64(),
        delivered.as_secs_f64(),
        EVENTS as f64 / delivered.as_secs_f64()
    );
    daemon::stop(child);
}
