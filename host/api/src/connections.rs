//! Accepting HTTP connections and driving them ourselves, because
//! `axum::serve` has neither timeouts nor caps: a client that connects and
//! sends nothing, or half its headers, would hold a file descriptor for as
//! long as it likes, and enough of them lock everyone out (issue 19).
//!
//! Each accepted connection takes a slot (one per client IP and in total,
//! refused with 503 past either cap), is served by hyper's HTTP/1 server,
//! and is watched: with no request in flight it must deliver a request's
//! headers within the header timeout of its start (or of that request's
//! first byte) and may stay silent for at most the idle timeout. Shutdown
//! stops accepting, lets requests in flight finish, and closes what is left
//! when the grace period ends.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use talon_kernel::config::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::{Service, ServiceExt};

/// The total cap when none is configured and the descriptor limit allows
/// more: past it, memory per connection matters more than descriptors.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// Descriptors kept for everything but client connections: the store, its
/// journal, plugin files and caches, logs, outbound calls to providers.
const FD_HEADROOM: u64 = 256;

/// How connections are limited; built from `[server]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time a connection has to deliver a request's headers.
    pub header_read_timeout: Duration,
    /// Time a connection with no request in flight may stay silent.
    pub idle_timeout: Duration,
    /// Open connections from all clients.
    pub max_connections: usize,
    /// Open connections from one client (an IPv4 address or an IPv6 /64).
    pub max_connections_per_ip: usize,
    /// Time requests in flight get to finish at shutdown.
    pub shutdown_grace: Duration,
}

impl ConnectionLimits {
    /// The limits `config` sets; an unset total cap (0) is derived from the
    /// process's descriptor limit `nofile` when it is known.
    pub fn new(config: &ServerConfig, nofile: Option<u64>) -> Self {
        let max_connections = match config.max_connections {
            0 => nofile.map_or(DEFAULT_MAX_CONNECTIONS, derived_max_connections),
            n => n,
        };
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(config.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(config.idle_timeout_secs),
            max_connections,
            max_connections_per_ip: config.max_connections_per_ip,
            shutdown_grace: Duration::from_secs(config.shutdown_grace_secs),
        }
    }
}

/// The total cap for a descriptor limit of `nofile`: half of what the
/// headroom leaves, since a request may open descriptors of its own (a
/// provider call, a plugin's file), within [16, `DEFAULT_MAX_CONNECTIONS`].
pub fn derived_max_connections(nofile: u64) -> usize {
    let usable = nofile.saturating_sub(FD_HEADROOM) / 2;
    usize::try_from(usable)
        .unwrap_or(usize::MAX)
        .clamp(16, DEFAULT_MAX_CONNECTIONS)
}

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Total,
    PerClient,
}

impl Refusal {
    fn message(self) -> &'static str {
        match self {
            Refusal::Total => "too many open connections (server.max_connections); retry later",
            Refusal::PerClient => {
                "too many open connections from this client (server.max_connections_per_ip); \
                 close some or retry later"
            }
        }
    }
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

/// Open connections, in total and per client.
struct Registry {
    counts: Mutex<Counts>,
    max_total: usize,
    max_per_client: usize,
}

impl Registry {
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refusal> {
        let client = client_key(ip);
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if counts.total >= self.max_total {
            return Err(Refusal::Total);
        }
        let open = counts.per_client.entry(client).or_default();
        if *open >= self.max_per_client {
            return Err(Refusal::PerClient);
        }
        *open += 1;
        counts.total += 1;
        Ok(Slot {
            registry: self.clone(),
            client,
        })
    }

    fn open(&self) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }
}

/// One client for the per-client cap: an IPv4 address, or an IPv6 /64
/// (what one host is usually given, so it cannot spread over addresses).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(v6.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

/// A connection's place in the [`Registry`], given back when dropped: it
/// lives in the connection's I/O, so an upgraded (WebSocket) connection
/// keeps counting until it closes.
struct Slot {
    registry: Arc<Registry>,
    client: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self
            .registry
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        counts.total = counts.total.saturating_sub(1);
        if let Some(open) = counts.per_client.get_mut(&self.client) {
            *open -= 1;
            if *open == 0 {
                counts.per_client.remove(&self.client);
            }
        }
    }
}

/// No request head is awaited (one is in flight, or the last one finished
/// and the next has not begun).
const NO_HEAD: u64 = u64::MAX;

/// What the watchdog of one connection reads, in milliseconds since it was
/// accepted: the last byte it carried, the start of the request head being
/// awaited, and how many requests are in flight.
struct Activity {
    accepted: Instant,
    last_io_ms: AtomicU64,
    head_since_ms: AtomicU64,
    in_flight: AtomicUsize,
}

