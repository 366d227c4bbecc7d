//! Connections benchmark through the real daemon: prints figures, asserts nothing.
//!
//! `cargo bench -p talon-cli --bench connections` measures `GET /api/health`
//! p50/p99 from one client (127.0.0.2, one kept-alive connection, raw
//! HTTP/1.1) while another client (127.0.0.1) holds idle connections and
//! slowloris connections (half a request head, one more header line every
//! second), each phase for 15 s: first with nothing held, then with the default caps (most of the
//! second client's connections refused), then with the per-client cap raised
//! so that all of them are held. It also prints how many of the held
//! connections the daemon closed by the end of each phase.

mod daemon;

use std::time::{Duration, Instant};

use daemon::percentile;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const IDLE: usize = 500;
const SLOWLORIS: usize = 200;
/// Each phase measures for this long: past the default header timeout
/// (10 s), so the daemon's closing of held connections shows.
const PHASE: Duration = Duration::from_secs(15);
const WARMUP: usize = 200;

async fn connect_from(from: &str, to: std::net::SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(format!("{from}:0").parse().expect("source address"))?;
    socket.connect(to).await
}

/// `GET /api/health` `n` times on one kept-alive connection: the latencies.
async fn health(stream: &mut TcpStream, n: usize) -> Vec<Duration> {
    const REQUEST: &[u8] = b"GET /api/health HTTP/1.1\r\nHost: talon\r\n\r\n";
    let mut samples = Vec::with_capacity(n);
    let mut buf = vec![0u8; 8192];
    for _ in 0..n {
        let started = Instant::now();
        stream.write_all(REQUEST).await.expect("write request");
        let mut got = Vec::new();
        loop {
            let read = stream.read(&mut buf).await.expect("read response");
            assert!(read > 0, "the daemon closed the measuring connection");
            got.extend_from_slice(&buf[..read]);
            if let Some(end) = find(&got, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&got[..end]).to_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if got.len() >= end + 4 + length {
                    break;
                }
            }
        }
        samples.push(started.elapsed());
    }
    samples
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// How many of `streams` the daemon has closed (or answered with a refusal).
fn closed(streams: &[TcpStream]) -> usize {
    let mut buf = [0u8; 512];
    streams
        .iter()
        .filter(|s| match s.try_read(&mut buf) {
            Ok(_) => true,
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        })
        .count()
}

async fn phase(name: &str, config: &str, hold: bool) {
    let home = tempfile::tempdir().expect("home");
    std::fs::write(
        home.path().join("config.toml"),
        format!("[plugins]\nbundled = false\n{config}"),
    )
    .expect("config");
    let (child, url) = daemon::spawn(home.path());
    let addr: std::net::SocketAddr = url.trim_start_matches("http://").parse().expect("addr");
    let mut idle = Vec::new();
    let mut slow = Vec::new();
    if hold {
        for _ in 0..IDLE {
            if let Ok(s) = connect_from("127.0.0.1", addr).await {
                idle.push(s);
            }
        }
        for _ in 0..SLOWLORIS {
            if let Ok(mut s) = connect_from("127.0.0.1", addr).await {
                let _ = s
                    .write_all(b"GET /api/health HTTP/1.1\r\nHost: talon\r\n")
                    .await;
                slow.push(s);
            }
        }
    }
    let mut measuring = connect_from("127.0.0.2", addr).await.expect("connect");
    health(&mut measuring, WARMUP).await;
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut line = 0u64;
    // Batches of requests, the slowloris clients sending a header line
    // between batches (about every second).
    let mut last_trickle = Instant::now();
    while started.elapsed() < PHASE {
        samples.extend(health(&mut measuring, 100).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
        if last_trickle.elapsed() >= Duration::from_secs(1) {
            line += 1;
            for s in &mut slow {
                let _ = s
                    .write_all(format!("X-Slow-{line}: x\r\n").as_bytes())
                    .await;
            }
            last_trickle = Instant::now();
        }
    }
    let elapsed = started.elapsed();
    samples.sort();
    println!(
        "{name}: health p50 {:.3} ms, p99 {:.3} ms over {} requests in {:.1} s; \
         held by the other client: {} idle ({} closed by the daemon), {} slowloris ({} closed)",
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        samples.len(),
        elapsed.as_secs_f64(),
        idle.len(),
        closed(&idle),
        slow.len(),
        closed(&slow),
    );
    daemon::stop(child);
}

#[tokio::main]
async fn main() {
    phase("nothing held", "", false).await;
    phase(
        &format!("{IDLE} idle + {SLOWLORIS} slowloris, default caps (128 per client)"),
        "",
        true,
    )
    .await;
    phase(
        &format!("{IDLE} idle + {SLOWLORIS} slowloris, all held (per-client cap 1000)"),
        "[server]\nmax_connections_per_ip = 1000\n",
        true,
    )
    .await;
}
