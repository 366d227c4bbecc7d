//! `web_fetch`: fetches a web page with HTTP GET through `wasi:http` and
//! returns it as readable text: HTML is turned into plain text with light
//! Markdown (headings, lists, links), other text types are returned as they
//! are. The host only lets requests through to hosts the operator granted.

mod html;
mod text;

use talon_sdk::http::{self, url};

use talon_sdk::{ToolError, Tools};

/// Bytes downloaded when the caller does not say.
const DEFAULT_MAX_BYTES: u32 = 2 * 1024 * 1024;
/// The most bytes one call downloads.
const MAX_BYTES: u32 = 10 * 1024 * 1024;
/// Characters of content returned when the caller does not say.
const DEFAULT_MAX_CHARS: u32 = 40_000;
/// The most characters of content one call returns.
const MAX_CHARS: u32 = 200_000;
/// Milliseconds for the whole call (redirects included) unless the caller says.
const DEFAULT_TIMEOUT_MS: u32 = 20_000;
/// The longest a call may take.
const MAX_TIMEOUT_MS: u32 = 60_000;
/// Redirects followed before giving up.
const MAX_REDIRECTS: usize = 5;

/// What to return.
#[talon_sdk::args]
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
enum Format {
    /// Readable text: HTML converted, other text as is.
    #[default]
    Text,
    /// The body as received (it must be text).
    Raw,
}

/// Arguments of `web_fetch`.
#[talon_sdk::args]
struct FetchArgs {
    /// The http or https URL to fetch.
    url: String,
    /// `text` (default) turns HTML into readable text; `raw` returns the body unchanged.
    #[serde(default)]
    format: Format,
    /// The most characters of content to return (default 40000, at most 200000).
    #[serde(default)]
    max_chars: Option<u32>,
    /// The most bytes to download (default 2 MiB, at most 10 MiB).
    #[serde(default)]
    max_bytes: Option<u32>,
    /// Time limit for the whole request in milliseconds (default 20000, at most 60000).
    #[serde(default)]
    timeout_ms: Option<u32>,
}

/// What `web_fetch` returns.
#[talon_sdk::output]
struct FetchResult {
    /// The URL that answered, after redirects.
    url: String,
    /// The HTTP status code.
    status: u16,
    /// The response's content type, if it said.
    #[serde(skip_serializing_if = "Option::is_none")]
    content_type: Option<String>,
    /// The page title, for HTML.
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    /// The content, as text.
    content: String,
    /// Whether the body or the content was cut at a limit.
    truncated: bool,
}

/// The limits of one call, checked.
struct Limits {
    max_chars: usize,
    max_bytes: usize,
    timeout: std::time::Duration,
}

fn limits(args: &FetchArgs) -> Result<Limits, ToolError> {
    let within = |value: Option<u32>, default: u32, max: u32, name: &str| {
        let value = value.unwrap_or(default);
        if value == 0 || value > max {
            Err(ToolError::invalid_arguments(format!(
                "{name} must be between 1 and {max}"
            )))
        } else {
            Ok(value)
        }
    };
    Ok(Limits {
        max_chars: within(args.max_chars, DEFAULT_MAX_CHARS, MAX_CHARS, "max_chars")? as usize,
        max_bytes: within(args.max_bytes, DEFAULT_MAX_BYTES, MAX_BYTES, "max_bytes")? as usize,
        timeout: std::time::Duration::from_millis(u64::from(within(
            args.timeout_ms,
            DEFAULT_TIMEOUT_MS,
            MAX_TIMEOUT_MS,
            "timeout_ms",
        )?)),
    })
}

fn web_fetch(args: FetchArgs) -> Result<FetchResult, ToolError> {
    use std::time::Instant;

    let limits = limits(&args)?;
    let started = Instant::now();
    let mut url = url::parse(&args.url).map_err(ToolError::invalid_arguments)?;
    let mut redirects = 0;
    let response = loop {
        let remaining = limits
            .timeout
            .checked_sub(started.elapsed())
            .ok_or_else(|| ToolError::failed(format!("fetching {url} timed out")))?;
        let response = http::get(&url, remaining, limits.max_bytes).map_err(|e| match e {
            http::HttpError::Denied { .. } => ToolError::permission_denied(e),
            http::HttpError::TimedOut => ToolError::failed(format!("fetching {url} timed out")),
            other => ToolError::failed(format!("fetching {url} failed: {other}")),
        })?;
        let location = response.header("location");
        match (response.status, location) {
            (301 | 302 | 303 | 307 | 308, Some(location)) => {
                redirects += 1;
                if redirects > MAX_REDIRECTS {
                    return Err(ToolError::failed(format!(
                        "{} redirects in a row; last to {location}",
                        MAX_REDIRECTS + 1
                    )));
                }
                let next = url::resolve(&url.to_string(), location);
                url = url::parse(&next).map_err(|e| {
                    ToolError::failed(format!("redirected to an unusable URL `{next}`: {e}"))
                })?;
                talon_sdk::log::debug(format!("redirected to {url}"));
            }
            _ => break response,
        }
    };
    let content_type = response.header("content-type").map(str::to_string);
    let page = text::Page {
        url: url.to_string(),
        content_type: content_type.as_deref(),
        body: &response.body,
    };
    let rendered = text::render(&page, args.format == Format::Raw, limits.max_chars)
        .map_err(ToolError::failed)?;
    Ok(FetchResult {
        url: url.to_string(),
        status: response.status,
        content_type,
        title: rendered.title,
        content: rendered.content,
        truncated: response.truncated || rendered.truncated,
    })
}

fn tools() -> Tools {
    Tools::new().tool(
        "web_fetch",
        "Fetches a web page or text resource with HTTP GET and returns its content as readable \
         text (HTML is converted: headings, lists and [links](url) are kept, scripts and styles \
         dropped). Only hosts the operator granted are reachable. Long pages are cut at \
         max_chars; `truncated` says so.",
        web_fetch,
    )
}

talon_sdk::export_plugin!(tools);
