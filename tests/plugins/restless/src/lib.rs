//! A misbehaving channel for the supervisor's tests.

#[allow(clippy::all, missing_docs)]
mod wit {
    talon_sdk::channel_world!();
}

use std::sync::Mutex;

use wit::exports::talon::plugin::channel_adapter::Guest;
use wit::talon::plugin::channel_types::*;

static MODE: Mutex<String> = Mutex::new(String::new());
static HOARD: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

struct Restless;

fn unsupported<T>() -> Result<T, ChannelError> {
    Err(ChannelError::Unsupported("restless does nothing".into()))
}

impl Guest for Restless {
    fn describe() -> ChannelInfo {
        ChannelInfo {
            name: "restless".into(),
            display_name: "Restless".into(),
            config_schema: r#"{"type":"object"}"#.into(),
            secret_keys: Vec::new(),
            capabilities: Capabilities::empty(),
            max_message_bytes: 0,
        }
    }

    fn connect(config: String) -> Result<(), ChannelError> {
        let value: talon_sdk::Value = talon_sdk::serde_json::from_str(&config)
            .map_err(|e| ChannelError::Invalid(e.to_string()))?;
        let mode = value["mode"].as_str().unwrap_or("ok").to_string();
        *MODE.lock().unwrap() = mode;
        Ok(())
    }

    fn receive(_max_wait_ms: u32) -> Result<Vec<ChannelEvent>, ChannelError> {
        let mode = MODE.lock().unwrap().clone();
        match mode.as_str() {
            "trap" => panic!("restless trapped on purpose"),
            "hang" => loop {
                std::hint::spin_loop();
            },
            "leak" => {
                HOARD.lock().unwrap().push(vec![1u8; 1 << 20]);
                Ok(Vec::new())
            }
            _ => Ok(Vec::new()),
        }
    }

    fn send(message: OutboundMessage) -> Result<Vec<String>, ChannelError> {
        Ok(vec![format!("echo:{}", message.text)])
    }

    fn typing(_to: Destination) -> Result<(), ChannelError> {
        unsupported()
    }

    fn react(_c: String, _m: String, _r: String) -> Result<(), ChannelError> {
        unsupported()
    }

    fn stream_start(_to: Destination) -> Result<String, ChannelError> {
        unsupported()
    }

    fn stream_delta(_s: String, _t: String) -> Result<(), ChannelError> {
        unsupported()
    }

    fn stream_end(_s: String) -> Result<String, ChannelError> {
        unsupported()
    }

    fn handle_webhook(_r: WebhookRequest) -> Result<WebhookResponse, ChannelError> {
        unsupported()
    }

    fn health() -> ChannelHealth {
        ChannelHealth {
            state: ConnectionState::Connected,
            detail: "restless".into(),
        }
    }

    fn disconnect() {}
}

#[cfg(target_arch = "wasm32")]
wit::export!(Restless with_types_in wit);
