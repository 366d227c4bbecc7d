//! TCP connections for channels, over `wasi:sockets`.
//!
//! The host opens only the `host:port` pairs the operator granted in the
//! plugin's `[permissions] sockets`, checked after DNS; anything else fails
//! with [`NetError::Denied`]. Reads take a timeout, so a channel's
//! `receive(max-wait-ms)` can wait for the platform without holding the
//! host longer than it asked.
//!
//! TLS (`wasi:tls`) runs on the host: [`TcpStream::connect_tls`] for
//! implicit TLS (IRC 6697, IMAPS 993, SMTPS 465) and
//! [`TcpStream::start_tls`] to upgrade a connection after a plain-text
//! STARTTLS exchange. The host checks the certificate against public roots
//! and the operator's extra CAs and that it names the server; a failed
//! check is [`NetError::Tls`] and nothing is sent in the clear.

use wasip2::clocks::monotonic_clock;
use wasip2::io::poll;
use wasip2::io::streams::{InputStream, OutputStream, StreamError};
use wasip2::sockets::network::{
    ErrorCode, IpAddress, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress,
    Network,
};
use wasip2::sockets::tcp::TcpSocket;
use wasip2::sockets::{instance_network, ip_name_lookup, tcp_create_socket};

/// Why a connection failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetError {
    /// The host refused: the address is not among the granted sockets.
    Denied(String),
    /// The name could not be resolved.
    Resolve(String),
    /// The connection could not be made.
    Connect(String),
    /// The peer closed the connection.
    Closed,
    /// Reading or writing failed.
    Io(String),
    /// The connection was not made in time.
    TimedOut,
    /// The TLS handshake failed: an untrusted certificate, one that does
    /// not name the server, or a server that does not speak TLS.
    Tls(String),
}

impl std::fmt::Display for NetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Denied(m) => write!(f, "refused by the host: {m}"),
            Self::Resolve(m) => write!(f, "cannot resolve: {m}"),
            Self::Connect(m) => write!(f, "cannot connect: {m}"),
            Self::Closed => write!(f, "the connection was closed"),
            Self::Io(m) => write!(f, "{m}"),
            Self::TimedOut => write!(f, "timed out"),
            Self::Tls(m) => write!(f, "TLS failed: {m}"),
        }
    }
}

impl std::error::Error for NetError {}

/// The host's `wasi:tls` import.
mod tls_wit {
    wit_bindgen::generate!({
        path: "wit-tls",
        world: "tls",
        features: ["tls"],
        with: {
            "wasi:io/error@0.2.12": wasip2::io::error,
            "wasi:io/poll@0.2.12": wasip2::io::poll,
            "wasi:io/streams@0.2.12": wasip2::io::streams,
            "wasi:tls/types@0.2.0-draft": generate,
        },
    });
}

use tls_wit::wasi::tls::types::{ClientConnection, ClientHandshake};

/// One TCP connection, plain or TLS. Fields drop in order: the streams
/// before the TLS connection and the socket they belong to, as WASI
/// requires.
pub struct TcpStream {
    input: InputStream,
    output: OutputStream,
    _tls: Option<ClientConnection>,
    _socket: TcpSocket,
}

fn code_error(what: &str, code: ErrorCode) -> NetError {
    match code {
        ErrorCode::AccessDenied => NetError::Denied(format!(
            "{what}: not among the channel's granted sockets (permissions.sockets)"
        )),
        other => NetError::Connect(format!("{what}: {other:?}")),
    }
}

