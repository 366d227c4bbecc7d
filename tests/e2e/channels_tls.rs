//! The IRC channel over TLS through the daemon: `[plugins] tls_ca_file`
//! names the CA that signed ngircd's certificate, the channel configured
//! with `tls = true` connects and its agent answers a person over TLS; a
//! server whose certificate names another host is refused with the reason
//! in the channel's `last_error`, never reached in plain text.

use talon_test_llm::{Reply, TestLlm};

use crate::channel_kit::{
    channel_until, configure, install_channel, spawn_llm_agent, wait_connected,
};
use crate::harness::Daemon;
use crate::ngircd::{Ngircd, Person};
use crate::test_ca::TestCa;

fn tls_config(name: &str, port: u16) -> serde_json::Value {
    serde_json::json!({
        "agent": "ircbot",
        "plugin": "irc",
        "server": "127.0.0.1",
        "port": port,
        "nick": name,
        "channels": ["#talon"],
        "tls": true,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irc_over_tls_with_an_operator_ca() {
    let ca = TestCa::new();
    let good = ca.server("irc", "IP:127.0.0.1");
    let server = Ngircd::start_tls(good.cert, good.key).await;
    let misnamed = ca.server("other", "DNS:irc.example.org");
    let other = Ngircd::start_tls(misnamed.cert, misnamed.key).await;
    let (tls_port, other_port) = (
        server.tls_port.expect("TLS port"),
        other.tls_port.expect("TLS port"),
    );
    let ca_file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(ca_file.path(), ca.pem()).expect("write CA");

    let llm = TestLlm::start().await;
    let daemon = Daemon::start_with_config(&format!(
        "[plugins]\ntls_ca_file = {:?}\n",
        ca_file.path().display().to_string()
    ))
    .await;
    install_channel(
        &daemon,
        "plugins/irc",
        "irc",
        serde_json::json!({ "sockets": [
            format!("127.0.0.1:{tls_port}"),
            format!("127.0.0.1:{other_port}"),
        ] }),
    )
    .await;
    spawn_llm_agent(&daemon, &llm, "ircbot").await;

    configure(&daemon, "irc", tls_config("talonbot", tls_port)).await;
    wait_connected(&daemon, "irc").await;
    let mut alice = Person::join(server.port, "alice", "#talon").await;
    llm.push(Reply::text("Hello alice, over TLS."));
    alice.say("#talon", "hello talonbot").await;
    let said = alice.next_privmsg().await;
    assert_eq!(
        (said.from.as_str(), said.text.as_str()),
        ("talonbot", "Hello alice, over TLS.")
    );

    configure(&daemon, "irc-other", tls_config("otherbot", other_port)).await;
    let view = channel_until(&daemon, "irc-other", "refused", |c| {
        c["last_error"].is_string()
    })
    .await;
    let error = view["last_error"].as_str().unwrap_or_default();
    assert_eq!(view["connected"], false, "{view}");
    assert!(
        error.contains("TLS") && error.contains("not valid for name"),
        "{error}"
    );
}
