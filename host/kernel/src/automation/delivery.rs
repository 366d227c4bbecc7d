//! Where the answer of a cron job or a trigger goes, besides its run record:
//! a chat of a configured channel, through the channels' durable outbox
//! (the same retries, dead letters and `/api/agents/{id}/deliveries` as
//! replies). LibreFang's `CronDelivery` shape, tagged by `kind`.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::KernelError;
use crate::channels::Channels;

/// Longest chat id a delivery may name, in bytes.
pub const MAX_CHAT_BYTES: usize = 512;

/// A delivery target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Delivery {
    /// Nowhere: the answer is kept in the run record only (the default).
    None,
    /// A chat of a configured channel.
    Channel {
        /// The configured channel's name (`irc`, `telegram-work`).
        channel: String,
        /// The chat: an IRC `#channel` or nick, a Telegram chat id, a
        /// Matrix room id, an email address (`chat_id` is accepted too).
        #[serde(alias = "chat_id")]
        to: String,
        /// The thread in that chat, where the platform has threads.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        thread_id: Option<String>,
    },
}

impl Delivery {
    /// `None` for [`Delivery::None`], so "no delivery" is stored one way.
    pub fn normalized(self) -> Option<Self> {
        match self {
            Delivery::None => None,
            other => Some(other),
        }
    }

    /// Refuses a target naming no configured channel, or an empty or
    /// oversized chat, before anything is stored.
    pub fn check(&self, channels: &Channels) -> Result<(), KernelError> {
        let Delivery::Channel {
            channel,
            to,
            thread_id,
        } = self
        else {
            return Ok(());
        };
        if channels.config(channel).is_err() {
            return Err(KernelError::Invalid(format!(
                "delivery: no channel named `{channel}` is configured"
            )));
        }
        if to.trim().is_empty() || to.len() > MAX_CHAT_BYTES {
            return Err(KernelError::Invalid(format!(
                "delivery: `to` (the chat) is 1-{MAX_CHAT_BYTES} bytes"
            )));
        }
        if thread_id
            .as_ref()
            .is_some_and(|t| t.is_empty() || t.len() > MAX_CHAT_BYTES)
        {
            return Err(KernelError::Invalid(format!(
                "delivery: `thread_id` is 1-{MAX_CHAT_BYTES} bytes"
            )));
        }
        Ok(())
    }

    /// Queues `text`, the answer of `agent`, in the channel's outbox;
    /// `origin` says what produced it (`cron:<job id>`).
    pub async fn send(
        &self,
        channels: &Channels,
        agent: Uuid,
        text: &str,
        origin: &str,
    ) -> Result<(), KernelError> {
        let Delivery::Channel {
            channel,
            to,
            thread_id,
        } = self
        else {
            return Ok(());
        };
        if text.trim().is_empty() {
            return Ok(());
        }
        // The outbox takes at most a delivery's limit: a longer answer is cut.
        let text = super::cron::truncate(text.to_string(), crate::channels::MAX_TEXT_BYTES);
        channels
            .deliver(channel, Some(agent), to, thread_id.clone(), &text, origin)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn librefangs_shape_is_read_and_strangers_are_refused() {
        let d: Delivery =
            serde_json::from_str(r##"{"kind": "channel", "channel": "irc", "to": "#ops"}"##)
                .unwrap();
        assert_eq!(
            d,
            Delivery::Channel {
                channel: "irc".into(),
                to: "#ops".into(),
                thread_id: None
            }
        );
        let d: Delivery =
            serde_json::from_str(r##"{"kind": "channel", "channel": "irc", "chat_id": "#ops"}"##)
                .unwrap();
        assert!(matches!(d, Delivery::Channel { ref to, .. } if to == "#ops"));
        assert_eq!(
            serde_json::from_str::<Delivery>(r#"{"kind": "none"}"#).unwrap(),
            Delivery::None
        );
        for bad in [
            r##"{"kind": "channel", "channel": "irc", "to": "#ops", "bogus": 1}"##,
            r#"{"kind": "webhook", "url": "http://example.org"}"#,
            r#"{"kind": "channel", "to": "x"}"#,
            r#"{"channel": "irc", "to": "x"}"#,
        ] {
            assert!(serde_json::from_str::<Delivery>(bad).is_err(), "{bad}");
        }
    }
}