impl TcpStream {
    /// Connects to `host:port` (a name or an IP address), trying each
    /// address the name resolves to, each within `timeout_ms`.
    pub fn connect(host: &str, port: u16, timeout_ms: u64) -> Result<Self, NetError> {
        let network = instance_network::instance_network();
        let addresses = match host.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(v4)) => {
                let [a, b, c, d] = v4.octets();
                vec![IpAddress::Ipv4((a, b, c, d))]
            }
            Ok(std::net::IpAddr::V6(v6)) => {
                let s = v6.segments();
                vec![IpAddress::Ipv6((
                    s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7],
                ))]
            }
            Err(_) => resolve(&network, host)?,
        };
        let mut last = NetError::Resolve(format!("{host}: no address"));
        for address in addresses {
            match connect_one(&network, address, port, timeout_ms) {
                Ok(stream) => return Ok(stream),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Connects to `host:port` and runs a TLS handshake for `server_name`
    /// (usually `host`); connecting and the handshake each take at most
    /// `timeout_ms`.
    pub fn connect_tls(
        host: &str,
        port: u16,
        server_name: &str,
        timeout_ms: u64,
    ) -> Result<Self, NetError> {
        Self::connect(host, port, timeout_ms)?.start_tls(server_name, timeout_ms)
    }

    /// Upgrades this plain connection to TLS for `server_name` (STARTTLS:
    /// call it once the server has agreed, with nothing left unread). The
    /// handshake takes at most `timeout_ms`; on failure the connection is
    /// gone, never left in plain text.
    pub fn start_tls(self, server_name: &str, timeout_ms: u64) -> Result<Self, NetError> {
        let Self {
            input,
            output,
            _tls,
            _socket,
        } = self;
        if _tls.is_some() {
            return Err(NetError::Tls("the connection is already TLS".into()));
        }
        let handshake = ClientHandshake::new(server_name, input, output);
        let pending = ClientHandshake::finish(handshake);
        let timer = monotonic_clock::subscribe_duration(timeout_ms.saturating_mul(1_000_000));
        loop {
            match pending.get() {
                Some(Ok(Ok((connection, input, output)))) => {
                    return Ok(Self {
                        input,
                        output,
                        _tls: Some(connection),
                        _socket,
                    });
                }
                Some(Ok(Err(e))) => return Err(NetError::Tls(io_message(&e))),
                Some(Err(())) => return Err(NetError::Tls("handshake result taken".into())),
                None => {
                    let ready = pending.subscribe();
                    let which = poll::poll(&[&ready, &timer]);
                    if !which.contains(&0) {
                        return Err(NetError::Tls(format!(
                            "no handshake with {server_name} within {timeout_ms} ms"
                        )));
                    }
                }
            }
        }
    }

    /// Whether the connection runs over TLS.
    pub fn is_tls(&self) -> bool {
        self._tls.is_some()
    }

    /// Reads what arrives within `timeout_ms` (at most `max` bytes); an
    /// empty result means nothing came in time.
    pub fn read_timeout(&mut self, max: usize, timeout_ms: u64) -> Result<Vec<u8>, NetError> {
        let timer = monotonic_clock::subscribe_duration(timeout_ms.saturating_mul(1_000_000));
        loop {
            match self.input.read(max as u64) {
                Ok(bytes) if !bytes.is_empty() => return Ok(bytes),
                Ok(_) => {
                    let ready = self.input.subscribe();
                    let which = poll::poll(&[&ready, &timer]);
                    if !which.contains(&0) {
                        return Ok(Vec::new());
                    }
                }
                Err(StreamError::Closed) => return Err(NetError::Closed),
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(NetError::Io(io_message(&e)));
                }
            }
        }
    }

    /// Writes all of `data` and flushes it.
    pub fn write_all(&mut self, data: &[u8]) -> Result<(), NetError> {
        // `blocking-write-and-flush` takes at most 4096 bytes at a time.
        for chunk in data.chunks(4096) {
            self.output
                .blocking_write_and_flush(chunk)
                .map_err(|e| match e {
                    StreamError::Closed => NetError::Closed,
                    StreamError::LastOperationFailed(e) => NetError::Io(io_message(&e)),
                })?;
        }
        Ok(())
    }
}

/// The first line of a host I/O error: the host's debug text can carry a
/// backtrace after it, which is no message for a channel's status.
fn io_message(e: &wasip2::io::error::Error) -> String {
    let text = e.to_debug_string();
    text.lines().next().unwrap_or_default().to_string()
}

fn resolve(network: &Network, host: &str) -> Result<Vec<IpAddress>, NetError> {
    let stream = ip_name_lookup::resolve_addresses(network, host).map_err(|e| match e {
        ErrorCode::AccessDenied => NetError::Denied(format!(
            "{host}: name lookups are allowed only when a host name is granted"
        )),
        other => NetError::Resolve(format!("{host}: {other:?}")),
    })?;
    let mut found = Vec::new();
    loop {
        match stream.resolve_next_address() {
            Ok(Some(address)) => found.push(address),
            Ok(None) => return Ok(found),
            Err(ErrorCode::WouldBlock) => stream.subscribe().block(),
            Err(e) => return Err(NetError::Resolve(format!("{host}: {e:?}"))),
        }
    }
}

fn connect_one(
    network: &Network,
    address: IpAddress,
    port: u16,
    timeout_ms: u64,
) -> Result<TcpStream, NetError> {
    let (family, remote) = match address {
        IpAddress::Ipv4(address) => (
            IpAddressFamily::Ipv4,
            IpSocketAddress::Ipv4(Ipv4SocketAddress { port, address }),
        ),
        IpAddress::Ipv6(address) => (
            IpAddressFamily::Ipv6,
            IpSocketAddress::Ipv6(Ipv6SocketAddress {
                port,
                flow_info: 0,
                address,
                scope_id: 0,
            }),
        ),
    };
    let what = format!("{remote:?}");
    let socket = tcp_create_socket::create_tcp_socket(family).map_err(|e| code_error(&what, e))?;
    socket
        .start_connect(network, remote)
        .map_err(|e| code_error(&what, e))?;
    let timer = monotonic_clock::subscribe_duration(timeout_ms.saturating_mul(1_000_000));
    let streams = loop {
        match socket.finish_connect() {
            Ok(streams) => break streams,
            Err(ErrorCode::WouldBlock) => {
                let ready = socket.subscribe();
                let which = poll::poll(&[&ready, &timer]);
                if !which.contains(&0) {
                    return Err(NetError::TimedOut);
                }
            }
            Err(e) => return Err(code_error(&what, e)),
        }
    };
    let (input, output) = streams;
    Ok(TcpStream {
        input,
        output,
        _tls: None,
        _socket: socket,
    })
}
