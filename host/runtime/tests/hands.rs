//! Hands at the runtime's level: the `fickle` test hand activated, ticked,
//! driving its agent through the host's `agent` import and keeping its
//! count in memory across a stop and a new activation; settings it refuses;
//! and the supervisor restarting a hand whose tick traps, hangs or leaks
//! while another keeps working; the `web_watch` hand against a local page
//! that changes, and against a page it was not granted.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::hand_host::{Host, Kernel};
use common::{author_manifest, component, runtime};
use talon_runtime::hand::{
    Activation, HandCallError, HandHandle, HandPlugin, HandState, HandStatus, describe_hand_error,
};
use talon_runtime::{Ceilings, Runtime};

async fn fickle(rt: &Runtime) -> HandPlugin {
    let manifest = author_manifest("tests/plugins/fickle");
    let granted = manifest.permissions.clone();
    rt.load_hand(manifest, component("fickle"), granted, BTreeMap::new())
        .await
        .expect("the fickle hand loads")
}

fn activate(
    rt: &Runtime,
    plugin: &HandPlugin,
    kernel: &Arc<Kernel>,
    agent: &str,
    settings: serde_json::Value,
) -> HandHandle {
    let activation = Activation {
        agent_id: agent.into(),
        settings: settings.to_string(),
        host: Arc::new(Host(kernel.clone())),
    };
    HandHandle::start(rt, plugin, activation).expect("the settings fit the schema")
}

