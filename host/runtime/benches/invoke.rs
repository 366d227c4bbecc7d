//! Plugin runtime benchmark: prints figures, asserts nothing.
//!
//! `cargo bench -p talon-runtime --bench invoke` (components from
//! `scripts/build-plugins`) measures, in process:
//! - the overhead of calling a trivial tool with a fresh instance per call
//!   (store + instantiate + call), p50 and p99;
//! - loading 20 plugins from their packages with a warm compiled-component
//!   cache: what a daemon restart with 20 installed plugins adds;
//! - resident memory per loaded plugin.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use talon_runtime::{
    CallContext, Manifest, Package, Permissions, Runtime, RuntimeConfig, SecretKey, TrustStore,
};

const CALLS: usize = 5_000;
const PLUGINS: usize = 20;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let wasm = root.join("target/plugins/hostile.wasm");
    let component = Arc::new(std::fs::read(&wasm).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build the components first with scripts/build-plugins",
            wasm.display()
        )
    }));
    let text =
        std::fs::read_to_string(root.join("tests/plugins/hostile/talon.toml")).expect("manifest");
    let cache = tempfile::tempdir().expect("cache dir");
    let config = RuntimeConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        ..Default::default()
    };
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");

    tokio.block_on(async {
        let runtime = Runtime::new(config.clone()).expect("runtime");
        let manifest = runtime
            .complete_manifest(Manifest::from_toml(&text).expect("manifest"), component.clone())
            .await
            .expect("describe");
        let plugin = runtime
            .load(manifest.clone(), component.clone(), Permissions::default(), BTreeMap::new())
            .await
            .expect("load");
        let ctx = CallContext::default();
        for _ in 0..200 {
            runtime.invoke(&plugin, "echo", "{}", &ctx).await.result.expect("warm-up call");
        }
        let mut times = Vec::with_capacity(CALLS);
        for _ in 0..CALLS {
            let started = Instant::now();
            let invocation = runtime.invoke(&plugin, "echo", "{}", &ctx).await;
            times.push(started.elapsed());
            invocation.result.expect("echo");
        }
        times.sort();
        println!(
            "in-process invoke, fresh instance per call ({} KB component, {CALLS} calls): p50 {:.1} µs, p99 {:.1} µs",
            component.len() / 1000,
            percentile(&times, 0.5).as_secs_f64() * 1e6,
            percentile(&times, 0.99).as_secs_f64() * 1e6
        );

        // Packages of 20 plugins, as a daemon finds them at start.
        let key = SecretKey::generate().expect("key");
        let trust = TrustStore::from_config(&[key.public().to_hex()]).expect("trust");
        let packages: Vec<Vec<u8>> = (0..PLUGINS)
            .map(|i| {
                let mut m = manifest.clone();
                m.name = format!("bench_{i}");
                Package::build(&m, &component, Some(&key)).expect("package")
            })
            .collect();
        // A new runtime, as after a restart; the disk cache is warm.
        let engine_started = Instant::now();
        let restarted = Runtime::new(config).expect("runtime");
        let engine_setup = engine_started.elapsed();
        let before = rss_kib();
        let started = Instant::now();
        let mut loaded = Vec::new();
        for bytes in &packages {
            let package = Package::parse(bytes).expect("parse");
            package.check_trust(&trust, false).expect("trusted");
            let plugin = restarted
                .load(package.manifest.clone(), Arc::new(package.component), Permissions::default(), BTreeMap::new())
                .await
                .expect("load");
            assert!(plugin.was_cached());
            loaded.push(plugin);
        }
        let elapsed = started.elapsed();
        let after = rss_kib();
        println!(
            "restart with {PLUGINS} cached plugins (verify + load each): {:.2} ms in all, {:.2} ms per plugin",
            elapsed.as_secs_f64() * 1e3,
            elapsed.as_secs_f64() * 1e3 / PLUGINS as f64
        );
        println!(
            "(engine and linker setup, paid once with or without plugins: {:.2} ms)",
            engine_setup.as_secs_f64() * 1e3
        );
        println!(
            "resident memory per loaded plugin: {:.0} KiB ({PLUGINS} plugins, RSS {before} -> {after} KiB)",
            (after.saturating_sub(before)) as f64 / PLUGINS as f64
        );
    });
}
