//! The Telegram channel at the runtime's level, against a local server
//! that speaks the Bot API's wire format (`talon-test-telegram`): updates
//! pushed to the webhook become events, replies land in the right chat and
//! topic, streamed replies are edits, typing and reactions reach the
//! server; a wrong secret, a malformed or an oversized update is refused;
//! long polling delivers without repeats; a 429 is retried after its
//! `retry_after`.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::channel::{next_message, text, to, until};
use common::{author_manifest, component, runtime};
use serde_json::{Value, json};
use talon_runtime::channel::{
    ChannelHandle, ChannelPlugin, ChatKind, SupervisorState, WebhookRequest,
};
use talon_runtime::{Ceilings, Permissions, Runtime};
use talon_test_telegram::{BOT_USERNAME, Said, TelegramServer};
use tokio::sync::mpsc;

const TOKEN: &str = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
const SECRET: &str = "webhook-Secret_42";

async fn telegram(rt: &Runtime, port: u16) -> ChannelPlugin {
    let granted = Permissions {
        network: vec![format!("127.0.0.1:{port}")],
        ..Default::default()
    };
    rt.load_channel(
        author_manifest("plugins/telegram"),
        component("telegram"),
        granted,
        BTreeMap::new(),
    )
    .await
    .expect("the Telegram channel loads")
}

fn webhook_config(server: &TelegramServer) -> String {
    json!({
        "token": TOKEN,
        "api_base": server.api_base(),
        "webhook_secret": SECRET,
        "webhook_url": "https://talon.example/api/channels/telegram/webhook",
    })
    .to_string()
}

fn polling_config(server: &TelegramServer) -> String {
    json!({ "token": TOKEN, "api_base": server.api_base() }).to_string()
}

/// A push as Telegram sends it.
fn push(body: Vec<u8>, secret: Option<&str>) -> WebhookRequest {
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    if let Some(secret) = secret {
        headers.push((
            "X-Telegram-Bot-Api-Secret-Token".to_string(),
            secret.to_string(),
        ));
    }
    WebhookRequest {
        method: "POST".into(),
        path: "/".into(),
        headers,
        body,
    }
}

fn update_push(update: &Value, secret: Option<&str>) -> WebhookRequest {
    push(serde_json::to_vec(update).expect("JSON"), secret)
}

