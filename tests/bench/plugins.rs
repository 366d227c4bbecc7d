//! Plugin benchmark through the real daemon: prints figures, asserts nothing.
//!
//! `cargo bench -p talon-cli --bench plugins` (components from
//! `scripts/build-plugins`) measures, on the release build:
//! - `POST /api/tools/echo/invoke` of a trivial tool (a fresh instance per
//!   call), p50 and p99 over keep-alive HTTP, beside `GET /api/health` as the
//!   HTTP baseline;
//! - `GET /api/health` while 8 hostile calls spin in host calls (the guard
//!   preempts them, so they must not hold the server's threads);
//! - what the installed first-party and test plugins add to a restart
//!   (exec to ready: the `talon listening` line, once they are loaded), and
//!   to resident memory;
//! - resident memory after installing the Python and JavaScript examples
//!   (compiled there and then) against a restart with them installed.

mod daemon;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use daemon::{percentile, rss_kib, stop, time_to_first_health};

const CALLS: usize = 3_000;
const RESTARTS: usize = 15;
const CONFIG: &str =
    "[tool_invoke]\nenabled = true\nallowlist = [\"*\"]\n[rate_limit]\nexempt_loopback = true\n";
/// Every Rust plugin of the repository: (manifest directory, component).
const PLUGINS: &[(&str, &str)] = &[
    ("plugins/file_list", "file_list"),
    ("plugins/file_read", "file_read"),
    ("plugins/file_write", "file_write"),
    ("plugins/toolbox", "toolbox"),
    ("plugins/web_fetch", "web_fetch"),
    ("examples/plugins/rust", "word_count_rust"),
    ("tests/plugins/greeter", "greeter"),
    ("tests/plugins/hostile", "hostile"),
];

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

