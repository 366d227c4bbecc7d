//! Enforcing granted permissions: network hosts (after DNS resolution) and
//! memory keys. Filesystem access is enforced structurally, by preopening
//! only the agent's workspace (see `host.rs`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// One granted network host.
///
/// A rule without a port allows only the scheme's default port (80 for
/// `http`, 443 for `https`). Only a rule naming an IP address *and* a port
/// reaches a non-public address (loopback, private, link-local, CGNAT,
/// metadata, unspecified, multicast...), and only that address and port:
/// a host name never does, whatever it resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRule {
    host: HostPattern,
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// `*`: any host that resolves to public addresses.
    Any,
    /// `*.example.com`: subdomains of a domain, public addresses only.
    Suffix(String),
    /// `example.com`: exactly this host name, public addresses only.
    Name(String),
    /// `10.0.0.5` or `[::1]`: exactly this address (canonical form: an
    /// IPv4-mapped IPv6 address is its IPv4 address).
    Ip(IpAddr),
}

impl HostRule {
    /// Parses `host`, `host:port`, `[v6]:port`, `*.domain` or `*`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let invalid = || {
            format!(
                "network host {text:?}: expected a host name, `host:port`, `*.domain` or `*` \
                 (no scheme or path)"
            )
        };
        if text.is_empty()
            || text.contains("://")
            || text.contains('/')
            || text.contains(char::is_whitespace)
        {
            return Err(invalid());
        }
        if text == "*" {
            return Ok(Self {
                host: HostPattern::Any,
                port: None,
            });
        }
        let (host, port) = split_host_port(text).ok_or_else(invalid)?;
        let host = host.to_ascii_lowercase();
        let pattern = match host.strip_prefix("*.") {
            Some(domain) if valid_hostname(domain) => HostPattern::Suffix(domain.to_string()),
            Some(_) => return Err(invalid()),
            None => match host.parse::<IpAddr>() {
                Ok(ip) => HostPattern::Ip(ip.to_canonical()),
                Err(_) if valid_hostname(&host) => HostPattern::Name(host),
                Err(_) => return Err(invalid()),
            },
        };
        Ok(Self {
            host: pattern,
            port,
        })
    }

    /// Whether every host this rule `other` allows is also allowed by `self`:
    /// an operator may grant a narrower rule than the plugin requested.
    ///
    /// A request of `*` covers every grant, any port included: the plugin
    /// asks for whatever the operator chooses to open (for example one
    /// local service's `127.0.0.1:8080`).
    pub fn covers(&self, other: &HostRule) -> bool {
        if self.host == HostPattern::Any && self.port.is_none() {
            return true;
        }
        let ports = match (self.port, other.port) {
            (Some(mine), theirs) => theirs == Some(mine),
            // No port means the default ports: a grant naming one of them
            // is narrower, a grant naming another port is wider.
            (None, theirs) => theirs.is_none_or(|p| p == 80 || p == 443),
        };
        ports
            && match (&self.host, &other.host) {
                (HostPattern::Any, _) => true,
                (HostPattern::Suffix(d), HostPattern::Suffix(o)) => o == d || is_subdomain(o, d),
                (HostPattern::Suffix(d), HostPattern::Name(h)) => is_subdomain(h, d),
                (HostPattern::Name(e), HostPattern::Name(h)) => e == h,
                (HostPattern::Ip(a), HostPattern::Ip(b)) => a == b,
                _ => false,
            }
    }

    /// Whether a request for `host` (lowercase, no brackets) on `port`
    /// falls under this rule; `default_port` is the scheme's.
    fn matches(&self, host: &str, port: u16, default_port: u16) -> bool {
        if self.port.unwrap_or(default_port) != port {
            return false;
        }
        match &self.host {
            HostPattern::Any => true,
            HostPattern::Suffix(domain) => is_subdomain(host, domain),
            HostPattern::Name(name) => name == host,
            HostPattern::Ip(ip) => host
                .parse::<IpAddr>()
                .is_ok_and(|h| h.to_canonical() == *ip),
        }
    }

    /// Whether this rule opens exactly `addr`, a non-public address: it
    /// names that IP and that port literally.
    fn opens(&self, addr: SocketAddr) -> bool {
        matches!(self.host, HostPattern::Ip(ip) if ip == addr.ip().to_canonical())
            && self.port == Some(addr.port())
    }
}

