//! Hands through the real daemon: prints figures, asserts nothing.
//!
//! `cargo test --bench hands` (dev build) or `cargo bench -p talon-cli
//! --bench hands` (release; components from `scripts/build-plugins`)
//! measures, in one daemon:
//! - resident memory per plain agent (N spawned), then per activated
//!   `web_watch` hand (each with its own agent) once idle: the hand's cost
//!   beyond its agent is the difference of the two;
//! - the tick overhead of an idle hand (a tick that reads one memory key
//!   and finds nothing due): ticks per second across the N hands, the
//!   daemon's CPU time per tick beyond its idle CPU (scheduler, supervisor,
//!   the wasm call and its memory read together).

mod daemon;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use daemon::{rss_kib, stop};
use serde_json::{Value, json};

/// Hands (and plain agents) activated.
const N: usize = 40;
/// How long CPU and ticks are counted, idle and then with the hands.
const WINDOW: Duration = Duration::from_secs(20);

fn talon(home: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_talon"))
        .arg("--home")
        .arg(home)
        .args(args)
        .output()
        .expect("talon");
    assert!(
        out.status.success(),
        "talon {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// User plus system CPU time of a process, in clock ticks (1/100 s).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command's closing parenthesis; utime and stime are
    // the 14th and 15th fields of the line, the 12th and 13th after it.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0)
}

/// A page on a local port that never changes, for `web_watch`.
fn serve_page() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut stream in listener.incoming().map_while(Result::ok) {
            let mut buf = [0u8; 2048];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\nconnection: close\r\n\r\nprice: 10",
            );
        }
    });
    port
}

async fn all_ticks(http: &reqwest::Client, url: &str) -> (u64, Vec<Value>) {
    let active: Value = http
        .get(format!("{url}/api/hands/active"))
        .send()
        .await
        .expect("active")
        .json()
        .await
        .expect("json");
    let instances = active["instances"].as_array().cloned().unwrap_or_default();
    let ticks = instances.iter().filter_map(|i| i["ticks"].as_u64()).sum();
    (ticks, instances)
}

fn kib_per(delta: u64, n: usize) -> f64 {
    delta as f64 / n as f64
}

fn main() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let home = tempfile::tempdir().expect("home");
    let keys = tempfile::tempdir().expect("keys");
    let key = keys.path().join("publisher.key").display().to_string();
    talon(home.path(), &["plugin", "keygen", "--out", &key]);
    let public = std::fs::read_to_string(keys.path().join("publisher.pub")).expect("public key");
    std::fs::write(
        home.path().join("config.toml"),
        format!(
            "[rate_limit]\nexempt_loopback = true\n[plugins]\ntrusted_keys = [\"{}\"]\nbundled = false\nmax_instances_per_plugin = {}\n",
            public.trim(),
            N + 8
        ),
    )
    .expect("config");
    let component = repo.join("target/plugins/web_watch.wasm");
    assert!(
        component.exists(),
        "{} is missing: run scripts/build-plugins",
        component.display()
    );
    let package = keys.path().join("web_watch.talon").display().to_string();
    talon(
        home.path(),
        &[
            "plugin",
            "pack",
            &repo
                .join("plugins/web_watch/talon.toml")
                .display()
                .to_string(),
            &component.display().to_string(),
            "--key",
            &key,
            "--out",
            &package,
        ],
    );
    let page = serve_page();
    let (child, url) = daemon::spawn(home.path());
    let pid = child.id();
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let http = reqwest::Client::new();
    tokio.block_on(async {
        let installed = http
            .post(format!("{url}/api/hands/install"))
            .json(&json!({
                "package": base64::engine::general_purpose::STANDARD.encode(std::fs::read(&package).expect("package")),
                "grant": { "network": [format!("127.0.0.1:{page}")], "memory": ["page:*", "last_check"] },
            }))
            .send()
            .await
            .expect("install");
        assert_eq!(installed.status(), 200, "{}", installed.text().await.unwrap_or_default());
        tokio::time::sleep(Duration::from_secs(3)).await;
        let rss_start = rss_kib(pid);

        // N plain agents: what an agent costs.
        for i in 0..N {
            let response = http
                .post(format!("{url}/api/agents"))
                .json(&json!({ "manifest_toml": format!(
                    "name = \"plain-{i}\"\n[model]\nprovider = \"ollama\"\nmodel = \"m\"\n") }))
                .send()
                .await
                .expect("spawn");
            assert_eq!(response.status(), 201);
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let rss_agents = rss_kib(pid);
        let cpu_before = cpu_ticks(pid);
        tokio::time::sleep(WINDOW).await;
        let idle_cpu = cpu_ticks(pid) - cpu_before;

        // N hands, each with its own agent; the first tick of each fetches
        // the page (the baseline), every later one finds nothing due.
        let page_url = format!("http://127.0.0.1:{page}/");
        for _ in 0..N {
            let response = http
                .post(format!("{url}/api/hands/web_watch/activate"))
                .json(&json!({ "config": { "urls": [page_url], "interval_secs": 604800 },
                               "provider": "ollama", "model": "m" }))
                .send()
                .await
                .expect("activate");
            assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());
        }
        let started = Instant::now();
        loop {
            let (_, instances) = all_ticks(&http, &url).await;
            if instances.len() == N && instances.iter().all(|i| i["ticks"].as_u64() >= Some(2)) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(120), "hands never ticked: {instances:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let rss_hands = rss_kib(pid);
        let (ticks_before, _) = all_ticks(&http, &url).await;
        let cpu_before = cpu_ticks(pid);
        let window_started = Instant::now();
        tokio::time::sleep(WINDOW).await;
        let cpu = cpu_ticks(pid) - cpu_before;
        let (ticks_after, instances) = all_ticks(&http, &url).await;
        let elapsed = window_started.elapsed().as_secs_f64();
        let ticks = ticks_after - ticks_before;
        let failed: u64 = instances.iter().filter_map(|i| i["failed_ticks"].as_u64()).sum();
        let peak: u64 = instances.iter().filter_map(|i| i["peak_memory"].as_u64()).max().unwrap_or(0);

        let per_agent = kib_per(rss_agents.saturating_sub(rss_start), N);
        let per_hand_with_agent = kib_per(rss_hands.saturating_sub(rss_agents), N);
        println!("resident memory: start {rss_start} KiB; with {N} plain agents {rss_agents} KiB; with {N} web_watch hands (and their agents) too {rss_hands} KiB");
        println!(
            "per plain agent: {per_agent:.0} KiB; per idle hand with its agent: {per_hand_with_agent:.0} KiB; per idle hand beyond its agent: {:.0} KiB; peak linear memory of an instance: {} KiB",
            per_hand_with_agent - per_agent,
            peak / 1024
        );
        let cpu_ms = |t: u64| t as f64 * 10.0;
        println!(
            "ticks: {ticks} in {elapsed:.1} s across {N} hands ({:.1}/s, {failed} failed in all); daemon CPU {:.0} ms in the window vs {:.0} ms idle with the agents alone: {:.0} µs of CPU per tick",
            ticks as f64 / elapsed,
            cpu_ms(cpu),
            cpu_ms(idle_cpu),
            (cpu_ms(cpu) - cpu_ms(idle_cpu)).max(0.0) * 1000.0 / ticks.max(1) as f64
        );
    });
    stop(child);
}
