//! Driving a channel under its supervisor from a test: loading a
//! repository channel with a loopback grant, waiting for a state, taking the
//! next inbound message, building destinations and replies, and plugin
//! memory kept in the test's process.

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
    for _ in 0..2400 {
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

/// The next message event (other events are skipped).
pub async fn next_message(events: &mut mpsc::Receiver<ChannelEvent>) -> InboundMessage {
    let guarded = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match events.recv().await.expect("the channel is running") {
                ChannelEvent::Message(m) => return m,
                _ => continue,
            }
        }
    });
    guarded.await.expect("no message within the test's guard")
}

/// A destination in a chat, optionally in a thread and replying.
pub fn to(chat: &str, thread: Option<&str>, reply_to: Option<&str>) -> Destination {
    Destination {
        chat_id: chat.into(),
        thread_id: thread.map(str::to_string),
        reply_to: reply_to.map(str::to_string),
    }
}

/// A text message to `to`.
pub fn text(to: Destination, text: &str) -> OutboundMessage {
    OutboundMessage {
        to,
        text: text.into(),
        attachments: Vec::new(),
    }
}

/// A reply to `chat`, in `thread` if given.
pub fn reply_in(chat: &str, thread: Option<&str>, body: &str) -> OutboundMessage {
    text(to(chat, thread, None), body)
}

/// Plugin memory kept in the test's process: what a channel stores in its
/// memory scope survives its instance, as the kernel's store would keep it.
#[derive(Default)]
pub struct TestMemory(std::sync::Mutex<std::collections::BTreeMap<(String, String), String>>);

impl TestMemory {
    fn map(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<(String, String), String>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every (scope, key, value) stored.
    pub fn entries(&self) -> Vec<(String, String, String)> {
        self.map()
            .iter()
            .map(|((scope, key), value)| (scope.clone(), key.clone(), value.clone()))
            .collect()
    }
}

impl talon_runtime::MemoryBackend for TestMemory {
    fn get(&self, scope: &str, key: &str) -> Result<Option<String>, String> {
        Ok(self.map().get(&(scope.into(), key.into())).cloned())
    }

    fn set(&self, scope: &str, key: &str, value: &str) -> Result<(), String> {
        self.map().insert((scope.into(), key.into()), value.into());
        Ok(())
    }

    fn delete(&self, scope: &str, key: &str) -> Result<bool, String> {
        Ok(self.map().remove(&(scope.into(), key.into())).is_some())
    }

    fn list(&self, scope: &str, prefix: &str) -> Result<Vec<String>, String> {
        Ok(self
            .map()
            .keys()
            .filter(|(s, k)| s == scope && k.starts_with(prefix))
            .map(|(_, k)| k.clone())
            .collect())
    }
}