/// Whether `host` is a subdomain of `domain` (not `domain` itself).
fn is_subdomain(host: &str, domain: &str) -> bool {
    host.len() > domain.len() + 1
        && host.ends_with(domain)
        && host.as_bytes()[host.len() - domain.len() - 1] == b'.'
}

/// Whether a granted memory pattern is within a requested one.
pub fn memory_covers(requested: &str, granted: &str) -> bool {
    match requested.strip_suffix('*') {
        Some(prefix) => granted.starts_with(prefix),
        None => requested == granted,
    }
}

/// Splits `host[:port]`, with IPv6 literals in brackets.
fn split_host_port(text: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        host.parse::<Ipv6Addr>().ok()?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?.parse().ok()?))),
        };
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Some((host, Some(port.parse().ok()?))),
        // A bare IPv6 address.
        Some(_) => text.parse::<Ipv6Addr>().ok().map(|_| (text, None)),
        None => Some((text, None)),
    }
}

fn valid_hostname(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Why an address is not public, or `None` when it is. IPv4 addresses
/// embedded in IPv6 ones (mapped, compatible, NAT64, 6to4) are judged as
/// the IPv4 address they carry.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return non_public_v4(v4);
            }
            let s = v6.segments();
            let o = v6.octets();
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                Some("cloud metadata")
            } else if s[0] & 0xfe00 == 0xfc00 {
                Some("private (unique local)")
            } else if s[0] & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if s[0] & 0xffc0 == 0xfec0 {
                Some("site-local (deprecated private)")
            } else if s[0] & 0xff00 == 0xff00 {
                Some("multicast")
            } else if s[..6] == [0, 0, 0, 0, 0, 0] {
                // IPv4-compatible (deprecated): judge the embedded address.
                non_public_v4(Ipv4Addr::new(o[12], o[13], o[14], o[15]))
            } else if s[..2] == [0x64, 0xff9b] {
                // NAT64: judge the embedded IPv4 address.
                non_public_v4(Ipv4Addr::new(o[12], o[13], o[14], o[15]))
            } else if s[0] == 0x2002 {
                // 6to4: the IPv4 address follows the prefix.
                non_public_v4(Ipv4Addr::new(o[2], o[3], o[4], o[5]))
            } else if s[..2] == [0x2001, 0] {
                Some("Teredo tunnel")
            } else if s[..2] == [0x2001, 0xdb8] {
                Some("documentation")
            } else if s[..4] == [0x100, 0, 0, 0] {
                Some("discard-only")
            } else {
                None
            }
        }
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip == Ipv4Addr::new(169, 254, 169, 254) || ip == Ipv4Addr::new(100, 100, 100, 200) {
        Some("cloud metadata")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if a == 100 && (b & 0xc0) == 64 {
        Some("shared (carrier-grade NAT)")
    } else if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if ip.is_broadcast() {
        Some("broadcast")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if a >= 240 {
        Some("reserved")
    } else if a == 198 && (b & 0xfe) == 18 {
        Some("benchmarking")
    } else if (a, b, c) == (192, 0, 0) {
        Some("IETF protocol assignment")
    } else if matches!((a, b, c), (192, 0, 2) | (198, 51, 100) | (203, 0, 113)) {
        Some("documentation")
    } else {
        None
    }
}

/// The network hosts one plugin was granted.
#[derive(Debug, Clone, Default)]
pub struct NetworkPolicy {
    rules: Vec<HostRule>,
}

impl NetworkPolicy {
    /// Builds the policy from granted host patterns (already validated).
    pub fn new(granted: &[String]) -> Self {
        Self {
            rules: granted
                .iter()
                .filter_map(|g| HostRule::parse(g).ok())
                .collect(),
        }
    }

    /// Whether any host is granted at all.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Resolves `host` and returns the addresses the plugin may connect to
    /// on `port`, or why it may not. `https` chooses the default port a
    /// portless grant allows. Every resolved address is checked, so a name
    /// that resolves to a non-public address is refused even if it also
    /// resolves to a public one; `denied` (the embedder's own addresses,
    /// such as the daemon's listeners) is refused whatever was granted.
    pub async fn resolve(
        &self,
        host: &str,
        port: u16,
        https: bool,
        denied: &[SocketAddr],
    ) -> Result<Vec<SocketAddr>, String> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let default_port = if https { 443 } else { 80 };
        let matching: Vec<&HostRule> = self
            .rules
            .iter()
            .filter(|r| r.matches(host, port, default_port))
            .collect();
        if matching.is_empty() {
            // Name the real obstacle when the target is plainly not public:
            // a literal IP of a private range, or a `localhost` name
            // (RFC 6761; known without asking DNS, which an unmatched name
            // must never reach: a lookup alone can leak data).
            let local = match host.parse::<IpAddr>() {
                Ok(ip) => non_public(ip.to_canonical()),
                Err(_) if host == "localhost" || host.ends_with(".localhost") => Some("loopback"),
                Err(_) => None,
            };
            if let Some(reason) = local.filter(|_| !self.rules.is_empty()) {
                return Err(format!(
                    "{host}:{port} is not among the plugin's granted network hosts, and it is \
                     a {reason} address: only a grant naming its IP address and port literally \
                     (for example \"127.0.0.1:{port}\") allows that"
                ));
            }
            return Err(if self.rules.is_empty() {
                format!("{host}:{port}: this plugin was granted no network access")
            } else {
                format!(
                    "{host}:{port} is not among the plugin's granted network hosts (a grant \
                     without a port allows only port {default_port} for this scheme)"
                )
            });
        }
        let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| format!("{host}: DNS lookup failed: {e}"))?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(format!("{host}: DNS lookup returned no address"));
        }
        for addr in &addrs {
            check_address(*addr, &matching, denied).map_err(|reason| {
                if host.parse::<IpAddr>().is_ok() {
                    reason
                } else {
                    format!("{host} resolves to {reason}")
                }
            })?;
        }
        Ok(addrs)
    }
}