/// Waits (polling the status, with a generous bound so a broken build
/// fails instead of hanging) until `done` holds.
async fn until(handle: &HandHandle, what: &str, done: impl Fn(&HandStatus) -> bool) {
    for _ in 0..1200 {
        if done(&handle.status()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{what}: never reached; status {:?}", handle.status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_ticks_drives_its_agent_and_keeps_its_state_in_memory() {
    let rt = runtime(Ceilings::default());
    let kernel = Arc::new(Kernel::default());
    rt.set_memory_backend(kernel.clone());
    let plugin = fickle(&rt).await;
    let info = plugin.info();
    assert_eq!(
        (info.name.as_str(), info.tick_interval_ms),
        ("fickle", 1000)
    );
    assert!(info.agent_role.contains("tick counts"));
    // Loaded as a tool, a hand is refused by name.
    let manifest = author_manifest("tests/plugins/fickle");
    let as_tool = rt
        .load(
            manifest,
            component("fickle"),
            Default::default(),
            BTreeMap::new(),
        )
        .await
        .err()
        .expect("a hand is not a tool");
    assert!(as_tool.to_string().contains("load_hand"), "{as_tool}");

    let hand = activate(
        &rt,
        &plugin,
        &kernel,
        "agent-1",
        serde_json::json!({"mode": "ok"}),
    );
    for _ in 0..3 {
        let cost = hand.tick().await.expect("a tick");
        assert!(cost.fuel > 0);
    }
    let status = hand.status();
    assert_eq!(
        (status.state, status.ticks, status.restarts),
        (HandState::Active, 3, 0)
    );
    assert!(status.last_tick_ms.is_some() && status.peak_memory > 0);
    let metrics = hand.metrics().await.expect("metrics");
    assert_eq!(metrics[0].label, "ticks");
    assert_eq!(metrics[0].value, "3");
    let asked = kernel.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 3);
    assert_eq!(
        asked[2],
        (
            "fickle".into(),
            "agent-1".into(),
            "Tick number 3 happened.".into()
        )
    );
    let notices = kernel.notices.lock().unwrap().clone();
    assert_eq!(notices[2].2, "tick 3: 23 characters");
    hand.stop().await;

    // A new activation (a restarted daemon) finds the count in memory.
    let again = activate(
        &rt,
        &plugin,
        &kernel,
        "agent-1",
        serde_json::json!({"mode": "ok"}),
    );
    again.tick().await.expect("a tick after the restart");
    let memory = kernel.memory.lock().unwrap().clone();
    assert_eq!(
        memory.get(&("agent-1".into(), "plugin:fickle:ticks".into())),
        Some(&"4".to_string())
    );
    again.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_that_do_not_fit_are_refused_naming_the_field() {
    let rt = runtime(Ceilings::default());
    let kernel = Arc::new(Kernel::default());
    rt.set_memory_backend(kernel.clone());
    let plugin = fickle(&rt).await;
    for (settings, field) in [
        ("{}", "mode"),
        (r#"{"mode":"sideways"}"#, "mode"),
        (r#"{"mode":"ok","extra":1}"#, "extra"),
        ("[1]", ""),
        ("{not json", ""),
    ] {
        let activation = Activation {
            agent_id: "agent-2".into(),
            settings: settings.into(),
            host: Arc::new(Host(kernel.clone())),
        };
        match HandHandle::start(&rt, &plugin, activation) {
            Err(e) => assert_eq!(e.field, field, "{settings}: {e}"),
            Ok(_) => panic!("{settings}: started"),
        }
    }
    // Nothing ran: the hand never saw the settings.
    assert!(kernel.asked.lock().unwrap().is_empty());

    // Settings that fit the schema but that the hand refuses stop it for
    // good, with its reason.
    let hand = activate(
        &rt,
        &plugin,
        &kernel,
        "agent-2",
        serde_json::json!({"mode": "refuse"}),
    );
    until(&hand, "refused", |s| s.state == HandState::Refused).await;
    let reason = "mode: refused on purpose";
    assert_eq!(hand.status().last_error.as_deref(), Some(reason));
    match hand.tick().await {
        Err(HandCallError::NotActive(why)) => assert_eq!(why, reason),
        other => panic!("a refused hand ticked: {other:?}"),
    }
    hand.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_supervisor_restarts_a_hand_whose_tick_traps_hangs_or_leaks() {
    let rt = runtime(Ceilings::default());
    let kernel = Arc::new(Kernel::default());
    rt.set_memory_backend(kernel.clone());
    let plugin = fickle(&rt).await;
    let start = |agent: &str, mode: &str| {
        activate(
            &rt,
            &plugin,
            &kernel,
            agent,
            serde_json::json!({ "mode": mode }),
        )
    };
    let calm = start("calm", "ok");
    // A loop ends at its deadline or when its fuel runs out, whichever
    // comes first on this machine: both are the guard ending it.
    for (mode, expected) in [
        ("trap", &["fickle trapped on purpose"][..]),
        ("hang", &["timed out", "out of fuel"][..]),
        ("leak", &["memory limit exceeded"][..]),
    ] {
        let hand = start(mode, mode);
        let mut crashes = 0;
        for _ in 0..400 {
            match hand.tick().await {
                Err(HandCallError::Crashed(e)) => {
                    crashes += 1;
                    let text = e.to_string();
                    assert!(expected.iter().any(|x| text.contains(x)), "{mode}: {text}");
                    if crashes == 2 {
                        break;
                    }
                }
                // Restarting, or (leak) ticks that still fit the limit.
                Err(HandCallError::NotActive(_)) | Ok(_) => {
                    tokio::time::sleep(Duration::from_millis(25)).await
                }
                Err(other) => panic!("{mode}: {other}"),
            }
        }
        assert_eq!(crashes, 2, "{mode}: {:?}", hand.status());
        until(&hand, mode, |s| s.restarts >= 2).await;
        let status = hand.status();
        let error = status.last_error.unwrap_or_default();
        assert!(
            expected.iter().any(|e| error.contains(e)),
            "{mode}: {error}"
        );
        assert!(status.failed_ticks >= 2);
        hand.stop().await;
    }
    // The well-behaved one never noticed.
    calm.tick().await.expect("still ticking");
    let status = calm.status();
    assert_eq!(
        (status.state, status.restarts, status.ticks),
        (HandState::Active, 0, 1)
    );
    calm.stop().await;
}

/// A page whose text the test changes, served over HTTP/1.1 on loopback
/// (one request per connection, `TCP_NODELAY`).
async fn page_server(text: Arc<Mutex<String>>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            socket.set_nodelay(true).ok();
            let text = text.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let body = text.lock().unwrap().clone();
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                socket.write_all(response.as_bytes()).await.ok();
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_watcher_tells_the_owner_what_changed_in_its_agents_words() {
    let rt = runtime(Ceilings::default());
    let kernel = Arc::new(Kernel::default());
    rt.set_memory_backend(kernel.clone());
    let page = Arc::new(Mutex::new("Prices\nwidget: 10\n".to_string()));
    let port = page_server(page.clone()).await;
    let manifest = author_manifest("plugins/web_watch");
    let mut granted = manifest.permissions.clone();
    granted.network = vec![format!("127.0.0.1:{port}")];
    let plugin = rt
        .load_hand(manifest, component("web_watch"), granted, BTreeMap::new())
        .await
        .expect("web_watch loads");
    assert_eq!(plugin.info().name, "web_watch");
    let url = format!("http://127.0.0.1:{port}/prices");
    let settings = serde_json::json!({ "urls": [url], "interval_secs": 1 });
    let hand = activate(&rt, &plugin, &kernel, "watcher", settings);

    // The first look is the baseline: nobody is told anything.
    hand.tick().await.expect("the first check");
    let metrics = hand.metrics().await.unwrap();
    assert_eq!(metrics[1].label, "checks");
    assert_eq!(metrics[1].value, "1");
    assert!(kernel.notices.lock().unwrap().is_empty());

    *page.lock().unwrap() = "Prices\nwidget: 12\ngadget: 3\n".into();
    // Ticks come every second; the hand checks once its interval passed.
    for _ in 0..400 {
        if !kernel.notices.lock().unwrap().is_empty() {
            break;
        }
        hand.tick().await.expect("a tick");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let asked = kernel.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 1, "{asked:?}");
    let question = &asked[0].2;
    assert!(
        question.contains("Removed lines:\n- widget: 10\n"),
        "{question}"
    );
    assert!(
        question.contains("Added lines:\n- gadget: 3\n- widget: 12\n"),
        "{question}"
    );
    let notices = kernel.notices.lock().unwrap().clone();
    assert_eq!(notices[0].0, "web_watch");
    assert_eq!(notices[0].1, "watcher");
    assert!(
        notices[0].2.starts_with(&format!("{url} changed: ")),
        "{notices:?}"
    );
    hand.stop().await;

    // The text it compares with is in the agent's memory, so a new
    // activation does not take the same page for a change.
    let again = activate(
        &rt,
        &plugin,
        &kernel,
        "watcher",
        serde_json::json!({ "urls": [url], "interval_secs": 1 }),
    );
    for _ in 0..400 {
        let metrics = again.metrics().await.unwrap();
        if metrics[1].value != "0" {
            break;
        }
        again.tick().await.expect("a tick");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(kernel.asked.lock().unwrap().len(), 1);
    again.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_watcher_is_refused_a_page_it_was_not_granted() {
    let rt = runtime(Ceilings::default());
    let kernel = Arc::new(Kernel::default());
    rt.set_memory_backend(kernel.clone());
    let page = Arc::new(Mutex::new("hello".to_string()));
    let port = page_server(page).await;
    let manifest = author_manifest("plugins/web_watch");
    let mut granted = manifest.permissions.clone();
    granted.network = vec!["example.com".into()];
    let plugin = rt
        .load_hand(manifest, component("web_watch"), granted, BTreeMap::new())
        .await
        .unwrap();
    let settings = serde_json::json!({ "urls": [format!("http://127.0.0.1:{port}/")] });
    let hand = activate(&rt, &plugin, &kernel, "w2", settings);
    match hand.tick().await {
        Err(HandCallError::Hand(e)) => {
            let text = describe_hand_error(&e);
            assert!(
                text.contains("permission denied") && text.contains("127.0.0.1"),
                "{text}"
            );
        }
        other => panic!("an ungranted page was fetched: {other:?}"),
    }
    // A failed tick is not a crash: the same instance stays active.
    let status = hand.status();
    assert_eq!(
        (status.state, status.restarts, status.failed_ticks),
        (HandState::Active, 0, 1)
    );
    hand.stop().await;
}

/// A hand built against 0.1.0 (`tests/plugins/elder`): no `describe`, so
/// its role and interval come from its manifest's `[hand]`; its settings
/// schema is still its own and checked before it starts; it ticks through
/// the 0.1.0 `agent` import into the same host, and its string errors
/// become the runtime's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_built_against_0_1_0_loads_through_its_adapter() {
    let rt = runtime(Ceilings::default());
    let kernel = Arc::new(Kernel::default());
    rt.set_memory_backend(kernel.clone());
    let manifest = author_manifest("tests/plugins/elder");
    assert_eq!(manifest.wit, "0.1.0");
    let granted = manifest.permissions.clone();
    let plugin = rt
        .load_hand(
            manifest.clone(),
            component("elder"),
            granted,
            BTreeMap::new(),
        )
        .await
        .expect("the 0.1.0 hand loads");
    let info = plugin.info();
    assert_eq!(
        (
            info.name.as_str(),
            info.display_name.as_str(),
            info.tick_interval_ms
        ),
        ("elder", "Elder", 1000)
    );
    assert_eq!(info.agent_role, manifest.hand.as_ref().unwrap().role);
    assert!(
        info.settings_schema.contains("\"topic\""),
        "{}",
        info.settings_schema
    );

    // The schema the hand gave is enforced before it is started.
    for (settings, field) in [("{}", "topic"), (r#"{"topic":""}"#, "topic")] {
        let activation = Activation {
            agent_id: "agent-e".into(),
            settings: settings.into(),
            host: Arc::new(Host(kernel.clone())),
        };
        match HandHandle::start(&rt, &plugin, activation) {
            Err(e) => assert_eq!(e.field, field, "{settings}: {e}"),
            Ok(_) => panic!("{settings}: started"),
        }
    }

    let hand = activate(
        &rt,
        &plugin,
        &kernel,
        "agent-e",
        serde_json::json!({"topic": "owls"}),
    );
    for _ in 0..2 {
        hand.tick().await.expect("a tick");
    }
    let status = hand.status();
    assert_eq!(
        (status.state, status.ticks, status.restarts),
        (HandState::Active, 2, 0)
    );
    let metrics = hand.metrics().await.expect("metrics");
    let metrics: Vec<(&str, &str)> = metrics
        .iter()
        .map(|m| (m.label.as_str(), m.value.as_str()))
        .collect();
    assert_eq!(metrics, [("ticks", "2"), ("topic", "owls")]);
    let message = "Elder tick number 2 about owls.";
    let asked = kernel.asked.lock().unwrap().clone();
    assert_eq!(
        asked.last(),
        Some(&("elder".into(), "agent-e".into(), message.into()))
    );
    let notices = kernel.notices.lock().unwrap().clone();
    assert_eq!(
        notices.last().map(|n| n.2.clone()),
        Some(format!("elder tick 2: {} characters", message.len()))
    );
    hand.stop().await;
    let memory = kernel.memory.lock().unwrap().clone();
    assert_eq!(
        memory.get(&("agent-e".into(), "plugin:elder:deactivated".into())),
        Some(&"yes".to_string()),
        "deactivate ran"
    );
    assert_eq!(
        memory.get(&("agent-e".into(), "plugin:elder:ticks".into())),
        Some(&"2".to_string())
    );

    // A tick's error string is a failed tick, not a crash.
    let failing = activate(
        &rt,
        &plugin,
        &kernel,
        "agent-f",
        serde_json::json!({"topic": "fail"}),
    );
    match failing.tick().await {
        Err(HandCallError::Hand(e)) => {
            assert_eq!(describe_hand_error(&e), "failed: failing on purpose")
        }
        other => panic!("the failing tick: {other:?}"),
    }
    let status = failing.status();
    assert_eq!(
        (status.state, status.failed_ticks, status.restarts),
        (HandState::Active, 1, 0)
    );
    failing.stop().await;

    // An activation's error string is a refusal of the settings.
    let refused = activate(
        &rt,
        &plugin,
        &kernel,
        "agent-g",
        serde_json::json!({"topic": "refuse"}),
    );
    until(&refused, "refused", |s| s.state == HandState::Refused).await;
    assert_eq!(
        refused.status().last_error.as_deref(),
        Some("topic: refused on purpose")
    );
    refused.stop().await;

    // The same component declared as 0.2.0 does not link: it has no
    // `describe`, and the error names the world and version checked.
    let mut as_new = manifest.clone();
    as_new.wit = "0.2.0".into();
    as_new.hand = None;
    let err = rt
        .load_hand(
            as_new,
            component("elder"),
            Default::default(),
            BTreeMap::new(),
        )
        .await
        .err()
        .expect("a 0.1.0 component is not a 0.2.0 hand");
    assert!(err.to_string().contains("0.2.0"), "{err}");
}
