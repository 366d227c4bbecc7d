//! The baseline compiler (Winch): a tool built by it answers as the
//! optimized build does, under the same guard (fuel, memory, the epoch
//! deadline), and the optimized build replaces it in the background while
//! calls keep working. Nothing here asserts a duration.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{author_manifest, call, component, runtime};
use talon_runtime::{
    Baseline, CallContext, Ceilings, GuardError, InvokeError, Manifest, Permissions, Plugin,
    Runtime, RuntimeConfig, Tier,
};

/// A runtime compiling tools with `baseline`, caching under `cache`.
fn runtime_baseline(baseline: Baseline, cache: &std::path::Path, ceilings: Ceilings) -> Runtime {
    Runtime::new(RuntimeConfig {
        cache_dir: Some(cache.to_path_buf()),
        ceilings,
        baseline,
        ..Default::default()
    })
    .unwrap()
}

/// The completed manifest of a repository plugin (packed by the shared test
/// runtime, whose optimized builds are cached under `target/`).
async fn manifest(dir: &str, name: &str) -> Manifest {
    runtime(Ceilings::default())
        .complete_manifest(author_manifest(dir), component(name))
        .await
        .unwrap()
}

async fn load(rt: &Runtime, manifest: Manifest, name: &str) -> Plugin {
    rt.load(
        manifest,
        component(name),
        Permissions::default(),
        BTreeMap::new(),
    )
    .await
    .unwrap()
}

/// Fuel for the metered calls.
const FUEL: u64 = 20_000_000;

fn stopped(result: Result<String, InvokeError>) -> GuardError {
    match result {
        Err(InvokeError::Guard(e)) => e,
        other => panic!("expected the guard to stop the call, got {other:?}"),
    }
}

#[tokio::test]
async fn a_baseline_build_answers_and_is_held_by_the_same_guard() {
    let cache = tempfile::tempdir().unwrap();
    let rt = runtime_baseline(Baseline::Only, cache.path(), Ceilings::default());
    let hostile = manifest("tests/plugins/hostile", "hostile").await;
    // Winch's code is slower: a fuel limit it exhausts well within the
    // deadline, whatever the machine's load, so fuel is what stops it.
    let mut metered = hostile.clone();
    metered.limits.fuel = Some(FUEL);
    metered.limits.timeout_ms = None;
    let plugin = load(&rt, metered, "hostile").await;
    assert_eq!(plugin.loaded_with(), Tier::Baseline);
    assert_eq!(plugin.compiler(), Tier::Baseline);
    let none = CallContext::default();

    assert_eq!(
        call(&rt, &plugin, "echo", r#"{"x":1}"#, &none)
            .await
            .unwrap(),
        r#"{"x":1}"#
    );
    // Fuel is counted by Winch's code as by Cranelift's.
    let invocation = rt.invoke(&plugin, "spin", "{}", &none).await;
    assert!(
        matches!(
            stopped(invocation.result),
            GuardError::OutOfFuel { limit: FUEL }
        ),
        "spin"
    );
    assert_eq!(invocation.cost.fuel, FUEL);
    let err = stopped(call(&rt, &plugin, "alloc", r#"{"mb": 100}"#, &none).await);
    assert!(
        matches!(err, GuardError::MemoryLimit { limit, .. } if limit == 32 << 20),
        "{err}"
    );
    assert_eq!(
        call(&rt, &plugin, "alloc", r#"{"mb": 4}"#, &none)
            .await
            .unwrap(),
        "4"
    );
    let err = stopped(call(&rt, &plugin, "trap", "{}", &none).await);
    assert!(
        matches!(&err, GuardError::Trap(m) if m.contains("panicked on purpose")),
        "{err}"
    );
    let err = stopped(call(&rt, &plugin, "recurse", r#"{"depth": 100000000}"#, &none).await);
    assert!(
        matches!(&err, GuardError::StackOverflow)
            || matches!(&err, GuardError::Trap(m) if m.contains("out of bounds")),
        "{err}"
    );

    // With fuel no loop exhausts, the epoch deadline stops Winch's loop.
    let rt = runtime_baseline(
        Baseline::Only,
        cache.path(),
        Ceilings {
            fuel: u64::MAX / 2,
            timeout: Duration::from_millis(200),
            ..Ceilings::default()
        },
    );
    let mut unmetered = hostile;
    unmetered.limits.fuel = None;
    let plugin = load(&rt, unmetered, "hostile").await;
    assert_eq!(plugin.compiler(), Tier::Baseline);
    let err = stopped(call(&rt, &plugin, "spin", "{}", &none).await);
    assert!(matches!(err, GuardError::Timeout { .. }), "{err}");
    let err = stopped(call(&rt, &plugin, "sleep_forever", "{}", &none).await);
    assert!(matches!(err, GuardError::Timeout { .. }), "{err}");
}

#[tokio::test]
async fn the_optimized_build_replaces_the_baseline_one_while_calls_go_on() {
    let cache = tempfile::tempdir().unwrap();
    let rt = runtime_baseline(Baseline::First, cache.path(), Ceilings::default());
    let greeter = manifest("tests/plugins/greeter", "greeter").await;
    let plugin = load(&rt, greeter.clone(), "greeter").await;
    assert_eq!(plugin.loaded_with(), Tier::Baseline);
    assert!(!plugin.was_cached());

    // Calls run while the optimized build is compiled and swapped in; each
    // finishes on the build it started on.
    let mut calls = 0;
    let none = CallContext::default();
    let swapped = plugin.optimized();
    tokio::pin!(swapped);
    loop {
        tokio::select! {
            biased;
            () = &mut swapped => break,
            answer = call(&rt, &plugin, "greet", r#"{"name":"x"}"#, &none) => {
                assert!(answer.unwrap().contains('x'));
                calls += 1;
            }
        }
    }
    assert_eq!(plugin.compiler(), Tier::Optimized);
    assert!(
        call(
            &rt,
            &plugin,
            "greet",
            r#"{"name":"y"}"#,
            &CallContext::default()
        )
        .await
        .unwrap()
        .contains('y'),
        "after {calls} calls during the swap"
    );

    // The cache keeps the optimized build only: a restart uses it at once.
    let files: Vec<_> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let restarted = runtime_baseline(Baseline::First, cache.path(), Ceilings::default());
    let plugin = load(&restarted, greeter, "greeter").await;
    assert_eq!(plugin.loaded_with(), Tier::Optimized);
    assert!(plugin.was_cached());
}

#[tokio::test]
async fn without_the_baseline_compiler_tools_load_optimized() {
    let cache = tempfile::tempdir().unwrap();
    let rt = runtime_baseline(Baseline::Off, cache.path(), Ceilings::default());
    let greeter = manifest("tests/plugins/greeter", "greeter").await;
    let plugin = load(&rt, greeter, "greeter").await;
    assert_eq!(plugin.loaded_with(), Tier::Optimized);
    assert_eq!(plugin.compiler(), Tier::Optimized);
}