/// Why the watchdog closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expired {
    Header,
    Idle,
}

impl Activity {
    fn new() -> Self {
        Activity {
            accepted: Instant::now(),
            last_io_ms: AtomicU64::new(0),
            // The first request's headers are awaited from the start.
            head_since_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.accepted.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.accepted + Duration::from_millis(ms)
    }

    fn on_read(&self) {
        let now = self.now_ms();
        self.last_io_ms.store(now, Ordering::Relaxed);
        // Bytes while nothing is in flight begin the next request's head.
        if self.in_flight.load(Ordering::Acquire) == 0 {
            let _ = self.head_since_ms.compare_exchange(
                NO_HEAD,
                now,
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
    }

    fn on_write(&self) {
        self.last_io_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_since_ms.store(NO_HEAD, Ordering::Release);
        self.on_write();
    }

    fn request_finished(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.on_write();
    }

    /// When to look again, or why the connection has to go.
    fn next_check(&self, limits: &ConnectionLimits, now: Instant) -> Result<Instant, Expired> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            // A request may legitimately take long (a turn, a stream).
            return Ok(now + limits.idle_timeout);
        }
        let idle_due = self.at(self.last_io_ms.load(Ordering::Relaxed)) + limits.idle_timeout;
        let head_since = self.head_since_ms.load(Ordering::Acquire);
        let header_due =
            (head_since != NO_HEAD).then(|| self.at(head_since) + limits.header_read_timeout);
        match header_due {
            Some(due) if due <= now => Err(Expired::Header),
            _ if idle_due <= now => Err(Expired::Idle),
            Some(due) => Ok(due.min(idle_due)),
            None => Ok(idle_due),
        }
    }
}

/// Ends one in-flight request when dropped: with the response body, once
/// hyper has written it all (or given up on it).
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: &Arc<Activity>) -> Self {
        activity.request_started();
        InFlight(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// A TCP stream that reports its traffic to the watchdog and holds the
/// connection's slot.
struct Watched {
    tcp: TcpStream,
    activity: Arc<Activity>,
    _slot: Slot,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.tcp).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.on_read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.tcp).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.on_write();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.on_write();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown` is
/// cancelled, then drains: requests in flight get `limits.shutdown_grace`
/// to finish, and whatever is still open then is closed.
pub async fn serve<S>(
    listener: TcpListener,
    app: S,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    let registry = Arc::new(Registry {
        counts: Mutex::default(),
        max_total: limits.max_connections,
        max_per_client: limits.max_connections_per_ip,
    });
    let close = CancellationToken::new();
    // Every connection task holds a sender: when all are gone, the
    // receiver's `recv` answers `None` and the drain is over.
    let (alive, mut all_closed) = tokio::sync::mpsc::channel::<Infallible>(1);
    loop {
        let (tcp, remote) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors (EMFILE) or memory: wait for some
                    // to be freed instead of spinning on the error.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let slot = match registry.admit(remote.ip()) {
            Ok(slot) => slot,
            Err(refusal) => {
                tracing::debug!(%remote, ?refusal, "connection refused");
                refuse(&tcp, refusal);
                continue;
            }
        };
        // Streamed answers are many small writes: without TCP_NODELAY, Nagle's
        // algorithm meets the client's delayed ACK and each SSE event can wait 40 ms.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let activity = Arc::new(Activity::new());
        let io = Watched {
            tcp,
            activity: activity.clone(),
            _slot: slot,
        };
        let (app, shutdown, close, alive) =
            (app.clone(), shutdown.clone(), close.clone(), alive.clone());
        tokio::spawn(async move {
            drive(io, remote, activity, app, &limits, &shutdown, &close).await;
            drop(alive);
        });
    }
    drop(listener);
    drop(alive);
    tracing::info!(
        open = registry.open(),
        grace_secs = limits.shutdown_grace.as_secs(),
        "draining connections"
    );
    if tokio::time::timeout(limits.shutdown_grace, all_closed.recv())
        .await
        .is_err()
    {
        tracing::warn!(
            open = registry.open(),
            "shutdown grace period over: closing the connections still open"
        );
        close.cancel();
        // Each task ends at once when told to close.
        all_closed.recv().await;
    }
}

/// Serves one connection until it ends, its watchdog closes it, or the
/// shutdown deadline does.
async fn drive<S>(
    io: Watched,
    remote: SocketAddr,
    activity: Arc<Activity>,
    app: S,
    limits: &ConnectionLimits,
    shutdown: &CancellationToken,
    close: &CancellationToken,
) where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    let watched = activity.clone();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let in_flight = InFlight::start(&watched);
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(ConnectInfo(remote));
        let app = app.clone();
        async move {
            let response = app.oneshot(request).await?;
            // The request ends with its body: a stream stays in flight.
            Ok::<_, Infallible>(response.map(|body| {
                Body::new(body.map_frame(move |frame| {
                    let _ = &in_flight;
                    frame
                }))
            }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The watchdog times heads (hyper's own timer would also cut idle
    // keep-alive connections at the header timeout).
    builder.header_read_timeout(None);
    let conn = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    let first_check = match activity.next_check(limits, Instant::now()) {
        Ok(due) => due,
        Err(_) => Instant::now(),
    };
    let watchdog = tokio::time::sleep_until(first_check);
    tokio::pin!(watchdog);
    let mut draining = false;
    loop {
        tokio::select! {
            // The connection first: if the runtime was too busy to poll it
            // for a while, bytes waiting in the socket are read (and a
            // request they complete is in flight) before the watchdog
            // judges it.
            biased;
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(%remote, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = shutdown.cancelled(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = close.cancelled() => {
                tracing::debug!(%remote, "connection closed at the shutdown deadline");
                return;
            }
            _ = &mut watchdog => match activity.next_check(limits, Instant::now()) {
                Ok(due) => watchdog.as_mut().reset(due),
                Err(expired) => {
                    tracing::debug!(%remote, ?expired, "connection timed out");
                    return;
                }
            },
        }
    }
}

/// Answers a connection past a cap with 503 and closes it, without waiting:
/// the answer is written only if the socket takes it at once (a fresh
/// socket's send buffer is empty, so it normally does).
fn refuse(tcp: &TcpStream, refusal: Refusal) {
    let body = format!(r#"{{"error":"{}"}}"#, refusal.message());
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tcp.try_write(response.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 3,
            max_connections_per_ip: 2,
            shutdown_grace: Duration::from_secs(10),
        }
    }

    #[test]
    fn caps_per_client_and_in_total_and_gives_slots_back() {
        let registry = Arc::new(Registry {
            counts: Mutex::default(),
            max_total: 3,
            max_per_client: 2,
        });
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let c: IpAddr = "10.0.0.3".parse().unwrap();
        let a1 = registry.admit(a).unwrap();
        let _a2 = registry.admit(a).unwrap();
        assert_eq!(registry.admit(a).err(), Some(Refusal::PerClient));
        let _b1 = registry.admit(b).unwrap();
        assert_eq!(registry.admit(c).err(), Some(Refusal::Total));
        drop(a1);
        assert_eq!(registry.open(), 2);
        let _c1 = registry.admit(c).unwrap();
    }

    #[test]
    fn an_ipv6_client_is_its_64_prefix() {
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let other: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(client_key(one), client_key(other));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(client_key(mapped), "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn the_total_cap_stays_below_the_descriptor_limit() {
        assert_eq!(derived_max_connections(1024), 384);
        assert_eq!(derived_max_connections(1 << 20), DEFAULT_MAX_CONNECTIONS);
        assert_eq!(derived_max_connections(0), 16);
        let config = ServerConfig::default();
        assert_eq!(
            ConnectionLimits::new(&config, Some(1024)).max_connections,
            384
        );
        let set = ServerConfig {
            max_connections: 50,
            ..config
        };
        assert_eq!(ConnectionLimits::new(&set, Some(1024)).max_connections, 50);
    }

    #[test]
    fn the_watchdog_times_heads_and_silence_but_not_requests() {
        let limits = limits();
        let activity = Activity::new();
        let start = activity.accepted;
        // The first head is awaited from the start.
        assert_eq!(
            activity.next_check(&limits, start),
            Ok(start + Duration::from_secs(10))
        );
        assert_eq!(
            activity.next_check(&limits, start + Duration::from_secs(10)),
            Err(Expired::Header)
        );
        activity.request_started();
        let later = start + Duration::from_secs(500);
        assert_eq!(
            activity.next_check(&limits, later),
            Ok(later + limits.idle_timeout)
        );
        activity.request_finished();
        // Idle after the response: only the idle timeout applies, from the
        // response's end (the time is real here, so bound it from after).
        let finished = Instant::now();
        assert!(
            activity
                .next_check(&limits, finished + Duration::from_secs(30))
                .is_ok()
        );
        assert_eq!(
            activity.next_check(&limits, finished + Duration::from_secs(61)),
            Err(Expired::Idle)
        );
        // A byte of the next request starts its header clock.
        activity.on_read();
        let read = Instant::now();
        assert_eq!(
            activity.next_check(&limits, read + Duration::from_secs(11)),
            Err(Expired::Header)
        );
    }
}
