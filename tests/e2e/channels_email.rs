//! The email channel end to end against a real Dovecot (IMAP) and aiosmtpd
//! (SMTP): the email plugin installed in the daemon with both servers
//! granted, bound to an agent answering from talon-test-llm; a person's
//! mail delivered into the mailbox reaches the agent and the answer leaves
//! over SMTP as a reply in the same thread (Subject, In-Reply-To,
//! References), a follow-up continuing the same session; `kill -9`
//! mid-turn still answers once; a restart with nothing pending replays
//! nothing; a message that is not an email and a 10 MB one are handled
//! visibly, answered at most once, and the next one still arrives.

use std::time::Duration;

use talon_test_llm::{Reply, TestLlm};

use crate::channel_kit::{
    channel_until, configure, inbound, install_channel, sent_recorded, server_installed,
    spawn_llm_agent, wait_connected,
};
use crate::harness::Daemon;
use crate::mail::{Dovecot, Smtpd, header, mail, qp_body};

fn email_config(imap_port: u16, smtp_port: u16) -> serde_json::Value {
    serde_json::json!({
        "agent": "mailbot",
        "address": "bot@localhost",
        "imap_server": "127.0.0.1",
        "imap_port": imap_port,
        "username": "bot",
        "password": "s3cret",
        "smtp_server": "127.0.0.1",
        "smtp_port": smtp_port,
    })
}

