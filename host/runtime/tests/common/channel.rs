//! Driving a channel under its supervisor from a test: loading a
//! repository channel with a loopback grant, waiting for a state, reading
//! its messages, building replies.

use std::collections::BTreeMap;
use std::time::Duration;

use talon_runtime::channel::{
    ChannelEvent, ChannelHandle, ChannelPlugin, ChannelStatus, Destination, InboundMessage,
    OutboundMessage,
};
use talon_runtime::{Permissions, Runtime};
use tokio::sync::mpsc;

use super::{author_manifest, component};

/// Waits (polling the status, with a generous bound so a broken build
/// fails instead of hanging) until `done` holds.
pub async fn until(handle: &ChannelHandle, what: &str, done: impl Fn(&ChannelStatus) -> bool) {
    for _ in 0..1200 {
        if done(&handle.status()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{what}: never reached; status {:?}", handle.status());
}

/// Loads the channel of `plugins/<name>` with `127.0.0.1:<port>` granted
/// for each port.
pub async fn load_granted(rt: &Runtime, name: &str, ports: &[u16]) -> ChannelPlugin {
    let granted = Permissions {
        sockets: ports.iter().map(|p| format!("127.0.0.1:{p}")).collect(),
        ..Default::default()
    };
    rt.load_channel(
        author_manifest(&format!("plugins/{name}")),
        component(name),
        granted,
        BTreeMap::new(),
    )
    .await
    .unwrap_or_else(|e| panic!("the {name} channel loads: {e}"))
}

/// The next message event (typing and reactions are skipped).
pub async fn next_message(events: &mut mpsc::Receiver<ChannelEvent>) -> InboundMessage {
    loop {
        match events.recv().await.expect("the channel is running") {
            ChannelEvent::Message(m) => return m,
            _ => continue,
        }
    }
}

/// A reply to `chat`, in `thread` if given.
pub fn reply_in(chat: &str, thread: Option<&str>, text: &str) -> OutboundMessage {
    OutboundMessage {
        to: Destination {
            chat_id: chat.into(),
            thread_id: thread.map(str::to_string),
            reply_to: None,
        },
        text: text.into(),
        attachments: Vec::new(),
    }
}
