//! `web_watch`: a hand that fetches a list of pages every `interval_secs`,
//! keeps each page's last text in memory (so a restarted daemon compares
//! with what it saw before), and when a page changed asks its agent to
//! summarise the change and tells the owner the summary.

#[allow(clippy::all, missing_docs)]
mod wit {
    talon_sdk::hand_world!();
}

mod watch;

use std::cell::RefCell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use talon_sdk::http;
use wit::exports::talon::plugin::hand_lifecycle::{Guest, HandError, HandInfo, Metric};
use wit::talon::plugin::{agent, log, memory};

use watch::{Settings, diff_lines};

/// How often the host ticks; the hand checks only once `interval_secs`
/// has passed since the last check.
const TICK_MS: u64 = 1000;
/// Deadline of one page's fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of a page read and compared; the rest is ignored.
const MAX_PAGE: usize = 48 * 1024;

/// What the instance counts while it lives (shown as metrics).
#[derive(Default)]
struct State {
    settings: Option<Settings>,
    checks: u64,
    changes: u64,
    errors: u64,
    last_error: String,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

struct WebWatch;

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

/// Fetches `url` and returns its text, cut at [`MAX_PAGE`] bytes.
fn fetch(url: &str) -> Result<String, HandError> {
    let parsed = http::url::parse(url).map_err(|e| HandError::InvalidSettings(e.to_string()))?;
    let response = http::get(&parsed, FETCH_TIMEOUT, MAX_PAGE).map_err(|e| match e {
        http::HttpError::Denied { .. } => HandError::PermissionDenied(e.to_string()),
        other => HandError::Failed(format!("{url}: {other}")),
    })?;
    if !(200..300).contains(&response.status) {
        return Err(HandError::Failed(format!(
            "{url}: HTTP status {}",
            response.status
        )));
    }
    Ok(String::from_utf8_lossy(&response.body).into_owned())
}

/// Checks one page: compares it with the text kept in memory and, if it
/// changed, has the agent summarise the change for the owner. Whether it
/// changed.
fn check(url: &str) -> Result<bool, HandError> {
    let text = fetch(url)?;
    let key = watch::page_key(url);
    let before = memory::get(&key).map_err(memory_failed)?;
    if before.as_deref() == Some(text.as_str()) {
        return Ok(false);
    }
    memory::set(&key, &text).map_err(memory_failed)?;
    let Some(before) = before else {
        // The first look is the baseline, not a change.
        return Ok(false);
    };
    let diff = diff_lines(&before, &text);
    let question = format!(
        "The web page {url} changed.\n\n{diff}\nSummarise what changed in one or two sentences \
         for the person watching this page."
    );
    let summary = agent::send(&question).map_err(HandError::Failed)?;
    agent::notify_owner(&format!("{url} changed: {summary}"));
    Ok(true)
}

impl Guest for WebWatch {
    fn describe() -> HandInfo {
        HandInfo {
            name: "web_watch".into(),
            display_name: "Web page watcher".into(),
            settings_schema: watch::SETTINGS_SCHEMA.into(),
            agent_role: "You watch web pages for a person. When told how a page changed, you \
                         say what changed in one or two plain sentences: what was added, removed \
                         or altered, and why it might matter. No preamble."
                .into(),
            tick_interval_ms: TICK_MS,
        }
    }

    fn activate(settings: String) -> Result<(), HandError> {
        let settings = Settings::parse(&settings).map_err(HandError::InvalidSettings)?;
        log::log(
            log::Level::Info,
            &format!(
                "watching {} page(s) every {} s",
                settings.urls.len(),
                settings.interval_secs
            ),
        );
        STATE.with_borrow_mut(|s| s.settings = Some(settings));
        Ok(())
    }

    fn tick() -> Result<(), HandError> {
        let Some(settings) = STATE.with_borrow(|s| s.settings.clone()) else {
            return Err(HandError::NotActive("activate first".into()));
        };
        let now = now_secs();
        let last = memory::get("last_check")
            .map_err(memory_failed)?
            .and_then(|v| v.parse::<u64>().ok());
        if last.is_some_and(|last| now < last.saturating_add(settings.interval_secs)) {
            return Ok(());
        }
        memory::set("last_check", &now.to_string()).map_err(memory_failed)?;
        let mut failure = None;
        for url in &settings.urls {
            let outcome = check(url);
            STATE.with_borrow_mut(|s| {
                s.checks += 1;
                match &outcome {
                    Ok(true) => s.changes += 1,
                    Ok(false) => {}
                    Err(e) => {
                        s.errors += 1;
                        s.last_error = format!("{e:?}");
                    }
                }
            });
            // One page failing does not keep the others from being checked.
            if let Err(e) = outcome {
                log::log(log::Level::Warn, &format!("{url}: {e:?}"));
                failure.get_or_insert(e);
            }
        }
        failure.map_or(Ok(()), Err)
    }

    fn metrics() -> Vec<Metric> {
        STATE.with_borrow(|s| {
            let mut metrics = vec![
                Metric {
                    label: "pages".into(),
                    value: s.settings.as_ref().map_or(0, |c| c.urls.len()).to_string(),
                },
                Metric {
                    label: "checks".into(),
                    value: s.checks.to_string(),
                },
                Metric {
                    label: "changes".into(),
                    value: s.changes.to_string(),
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
wit::export!(WebWatch with_types_in wit);