/// Whether the plugin may connect to `addr`, given the rules that matched
/// the request: the embedder's denied addresses never, a non-public address
/// only when one of the rules names it (IP and port) literally.
fn check_address(
    addr: SocketAddr,
    rules: &[&HostRule],
    denied: &[SocketAddr],
) -> Result<(), String> {
    let ip = addr.ip().to_canonical();
    if denied.iter().any(|d| {
        d.port() == addr.port() && (d.ip().is_unspecified() || d.ip().to_canonical() == ip)
    }) {
        return Err(format!(
            "{addr}, an address of the daemon itself, which no grant opens"
        ));
    }
    match non_public(ip) {
        Some(reason) if !rules.iter().any(|r| r.opens(addr)) => Err(format!(
            "{addr}, a {reason} address; only a grant naming this IP address and port \
             literally (for example \"{}\") allows that",
            SocketAddr::new(ip, addr.port())
        )),
        _ => Ok(()),
    }
}

/// Whether `key` is covered by the granted memory patterns (exact keys, or
/// prefixes ending in `*`).
pub fn memory_allowed(granted: &[String], key: &str) -> bool {
    granted.iter().any(|g| match g.strip_suffix('*') {
        Some(prefix) => key.starts_with(prefix),
        None => g == key,
    })
}

/// The TCP connections one plugin was granted (`[permissions] sockets`):
/// `host:port` or `ip:port` pairs, nothing wider. The guest resolves names
/// through `wasi:sockets/ip-name-lookup` (linked only when a name is
/// granted) and connects to an address; the host allows the connection
/// when the address is one the granted name resolves to now, on the
/// granted port, under the same address rules as HTTP: a non-public
/// address only through a grant naming that IP and port literally, the
/// daemon's own addresses never.
#[derive(Debug, Clone, Default)]
pub struct SocketPolicy {
    rules: Vec<HostRule>,
}

impl SocketPolicy {
    /// Parses one socket grant: `host:port`, `ip:port` or `[v6]:port`.
    /// Wildcards and portless hosts are refused: a socket reaches one
    /// service, named by the operator.
    pub fn parse_grant(text: &str) -> Result<HostRule, String> {
        let rule = HostRule::parse(text)?;
        match (&rule.host, rule.port) {
            (HostPattern::Name(_) | HostPattern::Ip(_), Some(_)) => Ok(rule),
            _ => Err(format!(
                "socket {text:?}: expected `host:port` or `ip:port` (no wildcard, a port required)"
            )),
        }
    }

    /// Builds the policy from granted pairs (already validated).
    pub fn new(granted: &[String]) -> Self {
        Self {
            rules: granted
                .iter()
                .filter_map(|g| Self::parse_grant(g).ok())
                .collect(),
        }
    }

