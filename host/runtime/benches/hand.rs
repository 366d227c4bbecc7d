//! Hand benchmark: prints figures, asserts nothing.
//!
//! `cargo bench -p talon-runtime --bench hand` (components from
//! `scripts/build-plugins`) measures, with the `fickle` test hand (a tick
//! reads and writes one memory key, asks its agent, which the bench answers
//! at once, and notifies the owner):
//! - the wall time and fuel of one tick on a live instance, p50 and p99;
//! - resident memory per activated idle hand (50 of them), beyond the
//!   agent it drives (the bench's agent holds nothing).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::hand_host::{Host, Kernel};
use talon_runtime::Ceilings;
use talon_runtime::hand::{Activation, HandHandle};

const WARMUP: usize = 50;
const TICKS: usize = 1000;
const IDLE: usize = 50;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // Each live hand holds one of its plugin's instance slots (16 by
    // default), so the idle ones need more.
    let rt = common::runtime(Ceilings {
        per_plugin_instances: IDLE as u32 + 1,
        ..Ceilings::default()
    });
    let kernel = Arc::new(Kernel::default());
    rt.set_memory_backend(kernel.clone());
    let manifest = common::author_manifest("tests/plugins/fickle");
    let granted = manifest.permissions.clone();
    let plugin = rt
        .load_hand(
            manifest,
            common::component("fickle"),
            granted,
            BTreeMap::new(),
        )
        .await
        .expect("fickle loads");
    let activate = |agent: String| {
        HandHandle::start(
            &rt,
            &plugin,
            Activation {
                agent_id: agent,
                settings: r#"{"mode":"ok"}"#.into(),
                host: Arc::new(Host(kernel.clone())),
            },
        )
        .expect("the settings fit")
    };

    let hand = activate("timed".into());
    for _ in 0..WARMUP {
        hand.tick().await.expect("tick");
    }
    let (mut wall, mut fuel) = (Vec::new(), Vec::new());
    for _ in 0..TICKS {
        let cost = hand.tick().await.expect("tick");
        wall.push(cost.wall_us);
        fuel.push(cost.fuel);
    }
    wall.sort_unstable();
    fuel.sort_unstable();
    println!(
        "tick of a trivial hand ({TICKS} ticks): wall p50 {} us, p99 {} us; fuel p50 {}",
        percentile(&wall, 0.5),
        percentile(&wall, 0.99),
        percentile(&fuel, 0.5),
    );
    hand.stop().await;

    // Let freed memory settle before the baseline.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss_kib();
    let mut hands = Vec::new();
    for i in 0..IDLE {
        let hand = activate(format!("idle-{i}"));
        // One tick: the instance is activated and has done its work once.
        hand.tick().await.expect("tick");
        hands.push(hand);
    }
    let after = rss_kib();
    let peak = hands[0].status().peak_memory;
    println!(
        "{IDLE} idle activated hands: RSS {before} KiB -> {after} KiB, {} KiB per hand \
         (linear memory peak per instance {} KiB)",
        (after.saturating_sub(before)) / IDLE as u64,
        peak / 1024
    );
    for hand in hands {
        hand.stop().await;
    }
}
