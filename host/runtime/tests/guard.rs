//! The guard around every entry into guest code, against hostile components
//! (`tests/plugins/hostile` and `tests/plugins/stuck`): each attack is
//! refused or stopped with a named error while other plugins keep working.
//! Nothing here asserts a duration: counts and errors only.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::{call, load, load_with_settings, runtime, runtime_with};
use talon_runtime::{
    CallContext, Ceilings, GuardError, InvokeError, LoadError, RETRY_AFTER, Runtime,
};

/// Everything logged by this test binary, as text (fmt layer, no colours).
fn logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<&'static Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer: &'static Mutex<Vec<u8>> = Box::leak(Box::new(Mutex::new(Vec::new())));
        let _ = tracing_subscriber::fmt()
            .with_writer(move || Capture(buffer))
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .try_init();
        buffer
    })
}

struct Capture(&'static Mutex<Vec<u8>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logged() -> String {
    String::from_utf8_lossy(&logs().lock().unwrap()).into_owned()
}

fn guard_error(result: Result<String, InvokeError>) -> GuardError {
    match result {
        Err(InvokeError::Guard(e)) => e,
        other => panic!("expected the guard to stop the call, got {other:?}"),
    }
}

async fn echo_works(rt: &Runtime, plugin: &talon_runtime::Plugin) {
    assert_eq!(
        call(rt, plugin, "echo", r#"{"ok":1}"#, &CallContext::default())
            .await
            .unwrap(),
        r#"{"ok":1}"#
    );
}

/// Guests looping in host calls that take the host long but burn little
/// fuel, more of them than there are worker threads: without yielding at
/// epoch ticks they would hold both workers until their deadline. Another
/// task must keep being scheduled meanwhile, and another plugin must answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_spinning_in_host_calls_do_not_hold_the_worker_threads() {
    let rt = runtime(Ceilings::default());
    let hostile = load(&rt, "tests/plugins/hostile", "hostile").await;
    let greeter = load(&rt, "tests/plugins/greeter", "greeter").await;

    let spinners: Vec<_> = (0..4)
        .map(|_| {
            let (rt, plugin) = (rt.clone(), hostile.clone());
            tokio::spawn(async move {
                rt.invoke(&plugin, "spin_in_host", "{}", &CallContext::default())
                    .await
                    .result
            })
        })
        .collect();

    // A heartbeat: counts its turns while the spinners are running.
    let done = Arc::new(AtomicBool::new(false));
    let beats_while_spinning = Arc::new(AtomicU32::new(0));
    let heartbeat = {
        let (done, beats, plugin) = (done.clone(), beats_while_spinning.clone(), hostile.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Acquire) {
                tokio::time::sleep(Duration::from_millis(1)).await;
                if plugin.running_calls() > 0 {
                    beats.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    // Wait until the four spinners run at once (impossible on two threads
    // unless they yield), then call another plugin.
    while hostile.running_calls() < 4 && !spinners.iter().all(|s| s.is_finished()) {
        tokio::task::yield_now().await;
    }
    let greeting = call(
        &rt,
        &greeter,
        "greet",
        r#"{"name":"Ada"}"#,
        &CallContext::default(),
    )
    .await;
    let spinning_during_greeting = hostile.running_calls();

    for spinner in spinners {
        let err = guard_error(spinner.await.unwrap());
        assert!(matches!(err, GuardError::Timeout { .. }), "{err}");
    }
    done.store(true, Ordering::Release);
    heartbeat.await.unwrap();

    assert!(greeting.is_ok(), "{greeting:?}");
    assert_eq!(
        spinning_during_greeting, 4,
        "the four spinners must run at once on two threads, and the greeting be answered meanwhile"
    );
    let beats = beats_while_spinning.load(Ordering::Relaxed);
    assert!(
        beats >= 10,
        "the heartbeat ran only {beats} times while the spinners held the workers"
    );
}

/// What the issue saw: pending probes of one plugin took every slot and
/// every other call failed. Now each plugin has its share, and a refusal is
/// a named, retryable error with a log line naming the plugin.
#[tokio::test]
async fn probes_take_a_slot_of_their_plugin_and_cannot_starve_others() {
    let rt = runtime_with(
        Ceilings {
            per_plugin_instances: 2,
            slot_wait: Duration::ZERO,
            ..Ceilings::default()
        },
        4,
    );
    logs();
    let stuck = load_with_settings(
        &rt,
        "tests/plugins/stuck",
        "stuck",
        &[("block", "describe")],
    )
    .await
    .unwrap();
    let hostile = load(&rt, "tests/plugins/hostile", "hostile").await;

    let probes: Vec<_> = (0..20)
        .map(|_| {
            let (rt, plugin) = (rt.clone(), stuck.clone());
            tokio::spawn(async move { rt.probe(&plugin).await })
        })
        .collect();
    while stuck.running_calls() < 2 {
        tokio::task::yield_now().await;
    }
    // The stuck plugin holds its two slots; the runtime has two more.
    echo_works(&rt, &hostile).await;
    assert!(stuck.running_calls() <= 2);

    let (mut busy, mut timed_out) = (0, 0);
    for probe in probes {
        match probe.await.unwrap() {
            Err(LoadError::Guard(GuardError::Busy {
                plugin,
                retry_after,
                reason,
            })) => {
                assert_eq!(plugin, "stuck");
                assert_eq!(retry_after, RETRY_AFTER);
                assert!(reason.contains("its limit"), "{reason}");
                busy += 1;
            }
            Err(LoadError::Guard(GuardError::Timeout { .. })) => timed_out += 1,
            other => panic!("a probe of a plugin stuck in describe: {other:?}"),
        }
    }
    assert!(
        busy >= 1 && timed_out >= 1,
        "busy {busy}, timed out {timed_out}"
    );
    let logs = logged();
    assert!(
        logs.lines()
            .any(|l| l.contains("no free instance slot") && l.contains("plugin=stuck")),
        "no log line names the refused plugin:\n{logs}"
    );
}

/// When the whole runtime is full, calls of any plugin are refused as busy
/// (not "could not start"), and work again once slots free up.
#[tokio::test]
async fn a_full_runtime_refuses_with_busy_and_recovers() {
    let rt = runtime_with(
        Ceilings {
            slot_wait: Duration::ZERO,
            ..Ceilings::default()
        },
        2,
    );
    let hostile = load(&rt, "tests/plugins/hostile", "hostile").await;
    let greeter = load(&rt, "tests/plugins/greeter", "greeter").await;
    let sleepers: Vec<_> = (0..2)
        .map(|_| {
            let (rt, plugin) = (rt.clone(), hostile.clone());
            tokio::spawn(async move {
                rt.invoke(&plugin, "sleep_forever", "{}", &CallContext::default())
                    .await
                    .result
            })
        })
        .collect();
    while hostile.running_calls() < 2 {
        tokio::task::yield_now().await;
    }
    let err = guard_error(
        call(
            &rt,
            &greeter,
            "greet",
            r#"{"name":"x"}"#,
            &CallContext::default(),
        )
        .await,
    );
    assert!(
        matches!(&err, GuardError::Busy { plugin, reason, .. }
            if plugin == "greeter" && reason.contains("all 2 instance slots")),
        "{err}"
    );
    assert_eq!(err.kind(), "busy");
    assert_eq!(err.retry_after(), Some(RETRY_AFTER));
    for sleeper in sleepers {
        let err = guard_error(sleeper.await.unwrap());
        assert!(matches!(err, GuardError::Timeout { .. }), "{err}");
    }
    assert!(
        call(
            &rt,
            &greeter,
            "greet",
            r#"{"name":"x"}"#,
            &CallContext::default()
        )
        .await
        .is_ok()
    );
}

/// `describe` and `instructions` run under the same deadline as tool calls.
#[tokio::test]
async fn describe_and_instructions_that_never_return_are_stopped() {
    // Fuel that outlasts the deadline, so the deadline is what stops them.
    let rt = runtime(Ceilings {
        fuel: u64::MAX / 2,
        ..Ceilings::default()
    });
    let err = load_with_settings(
        &rt,
        "tests/plugins/stuck",
        "stuck",
        &[("block", "instructions")],
    )
    .await
    .err()
    .expect("a skill whose instructions never return cannot load");
    assert!(
        matches!(err, LoadError::Guard(GuardError::Timeout { limit }) if limit == Duration::from_millis(300)),
        "{err}"
    );

    let stuck = load_with_settings(
        &rt,
        "tests/plugins/stuck",
        "stuck",
        &[("block", "describe")],
    )
    .await
    .unwrap();
    let err = rt.probe(&stuck).await.unwrap_err();
    assert!(
        matches!(err, LoadError::Guard(GuardError::Timeout { .. })),
        "{err}"
    );
    let err = guard_error(call(&rt, &stuck, "ping", "{}", &CallContext::default()).await);
    assert!(matches!(err, GuardError::Timeout { .. }), "{err}");
    assert_eq!(stuck.running_calls(), 0, "every slot was given back");

    // The same plugin without the setting is fine.
    let fine = load_with_settings(&rt, "tests/plugins/stuck", "stuck", &[])
        .await
        .unwrap();
    assert!(fine.instructions().unwrap().contains("ping"));
    assert_eq!(rt.probe(&fine).await.unwrap().tools.len(), 1);
}

#[tokio::test]
async fn a_resource_table_bomb_is_stopped_at_the_cap() {
    let rt = runtime(Ceilings {
        resource_entries: 128,
        ..Ceilings::default()
    });
    let hostile = load(&rt, "tests/plugins/hostile", "hostile").await;
    // Small fields, many of them: the table fills up.
    let err = guard_error(
        call(
            &rt,
            &hostile,
            "fields_bomb",
            r#"{"kib":4}"#,
            &CallContext::default(),
        )
        .await,
    );
    assert!(
        matches!(err, GuardError::ResourceLimit { limit: 128, what } if what.contains("host resources")),
        "{err}"
    );
    assert_eq!(err.kind(), "resource_limit");
    // Large fields: one of them reaches its size cap first.
    let err = guard_error(
        call(
            &rt,
            &hostile,
            "fields_bomb",
            r#"{"kib":1024}"#,
            &CallContext::default(),
        )
        .await,
    );
    assert!(
        matches!(err, GuardError::ResourceLimit { limit, what }
            if limit == Ceilings::default().http_fields_bytes && what.contains("headers")),
        "{err}"
    );
    echo_works(&rt, &hostile).await;
}

#[tokio::test]
async fn a_huge_result_is_refused() {
    let rt = runtime(Ceilings::default());
    let hostile = load(&rt, "tests/plugins/hostile", "hostile").await;
    let err = guard_error(
        call(
            &rt,
            &hostile,
            "huge_result",
            r#"{"mb":4}"#,
            &CallContext::default(),
        )
        .await,
    );
    assert!(
        matches!(err, GuardError::ResultTooLarge { size, limit }
            if size > 4 << 20 && limit == 1 << 20),
        "{err}"
    );
    // Below the cap the same tool answers.
    let rt = runtime(Ceilings {
        result_bytes: 8 << 20,
        ..Ceilings::default()
    });
    let hostile = load(&rt, "tests/plugins/hostile", "hostile").await;
    let out = call(
        &rt,
        &hostile,
        "huge_result",
        r#"{"mb":4}"#,
        &CallContext::default(),
    )
    .await
    .unwrap();
    assert!(out.len() > 4 << 20);
}

#[tokio::test]
async fn a_log_flood_is_capped_and_cannot_forge_lines() {
    let rt = runtime(Ceilings {
        log_lines_per_call: 50,
        ..Ceilings::default()
    });
    logs();
    let hostile = load(&rt, "tests/plugins/hostile", "hostile").await;
    let invocation = rt
        .invoke(
            &hostile,
            "log_flood",
            r#"{"lines":5000}"#,
            &CallContext::default(),
        )
        .await;
    // Logging too much is not the call's failure: the excess is dropped.
    assert_eq!(invocation.result.unwrap(), "5000");
    assert!(
        invocation.cost.log_lines_dropped >= 5000 - 50,
        "{:?}",
        invocation.cost
    );
    let logs = logged();
    let written: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("plugin log") && l.contains(" text=") && l.contains("hostile"))
        .collect();
    assert!(
        !written.is_empty() && written.len() <= 50,
        "{} lines",
        written.len()
    );
    assert!(
        written.iter().all(|l| l.contains("\\nFORGED")),
        "the newline must be escaped"
    );
    assert!(
        !logs.lines().any(|l| l.starts_with("FORGED")),
        "a plugin forged a log line:\n{logs}"
    );
    assert!(
        logs.lines()
            .any(|l| l.contains("log lines dropped") && l.contains("hostile")),
        "the drop is reported once, naming the plugin"
    );
}

#[tokio::test]
async fn exit_is_an_exit_with_its_status() {
    let rt = runtime(Ceilings::default());
    let hostile = load(&rt, "tests/plugins/hostile", "hostile").await;
    let err = guard_error(
        call(
            &rt,
            &hostile,
            "exit",
            r#"{"code":3}"#,
            &CallContext::default(),
        )
        .await,
    );
    assert_eq!(err, GuardError::Exited(3));
    assert_eq!(err.to_string(), "plugin exited with status 3");
    assert_eq!(err.kind(), "exited");
    echo_works(&rt, &hostile).await;
}

/// A guest blocked inside a host call (here `wasi:io/poll` on an HTTP
/// response that never comes) runs no WebAssembly, so no epoch check can
/// stop it: the outer timeout does, at the plugin's deadline rather than at
/// the guest's own (much longer) one.
#[tokio::test]
async fn the_outer_timeout_ends_a_guest_blocked_in_a_host_call() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts and holds every connection, never answering.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let rt = runtime(Ceilings::default());
    let granted = talon_runtime::Permissions {
        network: vec![format!("127.0.0.1:{port}")],
        ..Default::default()
    };
    let plugin = common::load_with(&rt, "plugins/web_fetch", "web_fetch", granted, |m| {
        m.limits.timeout_ms = Some(300)
    })
    .await;
    let args = serde_json::json!({
        "url": format!("http://127.0.0.1:{port}/"),
        "timeout_ms": 30_000,
    });
    let err = guard_error(
        call(
            &rt,
            &plugin,
            "web_fetch",
            &args.to_string(),
            &CallContext::default(),
        )
        .await,
    );
    assert_eq!(
        err,
        GuardError::Timeout {
            limit: Duration::from_millis(300)
        }
    );
    assert_eq!(plugin.running_calls(), 0);
}
