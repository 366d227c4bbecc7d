//! The Telegram channel end to end, through the daemon, against a local
//! server speaking the Bot API's wire format (`talon-test-telegram`): the
//! signed plugin installed with its API granted, configured and bound to
//! an agent answering from talon-test-llm. Updates are pushed to the
//! daemon's webhook route as Telegram pushes them (with the secret token
//! the bot registered); hostile pushes are refused with nothing stored; a
//! person's message is answered in the same chat, topic and as a reply; a
//! redelivered update is answered once; `kill -9` mid-turn still answers
//! exactly once; a 429 with a long `retry_after` is delivered later, not
//! dead-lettered. Long polling is exercised once, across a `kill -9`.

use std::time::Duration;

use serde_json::{Value, json};
use talon_test_llm::{Reply, TestLlm};
use talon_test_telegram::{BOT_USERNAME, BotMessage, Said, TelegramServer};

use crate::channel_kit::{
    channel_until, configure, inbound, install_channel, sent_recorded, spawn_llm_agent,
    wait_connected,
};
use crate::harness::{Daemon, json};

const TOKEN: &str = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
const SECRET: &str = "webhook-Secret_42";
/// The forum supergroup the tests talk in, and its topic.
const GROUP: i64 = -1_001_234;
const TOPIC: i64 = 7;
/// Alice's user id, which is also her private chat's id.
const ALICE: i64 = 42;

fn in_topic(text: &str) -> Said<'_> {
    Said {
        chat_id: GROUP,
        chat_type: "supergroup",
        from_id: ALICE,
        first_name: "Alice",
        username: Some("alice"),
        text,
        thread_id: Some(TOPIC),
        reply_to: None,
    }
}

fn in_private(text: &str) -> Said<'_> {
    Said {
        chat_id: ALICE,
        chat_type: "private",
        thread_id: None,
        ..in_topic(text)
    }
}

/// Installs the Telegram plugin granted `server`'s address and spawns the
/// agent `tgbot`; its id.
async fn setup(daemon: &Daemon, server: &TelegramServer, llm: &TestLlm) -> String {
    install_channel(
        daemon,
        "plugins/telegram",
        "telegram",
        json!({ "network": [format!("127.0.0.1:{}", server.port)] }),
    )
    .await;
    spawn_llm_agent(daemon, llm, "tgbot").await
}

/// Pushes `body` to channel `name`'s webhook route, as Telegram does.
async fn push_raw(
    daemon: &Daemon,
    name: &str,
    body: Vec<u8>,
    secret: Option<&str>,
) -> reqwest::Response {
    let mut request = daemon
        .request(
            reqwest::Method::POST,
            &format!("/api/channels/{name}/webhook"),
        )
        .header("content-type", "application/json");
    if let Some(secret) = secret {
        request = request.header("X-Telegram-Bot-Api-Secret-Token", secret);
    }
    request.body(body).send().await.expect("POST webhook")
}

/// Pushes an update with the right secret; Telegram's push succeeded.
async fn push(daemon: &Daemon, update: &Value) {
    let response = push_raw(
        daemon,
        "telegram",
        serde_json::to_vec(update).expect("JSON"),
        Some(SECRET),
    )
    .await;
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    assert_eq!(status, 200, "the push was refused: {body}");
}

/// Waits for the bot's message saying `text` in `chat`.
async fn bot_says(server: &TelegramServer, chat: i64, text: &str) -> BotMessage {
    server
        .wait_for(&format!("the bot saying {text:?} in {chat}"), |s| {
            s.bot_messages(chat).into_iter().find(|m| m.text == text)
        })
        .await
}

/// The texts the bot posted in `chat`, oldest first.
fn bot_texts(server: &TelegramServer, chat: i64) -> Vec<String> {
    server
        .bot_messages(chat)
        .into_iter()
        .map(|m| m.text)
        .collect()
}

fn message_id(update: &Value) -> i64 {
    update["message"]["message_id"]
        .as_i64()
        .expect("a message id")
}

