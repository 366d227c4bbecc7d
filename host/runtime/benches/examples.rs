//! Per-call cost and resident memory of the example plugins (Rust, Python,
//! JavaScript): prints figures, asserts nothing.
//!
//! `cargo bench -p talon-runtime --bench examples` (components from
//! `scripts/build-plugins`; compiled ones are cached in
//! `target/bench-cache`, so only the first run compiles the Python and
//! JavaScript components, for a minute or so). Twice, once with the default
//! pool retention (nothing kept resident between calls) and once keeping
//! 1 MiB per memory and table with 4 warm slots, in a runtime of its own,
//! for each example, in process:
//! - p50 and p99 of a call (fresh instance per call: store, instantiate,
//!   call), after a warm-up;
//! - the process's RSS before describing and loading, after loading, after
//!   one call, after the sequential calls and after `CONCURRENT` callers
//!   made `CALLS` calls each, so the growth per plugin under sustained
//!   calls shows.
//!
//! `TALON_BENCH_EXAMPLES=python,js` limits the run to some examples;
//! `TALON_BENCH_COMPILER=baseline` loads them with the baseline compiler
//! (Winch) only, to measure its code (compiled once, then cached in
//! `target/bench-cache` too); by default they run on Cranelift's build;
//! `TALON_BENCH_KEEP_RESIDENT_KIB` and `TALON_BENCH_WARM_SLOTS` replace the
//! second run's figures (to try other settings), and
//! `TALON_BENCH_ONLY_KEPT=1` skips the first.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use talon_runtime::{
    Baseline, CallContext, Manifest, Permissions, PoolRetention, Runtime, RuntimeConfig,
};

/// Calls per example after the warm-up.
const CALLS: usize = 200;
/// Callers at once in the concurrent phase.
const CONCURRENT: usize = 8;
/// A short text, as a chat tool call would pass.
const ARGUMENTS: &str =
    r#"{"text": "the quick brown fox jumps over the lazy dog, the end", "top": 3}"#;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// A line of `/proc/self/status`, in MiB.
fn status_mib(key: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    kib as f64 / 1024.0
}

fn rss_mib() -> f64 {
    status_mib("VmRSS:")
}

/// RSS split: private (anonymous) pages, pages of mapped files (the
/// compiled code and memory images, shared with the page cache and
/// reclaimable) and shared memory.
fn rss_split() -> String {
    format!(
        "anon {:.1} / file {:.1} / shmem {:.1} MiB; PSS {:.1} MiB",
        status_mib("RssAnon:"),
        status_mib("RssFile:"),
        status_mib("RssShmem:"),
        pss_mib()
    )
}