/// Packs the component `name` built by `scripts/build-plugins` with the
/// manifest in `dir`, signed with `key`, from `home` (whose compile cache
/// the packing fills) into `out/<name>.talon`; the package's path.
fn pack(home: &Path, repo: &Path, out: &Path, key: &str, dir: &str, name: &str) -> String {
    let component = repo.join("target/plugins").join(format!("{name}.wasm"));
    assert!(
        component.exists(),
        "{} is missing: run scripts/build-plugins",
        component.display()
    );
    let package = out.join(format!("{name}.talon")).display().to_string();
    let manifest = repo.join(dir).join("talon.toml").display().to_string();
    talon(
        home,
        &[
            "plugin",
            "pack",
            &manifest,
            &component.display().to_string(),
            "--key",
            key,
            "--out",
            &package,
        ],
    );
    package
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Restarts `home` RESTARTS times; p50 of exec to ready (the plugins
/// loaded), and the RSS after the last start.
fn restarts(home: &Path) -> (Duration, u64) {
    let mut times = Vec::new();
    let mut rss = 0;
    for _ in 0..RESTARTS {
        let started = time_to_first_health(home);
        let child = started.child;
        times.push(started.ready);
        std::thread::sleep(Duration::from_millis(300));
        rss = rss_kib(child.id());
        stop(child);
    }
    times.sort();
    (percentile(&times, 0.5), rss)
}

fn main() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let with = tempfile::tempdir().expect("home");
    let without = tempfile::tempdir().expect("home");
    let keys = tempfile::tempdir().expect("keys");
    let key = keys.path().join("publisher.key").display().to_string();
    talon(with.path(), &["plugin", "keygen", "--out", &key]);
    let public = std::fs::read_to_string(keys.path().join("publisher.pub")).expect("public key");
    // The bench installs the first-party plugins itself: without the
    // bundled copies, which would hold their names.
    let config = format!(
        "{CONFIG}[plugins]\ntrusted_keys = [\"{}\"]\nbundled = false\n",
        public.trim()
    );
    std::fs::write(with.path().join("config.toml"), &config).expect("config");
    std::fs::write(without.path().join("config.toml"), &config).expect("config");

    let (child, url) = daemon::spawn(with.path());
    for (dir, name) in PLUGINS {
        let package = pack(with.path(), &repo, keys.path(), &key, dir, name);
        talon(
            with.path(),
            &["plugin", "install", &package, "--grant-all", "--url", &url],
        );
    }

    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let (invoke, health) = tokio.block_on(async {
        let http = reqwest::Client::new();
        let mut invoke = Vec::with_capacity(CALLS);
        let mut health = Vec::with_capacity(CALLS);
        for i in 0..CALLS + 200 {
            let started = Instant::now();
            let response = http
                .post(format!("{url}/api/tools/echo/invoke"))
                .json(&serde_json::json!({}))
                .send()
                .await;
            let response = response.expect("invoke");
            assert_eq!(response.status(), 200);
            response.bytes().await.expect("body");
            let elapsed = started.elapsed();
            let started = Instant::now();
            http.get(format!("{url}/api/health"))
                .send()
                .await
                .expect("health")
                .bytes()
                .await
                .expect("body");
            if i >= 200 {
                invoke.push(elapsed);
                health.push(started.elapsed());
            }
        }
        invoke.sort();
        health.sort();
        (invoke, health)
    });
    let (calm, spinning) = tokio.block_on(health_under_hostile_load(&url));
    stop(child);
    println!(
        "GET /api/health alone: p50 {:.0} µs, p99 {:.0} µs; while 8 hostile calls spin in host calls: p50 {:.0} µs, p99 {:.0} µs",
        us(percentile(&calm, 0.5)),
        us(percentile(&calm, 0.99)),
        us(percentile(&spinning, 0.5)),
        us(percentile(&spinning, 0.99))
    );
    println!(
        "POST /api/tools/echo/invoke, fresh instance per call ({CALLS} calls, keep-alive): p50 {:.0} µs, p99 {:.0} µs",
        us(percentile(&invoke, 0.5)),
        us(percentile(&invoke, 0.99))
    );
    println!(
        "GET /api/health on the same connection, the HTTP baseline: p50 {:.0} µs, p99 {:.0} µs",
        us(percentile(&health, 0.5)),
        us(percentile(&health, 0.99))
    );

    let (t_with, rss_with) = restarts(with.path());
    let (t_without, rss_without) = restarts(without.path());
    let n = PLUGINS.len();
    println!(
        "restart (exec to ready) with {n} installed plugins: p50 {:.1} ms; without plugins: {:.1} ms; {:.2} ms per plugin",
        t_with.as_secs_f64() * 1e3,
        t_without.as_secs_f64() * 1e3,
        (t_with.as_secs_f64() - t_without.as_secs_f64()) * 1e3 / n as f64
    );
    println!(
        "resident memory with {n} plugins: {rss_with} KiB; without: {rss_without} KiB; {:.0} KiB per plugin",
        rss_with.saturating_sub(rss_without) as f64 / n as f64
    );

    // Python and JavaScript components compile for seconds; what that
    // leaves resident is compared with a restart's.
    let fresh = tempfile::tempdir().expect("home");
    std::fs::write(fresh.path().join("config.toml"), &config).expect("config");
    let (child, url) = daemon::spawn(fresh.path());
    for (dir, name) in [
        ("examples/plugins/python", "word_count_python"),
        ("examples/plugins/js", "word_count_js"),
    ] {
        // Packed from another home, so the daemon's compile cache stays cold
        // and the install compiles.
        let package = pack(keys.path(), &repo, keys.path(), &key, dir, name);
        let started = Instant::now();
        talon(
            fresh.path(),
            &["plugin", "install", &package, "--grant-all", "--url", &url],
        );
        println!(
            "install of {name} (compile included): {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    // The daemon returns freed heap half a second after an install.
    std::thread::sleep(Duration::from_millis(1500));
    let after_install = rss_kib(child.id());
    stop(child);
    let (_, after_restart) = restarts_once(fresh.path());
    println!(
        "resident memory after installing the Python and JavaScript examples: {after_install} KiB; after a restart with them: {after_restart} KiB ({:+.0} %)",
        (after_install as f64 / after_restart as f64 - 1.0) * 100.0
    );
}

/// One start of `home`: exec to ready (the plugins loaded) and the RSS a
/// moment later.
fn restarts_once(home: &Path) -> (Duration, u64) {
    let started = time_to_first_health(home);
    let (time, child) = (started.ready, started.child);
    std::thread::sleep(Duration::from_millis(500));
    let rss = rss_kib(child.id());
    stop(child);
    (time, rss)
}

/// `GET /api/health` latencies without load, then while 8 calls of the
/// hostile `spin_in_host` (a loop of cheap host calls, stopped by the
/// guard at the plugin's deadline) run, restarted as they end.
async fn health_under_hostile_load(url: &str) -> (Vec<Duration>, Vec<Duration>) {
    const PROBES: usize = 2_000;
    let http = reqwest::Client::new();
    let probe = |http: reqwest::Client| {
        let url = url.to_string();
        async move {
            let started = Instant::now();
            http.get(format!("{url}/api/health"))
                .send()
                .await
                .expect("health")
                .bytes()
                .await
                .expect("body");
            started.elapsed()
        }
    };
    let mut calm = Vec::with_capacity(PROBES);
    for _ in 0..PROBES {
        calm.push(probe(http.clone()).await);
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let spinners: Vec<_> = (0..8)
        .map(|_| {
            let (http, url, stop) = (reqwest::Client::new(), url.to_string(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = http
                        .post(format!("{url}/api/tools/spin_in_host/invoke"))
                        .json(&serde_json::json!({}))
                        .send()
                        .await;
                }
            })
        })
        .collect();
    // Let every spinner get going before measuring.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut spinning = Vec::with_capacity(PROBES);
    for _ in 0..PROBES {
        spinning.push(probe(http.clone()).await);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for spinner in spinners {
        let _ = spinner.await;
    }
    calm.sort();
    spinning.sort();
    (calm, spinning)
}
