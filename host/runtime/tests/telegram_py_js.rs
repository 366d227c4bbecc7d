//! The example Telegram channels written in Python and JavaScript
//! (`examples/channels/{python,js}`), at the runtime's level against the
//! local Bot API server (`talon-test-telegram`), as `telegram.rs` tests the
//! Rust one: a message a person writes comes out of `receive` once, a
//! reply posts `sendMessage` in the right chat, topic and thread, a 429 is
//! reported as `rate-limited`, an ungranted API and a refused token are
//! errors, not crashes. Each test prints the component's peak memory and
//! the time of its calls (the figures in docs/CHANNELS.md).

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use common::channel::{next_message, text, to, until};
use common::{author_manifest, component, runtime};
use serde_json::json;
use talon_runtime::channel::{ChannelHandle, ChannelPlugin, ChatKind, SupervisorState};
use talon_runtime::{Ceilings, Permissions, Runtime};
use talon_test_telegram::{BOT_USERNAME, Said, TelegramServer};
use tokio::sync::mpsc;

const TOKEN: &str = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";

/// One example channel: its directory and the component's name.
struct Example {
    dir: &'static str,
    name: &'static str,
    /// What the error of a refused destination says. StarlingMonkey's
    /// `fetch` reports every network failure as one `NetworkError`, the
    /// host's refusal included, so the JavaScript channel cannot name it.
    denied_says: &'static [&'static str],
}

const PYTHON: Example = Example {
    dir: "examples/channels/python",
    name: "telegram_python",
    denied_says: &["permission denied", "grant"],
};
const JS: Example = Example {
    dir: "examples/channels/js",
    name: "telegram_js",
    denied_says: &["NetworkError"],
};

async fn load(rt: &Runtime, example: &Example, port: u16) -> ChannelPlugin {
    let granted = Permissions {
        network: vec![format!("127.0.0.1:{port}")],
        ..Default::default()
    };
    rt.load_channel(
        author_manifest(example.dir),
        component(example.name),
        granted,
        BTreeMap::new(),
    )
    .await
    .unwrap_or_else(|e| panic!("{} loads: {e}", example.name))
}

fn config(server: &TelegramServer, token: &str) -> String {
    json!({ "token": token, "api_base": server.api_base(), "poll_timeout_s": 20 }).to_string()
}

fn alice(text: &str, thread_id: Option<i64>) -> Said<'_> {
    Said {
        chat_id: -1_001_234,
        chat_type: "supergroup",
        from_id: 42,
        first_name: "Alice",
        username: Some("alice"),
        text,
        thread_id,
        reply_to: None,
    }
}