/// Waits until the SMTP server has received `n` messages; all of them.
async fn received(smtp: &Smtpd, n: usize) -> Vec<String> {
    for _ in 0..2400 {
        let all = smtp.received();
        if all.len() >= n {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{n} replies never arrived; got {:?}", smtp.received());
}

/// The decoded bodies of `replies`, sorted (delivery order within one
/// file-time tick is not kept by the mailbox).
fn bodies(replies: &[String]) -> Vec<String> {
    let mut bodies: Vec<String> = replies
        .iter()
        .map(|r| qp_body(r).trim_end().to_string())
        .collect();
    bodies.sort();
    bodies
}

/// The reply whose body is `text`.
fn reply_saying<'a>(replies: &'a [String], text: &str) -> &'a str {
    replies
        .iter()
        .find(|r| qp_body(r).trim_end() == text)
        .unwrap_or_else(|| panic!("no reply says {text:?}: {replies:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_people_write_to_an_agent_durably() {
    if !server_installed("/usr/sbin/dovecot", "dovecot-imapd") {
        return;
    }
    let imap = Dovecot::start("bot", "s3cret").await;
    let smtp = Smtpd::start().await;
    let llm = TestLlm::start().await;
    let mut daemon = Daemon::start().await;
    install_channel(
        &daemon,
        "plugins/email",
        "email",
        serde_json::json!({ "sockets": [
            format!("127.0.0.1:{}", imap.port),
            format!("127.0.0.1:{}", smtp.port),
        ] }),
    )
    .await;
    let agent = spawn_llm_agent(&daemon, &llm, "mailbot").await;
    let shown = configure(&daemon, "email", email_config(imap.port, smtp.port)).await;
    // The secrets given (no SMTP login here), kept out of the answer.
    assert_eq!(shown["secret_keys"], serde_json::json!(["password"]));
    assert!(!shown.to_string().contains("s3cret"), "{shown}");
    wait_connected(&daemon, "email").await;

    // A mail reaches the agent; the answer is a reply in the same thread.
    llm.push(Reply::text("It is noon."));
    imap.deliver(
        "1.q1",
        &mail("q1@example.org", "Question", "", "What time is it?\r\n"),
    );
    let replies = received(&smtp, 1).await;
    let reply = &replies[0];
    assert_eq!(header(reply, "To").as_deref(), Some("alice@example.org"));
    assert_eq!(header(reply, "From").as_deref(), Some("bot@localhost"));
    assert_eq!(header(reply, "Subject").as_deref(), Some("Re: Question"));
    assert_eq!(
        header(reply, "In-Reply-To").as_deref(),
        Some("<q1@example.org>")
    );
    assert_eq!(
        header(reply, "References").as_deref(),
        Some("<q1@example.org>")
    );
    assert_eq!(qp_body(reply).trim_end(), "It is noon.");
    let request = llm.last_request().expect("the model was asked");
    assert!(
        request.body.to_string().contains("What time is it?"),
        "{}",
        request.body
    );

    // A follow-up in the thread continues the same conversation, and its
    // answer replies to it, keeping the thread's references.
    llm.push(Reply::text("Still noon."));
    imap.deliver(
        "2.q2",
        &mail(
            "q2@example.org",
            "Re: Question",
            "In-Reply-To: <q1@example.org>\r\nReferences: <q1@example.org>\r\n",
            "Are you sure?\r\n",
        ),
    );
    let replies = received(&smtp, 2).await;
    let reply = reply_saying(&replies, "Still noon.");
    assert_eq!(header(reply, "Subject").as_deref(), Some("Re: Question"));
    assert_eq!(
        header(reply, "In-Reply-To").as_deref(),
        Some("<q2@example.org>")
    );
    assert_eq!(
        header(reply, "References").as_deref(),
        Some("<q1@example.org> <q2@example.org>")
    );
    let request = llm.last_request().expect("the model was asked");
    let asked = request.body.to_string();
    assert!(
        asked.contains("What time is it?") && asked.contains("Are you sure?"),
        "the thread's session holds both: {asked}"
    );

    let receipts = sent_recorded(&daemon, &agent, 2).await;
    assert_eq!(receipts["count"], 2, "{receipts}");
    assert_eq!(receipts["receipts"][0]["recipient"], "alice@example.org");
    assert_eq!(receipts["receipts"][0]["status"], "sent");

    // kill -9 mid-turn: the stored message is answered once after restart.
    let asked = llm.request_count();
    llm.push(Reply::text("too late").with_delay(Duration::from_secs(30)));
    llm.set_default_reply("answered once");
    imap.deliver(
        "3.q3",
        &mail("q3@example.org", "Another", "", "A slow question\r\n"),
    );
    for _ in 0..2400 {
        if llm.request_count() > asked {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        llm.request_count() > asked,
        "the turn never reached the model"
    );
    daemon.kill9();
    daemon.restart();
    let replies = received(&smtp, 3).await;
    let reply = reply_saying(&replies, "answered once");
    assert_eq!(
        header(reply, "In-Reply-To").as_deref(),
        Some("<q3@example.org>")
    );
    assert_eq!(header(reply, "Subject").as_deref(), Some("Re: Another"));
    llm.push(Reply::text("sentinel reply"));
    imap.deliver(
        "4.q4",
        &mail("q4@example.org", "Sentinel", "", "sentinel\r\n"),
    );
    let replies = received(&smtp, 4).await;
    reply_saying(&replies, "sentinel reply");
    assert_eq!(
        bodies(&replies),
        [
            "It is noon.",
            "Still noon.",
            "answered once",
            "sentinel reply"
        ],
        "one answer each"
    );

    // A restart with nothing pending replays nothing.
    let status = daemon.terminate();
    assert!(status.success(), "{status:?}");
    daemon.restart();
    wait_connected(&daemon, "email").await;
    llm.push(Reply::text("after the restart"));
    imap.deliver(
        "5.q5",
        &mail("q5@example.org", "Later", "", "still there?\r\n"),
    );
    let replies = received(&smtp, 5).await;
    reply_saying(&replies, "after the restart");
    let view = channel_until(&daemon, "email", "everything answered", |c| {
        inbound(c, "answered") == 5 && inbound(c, "pending") == 0
    })
    .await;
    assert_eq!(inbound(&view, "failed"), 0, "{view}");
    assert_eq!(smtp.received().len(), 5, "a replay was sent");

    // Not an email at all, then 10 MB of text, then a plain one: the noise
    // reaches no one, the huge one is answered once from its clipped
    // beginning, and the next one still arrives.
    llm.set_default_reply("noted");
    let mut noise = vec![0u8, 0xff, 0xfe, b'\n'];
    noise.extend(std::iter::repeat_n(0x80u8, 4096));
    imap.deliver("6.noise", &noise);
    let huge_body = "0123456789abcdef\r\n".repeat(10 * 1024 * 1024 / 18);
    imap.deliver("7.huge", &mail("huge@example.org", "Huge", "", &huge_body));
    imap.deliver(
        "8.after",
        &mail("after@example.org", "After", "", "still here\r\n"),
    );
    let replies = received(&smtp, 7).await;
    assert!(
        llm.requests()
            .iter()
            .any(|r| r.body.to_string().contains("[truncated: the message has")),
        "the huge message reached the agent clipped"
    );
    let view = channel_until(&daemon, "email", "all answered", |c| {
        inbound(c, "answered") == 7 && inbound(c, "pending") == 0
    })
    .await;
    assert_eq!(view["restarts"], 0, "{view}");
    channel_until(&daemon, "email", "all seen", |_| imap.seen() == 8).await;
    assert_eq!(
        replies
            .iter()
            .filter(|r| qp_body(r).trim_end() == "noted")
            .count(),
        2
    );
    assert_eq!(daemon.get("/api/health").await.status(), 200);
    llm.push(Reply::text("the last one"));
    imap.deliver(
        "9.last",
        &mail("last@example.org", "Last", "", "one more\r\n"),
    );
    let replies = received(&smtp, 8).await;
    reply_saying(&replies, "the last one");
    assert_eq!(smtp.received().len(), 8, "nothing was answered twice");
}
