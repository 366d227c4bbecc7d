//! TLS for socket channels (`wasi:tls`, the handshake on the host): the IRC
//! component over implicit TLS to a real ngircd whose certificate a test CA
//! signed, and every way the handshake must refuse: a CA the runtime does
//! not trust, a certificate for another name, a plain-text port, a server
//! that never answers the handshake, and CA PEM that is not a certificate.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::irc::{Ngircd, Person};
use common::tls::TestCa;
use common::{author_manifest, component, runtime};
use talon_runtime::channel::{
    ChannelEvent, ChannelHandle, ChannelPlugin, ChannelStatus, ConnectionState, Destination,
    OutboundMessage, SupervisorState,
};
use talon_runtime::tls::TlsRootsError;
use talon_runtime::{Ceilings, Permissions, Runtime};
use tokio::sync::mpsc;

/// Waits (polling the status, with a generous bound so a broken build
/// fails instead of hanging) until `done` holds.
async fn until(handle: &ChannelHandle, what: &str, done: impl Fn(&ChannelStatus) -> bool) {
    for _ in 0..2400 {
        if done(&handle.status()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{what}: never reached; status {:?}", handle.status());
}

async fn start_tls(ca: &TestCa, name: &str, san: &str) -> Ngircd {
    let cert = ca.server(name, san);
    Ngircd::start_tls(cert.cert, cert.key).await
}

async fn irc(rt: &Runtime, port: u16) -> ChannelPlugin {
    let granted = Permissions {
        sockets: vec![format!("127.0.0.1:{port}")],
        ..Default::default()
    };
    rt.load_channel(
        author_manifest("plugins/irc"),
        component("irc"),
        granted,
        BTreeMap::new(),
    )
    .await
    .expect("the IRC channel loads")
}

fn tls_config(port: u16) -> String {
    serde_json::json!({
        "server": "127.0.0.1",
        "port": port,
        "nick": "talonbot",
        "channels": ["#talon"],
        "tls": true,
    })
    .to_string()
}

/// Starts the channel on `port` with TLS and returns its last error once
/// the connection has been refused.
async fn refused(rt: &Runtime, port: u16) -> String {
    let plugin = irc(rt, port).await;
    let (tx, _events) = mpsc::channel(16);
    let handle = ChannelHandle::start(rt, &plugin, tls_config(port), tx);
    until(&handle, "refused", |s| s.last_error.is_some()).await;
    let status = handle.status();
    assert_ne!(status.state, SupervisorState::Connected, "{status:?}");
    assert!(status.connected_since_ms.is_none(), "{status:?}");
    handle.stop().await;
    let error = status.last_error.unwrap_or_default();
    // One line: no host backtrace in what the operator reads.
    assert!(!error.contains('\n'), "{error}");
    error
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irc_over_tls_to_a_server_signed_by_a_trusted_ca() {
    let ca = TestCa::new();
    let server = start_tls(&ca, "irc", "IP:127.0.0.1").await;
    let tls_port = server.tls_port.expect("TLS port");
    let rt = runtime(Ceilings::default());
    rt.trust_tls_roots(&ca.pem())
        .expect("the test CA is usable");
    let plugin = irc(&rt, tls_port).await;
    let (tx, mut events) = mpsc::channel(64);
    let handle = ChannelHandle::start(&rt, &plugin, tls_config(tls_port), tx);
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

    // The bot joined over TLS: a person on the plain port sees it and talks.
    let mut alice = Person::join(server.port, "alice", "#talon").await;
    alice.say("#talon", "talonbot: are you there?").await;
    let message = loop {
        match events.recv().await.expect("the channel is running") {
            ChannelEvent::Message(m) => break m,
            _ => continue,
        }
    };
    assert_eq!(message.text, "talonbot: are you there?");
    assert_eq!(message.sender.id, "alice");

    handle
        .send(OutboundMessage {
            to: Destination {
                chat_id: "#talon".into(),
                thread_id: None,
                reply_to: None,
            },
            text: "Over TLS.".into(),
            attachments: Vec::new(),
        })
        .await
        .expect("sent over TLS");
    assert_eq!(alice.next_privmsg().await.text, "Over TLS.");
    handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_or_misnamed_certificate_or_a_plain_port_is_refused() {
    let ca = TestCa::new();
    let server = start_tls(&ca, "irc", "IP:127.0.0.1").await;
    let tls_port = server.tls_port.expect("TLS port");

    // The runtime trusts public roots only: the test CA is unknown.
    let rt = runtime(Ceilings::default());
    let error = refused(&rt, tls_port).await;
    assert!(
        error.contains("TLS") && error.contains("UnknownIssuer"),
        "{error}"
    );

    // Trusted, but the certificate names another server.
    let misnamed = start_tls(&ca, "other", "DNS:irc.example.org").await;
    rt.trust_tls_roots(&ca.pem())
        .expect("the test CA is usable");
    let error = refused(&rt, misnamed.tls_port.expect("TLS port")).await;
    assert!(
        error.contains("TLS") && error.contains("not valid for name"),
        "{error}"
    );

    // A plain-text port: the handshake fails; nothing falls back to plain
    // text (the bot never registers there).
    let error = refused(&rt, server.port).await;
    assert!(error.contains("TLS"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stalls_the_handshake_is_bounded() {
    // Accepts and never answers the ClientHello.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            open.push(stream);
        }
    });
    let rt = runtime(Ceilings::default());
    let error = refused(&rt, port).await;
    assert!(
        error.contains("no handshake") || error.contains("timed out"),
        "{error}"
    );
    held.abort();
}

#[test]
fn ca_pem_that_is_not_a_certificate_is_refused() {
    let rt = runtime(Ceilings::default());
    let err = rt.trust_tls_roots(b"not PEM at all").unwrap_err();
    assert!(matches!(err, TlsRootsError::Pem(_)), "{err}");
    let err = rt
        .trust_tls_roots(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
        .unwrap_err();
    assert!(
        matches!(err, TlsRootsError::Pem(_) | TlsRootsError::Anchor(_)),
        "{err}"
    );
    // Public roots alone are always usable.
    rt.trust_tls_roots(b"").expect("public roots only");
}