    /// Whether any connection is granted at all.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether a host name is granted, so the guest needs DNS lookups.
    pub fn needs_name_lookup(&self) -> bool {
        self.rules
            .iter()
            .any(|r| matches!(r.host, HostPattern::Name(_)))
    }

    /// Whether the plugin may open a TCP connection to `addr`, or why not.
    pub async fn allows(&self, addr: SocketAddr, denied: &[SocketAddr]) -> Result<(), String> {
        let ip = addr.ip().to_canonical();
        for rule in self.rules.iter().filter(|r| r.port == Some(addr.port())) {
            let names_it = match &rule.host {
                HostPattern::Ip(granted) => *granted == ip,
                HostPattern::Name(name) => tokio::net::lookup_host((name.as_str(), addr.port()))
                    .await
                    .map(|mut found| found.any(|a| a.ip().to_canonical() == ip))
                    .unwrap_or(false),
                _ => false,
            };
            if names_it {
                return check_address(addr, &[rule], denied);
            }
        }
        Err(if self.rules.is_empty() {
            format!("{addr}: this plugin was granted no sockets")
        } else {
            format!("{addr} is not an address of the plugin's granted sockets")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rules() {
        assert!(HostRule::parse("example.com").is_ok());
        assert!(HostRule::parse("example.com:8443").is_ok());
        assert!(HostRule::parse("*.example.com").is_ok());
        assert!(HostRule::parse("127.0.0.1:9000").is_ok());
        assert!(HostRule::parse("[::1]:9000").is_ok());
        assert!(HostRule::parse("::1").is_ok());
        for bad in [
            "",
            "http://example.com",
            "example.com/path",
            "*.",
            "a b",
            "ex_ample.com",
            "host:99999",
            "**.x",
        ] {
            assert!(HostRule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matching() {
        let rule = HostRule::parse("*.example.com").unwrap();
        assert!(rule.matches("api.example.com", 443, 443));
        assert!(!rule.matches("example.com", 443, 443));
        assert!(!rule.matches("badexample.com", 443, 443));
        let rule = HostRule::parse("example.com:8080").unwrap();
        assert!(rule.matches("example.com", 8080, 80));
        assert!(!rule.matches("example.com", 80, 80));
    }

    #[test]
    fn a_grant_without_a_port_means_the_default_port_of_the_scheme() {
        for (grant, host) in [
            ("example.com", "example.com"),
            ("*.example.com", "api.example.com"),
            ("*", "api.example.com"),
        ] {
            let rule = HostRule::parse(grant).unwrap();
            assert!(rule.matches(host, 80, 80), "{grant}: http on 80");
            assert!(rule.matches(host, 443, 443), "{grant}: https on 443");
            assert!(!rule.matches(host, 443, 80), "{grant}: http on 443");
            assert!(!rule.matches(host, 80, 443), "{grant}: https on 80");
            for port in [22, 4545, 6379, 8080] {
                assert!(!rule.matches(host, port, 80), "{grant}: port {port}");
                assert!(!rule.matches(host, port, 443), "{grant}: port {port}");
            }
        }
    }

    /// Every class of non-public address, IPv4 and IPv6 (and IPv4 inside
    /// IPv6), with the reason the policy gives.
    #[test]
    fn classifies_addresses() {
        for (ip, class) in [
            ("127.0.0.1", Some("loopback")),
            ("127.255.0.9", Some("loopback")),
            ("::1", Some("loopback")),
            ("::ffff:127.0.0.1", Some("loopback")),
            ("::127.0.0.1", Some("loopback")),
            ("10.1.2.3", Some("private")),
            ("172.16.0.1", Some("private")),
            ("172.31.255.255", Some("private")),
            ("192.168.1.1", Some("private")),
            ("::ffff:10.0.0.1", Some("private")),
            ("fc00::1", Some("private (unique local)")),
            ("fd12:3456::1", Some("private (unique local)")),
            ("fec0::1", Some("site-local (deprecated private)")),
            ("169.254.1.1", Some("link-local")),
            ("fe80::1", Some("link-local")),
            ("100.64.0.1", Some("shared (carrier-grade NAT)")),
            ("100.127.255.254", Some("shared (carrier-grade NAT)")),
            ("169.254.169.254", Some("cloud metadata")),
            ("::ffff:169.254.169.254", Some("cloud metadata")),
            ("100.100.100.200", Some("cloud metadata")),
            ("fd00:ec2::254", Some("cloud metadata")),
            ("0.0.0.0", Some("unspecified")),
            ("0.1.2.3", Some("unspecified")),
            ("::", Some("unspecified")),
            ("::ffff:0.0.0.0", Some("unspecified")),
            ("224.0.0.1", Some("multicast")),
            ("239.255.255.250", Some("multicast")),
            ("ff02::1", Some("multicast")),
            ("ff05::1:3", Some("multicast")),
            ("255.255.255.255", Some("broadcast")),
            ("240.0.0.1", Some("reserved")),
            ("198.18.0.1", Some("benchmarking")),
            ("192.0.0.8", Some("IETF protocol assignment")),
            ("192.0.2.1", Some("documentation")),
            ("2001:db8::1", Some("documentation")),
            ("64:ff9b::a00:1", Some("private")),
            ("64:ff9b::7f00:1", Some("loopback")),
            ("2002:7f00:1::", Some("loopback")),
            ("2001:0:4136:e378::1", Some("Teredo tunnel")),
            ("100::1", Some("discard-only")),
            // Public addresses.
            ("8.8.8.8", None),
            ("100.63.255.255", None),
            ("100.128.0.0", None),
            ("172.32.0.1", None),
            ("::ffff:8.8.8.8", None),
            ("64:ff9b::808:808", None),
            ("2002:808:808::", None),
            ("2606:4700::1111", None),
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(non_public(ip), class, "{ip}");
        }
    }

    #[tokio::test]
    async fn non_public_addresses_need_a_literal_ip_and_port() {
        let wildcard = NetworkPolicy::new(&["*".into()]);
        for host in [
            "127.0.0.1",
            "localhost",
            "::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
        ] {
            let err = wildcard.resolve(host, 80, false, &[]).await.unwrap_err();
            assert!(
                err.contains("loopback") || err.contains("unspecified"),
                "{host}: {err}"
            );
        }
        // A host name, even granted exactly with its port, never reaches
        // loopback: DNS could point it anywhere.
        let by_name = NetworkPolicy::new(&["localhost".into(), "localhost:8080".into()]);
        for port in [80, 8080] {
            let err = by_name
                .resolve("localhost", port, false, &[])
                .await
                .unwrap_err();
            assert!(
                err.contains("resolves to") && err.contains("loopback"),
                "{err}"
            );
        }
        // An IP without a port is not enough either.
        let ip_only = NetworkPolicy::new(&["169.254.169.254".into(), "127.0.0.1".into()]);
        for host in ["169.254.169.254", "127.0.0.1"] {
            let err = ip_only.resolve(host, 80, false, &[]).await.unwrap_err();
            assert!(err.contains("literally"), "{host}: {err}");
        }
        // The literal IP and port: that address and port, nothing else.
        let named = NetworkPolicy::new(&["127.0.0.1:8080".into(), "[::1]:9090".into()]);
        assert!(named.resolve("127.0.0.1", 8080, false, &[]).await.is_ok());
        assert!(
            named
                .resolve("::ffff:127.0.0.1", 8080, false, &[])
                .await
                .is_ok()
        );
        assert!(named.resolve("[::1]", 9090, true, &[]).await.is_ok());
        for (host, port) in [("127.0.0.1", 8081), ("127.0.0.2", 8080), ("::1", 8080)] {
            let err = named.resolve(host, port, false, &[]).await.unwrap_err();
            assert!(err.contains("not among"), "{host}:{port}: {err}");
        }
        let none = NetworkPolicy::new(&[]);
        assert!(
            none.resolve("example.com", 443, true, &[])
                .await
                .unwrap_err()
                .contains("no network access")
        );
    }

    #[tokio::test]
    async fn the_embedders_addresses_are_denied_whatever_the_grant() {
        let granted = NetworkPolicy::new(&["127.0.0.1:4545".into(), "127.0.0.1:4546".into()]);
        let daemon: SocketAddr = "127.0.0.1:4545".parse().unwrap();
        let err = granted
            .resolve("127.0.0.1", 4545, false, &[daemon])
            .await
            .unwrap_err();
        assert!(err.contains("the daemon itself"), "{err}");
        assert!(
            granted
                .resolve("127.0.0.1", 4546, false, &[daemon])
                .await
                .is_ok()
        );
        // Listening on every address denies the port on every address.
        let everywhere: SocketAddr = "0.0.0.0:4546".parse().unwrap();
        let err = granted
            .resolve("127.0.0.1", 4546, false, &[everywhere])
            .await
            .unwrap_err();
        assert!(err.contains("the daemon itself"), "{err}");
    }

    #[test]
    fn a_literal_grant_opens_only_its_address_and_port() {
        let rule = HostRule::parse("10.0.0.5:8443").unwrap();
        let ok: SocketAddr = "10.0.0.5:8443".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:10.0.0.5]:8443".parse().unwrap();
        let other_port: SocketAddr = "10.0.0.5:8444".parse().unwrap();
        let other_ip: SocketAddr = "10.0.0.6:8443".parse().unwrap();
        assert!(check_address(ok, &[&rule], &[]).is_ok());
        assert!(check_address(mapped, &[&rule], &[]).is_ok());
        assert!(check_address(other_port, &[&rule], &[]).is_err());
        assert!(check_address(other_ip, &[&rule], &[]).is_err());
        let public: SocketAddr = "8.8.8.8:443".parse().unwrap();
        assert!(check_address(public, &[], &[]).is_ok());
    }

    #[test]
    fn narrower_grants_are_covered() {
        let rule = |t: &str| HostRule::parse(t).unwrap();
        assert!(rule("*").covers(&rule("127.0.0.1:8080")));
        assert!(rule("*.example.com").covers(&rule("api.example.com")));
        assert!(rule("*.example.com").covers(&rule("*.api.example.com")));
        assert!(!rule("*.example.com").covers(&rule("example.com")));
        assert!(!rule("*.example.com").covers(&rule("*")));
        assert!(rule("example.com").covers(&rule("example.com:443")));
        assert!(rule("example.com").covers(&rule("example.com:80")));
        assert!(!rule("example.com").covers(&rule("example.com:8443")));
        assert!(!rule("example.com:443").covers(&rule("example.com")));
        assert!(rule("10.0.0.5:80").covers(&rule("10.0.0.5:80")));
        assert!(!rule("example.com").covers(&rule("10.0.0.5:80")));
        assert!(memory_covers("notes/*", "notes/a"));
        assert!(memory_covers("notes/*", "notes/x/*"));
        assert!(!memory_covers("notes/a", "notes/*"));
    }

    #[test]
    fn memory_patterns() {
        let granted = vec!["notes/*".to_string(), "counter".to_string()];
        assert!(memory_allowed(&granted, "notes/a"));
        assert!(memory_allowed(&granted, "counter"));
        assert!(!memory_allowed(&granted, "counter2"));
        assert!(!memory_allowed(&granted, "secret"));
        assert!(!memory_allowed(&[], "x"));
    }

    #[test]
    fn socket_grants_name_one_service() {
        for ok in ["irc.example.org:6697", "127.0.0.1:6667", "[::1]:6667"] {
            assert!(SocketPolicy::parse_grant(ok).is_ok(), "{ok}");
        }
        for bad in [
            "irc.example.org",
            "*:6667",
            "*.example.org:6697",
            "*",
            "127.0.0.1",
        ] {
            assert!(SocketPolicy::parse_grant(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn sockets_follow_the_address_rules() {
        let lo: SocketAddr = "127.0.0.1:6667".parse().unwrap();
        let literal = SocketPolicy::new(&["127.0.0.1:6667".into()]);
        assert!(literal.allows(lo, &[]).await.is_ok());
        assert!(!literal.needs_name_lookup());
        // Another port of the same address, or the daemon's own address.
        let other: SocketAddr = "127.0.0.1:6668".parse().unwrap();
        assert!(literal.allows(other, &[]).await.is_err());
        let err = literal.allows(lo, &["0.0.0.0:6667".parse().unwrap()]).await;
        assert!(err.unwrap_err().contains("daemon itself"));
        // A name never opens a non-public address, whatever it resolves to.
        let named = SocketPolicy::new(&["localhost:6667".into()]);
        assert!(named.needs_name_lookup());
        let err = named.allows(lo, &[]).await.unwrap_err();
        assert!(err.contains("loopback"), "{err}");
        let none = SocketPolicy::default();
        assert!(
            none.allows(lo, &[])
                .await
                .unwrap_err()
                .contains("no sockets")
        );
    }
}
