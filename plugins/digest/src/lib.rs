//! `digest`: a hand that, once per period (daily by default, at a time of
//! day if asked), reads the daemon's own API for what happened since the
//! last digest (audit entries, today's usage, tasks), asks its agent to
//! write a short summary of it, and tells the owner. When the last digest
//! was sent is kept in memory, so a restart does not send it again.

#[allow(clippy::all, missing_docs)]
mod wit {
    talon_sdk::hand_world!();
}

mod digest;

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use talon_sdk::http;
use talon_sdk::serde_json::{self, Value};
use wit::exports::talon::plugin::hand_lifecycle::{Guest, HandError, HandInfo, Metric};
use wit::talon::plugin::{agent, log, memory};

use digest::{Section, Settings};

/// How often the host ticks; a tick only reads the memory key until a
/// digest is due.
const TICK_MS: u64 = 1000;
/// Deadline of one API read.
const FETCH_TIMEOUT_MS: u64 = 10_000;
/// The largest API answer read (500 audit entries fit).
const MAX_BODY: usize = 4 * 1024 * 1024;
/// The environment variable holding the daemon's API key, when it has one.
const API_KEY_VAR: &str = "TALON_DIGEST_API_KEY";
/// Where the time (unix seconds) of the last digest sent is kept.
const LAST_KEY: &str = "last_digest";

/// What the instance counts while it lives (shown as metrics).
#[derive(Default)]
struct State {
    settings: Option<Settings>,
    digests: u64,
    errors: u64,
    last_error: String,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

struct Digest;

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn memory_failed(e: memory::MemoryError) -> HandError {
    match e {
        memory::MemoryError::Denied(m) => HandError::PermissionDenied(m),
        memory::MemoryError::TooLarge(m) | memory::MemoryError::Unavailable(m) => {
            HandError::Failed(m)
        }
    }
}

/// Reads `path` of the daemon's API as JSON, with the API key when one is
/// granted. The key is only ever put in the header, never in a log or an
/// error.
fn read_api(base: &str, path: &str) -> Result<Value, HandError> {
    let url = format!("{base}{path}");
    let key = std::env::var(API_KEY_VAR).unwrap_or_default();
    let bearer = format!("Bearer {key}");
    let mut headers = vec![("accept", "application/json")];
    if !key.is_empty() {
        headers.push(("authorization", bearer.as_str()));
    }
    let request = http::Request {
        method: "GET",
        url: &url,
        headers: &headers,
        body: &[],
        max_response_bytes: MAX_BODY,
    };
    let response = http::request(&request, FETCH_TIMEOUT_MS).map_err(|e| match e {
        http::HttpError::Denied { .. } => HandError::PermissionDenied(e.to_string()),
        other => HandError::Failed(format!("{path}: {other}")),
    })?;
    match response.status {
        200..=299 => {}
        401 | 403 => {
            return Err(HandError::PermissionDenied(format!(
                "{path}: the daemon refused the request (HTTP {}); grant {API_KEY_VAR} holding its api_key",
                response.status
            )));
        }
        status => return Err(HandError::Failed(format!("{path}: HTTP status {status}"))),
    }
    serde_json::from_slice(&response.body)
        .map_err(|e| HandError::Failed(format!("{path}: not JSON: {e}")))
}

/// The text the agent is asked to summarise: one part per section.
fn collect(settings: &Settings, since: u64, now: u64) -> Result<String, HandError> {
    let mut text = format!(
        "What happened in the agent daemon from {} to {} (UTC):\n\n",
        digest::rfc3339(since),
        digest::rfc3339(now)
    );
    for section in &settings.sections {
        let body = read_api(&settings.base_url, section.path())?;
        text.push_str(&match section {
            Section::Audit => digest::audit_section(&body, since, settings.max_items),
            Section::Usage => digest::usage_section(&body),
            Section::Tasks => digest::tasks_section(&body, since, settings.max_items),
        });
    }
    text.push_str(
        "\nWrite the owner a short digest of this: the main activity, anything that failed \
         and needs attention, and the cost. Plain sentences, no preamble.",
    );
    Ok(text)
}

/// Sends the digest if one is due.
fn run(settings: &Settings) -> Result<(), HandError> {
    let now = now_secs();
    let last = memory::get(LAST_KEY)
        .map_err(memory_failed)?
        .and_then(|v| v.parse::<u64>().ok());
    if !settings.due(now, last) {
        return Ok(());
    }
    let since = settings.since(now, last);
    let text = collect(settings, since, now)?;
    let summary = agent::send(&text).map_err(HandError::Failed)?;
    // Kept before the owner is told: a crash in between loses one
    // notification rather than sending the same digest twice.
    memory::set(LAST_KEY, &now.to_string()).map_err(memory_failed)?;
    agent::notify_owner(&format!(
        "Digest {} to {}: {summary}",
        digest::rfc3339(since),
        digest::rfc3339(now)
    ));
    STATE.with_borrow_mut(|s| s.digests += 1);
    Ok(())
}

impl Guest for Digest {
    fn describe() -> HandInfo {
        HandInfo {
            name: "digest".into(),
            display_name: "Daily digest".into(),
            settings_schema: digest::SETTINGS_SCHEMA.into(),
            agent_role: "You write a daily digest of an agent daemon's activity for its owner. \
                         Given counts of events, usage and tasks, you say in a few plain \
                         sentences what happened, what failed and needs attention, and what \
                         it cost. No preamble."
                .into(),
            tick_interval_ms: TICK_MS,
        }
    }

    fn activate(settings: String) -> Result<(), HandError> {
        let settings = Settings::parse(&settings).map_err(HandError::InvalidSettings)?;
        log::log(
            log::Level::Info,
            &format!(
                "a digest of {} every {} s",
                settings.base_url, settings.every_secs
            ),
        );
        STATE.with_borrow_mut(|s| s.settings = Some(settings));
        Ok(())
    }

    fn tick() -> Result<(), HandError> {
        let Some(settings) = STATE.with_borrow(|s| s.settings.clone()) else {
            return Err(HandError::NotActive("activate first".into()));
        };
        let outcome = run(&settings);
        if let Err(e) = &outcome {
            log::log(log::Level::Warn, &format!("{e:?}"));
            STATE.with_borrow_mut(|s| {
                s.errors += 1;
                s.last_error = format!("{e:?}");
            });
        }
        outcome
    }

    fn metrics() -> Vec<Metric> {
        let last = memory::get(LAST_KEY)
            .ok()
            .flatten()
            .and_then(|v| v.parse::<u64>().ok());
        STATE.with_borrow(|s| {
            let mut metrics = vec![
                Metric {
                    label: "digests".into(),
                    value: s.digests.to_string(),
                },
                Metric {
                    label: "last_digest".into(),
                    value: last.map_or_else(|| "never".into(), digest::rfc3339),
                },
                Metric {
                    label: "errors".into(),
                    value: s.errors.to_string(),
                },
            ];
            if !s.last_error.is_empty() {
                metrics.push(Metric {
                    label: "last_error".into(),
                    value: s.last_error.clone(),
                });
            }
            metrics
        })
    }

    fn deactivate() {
        STATE.with_borrow_mut(|s| s.settings = None);
    }
}

#[cfg(target_arch = "wasm32")]
wit::export!(Digest with_types_in wit);
