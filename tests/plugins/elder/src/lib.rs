//! A hand built against `talon:plugin@0.1.0`, for the tests of the host's
//! 0.1.0 hand adapter: its world has no `describe` (the manifest's `[hand]`
//! gives its agent role and interval) and its errors are plain strings.

#[allow(clippy::all, missing_docs)]
mod wit {
    wit_bindgen::generate!({
        path: "../../../wit/talon-plugin-0.1.0",
        world: "hand",
    });
}

use std::sync::Mutex;

use wit::exports::talon::plugin::hand_lifecycle::{Guest, Metric};
use wit::talon::plugin::{agent, log, memory};

/// The topic of the current activation; `None` before `activate`.
static TOPIC: Mutex<Option<String>> = Mutex::new(None);

struct Elder;

fn ticks() -> Result<u64, String> {
    match memory::get("ticks") {
        Ok(value) => Ok(value.and_then(|v| v.parse().ok()).unwrap_or(0)),
        Err(e) => Err(format!("memory: {e:?}")),
    }
}

impl Guest for Elder {
    fn settings_schema() -> String {
        r#"{"type":"object","properties":{"topic":{"type":"string","minLength":1}},"required":["topic"],"additionalProperties":false}"#.into()
    }

    fn activate(settings: String) -> Result<(), String> {
        let value: serde_json::Value =
            serde_json::from_str(&settings).map_err(|e| format!("settings: {e}"))?;
        let Some(topic) = value["topic"].as_str() else {
            return Err("topic: required".into());
        };
        if topic == "refuse" {
            return Err("topic: refused on purpose".into());
        }
        log::log(log::Level::Info, &format!("activated about {topic}"));
        *TOPIC.lock().unwrap() = Some(topic.to_string());
        Ok(())
    }

    fn tick() -> Result<(), String> {
        let Some(topic) = TOPIC.lock().unwrap().clone() else {
            return Err("not active: activate first".into());
        };
        if topic == "fail" {
            return Err("failing on purpose".into());
        }
        let count = ticks()? + 1;
        memory::set("ticks", &count.to_string()).map_err(|e| format!("memory: {e:?}"))?;
        let answer = agent::send(&format!("Elder tick number {count} about {topic}."))?;
        agent::notify_owner(&format!("elder tick {count}: {answer}"));
        Ok(())
    }

    fn metrics() -> Vec<Metric> {
        vec![
            Metric {
                label: "ticks".into(),
                value: ticks().unwrap_or(0).to_string(),
            },
            Metric {
                label: "topic".into(),
                value: TOPIC.lock().unwrap().clone().unwrap_or_default(),
            },
        ]
    }

    fn deactivate() {
        let _ = memory::set("deactivated", "yes");
        *TOPIC.lock().unwrap() = None;
    }
}

#[cfg(target_arch = "wasm32")]
wit::export!(Elder with_types_in wit);
