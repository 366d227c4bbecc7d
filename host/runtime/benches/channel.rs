//! Channel benchmark: prints figures, asserts nothing.
//!
//! `cargo bench -p talon-runtime --bench channel` (components from
//! `scripts/build-plugins`, ngircd installed) measures, against a real
//! ngircd on loopback:
//! - the round trip of one IRC line: a person's PRIVMSG, through ngircd,
//!   the IRC component's `receive`, the supervisor's event, `send`, ngircd
//!   again, to the person (no model: the reply is sent as soon as the
//!   event arrives). ngircd throttles a client after a burst of about ten
//!   lines, so only the first rounds of each person are timed;
//! - resident memory per idle connected channel (20 of them).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::irc::{Ngircd, Person};
use talon_runtime::channel::{
    ChannelEvent, ChannelHandle, Destination, OutboundMessage, SupervisorState,
};
use talon_runtime::{Ceilings, Permissions};
use tokio::sync::mpsc;

const PEOPLE: usize = 5;
const ROUNDS: usize = 6;
const IDLE: usize = 20;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn connected(handle: &ChannelHandle) {
    while handle.status().state != SupervisorState::Connected {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let server = Ngircd::start().await;
    let rt = common::runtime(Ceilings::default());
    let granted = Permissions {
        sockets: vec![format!("127.0.0.1:{}", server.port)],
        ..Default::default()
    };
    let plugin = rt
        .load_channel(
            common::author_manifest("plugins/irc"),
            common::component("irc"),
            granted,
            BTreeMap::new(),
        )
        .await
        .expect("the IRC channel loads");
    let config = |nick: &str| {
        serde_json::json!({"server": "127.0.0.1", "port": server.port, "nick": nick, "channels": ["#bench"]})
            .to_string()
    };

    let (tx, mut events) = mpsc::channel(64);
    let bot = ChannelHandle::start(&rt, &plugin, config("benchbot"), tx);
    connected(&bot).await;
    let mut rounds = Vec::new();
    for p in 0..PEOPLE {
        let mut person = Person::join(server.port, &format!("person{p}"), "#bench").await;
        for r in 0..ROUNDS {
            let started = Instant::now();
            person.say("#bench", &format!("ping {r}")).await;
            let chat = loop {
                if let Some(ChannelEvent::Message(m)) = events.recv().await {
                    break m.chat_id;
                }
            };
            bot.send(OutboundMessage {
                to: Destination {
                    chat_id: chat,
                    thread_id: None,
                    reply_to: None,
                },
                text: format!("pong {r}"),
                attachments: Vec::new(),
            })
            .await
            .expect("sent");
            person.next_privmsg().await;
            rounds.push(started.elapsed());
        }
    }
    rounds.sort();
    let at = |p: f64| rounds[((rounds.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "IRC round trip (person -> ngircd -> channel -> send -> ngircd -> person), {} rounds: p50 {:.2} ms, p90 {:.2} ms, max {:.2} ms",
        rounds.len(),
        at(0.5).as_secs_f64() * 1e3,
        at(0.9).as_secs_f64() * 1e3,
        at(1.0).as_secs_f64() * 1e3,
    );

    // Idle connected channels: settle, then measure.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib();
    let mut idle = Vec::new();
    for i in 0..IDLE {
        let (tx, rx) = mpsc::channel(16);
        let handle = ChannelHandle::start(&rt, &plugin, config(&format!("idle{i}")), tx);
        idle.push((handle, rx));
    }
    for (handle, _) in &idle {
        connected(handle).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib();
    let peak = idle
        .iter()
        .map(|(h, _)| h.status().peak_memory)
        .max()
        .unwrap_or(0);
    println!(
        "{IDLE} idle connected IRC channels: RSS +{} KiB, {:.0} KiB each; peak linear memory of one instance {} KiB",
        after.saturating_sub(before),
        after.saturating_sub(before) as f64 / IDLE as f64,
        peak / 1024,
    );
    for (handle, _) in idle {
        handle.stop().await;
    }
    bot.stop().await;
}
