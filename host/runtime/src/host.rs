//! What a plugin's store holds during one call, and the host side of the
//! imports: WASI, `wasi:http` behind the network grant, memory, settings
//! (the log import is in `log.rs`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http::uri::{Authority, Scheme};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};
use wasmtime_wasi_tls::{WasiTlsCtx, WasiTlsCtxView, WasiTlsView};

use crate::bindings::talon::plugin::{memory, settings, types};
use crate::log::CallLog;
use crate::permissions::{NetworkPolicy, memory_allowed};
use crate::slots::PerPlugin;
use crate::workspace::CallQuota;

/// Longest memory key a plugin may use, in bytes.
pub const MAX_MEMORY_KEY: usize = 256;
/// Largest memory value a plugin may store, in bytes.
pub const MAX_MEMORY_VALUE: usize = 64 * 1024;

/// Where plugin memory lives: the kernel implements it over its store.
///
/// Keys arrive already scoped to the plugin (`plugin:<name>:<key>`); the
/// backend scopes them to the agent. Calls are blocking: the runtime runs
/// them on tokio's blocking pool.
pub trait MemoryBackend: Send + Sync + 'static {
    /// The value of `key` for `agent_id`.
    fn get(&self, agent_id: &str, key: &str) -> Result<Option<String>, String>;
    /// Stores `value` under `key` (durably, before returning).
    fn set(&self, agent_id: &str, key: &str, value: &str) -> Result<(), String>;
    /// Removes `key`; whether it existed.
    fn delete(&self, agent_id: &str, key: &str) -> Result<bool, String>;
    /// The keys starting with `prefix`, sorted.
    fn list(&self, agent_id: &str, prefix: &str) -> Result<Vec<String>, String>;
}

/// What one plugin may use, shared by all its calls.
pub(crate) struct Grants {
    pub plugin: Arc<str>,
    pub memory_keys: Vec<String>,
    pub settings: BTreeMap<String, String>,
    pub network: Arc<NetworkPolicy>,
}

/// The store's data for one call.
pub(crate) struct CallState {
    pub wasi: WasiCtx,
    pub http: WasiHttpCtx,
    /// `wasi:tls` over the guest's own (granted) streams.
    pub tls: WasiTlsCtx,
    /// Capped at `Ceilings::resource_entries`: every WASI resource a guest
    /// makes the host hold (fields, requests, bodies, streams) is an entry.
    pub table: ResourceTable,
    pub gate: HttpGate,
    pub limiter: Limiter,
    pub grants: Arc<Grants>,
    pub memory: Option<(Arc<dyn MemoryBackend>, String)>,
    pub stderr: MemoryOutputPipe,
    /// The ceilings this call runs under that host code checks.
    pub caps: CallCaps,
    /// What this call has logged.
    pub log: CallLog,
    /// What all calls of this plugin share (its log budget).
    pub shared: Arc<PerPlugin>,
    /// The agent's workspace quota, when the call has the workspace preopened.
    pub workspace: Option<Arc<CallQuota>>,
    /// What serves a hand's `agent` import; `None` outside a hand.
    pub hand: Option<crate::hand::HandLink>,
    /// What wakes a channel's `receive` when a command is queued; `None`
    /// outside a channel.
    pub receive_wake: Option<crate::wake::ReceiveWake>,
}

/// The host-side caps of one call, copied from the ceilings when the call
/// starts so a reload never changes them mid-call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallCaps {
    pub result_bytes: usize,
    pub resource_entries: usize,
    pub http_fields_bytes: usize,
    pub log_lines_per_call: u32,
    pub log_lines_per_second: u32,
    pub log_line_bytes: usize,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiTlsView for CallState {
    fn tls(&mut self) -> WasiTlsCtxView<'_> {
        WasiTlsCtxView {
            ctx: &mut self.tls,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.gate,
        }
    }
}