/// Proportional set size: shared pages (the same file page mapped by several
/// pool slots) counted once in all rather than once per mapping.
fn pss_mib() -> f64 {
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
    let kib: u64 = rollup
        .lines()
        .find(|l| l.starts_with("Pss:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    kib as f64 / 1024.0
}

fn main() {
    let only = std::env::var("TALON_BENCH_EXAMPLES").unwrap_or_default();
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let mut tried = PoolRetention {
        memory_keep_resident: 1 << 20,
        table_keep_resident: 1 << 20,
        warm_slots: 4,
    };
    let env_number = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
    };
    if let Some(kib) = env_number("TALON_BENCH_KEEP_RESIDENT_KIB") {
        tried.memory_keep_resident = kib << 10;
    }
    if let Some(slots) = env_number("TALON_BENCH_WARM_SLOTS") {
        tried.warm_slots = slots as u32;
    }
    let only_kept = std::env::var_os("TALON_BENCH_ONLY_KEPT").is_some();
    for (label, retention) in [
        ("default retention: nothing kept", PoolRetention::default()),
        ("pages kept", tried),
    ] {
        if only_kept && retention == PoolRetention::default() {
            continue;
        }
        println!("== {label}: {retention:?}");
        tokio.block_on(run(&only, retention));
    }
}

async fn run(only: &str, retention: PoolRetention) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let baseline = match std::env::var("TALON_BENCH_COMPILER").as_deref() {
        Ok("baseline") => Baseline::Only,
        _ => Baseline::Off,
    };
    let config = RuntimeConfig {
        cache_dir: Some(root.join("target/bench-cache")),
        retention,
        baseline,
        ..Default::default()
    };
    let runtime = Runtime::new(config).expect("runtime");
    let ctx = CallContext::default();
    let mut plugins = Vec::new();
    let start = rss_mib();
    for (example, wasm) in [
        ("rust", "word_count_rust"),
        ("python", "word_count_python"),
        ("js", "word_count_js"),
    ] {
        if !only.is_empty() && !only.split(',').any(|o| o == example) {
            continue;
        }
        let before = rss_mib();
        let path = root.join(format!("target/plugins/{wasm}.wasm"));
        let component = Arc::new(std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; build the components first with scripts/build-plugins",
                path.display()
            )
        }));
        let text =
            std::fs::read_to_string(root.join(format!("examples/plugins/{example}/talon.toml")))
                .expect("manifest");
        let started = Instant::now();
        let manifest = runtime
            .complete_manifest(
                Manifest::from_toml(&text).expect("manifest"),
                component.clone(),
            )
            .await
            .expect("describe");
        let compiled = started.elapsed();
        let size = component.len();
        // Moved in: the runtime drops the bytes once compiled or mapped.
        let started = Instant::now();
        let plugin = runtime
            .load(manifest, component, Permissions::default(), BTreeMap::new())
            .await
            .expect("load");
        println!(
            "{example:6}: loaded ({:?} build, {}) in {:.1} s",
            plugin.compiler(),
            if plugin.was_cached() {
                "from the cache"
            } else {
                "compiled"
            },
            started.elapsed().as_secs_f64()
        );
        let loaded = rss_mib();
        let tool = plugin.tools()[0].name.clone();
        runtime
            .invoke(&plugin, &tool, ARGUMENTS, &ctx)
            .await
            .result
            .expect("first call");
        let first = rss_mib();
        for _ in 0..20 {
            runtime
                .invoke(&plugin, &tool, ARGUMENTS, &ctx)
                .await
                .result
                .expect("warm-up call");
        }
        let mut times = Vec::with_capacity(CALLS);
        for _ in 0..CALLS {
            let started = Instant::now();
            let invocation = runtime.invoke(&plugin, &tool, ARGUMENTS, &ctx).await;
            times.push(started.elapsed());
            invocation.result.expect("call");
        }
        times.sort();
        let sequential = rss_mib();
        let callers: Vec<_> = (0..CONCURRENT)
            .map(|_| {
                let (runtime, plugin, tool) = (runtime.clone(), plugin.clone(), tool.clone());
                tokio::spawn(async move {
                    let ctx = CallContext::default();
                    for _ in 0..CALLS {
                        runtime
                            .invoke(&plugin, &tool, ARGUMENTS, &ctx)
                            .await
                            .result
                            .expect("concurrent call");
                    }
                })
            })
            .collect();
        for caller in callers {
            caller.await.expect("caller");
        }
        let after = rss_mib();
        println!(
            "{example:6} ({:5} KB component, compiled or mapped in {:.1} s): p50 {:7.1} µs, p99 {:7.1} µs",
            size / 1000,
            compiled.as_secs_f64(),
            percentile(&times, 0.5).as_secs_f64() * 1e6,
            percentile(&times, 0.99).as_secs_f64() * 1e6,
        );
        println!(
            "       RSS {before:.1} MiB before load, {loaded:.1} loaded, {first:.1} after 1 call, \
             {sequential:.1} after {} calls, {after:.1} after {CONCURRENT}×{CALLS} concurrent: \
             +{:.1} MiB for this plugin ({})",
            CALLS + 21,
            after - before,
            rss_split(),
        );
        plugins.push(plugin);
    }
    println!(
        "RSS with every example loaded and called: {:.1} MiB (+{:.1} MiB)",
        rss_mib(),
        rss_mib() - start
    );
}
