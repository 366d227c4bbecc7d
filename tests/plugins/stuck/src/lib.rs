//! A skill whose entries other than tool calls misbehave, for the runtime's
//! tests. Packing describes it normally (no settings are given then); loaded
//! with the setting
//!
//! - `block = "describe"`: its tool list, which `describe` and every call
//!   read, is never produced: the guest sleeps forever, 10 ms at a time;
//! - `block = "instructions"`: its instructions loop forever in the guest,
//!   burning no host time.

use std::hint::black_box;

use talon_sdk::{ToolError, Tools, Value};

fn blocks(entry: &str) -> bool {
    talon_sdk::settings::get("block").as_deref() == Some(entry)
}

fn ping(_: Value) -> Result<Value, ToolError> {
    Ok(Value::from("pong"))
}

fn tools() -> Tools {
    if blocks("describe") {
        loop {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    Tools::new().tool("ping", "Answers pong.", ping)
}

fn instructions() -> String {
    if blocks("instructions") {
        let mut n: u64 = 0;
        loop {
            n = black_box(n.wrapping_add(1));
        }
    }
    "Call `ping` to check the skill is alive.".into()
}

talon_sdk::export_skill!(tools, instructions());