/// The `wasi:http` outgoing hook: every request passes the plugin's network
/// grant after DNS resolution, or is refused with `HTTP-request-denied`.
pub(crate) struct HttpGate {
    pub policy: Arc<NetworkPolicy>,
    /// The embedder's own addresses (the daemon's listeners), never reachable.
    pub denied_addrs: Arc<[SocketAddr]>,
    /// The reason of the last refusal, added to the tool's error so the
    /// author sees why (the WASI error code carries no text).
    pub denied: Arc<Mutex<Option<String>>>,
}

type SendResult = Result<
    (
        http::Response<wasmtime_wasi_http::WasiBody>,
        Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ),
    wasmtime_wasi_http::Error,
>;

impl WasiHttpHooks for HttpGate {
    fn send_request(
        &mut self,
        mut request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let policy = self.policy.clone();
        let denied = self.denied.clone();
        let denied_addrs = self.denied_addrs.clone();
        Box::new(async move {
            let uri = request.uri();
            let https = uri.scheme() == Some(&Scheme::HTTPS);
            let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
            let Some(host) = uri.host().map(str::to_owned) else {
                return Err(refuse(request, ErrorCode::HttpRequestUriInvalid).await);
            };
            let addrs = match policy.resolve(&host, port, https, &denied_addrs).await {
                Ok(addrs) => addrs,
                Err(reason) => {
                    tracing::warn!(%host, port, %reason, "plugin network request refused");
                    if let Ok(mut slot) = denied.lock() {
                        *slot = Some(reason);
                    }
                    return Err(refuse(request, ErrorCode::HttpRequestDenied).await);
                }
            };
            if !https {
                // Connect to the address that was checked, not to whatever a
                // second DNS lookup returns (DNS rebinding). The Host header
                // still names the host. Over HTTPS the certificate check ties
                // the connection to the name instead.
                let mut parts = request.uri().clone().into_parts();
                let authority = Authority::try_from(addrs[0].to_string()).map_err(|_| {
                    wasmtime_wasi_http::Error::from(ErrorCode::HttpRequestUriInvalid)
                })?;
                parts.authority = Some(authority);
                *request.uri_mut() =
                    http::Uri::from_parts(parts).map_err(|_| ErrorCode::HttpRequestUriInvalid)?;
            }
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            use http_body_util::BodyExt;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

/// Longest pause in a refused request's body that [`refuse`] waits out.
const REFUSED_BODY_IDLE: std::time::Duration = std::time::Duration::from_secs(1);
/// Most of a refused request's body that [`refuse`] reads before it stops.
const REFUSED_BODY_MAX: usize = 8 * 1024 * 1024;

/// Reads what the guest still writes of a refused request's body, then
/// answers `code`.
///
/// Guests write the body after `handle` has returned. Dropping it at once
/// makes their next write fail with "stream closed", and whether a guest then
/// sees that or the refusal depends on scheduling: Python's client reported
/// the closed stream, StarlingMonkey's `fetch` aborted the whole instance.
/// Reading the body to its end makes the refusal arrive one way, as the
/// answer's error code. The reading stops at the body's end, after a pause
/// (a guest that waits for the answer before it finishes the body), or at a
/// bound (a guest that never stops writing).
async fn refuse(
    request: http::Request<wasmtime_wasi_http::WasiBody>,
    code: ErrorCode,
) -> wasmtime_wasi_http::Error {
    use http_body_util::BodyExt;
    let mut body = request.into_body();
    let mut read = 0;
    while read <= REFUSED_BODY_MAX {
        match tokio::time::timeout(REFUSED_BODY_IDLE, body.frame()).await {
            Ok(Some(Ok(frame))) => read += frame.data_ref().map_or(0, |data| data.len()),
            // The end, a broken body or a pause: nothing more to wait for.
            Ok(Some(Err(_)) | None) | Err(_) => break,
        }
    }
    code.into()
}

/// Why the limiter stopped a call; found again by downcasting the trap.
#[derive(Debug, thiserror::Error)]
#[error("memory limit exceeded: asked for {requested} bytes, limit {limit}")]
pub(crate) struct MemoryLimitHit {
    pub requested: usize,
    pub limit: usize,
}

/// Caps memory and tables for one call and records the peak.
pub(crate) struct Limiter {
    pub max_memory: usize,
    /// Bytes of linear memory held by all the instance's memories.
    pub total: usize,
    pub peak: usize,
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.total - current.min(self.total) + desired;
        if total > self.max_memory {
            return Err(wasmtime::Error::new(MemoryLimitHit {
                requested: total,
                limit: self.max_memory,
            }));
        }
        self.total = total;
        self.peak = self.peak.max(total);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; a million is far beyond any real
        // plugin and bounds what a hostile one can allocate this way.
        Ok(desired <= 1_000_000)
    }

    fn instances(&self) -> usize {
        // Components are made of a few dozen core instances at most.
        200
    }

    fn tables(&self) -> usize {
        200
    }

    fn memories(&self) -> usize {
        50
    }
}

impl types::Host for CallState {}

impl settings::Host for CallState {
    async fn get(&mut self, key: String) -> Option<String> {
        self.grants.settings.get(&key).cloned()
    }
}

impl CallState {
    /// Checks a key against the grant and returns the backend, the agent and
    /// the key as stored (prefixed with the plugin's name).
    fn memory_for(
        &self,
        key: &str,
    ) -> Result<(Arc<dyn MemoryBackend>, String, String), memory::MemoryError> {
        if key.len() > MAX_MEMORY_KEY {
            return Err(memory::MemoryError::TooLarge(format!(
                "keys are at most {MAX_MEMORY_KEY} bytes"
            )));
        }
        if !memory_allowed(&self.grants.memory_keys, key) {
            return Err(memory::MemoryError::Denied(format!(
                "key {key:?} is not covered by the plugin's granted memory keys"
            )));
        }
        let (backend, agent) = self.memory.as_ref().ok_or_else(|| {
            memory::MemoryError::Unavailable("no agent is calling, so there is no memory".into())
        })?;
        Ok((
            backend.clone(),
            agent.clone(),
            format!("plugin:{}:{key}", self.grants.plugin),
        ))
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, memory::MemoryError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(memory::MemoryError::Unavailable),
        Err(e) => Err(memory::MemoryError::Unavailable(e.to_string())),
    }
}

impl memory::Host for CallState {
    async fn get(&mut self, key: String) -> Result<Option<String>, memory::MemoryError> {
        let (backend, agent, key) = self.memory_for(&key)?;
        blocking(move || backend.get(&agent, &key)).await
    }

    async fn set(&mut self, key: String, value: String) -> Result<(), memory::MemoryError> {
        if value.len() > MAX_MEMORY_VALUE {
            return Err(memory::MemoryError::TooLarge(format!(
                "values are at most {MAX_MEMORY_VALUE} bytes"
            )));
        }
        let (backend, agent, key) = self.memory_for(&key)?;
        blocking(move || backend.set(&agent, &key, &value)).await
    }

    async fn delete(&mut self, key: String) -> Result<bool, memory::MemoryError> {
        let (backend, agent, key) = self.memory_for(&key)?;
        blocking(move || backend.delete(&agent, &key)).await
    }

    async fn list_keys(&mut self, prefix: String) -> Result<Vec<String>, memory::MemoryError> {
        // Listing is allowed where reading the listed keys would be: the
        // prefix itself must fall under a grant.
        let probe = format!("{prefix}*");
        let covered = self
            .grants
            .memory_keys
            .iter()
            .any(|g| match g.strip_suffix('*') {
                Some(granted) => probe.starts_with(granted),
                None => false,
            });
        if !covered {
            return Err(memory::MemoryError::Denied(format!(
                "prefix {prefix:?} is not covered by the plugin's granted memory keys"
            )));
        }
        let (backend, agent, scoped) = self.memory_for(&prefix)?;
        let strip = scoped.len() - prefix.len();
        let keys = blocking(move || backend.list(&agent, &scoped)).await?;
        Ok(keys
            .into_iter()
            .map(|k| k[strip.min(k.len())..].to_string())
            .collect())
    }
}

/// At most `max` bytes of `text`, cut at a character boundary.
pub(crate) fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
