//! Small tools agents need all the time:
//!
//! - `time_now`: the current date and time (UTC and an optional offset);
//! - `uuid`: random version 4 UUIDs;
//! - `json_query`: pick values out of a JSON document with a path;
//! - `calculate`: evaluate an arithmetic expression exactly, instead of
//!   trusting a language model's arithmetic.

mod calc;
mod query;
mod time;

use talon_sdk::{ToolError, Tools, Value};

use crate::time::DateTime;

/// Arguments of `time_now`.
#[talon_sdk::args]
struct TimeArgs {
    /// Offset from UTC in minutes for `local` (for example 60 for UTC+1,
    /// -300 for UTC-5). Time-zone names are not supported.
    #[serde(default)]
    utc_offset_minutes: Option<i32>,
}

/// What `time_now` returns.
#[talon_sdk::output]
struct TimeResult {
    /// Seconds since 1970-01-01T00:00:00Z.
    unix_seconds: i64,
    /// Milliseconds since 1970-01-01T00:00:00Z.
    unix_millis: i64,
    /// RFC 3339 in UTC.
    utc: String,
    /// RFC 3339 at the requested offset, if one was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    local: Option<String>,
    /// Day of the week at the requested offset (UTC otherwise).
    weekday: &'static str,
}

fn time_now(args: TimeArgs) -> Result<TimeResult, ToolError> {
    let offset = args.utc_offset_minutes.unwrap_or(0);
    if !(-1440..=1440).contains(&offset) {
        return Err(ToolError::invalid_arguments(
            "utc_offset_minutes must be between -1440 and 1440",
        ));
    }
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| ToolError::failed(format!("the clock is before 1970: {e}")))?;
    let unix_millis = i64::try_from(since_epoch.as_millis())
        .map_err(|_| ToolError::failed("the clock is out of range"))?;
    let local = DateTime::from_unix_millis(unix_millis, offset);
    Ok(TimeResult {
        unix_seconds: unix_millis.div_euclid(1000),
        unix_millis,
        utc: DateTime::from_unix_millis(unix_millis, 0).rfc3339(0),
        local: args.utc_offset_minutes.map(|_| local.rfc3339(offset)),
        weekday: local.weekday_name(),
    })
}

/// Arguments of `uuid`.
#[talon_sdk::args]
struct UuidArgs {
    /// How many UUIDs to generate (default 1, at most 100).
    #[serde(default)]
    count: Option<u32>,
}

fn uuid(args: UuidArgs) -> Result<Vec<String>, ToolError> {
    let count = args.count.unwrap_or(1);
    if !(1..=100).contains(&count) {
        return Err(ToolError::invalid_arguments(
            "count must be between 1 and 100",
        ));
    }
    let random = wasip2::random::random::get_random_bytes(16 * u64::from(count));
    Ok(random
        .chunks_exact(16)
        .map(|chunk| {
            let mut bytes = [0u8; 16];
            bytes.copy_from_slice(chunk);
            format_uuid_v4(bytes)
        })
        .collect())
}