fn alice_in_topic(text: &str) -> Said<'_> {
    Said {
        chat_id: -1_001_234,
        chat_type: "supergroup",
        from_id: 42,
        first_name: "Alice",
        username: Some("alice"),
        text,
        thread_id: Some(7),
        reply_to: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_updates_in_replies_edits_typing_and_reactions_out() {
    let server = TelegramServer::start(TOKEN).await;
    let rt = runtime(Ceilings::default());
    let plugin = telegram(&rt, server.port).await;
    assert_eq!(plugin.info().name, "telegram");
    assert_eq!(
        plugin.info().secret_keys,
        vec!["token".to_string(), "webhook_secret".to_string()]
    );

    let (tx, _events) = mpsc::channel(16);
    let handle = ChannelHandle::start(&rt, &plugin, webhook_config(&server), tx);
    until(&handle, "connected", |s| {
        s.state == SupervisorState::Connected
    })
    .await;
    // The webhook was registered with its secret.
    assert_eq!(
        server.webhook(),
        Some((
            "https://talon.example/api/channels/telegram/webhook".to_string(),
            Some(SECRET.to_string())
        ))
    );

    // A person writes in a forum topic, naming the bot.
    let update = server.person_says(&alice_in_topic(&format!(
        "@{BOT_USERNAME} what time is it?"
    )));
    let answer = handle
        .webhook(update_push(&update, Some(SECRET)))
        .await
        .expect("handled");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.events.len(), 1);
    let talon_runtime::channel::ChannelEvent::Message(message) = &answer.events[0] else {
        panic!("not a message: {:?}", answer.events);
    };
    let asked = update["message"]["message_id"].as_i64().unwrap();
    assert_eq!(message.id, Some(format!("-1001234:{asked}")));
    assert_eq!(message.chat_id, "-1001234");
    assert_eq!(message.chat_kind, ChatKind::Group);
    assert_eq!(message.thread_id.as_deref(), Some("7"));
    assert_eq!(message.sender.id, "42");
    assert_eq!(message.sender.display_name.as_deref(), Some("Alice"));
    assert!(message.mentioned);
    assert_eq!(message.text, format!("@{BOT_USERNAME} what time is it?"));

    // The reply goes to the same chat and topic, as a reply.
    let here = to("-1001234", Some("7"), message.id.as_deref());
    let ids = handle
        .send(text(here.clone(), "It is time."))
        .await
        .expect("sent");
    let posted = server.bot_messages(-1_001_234);
    assert_eq!(posted.len(), 1);
    assert_eq!(ids, vec![format!("-1001234:{}", posted[0].message_id)]);
    assert_eq!(posted[0].text, "It is time.");
    assert_eq!(posted[0].thread_id, Some(7));
    assert_eq!(posted[0].reply_to, Some(asked));

    // Typing, in the topic.
    handle.typing(here.clone()).await.expect("typing");
    let action = server
        .calls_of("sendChatAction")
        .pop()
        .expect("a chat action");
    assert_eq!(action.status, 200);
    assert_eq!(action.params["action"], "typing");
    assert_eq!(action.params["message_thread_id"], 7);

    // A reaction on the person's message, by the id the event carried.
    handle
        .react(
            "-1001234".into(),
            message.id.clone().unwrap_or_default(),
            "👍".into(),
        )
        .await
        .expect("reacted");
    assert_eq!(
        server.reactions(),
        vec![(-1_001_234, asked, "👍".to_string())]
    );

    // A streamed reply: posted with its first text, then edited to the end.
    let stream = handle.stream_start(here.clone()).await.expect("started");
    handle
        .stream_delta(stream.clone(), "Thinking".into())
        .await
        .expect("delta");
    handle
        .stream_delta(stream.clone(), "... done.".into())
        .await
        .expect("delta");
    let streamed = handle.stream_end(stream).await.expect("ended");
    let posted = server.bot_messages(-1_001_234);
    let last = posted.last().expect("the streamed message");
    assert_eq!(streamed, format!("-1001234:{}", last.message_id));
    assert_eq!(last.text, "Thinking... done.");
    assert_eq!(last.edits, 1, "posted once, edited once to its final text");
    assert_eq!(posted.len(), 2, "one message per reply, not one per delta");

    // A long reply is split into messages Telegram accepts.
    let long = "word ".repeat(1000);
    let ids = handle
        .send(text(to("-1001234", Some("7"), None), &long))
        .await
        .expect("sent");
    assert_eq!(ids.len(), 2);
    let posted = server.bot_messages(-1_001_234);
    let parts: Vec<&str> = posted[2..].iter().map(|m| m.text.as_str()).collect();
    assert!(parts.iter().all(|p| p.encode_utf16().count() <= 4096));
    assert_eq!(parts.join(" ").trim_end(), long.trim_end());

    // A direct chat.
    let update = server.person_says(&Said {
        chat_id: 42,
        chat_type: "private",
        from_id: 42,
        first_name: "Alice",
        username: Some("alice"),
        text: "psst",
        thread_id: None,
        reply_to: None,
    });
    let answer = handle
        .webhook(update_push(&update, Some(SECRET)))
        .await
        .expect("handled");
    let talon_runtime::channel::ChannelEvent::Message(direct) = &answer.events[0] else {
        panic!("not a message");
    };
    assert_eq!(
        (direct.chat_id.as_str(), direct.chat_kind),
        ("42", ChatKind::Direct)
    );
    assert!(direct.mentioned);

    // Hostile pushes: no secret, a wrong one, a malformed and an oversized
    // update, another method. Each is refused with a clear status and
    // carries no event.
    let update = server.person_says(&alice_in_topic("forged"));
    for (request, status, says) in [
        (update_push(&update, None), 401, "Secret-Token"),
        (
            update_push(&update, Some("webhook-Secret_43")),
            401,
            "Secret-Token",
        ),
        (
            update_push(&update, Some(&SECRET[..SECRET.len() - 1])),
            401,
            "Secret-Token",
        ),
        (
            push(b"{\"update_id\": 1, \"message\": ".to_vec(), Some(SECRET)),
            400,
            "not a Telegram Update",
        ),
        (
            push(br#"{"update_id": "one"}"#.to_vec(), Some(SECRET)),
            400,
            "not a Telegram Update",
        ),
        (
            push(vec![b' '; 1024 * 1024 + 1], Some(SECRET)),
            413,
            "at most",
        ),
        (
            WebhookRequest {
                method: "GET".into(),
                ..update_push(&update, Some(SECRET))
            },
            405,
            "POST",
        ),
    ] {
        let answer = handle.webhook(request).await.expect("answered");
        let body = String::from_utf8_lossy(&answer.body).into_owned();
        assert_eq!(answer.status, status, "{body}");
        assert!(body.contains(says), "{body}");
        assert!(answer.events.is_empty());
    }

    // A bad destination is refused by the component, not sent.
    let before = server.calls_of("sendMessage").len();
    let err = handle
        .send(text(to("#general", None, None), "x"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is a number"), "{err}");
    assert_eq!(server.calls_of("sendMessage").len(), before);
    // An unknown chat is Telegram's refusal, passed on.
    let err = handle
        .send(text(to("999", None, None), "x"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("chat not found"), "{err}");

    assert_eq!(handle.status().restarts, 0);
    handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polling_delivers_once_and_a_429_is_retried_after_retry_after() {
    let server = TelegramServer::start(TOKEN).await;
    let rt = runtime(Ceilings::default());
    let plugin = telegram(&rt, server.port).await;
    let (tx, mut events) = mpsc::channel(16);
    let handle = ChannelHandle::start(&rt, &plugin, polling_config(&server), tx);
    until(&handle, "connected", |s| {
        s.state == SupervisorState::Connected
    })
    .await;

    let first_update = server.person_says(&alice_in_topic("first"));
    let first = next_message(&mut events).await;
    assert_eq!(first.text, "first");
    // One long poll answered it: the channel does not poll per receive.
    assert_eq!(server.calls_of("getUpdates").len(), 1);
    server.person_says(&alice_in_topic("second"));
    let second = next_message(&mut events).await;
    // Confirmed updates are not delivered again.
    assert_eq!(second.text, "second");
    server.assert_offsets_confirm(first_update["update_id"].as_i64().expect("an update id"));

    // A short 429: waited out, then sent once.
    server.rate_limit_next("sendMessage", 1);
    let here = to("-1001234", Some("7"), second.id.as_deref());
    handle
        .send(text(here.clone(), "after a pause"))
        .await
        .expect("sent after the retry");
    let tries = server.calls_of("sendMessage");
    assert_eq!(
        tries.iter().map(|c| c.status).collect::<Vec<_>>(),
        vec![429, 200]
    );
    assert!(
        tries[1].at.duration_since(tries[0].at) >= Duration::from_secs(1),
        "retried before retry_after"
    );
    assert_eq!(server.bot_messages(-1_001_234).len(), 1);

    // A long one is reported to the host, which decides when to retry.
    server.rate_limit_next("sendMessage", 30);
    let err = handle.send(text(here, "later")).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("rate limited: retry after 30000 ms"),
        "{err}"
    );
    assert_eq!(server.bot_messages(-1_001_234).len(), 1);

    // A polling channel has no webhook.
    let answer = handle
        .webhook(push(b"{}".to_vec(), Some(SECRET)))
        .await
        .expect("answered");
    assert_eq!(answer.status, 404);
    handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_that_was_not_granted_is_refused_and_a_bad_token_is_invalid() {
    let server = TelegramServer::start(TOKEN).await;
    let rt = runtime(Ceilings::default());
    // Granted another port of the same address.
    let plugin = telegram(&rt, server.port.wrapping_add(1).max(1)).await;
    let (tx, _events) = mpsc::channel(16);
    let handle = ChannelHandle::start(&rt, &plugin, polling_config(&server), tx);
    until(&handle, "refused", |s| s.last_error.is_some()).await;
    let error = handle.status().last_error.unwrap_or_default();
    assert!(
        error.contains("permission denied") && error.contains("grant"),
        "{error}"
    );
    handle.stop().await;

    // A token Telegram refuses, and one that is not a token at all.
    let plugin = telegram(&rt, server.port).await;
    for (token, says) in [
        (
            "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsab",
            "Unauthorized",
        ),
        ("123/../getMe", "token"),
    ] {
        let (tx, _events) = mpsc::channel(16);
        let config = json!({ "token": token, "api_base": server.api_base() }).to_string();
        let handle = ChannelHandle::start(&rt, &plugin, config, tx);
        until(&handle, "refused", |s| s.last_error.is_some()).await;
        let error = handle.status().last_error.unwrap_or_default();
        assert!(error.contains(says), "{error}");
        assert_eq!(handle.status().restarts, 0, "an error, not a crash");
        handle.stop().await;
    }
}
