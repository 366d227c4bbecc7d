//! Enforcing granted permissions: network hosts (after DNS resolution) and
//! memory keys. Filesystem access is enforced structurally, by preopening
//! only the agent's workspace (see `host.rs`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// One granted network host.
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
    /// `example.com` or `10.0.0.5`: exactly this host, whatever it resolves to.
    Exact(String),
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
            None if host.parse::<IpAddr>().is_ok() || valid_hostname(&host) => {
                HostPattern::Exact(host)
            }
            None => return Err(invalid()),
        };
        Ok(Self {
            host: pattern,
            port,
        })
    }

    /// Whether every host this rule `other` allows is also allowed by `self`:
    /// an operator may grant a narrower rule than the plugin requested.
    pub fn covers(&self, other: &HostRule) -> bool {
        if self.port.is_some() && self.port != other.port {
            return false;
        }
        match (&self.host, &other.host) {
            (HostPattern::Any, _) => true,
            (HostPattern::Suffix(d), HostPattern::Suffix(o)) => o == d || is_subdomain(o, d),
            (HostPattern::Suffix(d), HostPattern::Exact(h)) => is_subdomain(h, d),
            (HostPattern::Exact(e), HostPattern::Exact(h)) => e == h,
            _ => false,
        }
    }

    fn matches(&self, host: &str, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        match &self.host {
            HostPattern::Any => true,
            HostPattern::Suffix(domain) => is_subdomain(host, domain),
            HostPattern::Exact(exact) => exact == host,
        }
    }

    /// Only a rule naming the host itself lets it reach a private address:
    /// a wildcard never does.
    fn allows_private(&self) -> bool {
        matches!(self.host, HostPattern::Exact(_))
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

/// Why an address is not public, or `None` when it is.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return non_public_v4(v4);
            }
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                Some("cloud metadata")
            } else if first & 0xfe00 == 0xfc00 {
                Some("private (unique local)")
            } else if first & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if first & 0xff00 == 0xff00 {
                Some("multicast")
            } else if v6.segments()[..6] == [0, 0, 0, 0, 0, 0] {
                // IPv4-compatible (deprecated): judge the embedded address.
                let o = v6.octets();
                non_public_v4(Ipv4Addr::new(o[12], o[13], o[14], o[15]))
            } else if v6.segments()[..2] == [0x64, 0xff9b] {
                // NAT64: judge the embedded IPv4 address.
                let o = v6.octets();
                non_public_v4(Ipv4Addr::new(o[12], o[13], o[14], o[15]))
            } else {
                None
            }
        }
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
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
    } else if ip.is_broadcast() || ip.is_multicast() || a >= 240 {
        Some("multicast or reserved")
    } else if a == 198 && (b & 0xfe) == 18 {
        Some("benchmarking")
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

    /// Resolves `host` and returns the addresses the plugin may connect to,
    /// or why it may not. Every resolved address is checked, so a name that
    /// resolves to a private address is refused even if it also resolves to
    /// a public one.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let matching: Vec<&HostRule> = self
            .rules
            .iter()
            .filter(|r| r.matches(host, port))
            .collect();
        if matching.is_empty() {
            return Err(if self.rules.is_empty() {
                format!("{host}:{port}: this plugin was granted no network access")
            } else {
                format!("{host}:{port} is not among the plugin's granted network hosts")
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
        let explicit = matching.iter().any(|r| r.allows_private());
        for addr in &addrs {
            if let Some(reason) = non_public(addr.ip())
                && !explicit
            {
                return Err(format!(
                    "{host} resolves to {}, a {reason} address; only a grant naming this host \
                     exactly (not a wildcard) allows that",
                    addr.ip()
                ));
            }
        }
        Ok(addrs)
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
        assert!(rule.matches("api.example.com", 443));
        assert!(!rule.matches("example.com", 443));
        assert!(!rule.matches("badexample.com", 443));
        let rule = HostRule::parse("example.com:8080").unwrap();
        assert!(rule.matches("example.com", 8080));
        assert!(!rule.matches("example.com", 80));
    }

    #[test]
    fn classifies_addresses() {
        for (ip, public) in [
            ("8.8.8.8", true),
            ("127.0.0.1", false),
            ("10.1.2.3", false),
            ("172.16.0.1", false),
            ("192.168.1.1", false),
            ("169.254.169.254", false),
            ("100.64.0.1", false),
            ("0.0.0.0", false),
            ("::1", false),
            ("fd00:ec2::254", false),
            ("fe80::1", false),
            ("::ffff:127.0.0.1", false),
            ("::ffff:8.8.8.8", true),
            ("64:ff9b::a00:1", false),
            ("2606:4700::1111", true),
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(non_public(ip).is_none(), public, "{ip}");
        }
    }

    #[tokio::test]
    async fn refuses_private_addresses_unless_named() {
        let wildcard = NetworkPolicy::new(&["*".into()]);
        let err = wildcard.resolve("127.0.0.1", 80).await.unwrap_err();
        assert!(err.contains("loopback"), "{err}");
        let err = wildcard.resolve("localhost", 80).await.unwrap_err();
        assert!(err.contains("loopback"), "{err}");
        let err = NetworkPolicy::new(&["169.254.169.254".into(), "*".into()])
            .resolve("169.254.169.254", 80)
            .await;
        assert!(
            err.is_ok(),
            "an exact grant allows even metadata: the operator asked for it"
        );
        let named = NetworkPolicy::new(&["127.0.0.1:8080".into()]);
        assert!(named.resolve("127.0.0.1", 8080).await.is_ok());
        assert!(
            named
                .resolve("127.0.0.1", 8081)
                .await
                .unwrap_err()
                .contains("not among")
        );
        let none = NetworkPolicy::new(&[]);
        assert!(
            none.resolve("example.com", 443)
                .await
                .unwrap_err()
                .contains("no network access")
        );
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
        assert!(!rule("example.com:443").covers(&rule("example.com")));
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
}