/// Waits until the model has been asked more than `asked` times.
async fn model_asked(llm: &TestLlm, asked: usize) {
    for _ in 0..2400 {
        if llm.request_count() > asked {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the turn never reached the model");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_webhook_people_talk_to_an_agent_durably() {
    let server = TelegramServer::start(TOKEN).await;
    let llm = TestLlm::start().await;
    let mut daemon = Daemon::start().await;
    let agent = setup(&daemon, &server, &llm).await;

    let url = format!("{}/api/channels/telegram/webhook", daemon.base_url());
    let shown = configure(
        &daemon,
        "telegram",
        json!({
            "agent": "tgbot",
            "token": TOKEN,
            "api_base": server.api_base(),
            "webhook_secret": SECRET,
            "webhook_url": url,
        }),
    )
    .await;
    assert_eq!(
        shown["secret_keys"],
        json!(["token", "webhook_secret"]),
        "{shown}"
    );
    assert!(!shown.to_string().contains(SECRET), "{shown}");
    wait_connected(&daemon, "telegram").await;
    // At connect the bot registered this daemon's webhook route with its secret.
    assert_eq!(server.webhook(), Some((url, Some(SECRET.to_string()))));

    // Hostile pushes: refused with a clear status, nothing stored, the
    // model never asked.
    let forged = serde_json::to_vec(&server.person_says(&in_topic("forged"))).expect("JSON");
    for (body, secret, status, says) in [
        (forged.clone(), None, 401, "Secret-Token"),
        (
            forged.clone(),
            Some("webhook-Secret_43"),
            401,
            "Secret-Token",
        ),
        (forged.clone(), Some(""), 401, "Secret-Token"),
        (
            b"{\"update_id\": 1, \"message\": ".to_vec(),
            Some(SECRET),
            400,
            "not a Telegram Update",
        ),
        (
            br#"{"update_id": "one"}"#.to_vec(),
            Some(SECRET),
            400,
            "not a Telegram Update",
        ),
        (vec![b' '; 1024 * 1024 + 1], Some(SECRET), 413, "at most"),
        (vec![b'x'; 1536 * 1024], Some(SECRET), 413, "at most"),
    ] {
        let response = push_raw(&daemon, "telegram", body, secret).await;
        let got = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        assert_eq!(got, status, "{text}");
        assert!(text.contains(says), "{status}: {text}");
    }
    // An unknown channel's webhook.
    let response = push_raw(&daemon, "nosuch", forged, Some(SECRET)).await;
    assert_eq!(response.status(), 404);
    let view = json(daemon.get("/api/channels/telegram").await).await;
    for state in ["pending", "answered", "failed", "rate_limited"] {
        assert_eq!(inbound(&view, state), 0, "{state}: {view}");
    }
    assert_eq!(llm.request_count(), 0);

    // A person asks in a forum topic: the answer is in the same chat and
    // topic, as a reply to the question.
    llm.push(Reply::text("It is time, Alice."));
    let question = server.person_says(&in_topic(&format!("@{BOT_USERNAME} what time is it?")));
    push(&daemon, &question).await;
    let answer = bot_says(&server, GROUP, "It is time, Alice.").await;
    assert_eq!(answer.thread_id, Some(TOPIC));
    assert_eq!(answer.reply_to, Some(message_id(&question)));
    let request = llm.last_request().expect("the model was asked");
    assert!(
        request.body.to_string().contains("what time is it?"),
        "{}",
        request.body
    );

    // A private message is answered privately.
    llm.push(Reply::text("Only for you."));
    let private = server.person_says(&in_private("psst"));
    push(&daemon, &private).await;
    let answer = bot_says(&server, ALICE, "Only for you.").await;
    assert_eq!(
        (answer.thread_id, answer.reply_to),
        (None, Some(message_id(&private)))
    );

    // Redelivery: an update pushed twice (Telegram repeats a push it saw
    // no answer to), and an answered one pushed again, are answered once.
    llm.set_default_reply("once");
    let twice = server.person_says(&in_private("are you there?"));
    push(&daemon, &twice).await;
    push(&daemon, &twice).await;
    push(&daemon, &private).await;
    // The first answer is in before the sentinel's reply is queued, so the
    // turn answering the first push cannot take it.
    bot_says(&server, ALICE, "once").await;
    llm.push(Reply::text("sentinel one"));
    push(&daemon, &server.person_says(&in_private("sentinel"))).await;
    bot_says(&server, ALICE, "sentinel one").await;
    assert_eq!(
        bot_texts(&server, ALICE),
        ["Only for you.", "once", "sentinel one"]
    );

    // A 429 whose retry_after is longer than the component waits out: the
    // host sends it again after that delay; it is not a dead letter.
    server.rate_limit_next("sendMessage", 6);
    llm.push(Reply::text("after a pause"));
    push(&daemon, &server.person_says(&in_private("slow down"))).await;
    bot_says(&server, ALICE, "after a pause").await;
    let tries = server.calls_of("sendMessage");
    let last = &tries[tries.len() - 2..];
    assert_eq!(
        last.iter().map(|c| c.status).collect::<Vec<_>>(),
        [429, 200],
        "{tries:#?}"
    );
    assert_eq!(last[1].params["text"], "after a pause");
    assert!(
        last[1].at.duration_since(last[0].at) >= Duration::from_secs(6),
        "sent again before retry_after: {tries:#?}"
    );
    let receipts = sent_recorded(&daemon, &agent, 5).await;
    let latest = &receipts["receipts"][0];
    assert_eq!(
        (&latest["text"], &latest["status"]),
        (&json!("after a pause"), &json!("sent")),
        "{receipts}"
    );
    // The 429 answers the streamed reply's first post (no outbox attempt:
    // the whole reply waits out the delay, then one attempt) or, when the
    // turn ended before the stream started, the outbox's first attempt.
    assert!(
        latest["attempts"] == 1 || latest["attempts"] == 2,
        "{receipts}"
    );
    let dead = json(daemon.get("/api/channels/telegram/dead-letters").await).await;
    assert_eq!(dead["total"], 0, "{dead}");

    // kill -9 mid-turn: the stored message is answered exactly once after
    // the restart, even though Telegram pushes it again.
    let asked = llm.request_count();
    llm.push(Reply::text("too late").with_delay(Duration::from_secs(30)));
    llm.set_default_reply("answered once");
    let slow = server.person_says(&in_topic("a slow question"));
    push(&daemon, &slow).await;
    model_asked(&llm, asked).await;
    daemon.kill9();
    daemon.restart();
    wait_connected(&daemon, "telegram").await;
    push(&daemon, &slow).await;
    let answer = bot_says(&server, GROUP, "answered once").await;
    assert_eq!(
        (answer.thread_id, answer.reply_to),
        (Some(TOPIC), Some(message_id(&slow)))
    );
    llm.push(Reply::text("sentinel two"));
    push(&daemon, &server.person_says(&in_topic("sentinel"))).await;
    bot_says(&server, GROUP, "sentinel two").await;
    assert_eq!(
        bot_texts(&server, GROUP),
        ["It is time, Alice.", "answered once", "sentinel two"]
    );
    let view = channel_until(&daemon, "telegram", "every message settled", |c| {
        inbound(c, "pending") == 0
    })
    .await;
    // The topic question, psst, are-you-there, sentinel, slow down, the
    // slow question, sentinel: each answered once.
    assert_eq!(inbound(&view, "answered"), 7, "{view}");
    assert_eq!(inbound(&view, "failed"), 0, "{view}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_long_polling_answers_once_across_a_kill() {
    let server = TelegramServer::start(TOKEN).await;
    let llm = TestLlm::start().await;
    let mut daemon = Daemon::start().await;
    let agent = setup(&daemon, &server, &llm).await;
    configure(
        &daemon,
        "tgpoll",
        json!({
            "plugin": "telegram",
            "agent": "tgbot",
            "token": TOKEN,
            "api_base": server.api_base(),
            "poll_timeout_s": 2,
        }),
    )
    .await;
    wait_connected(&daemon, "tgpoll").await;
    // Polling takes no pushes.
    let response = push_raw(&daemon, "tgpoll", b"{}".to_vec(), Some(SECRET)).await;
    assert_eq!(response.status(), 404);

    llm.push(Reply::text("polled answer"));
    let first = server.person_says(&in_topic("by long polling"));
    let answer = bot_says(&server, GROUP, "polled answer").await;
    assert_eq!(
        (answer.thread_id, answer.reply_to),
        (Some(TOPIC), Some(message_id(&first)))
    );

    // Once the daemon has recorded the reply as sent, kill -9: the reply
    // is not sent again, and whether or not a later poll confirmed the
    // update (its offset), a new instance handed it again is answered no
    // second time. (Killed between the platform taking the reply and that
    // record, the reply would be sent again: at least once on the wire.)
    sent_recorded(&daemon, &agent, 1).await;
    daemon.kill9();
    daemon.restart();
    wait_connected(&daemon, "tgpoll").await;
    llm.push(Reply::text("after the restart"));
    server.person_says(&in_topic("still there?"));
    bot_says(&server, GROUP, "after the restart").await;
    assert_eq!(
        bot_texts(&server, GROUP),
        ["polled answer", "after the restart"]
    );
}
