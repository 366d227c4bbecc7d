//! Audit chain benchmark: prints figures, asserts nothing.
//!
//! `cargo run --release -p talon-audit-bench` measures, on the release build
//! and a real redb file in a temporary directory, the kernel's own audit
//! module (`host/kernel/src/store/audit.rs`, included below):
//! - append throughput with one durable (fsynced) transaction per entry, the
//!   way the daemon appends a single event;
//! - append throughput inside one transaction (a change that records many);
//! - the time to verify a chain of 1,000,000 entries (`AUDIT_ENTRIES` to change).

use std::time::Instant;

#[allow(dead_code)]
#[path = "../../../host/kernel/src/store/audit.rs"]
mod audit;
#[allow(dead_code)]
#[path = "../../../host/kernel/src/store/audit_checkpoint.rs"]
mod audit_checkpoint;
mod store;

use audit::AuditEvent;
// The audit module reaches its store as `super::`: this crate's root.
use store::{Store, StoreError, tables};

fn event(i: u64) -> AuditEvent {
    AuditEvent::new(
        "agent_spawned",
        format!("agent 'bench-{i}' spawned from manifest version 0.1.0 by the benchmark"),
    )
    .agent("6f1c2a9e-3b7d-4e0a-9c55-0d2b7f3e8a11")
}

fn main() {
    let entries: u64 = std::env::var("AUDIT_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = Store::open(&dir.path().join("bench.redb")).expect("open store");

    const DURABLE: u64 = 500;
    let t = Instant::now();
    for i in 0..DURABLE {
        audit::append(&store, event(i)).expect("append");
    }
    let d = t.elapsed();
    println!(
        "append, one fsynced transaction each: {DURABLE} entries in {:.2} s = {:.0} entries/s ({:.2} ms each)",
        d.as_secs_f64(),
        DURABLE as f64 / d.as_secs_f64(),
        d.as_secs_f64() * 1e3 / DURABLE as f64
    );

    let mut added = DURABLE;
    let batch = 100_000u64;
    let t = Instant::now();
    while added < entries {
        let n = batch.min(entries - added);
        audit::append_many(&store, (added..added + n).map(event)).expect("append_many");
        added += n;
    }
    let d = t.elapsed();
    let batched = entries - DURABLE;
    println!(
        "append, {batch} per transaction: {batched} entries in {:.2} s = {:.0} entries/s",
        d.as_secs_f64(),
        batched as f64 / d.as_secs_f64()
    );
    let size = std::fs::metadata(store.path())
        .map(|m| m.len())
        .unwrap_or(0);
    println!("database file: {:.1} MiB", size as f64 / (1024.0 * 1024.0));

    for run in 1..=3 {
        let t = Instant::now();
        let v = audit::verify(&store).expect("verify");
        let d = t.elapsed();
        println!(
            "verify run {run}: {} entries in {:.3} s ({}), {:.0} ns/entry",
            v.chain_length,
            d.as_secs_f64(),
            if v.is_valid() { "valid" } else { "BROKEN" },
            d.as_nanos() as f64 / v.chain_length.max(1) as f64
        );
    }
}