/// Messages in, replies out, a 429 reported; prints the figures.
async fn messages_in_and_replies_out(example: Example) {
    let server = TelegramServer::start(TOKEN).await;
    let rt = runtime(Ceilings::default());
    let plugin = load(&rt, &example, server.port).await;
    assert_eq!(plugin.info().name, example.name);
    assert_eq!(plugin.info().secret_keys, vec!["token".to_string()]);

    let (tx, mut events) = mpsc::channel(16);
    let started = Instant::now();
    let handle = ChannelHandle::start(&rt, &plugin, config(&server, TOKEN), tx);
    until(&handle, "connected", |s| {
        s.state == SupervisorState::Connected
    })
    .await;
    let connected_after = started.elapsed();
    assert_eq!(server.calls_of("getMe").len(), 1);

    // A person names the bot in a forum topic.
    let said = format!("@{BOT_USERNAME} what time is it?");
    let update = server.person_says(&alice(&said, Some(7)));
    let message = next_message(&mut events).await;
    let asked = update["message"]["message_id"].as_i64().expect("an id");
    assert_eq!(message.id, Some(format!("-1001234:{asked}")));
    assert_eq!(message.chat_id, "-1001234");
    assert_eq!(message.chat_kind, ChatKind::Group);
    assert_eq!(message.thread_id.as_deref(), Some("7"));
    assert_eq!(message.sender.id, "42");
    assert_eq!(message.sender.display_name.as_deref(), Some("Alice"));
    assert!(!message.sender.is_bot);
    assert!(message.mentioned);
    assert_eq!(message.text, said);

    // The reply lands in the same chat and topic, as a reply.
    let here = to("-1001234", Some("7"), message.id.as_deref());
    let sending = Instant::now();
    let ids = handle
        .send(text(here.clone(), "It is time."))
        .await
        .expect("sent");
    let send_took = sending.elapsed();
    let posted = server.bot_messages(-1_001_234);
    assert_eq!(posted.len(), 1);
    assert_eq!(ids, vec![format!("-1001234:{}", posted[0].message_id)]);
    assert_eq!(posted[0].text, "It is time.");
    assert_eq!(posted[0].thread_id, Some(7));
    assert_eq!(posted[0].reply_to, Some(asked));

    // The next message, not mentioning the bot, comes once: confirmed
    // updates are not delivered again (the offsets of getUpdates grow).
    server.person_says(&alice("second", None));
    let second = next_message(&mut events).await;
    assert_eq!(second.text, "second");
    assert!(!second.mentioned);
    assert_eq!(second.thread_id, None);
    server.assert_offsets_confirm(update["update_id"].as_i64().expect("an update id"));
    assert!(events.try_recv().is_err(), "nothing delivered twice");

    // A 429 is reported to the host with its retry_after.
    server.rate_limit_next("sendMessage", 30);
    let err = handle
        .send(text(to("-1001234", None, None), "later"))
        .await
        .expect_err("rate limited");
    assert!(
        err.to_string()
            .contains("rate limited: retry after 30000 ms"),
        "{err}"
    );
    // An unknown chat is Telegram's refusal, passed on.
    let err = handle
        .send(text(to("-1009999", None, None), "anyone?"))
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("chat not found"), "{err}");
    // What this example does not do, it says.
    let err = handle.typing(here).await.expect_err("unsupported");
    assert!(err.to_string().contains("typing"), "{err}");

    let status = handle.status();
    assert_eq!(status.restarts, 0);
    eprintln!(
        "figures {}: component {} bytes, peak memory {} bytes, connect {:?}, send {:?}",
        example.name,
        component(example.name).len(),
        status.peak_memory,
        connected_after,
        send_took
    );
    handle.stop().await;
}

/// An API that was not granted is refused; a token Telegram refuses is
/// reported, the instance is not restarted.
async fn refusals(example: Example) {
    let server = TelegramServer::start(TOKEN).await;
    let rt = runtime(Ceilings::default());
    // Granted another port of the same address.
    let plugin = load(&rt, &example, server.port.wrapping_add(1).max(1)).await;
    let (tx, _events) = mpsc::channel(16);
    let handle = ChannelHandle::start(&rt, &plugin, config(&server, TOKEN), tx);
    until(&handle, "refused", |s| s.last_error.is_some()).await;
    let error = handle.status().last_error.unwrap_or_default();
    assert!(
        example.denied_says.iter().all(|s| error.contains(s)),
        "{error}"
    );
    handle.stop().await;

    let plugin = load(&rt, &example, server.port).await;
    let (tx, _events) = mpsc::channel(16);
    let wrong = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsab";
    let handle = ChannelHandle::start(&rt, &plugin, config(&server, wrong), tx);
    until(&handle, "refused", |s| s.last_error.is_some()).await;
    let error = handle.status().last_error.unwrap_or_default();
    assert!(error.contains("Unauthorized"), "{error}");
    assert_eq!(handle.status().restarts, 0, "an error, not a crash");
    handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_channel_messages_in_replies_out() {
    messages_in_and_replies_out(PYTHON).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_channel_refusals() {
    refusals(PYTHON).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_channel_messages_in_replies_out() {
    messages_in_and_replies_out(JS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_channel_refusals() {
    refusals(JS).await;
}
