//! The email channel at the runtime's level, against a real Dovecot (IMAP)
//! and aiosmtpd (SMTP): a message delivered into the mailbox reaches the
//! host once, with its Message-ID, sender and thread, and is marked seen;
//! the reply leaves over SMTP in the same thread (Subject, In-Reply-To,
//! References) with its dots intact; a malformed message and a 10 MB one
//! are handled visibly and the next message still arrives; a wrong password
//! is a refused login; a server dropping the connection in the middle of
//! a FETCH makes the channel reconnect and deliver that message once.

mod common;

use std::sync::{Arc, Mutex};

use common::channel::{load_granted, next_message, reply_in, until};
use common::mail::{Dovecot, Smtpd, header, mail, qp_body};
use common::runtime;
use talon_runtime::Ceilings;
use talon_runtime::channel::{ChannelHandle, ChatKind, ConnectionState, SupervisorState};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

fn config(imap_port: u16, smtp_port: u16, password: &str) -> String {
    serde_json::json!({
        "address": "bot@localhost",
        "imap_server": "127.0.0.1",
        "imap_port": imap_port,
        "username": "bot",
        "password": password,
        "smtp_server": "127.0.0.1",
        "smtp_port": smtp_port,
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_in_once_marked_seen_and_the_reply_out_in_the_same_thread() {
    let imap = Dovecot::start("bot", "s3cret").await;
    let smtp = Smtpd::start().await;
    let rt = runtime(Ceilings::default());
    let plugin = load_granted(&rt, "email", &[imap.port, smtp.port]).await;
    assert_eq!(plugin.info().name, "email");
    assert_eq!(
        plugin.info().secret_keys,
        vec!["password".to_string(), "smtp_password".to_string()]
    );
    let (tx, mut events) = mpsc::channel(16);
    let handle = ChannelHandle::start(&rt, &plugin, config(imap.port, smtp.port, "s3cret"), tx);
    until(&handle, "connected", |s| {
        s.state == SupervisorState::Connected
    })
    .await;
    let health = handle.health().await.expect("health");
    assert_eq!(
        health.state,
        ConnectionState::Connected,
        "{}",
        health.detail
    );

    imap.deliver(
        "1.q1",
        &mail("q1@example.org", "Question", "", "What time is it?\r\n"),
    );
    let first = next_message(&mut events).await;
    assert_eq!(first.id.as_deref(), Some("q1@example.org"));
    assert_eq!(
        (first.chat_id.as_str(), first.chat_kind),
        ("alice@example.org", ChatKind::Direct)
    );
    assert_eq!(first.sender.id, "alice@example.org");
    assert_eq!(first.sender.display_name.as_deref(), Some("Alice Example"));
    assert_eq!(first.thread_id.as_deref(), Some("q1@example.org"));
    assert_eq!(first.text.trim_end(), "What time is it?");
    assert_eq!(first.timestamp_ms, Some(1_031_699_305_000));

    // A follow-up in the same thread is the next event: the first one is
    // not reported again, and it is marked seen once the host took it.
    imap.deliver(
        "2.q2",
        &mail(
            "q2@example.org",
            "Re: Question",
            "In-Reply-To: <q1@example.org>\r\nReferences: <q1@example.org>\r\n",
            "Hello?\r\n",
        ),
    );
    let second = next_message(&mut events).await;
    assert_eq!(second.id.as_deref(), Some("q2@example.org"));
    assert_eq!(second.thread_id.as_deref(), Some("q1@example.org"));
    assert_eq!(second.reply_to.as_deref(), Some("q1@example.org"));
    until(&handle, "both seen", |_| imap.seen() >= 1).await;

    // The reply: same thread, a subject that is not "Re: Re:", and lines
    // that start with a dot (or are one) arrive intact.
    let text = "It is noon.\n.a line starting with a dot\n.\ncaf\u{e9} = ok";
    let ids = handle
        .send(reply_in("alice@example.org", Some("q1@example.org"), text))
        .await
        .expect("sent");
    assert_eq!(ids.len(), 1);
    let received = loop {
        let all = smtp.received();
        if let Some(m) = all.into_iter().next() {
            break m;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    };
    assert_eq!(
        header(&received, "To").as_deref(),
        Some("alice@example.org")
    );
    assert_eq!(header(&received, "From").as_deref(), Some("bot@localhost"));
    assert_eq!(
        header(&received, "Subject").as_deref(),
        Some("Re: Question")
    );
    assert_eq!(
        header(&received, "In-Reply-To").as_deref(),
        Some("<q2@example.org>")
    );
    assert_eq!(
        header(&received, "References").as_deref(),
        Some("<q1@example.org> <q2@example.org>")
    );
    assert_eq!(
        header(&received, "Message-ID"),
        Some(format!("<{}>", ids[0]))
    );
    assert_eq!(qp_body(&received).trim_end(), text);

    // What the component refuses, it refuses before connecting to SMTP.
    let err = handle
        .send(reply_in("alice@example.org\r\nRCPT TO:<x@y>", None, "x"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not an email address"), "{err}");
    handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_and_a_huge_message_are_handled_and_the_next_one_arrives() {
    let imap = Dovecot::start("bot", "s3cret").await;
    let smtp = Smtpd::start().await;
    let rt = runtime(Ceilings::default());
    let plugin = load_granted(&rt, "email", &[imap.port, smtp.port]).await;
    let (tx, mut events) = mpsc::channel(16);
    let handle = ChannelHandle::start(&rt, &plugin, config(imap.port, smtp.port, "s3cret"), tx);
    until(&handle, "connected", |s| {
        s.state == SupervisorState::Connected
    })
    .await;

    // Not an email at all: no headers, binary noise.
    let mut noise = vec![0u8, 0xff, 0xfe, b'\n'];
    noise.extend(std::iter::repeat_n(0x80u8, 4096));
    imap.deliver("1.noise", &noise);
    // 10 MB of text: fetched only in part, and it says so.
    let huge_body = "0123456789abcdef\r\n".repeat(10 * 1024 * 1024 / 18);
    imap.deliver("2.huge", &mail("huge@example.org", "Huge", "", &huge_body));
    imap.deliver(
        "3.after",
        &mail("after@example.org", "After", "", "still here\r\n"),
    );
    let huge = next_message(&mut events).await;
    assert_eq!(huge.id.as_deref(), Some("huge@example.org"));
    assert!(huge.text.len() < 100 * 1024, "{} bytes", huge.text.len());
    assert!(
        huge.text.contains("[truncated: the message has"),
        "{}",
        &huge.text[huge.text.len() - 200..]
    );
    let after = next_message(&mut events).await;
    assert_eq!(
        (after.id.as_deref(), after.text.trim_end()),
        (Some("after@example.org"), "still here")
    );
    let status = handle.status();
    assert_eq!(status.restarts, 0, "{:?}", status.last_error);
    // All three, the unreadable one included, end up seen.
    until(&handle, "all seen", |_| imap.seen() == 3).await;
    handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_a_refused_login() {
    let imap = Dovecot::start("bot", "s3cret").await;
    let rt = runtime(Ceilings::default());
    let plugin = load_granted(&rt, "email", &[imap.port, 25]).await;
    let (tx, _events) = mpsc::channel(16);
    let handle = ChannelHandle::start(&rt, &plugin, config(imap.port, 25, "wrong"), tx);
    until(&handle, "refused", |s| s.last_error.is_some()).await;
    let status = handle.status();
    assert_eq!(status.state, SupervisorState::Disconnected);
    let error = status.last_error.unwrap_or_default();
    assert!(error.contains("refused the login"), "{error}");
    handle.stop().await;
}

/// An IMAP server with one message that drops the first connection in the
/// middle of sending it; it records the commands it was given.
async fn dropping_imap_server(message: Vec<u8>) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let log = Arc::new(Mutex::new(Vec::new()));
    let commands = log.clone();
    tokio::spawn(async move {
        let mut connection = 0;
        while let Ok((stream, _)) = listener.accept().await {
            connection += 1;
            let first = connection == 1;
            let message = message.clone();
            let commands = commands.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"* OK test server ready\r\n").await;
                while let Ok(Some(line)) = lines.next_line().await {
                    commands.lock().unwrap().push(line.clone());
                    let (tag, command) = line.split_once(' ').unwrap_or((&line, ""));
                    let upper = command.to_ascii_uppercase();
                    let seen = commands
                        .lock()
                        .unwrap()
                        .iter()
                        .any(|c| c.contains("STORE 1 "));
                    let answer: Vec<u8> = if upper.starts_with("SELECT") {
                        format!("* 1 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n{tag} OK selected\r\n")
                            .into_bytes()
                    } else if upper.starts_with("UID SEARCH") {
                        let found = if seen { "" } else { " 1" };
                        format!("* SEARCH{found}\r\n{tag} OK done\r\n").into_bytes()
                    } else if upper.starts_with("UID FETCH") {
                        let mut a = format!(
                            "* 1 FETCH (UID 1 RFC822.SIZE {n} BODY[]<0> {{{n}}}\r\n",
                            n = message.len()
                        )
                        .into_bytes();
                        if first {
                            // Half the message, then the connection drops.
                            a.extend_from_slice(&message[..message.len() / 2]);
                            let _ = write.write_all(&a).await;
                            return;
                        }
                        a.extend_from_slice(&message);
                        a.extend_from_slice(format!(")\r\n{tag} OK fetched\r\n").as_bytes());
                        a
                    } else if upper.starts_with("LOGOUT") {
                        format!("* BYE\r\n{tag} OK bye\r\n").into_bytes()
                    } else {
                        format!("{tag} OK done\r\n").into_bytes()
                    };
                    if write.write_all(&answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_mid_fetch_reconnects_and_delivers_the_message_once() {
    let message = mail("dropped@example.org", "Hi", "", "whole at last\r\n");
    let (port, commands) = dropping_imap_server(message).await;
    let rt = runtime(Ceilings::default());
    let plugin = load_granted(&rt, "email", &[port, 25]).await;
    let (tx, mut events) = mpsc::channel(16);
    let handle = ChannelHandle::start(&rt, &plugin, config(port, 25, "any"), tx);
    let got = next_message(&mut events).await;
    assert_eq!(
        (got.id.as_deref(), got.text.trim_end()),
        (Some("dropped@example.org"), "whole at last")
    );
    // Marked seen at the next receive, and never fetched again after.
    until(&handle, "marked seen", |_| {
        commands
            .lock()
            .unwrap()
            .iter()
            .any(|c| c.contains("UID STORE 1 +FLAGS.SILENT (\\Seen)"))
    })
    .await;
    let status = handle.status();
    assert_eq!(status.restarts, 0);
    assert!(status.last_error.is_some(), "the drop was noticed");
    let fetches = commands
        .lock()
        .unwrap()
        .iter()
        .filter(|c| c.contains("UID FETCH"))
        .count();
    assert_eq!(fetches, 2, "once cut, once whole");
    handle.stop().await;
}
