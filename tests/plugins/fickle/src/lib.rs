//! A hand that counts its ticks, or misbehaves, for the supervisor's tests.

#[allow(clippy::all, missing_docs)]
mod wit {
    talon_sdk::hand_world!();
}

use std::sync::Mutex;

use wit::exports::talon::plugin::hand_lifecycle::{Guest, HandError, HandInfo, Metric};
use wit::talon::plugin::{agent, memory};

static MODE: Mutex<Option<String>> = Mutex::new(None);
static HOARD: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

struct Fickle;

fn ticks() -> Result<u64, HandError> {
    match memory::get("ticks") {
        Ok(value) => Ok(value.and_then(|v| v.parse().ok()).unwrap_or(0)),
        Err(e) => Err(HandError::Failed(format!("memory: {e:?}"))),
    }
}

impl Guest for Fickle {
    fn describe() -> HandInfo {
        HandInfo {
            name: "fickle".into(),
            display_name: "Fickle".into(),
            settings_schema: r#"{"type":"object","properties":{"mode":{"type":"string","enum":["ok","trap","hang","leak","refuse"]}},"required":["mode"],"additionalProperties":false}"#.into(),
            agent_role: "You answer questions about tick counts in one short sentence.".into(),
            tick_interval_ms: 1000,
        }
    }

    fn activate(settings: String) -> Result<(), HandError> {
        let value: talon_sdk::Value = talon_sdk::serde_json::from_str(&settings)
            .map_err(|e| HandError::InvalidSettings(e.to_string()))?;
        let Some(mode) = value["mode"].as_str() else {
            return Err(HandError::InvalidSettings("mode: required".into()));
        };
        if mode == "refuse" {
            // Inconsistent settings the schema cannot express.
            return Err(HandError::InvalidSettings(
                "mode: refused on purpose".into(),
            ));
        }
        *MODE.lock().unwrap() = Some(mode.to_string());
        Ok(())
    }

    fn tick() -> Result<(), HandError> {
        let Some(mode) = MODE.lock().unwrap().clone() else {
            return Err(HandError::NotActive("activate first".into()));
        };
        match mode.as_str() {
            "trap" => panic!("fickle trapped on purpose"),
            "hang" => loop {
                std::hint::spin_loop();
            },
            "leak" => HOARD.lock().unwrap().push(vec![1u8; 1 << 20]),
            _ => {}
        }
        let count = ticks()? + 1;
        memory::set("ticks", &count.to_string())
            .map_err(|e| HandError::Failed(format!("memory: {e:?}")))?;
        let answer =
            agent::send(&format!("Tick number {count} happened.")).map_err(HandError::Failed)?;
        agent::notify_owner(&format!("tick {count}: {answer}"));
        Ok(())
    }

    fn metrics() -> Vec<Metric> {
        vec![Metric {
            label: "ticks".into(),
            value: ticks().unwrap_or(0).to_string(),
        }]
    }

    fn deactivate() {
        *MODE.lock().unwrap() = None;
    }
}

#[cfg(target_arch = "wasm32")]
wit::export!(Fickle with_types_in wit);