/// Formats 16 random bytes as a version 4, variant 1 UUID.
fn format_uuid_v4(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Arguments of `json_query`.
#[talon_sdk::args]
struct QueryArgs {
    /// The JSON document: a JSON value, or a string holding JSON text.
    data: Value,
    /// The path to select, like `$.items[0].name`, `items[*].id`, `..email`
    /// or `["odd key"]`; `[-1]` is the last element.
    path: String,
}

/// What `json_query` returns.
#[talon_sdk::output]
struct QueryResult {
    /// How many values the path selected.
    count: usize,
    /// The selected values, in document order.
    matches: Vec<Value>,
}

fn json_query(args: QueryArgs) -> Result<QueryResult, ToolError> {
    // Models often pass a document as JSON text inside a string.
    let document = match &args.data {
        Value::String(text) => match talon_sdk::serde_json::from_str::<Value>(text) {
            Ok(parsed @ (Value::Object(_) | Value::Array(_))) => parsed,
            _ => args.data.clone(),
        },
        other => other.clone(),
    };
    let matches: Vec<Value> = query::query(&document, &args.path)
        .map_err(ToolError::invalid_arguments)?
        .into_iter()
        .cloned()
        .collect();
    Ok(QueryResult {
        count: matches.len(),
        matches,
    })
}

/// Arguments of `calculate`.
#[talon_sdk::args]
struct CalculateArgs {
    /// The expression, for example `(1.5e3 + 250) * 1.2 / 7` or
    /// `sqrt(2) * sin(pi / 4)`. Operators: + - * / % ^ and parentheses;
    /// constants pi, e, tau; functions sqrt, cbrt, abs, floor, ceil, round,
    /// trunc, exp, ln, log10, log2, log(x[, base]), sin, cos, tan, asin,
    /// acos, atan, atan2, pow, hypot, min, max.
    expression: String,
}

/// What `calculate` returns.
#[talon_sdk::output]
struct CalculateResult {
    expression: String,
    result: f64,
}

fn calculate(args: CalculateArgs) -> Result<CalculateResult, ToolError> {
    let result = calc::evaluate(&args.expression).map_err(|e| match e {
        calc::CalcError::NotFinite => ToolError::failed(e),
        _ => ToolError::invalid_arguments(e),
    })?;
    Ok(CalculateResult {
        expression: args.expression,
        result,
    })
}

fn tools() -> Tools {
    Tools::new()
        .tool(
            "time_now",
            "Returns the current date and time: Unix time, RFC 3339 in UTC, and at a given \
             UTC offset in minutes, with the day of the week.",
            time_now,
        )
        .tool("uuid", "Generates random (version 4) UUIDs.", uuid)
        .tool(
            "json_query",
            "Selects values from a JSON document with a path such as `$.items[0].name`, \
             `items[*].id` or `..email`, and returns them with their count.",
            json_query,
        )
        .tool(
            "calculate",
            "Evaluates an arithmetic expression with + - * / % ^, parentheses, pi, e and common \
             functions (sqrt, ln, log, sin, round, min, max ...). Use it instead of doing \
             arithmetic in your head.",
            calculate,
        )
}

talon_sdk::export_plugin!(tools);

#[cfg(test)]
mod tests {
    use super::*;
    use talon_sdk::json;

    #[test]
    fn uuids_have_version_and_variant_bits() {
        let id = format_uuid_v4([0xff; 16]);
        assert_eq!(id, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        let id = format_uuid_v4([0; 16]);
        assert_eq!(id, "00000000-0000-4000-8000-000000000000");
    }

    #[test]
    fn json_query_accepts_values_and_json_text() {
        let as_value = tools()
            .invoke("json_query", r#"{"data": {"a": [1, 2]}, "path": "a[-1]"}"#)
            .unwrap();
        let as_text = tools()
            .invoke(
                "json_query",
                r#"{"data": "{\"a\": [1, 2]}", "path": "a[-1]"}"#,
            )
            .unwrap();
        assert_eq!(as_value, r#"{"count":1,"matches":[2]}"#);
        assert_eq!(as_text, as_value);
        let bad = tools().invoke("json_query", r#"{"data": {}, "path": "a["}"#);
        assert!(matches!(bad, Err(ToolError::InvalidArguments(_))));
    }

    #[test]
    fn calculate_reports_results_and_errors() {
        let out = tools()
            .invoke("calculate", r#"{"expression": "2 ^ 10 / 4"}"#)
            .unwrap();
        assert_eq!(
            out,
            json!({"expression": "2 ^ 10 / 4", "result": 256.0}).to_string()
        );
        assert!(matches!(
            tools().invoke("calculate", r#"{"expression": "1/0"}"#),
            Err(ToolError::Failed(_))
        ));
        assert!(matches!(
            tools().invoke("calculate", r#"{"expression": "2 +* 3"}"#),
            Err(ToolError::InvalidArguments(_))
        ));
    }

    #[test]
    fn time_offset_is_checked() {
        assert!(matches!(
            tools().invoke("time_now", r#"{"utc_offset_minutes": 5000}"#),
            Err(ToolError::InvalidArguments(_))
        ));
    }
}
