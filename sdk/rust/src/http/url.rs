//! Just enough URL handling for fetching pages over `wasi:http`: parsing an
//! absolute `http`/`https` URL into the parts an outgoing request needs, and
//! resolving the relative links found in a page.

use std::fmt;

/// An absolute `http` or `https` URL split the way `wasi:http` wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// `true` for `https`.
    pub https: bool,
    /// `host` or `host:port` (IPv6 hosts keep their brackets).
    pub authority: String,
    /// The path and query, always starting with `/`; the fragment is dropped
    /// because it is never sent.
    pub path_and_query: String,
}

impl HttpUrl {
    /// The scheme as written in a URL.
    pub fn scheme(&self) -> &'static str {
        if self.https { "https" } else { "http" }
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}{}",
            self.scheme(),
            self.authority,
            self.path_and_query
        )
    }
}

/// Why a URL cannot be fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlError {
    /// Only `http` and `https` are fetched.
    UnsupportedScheme(String),
    /// The URL has no `scheme://` prefix.
    NotAbsolute,
    /// The URL has no host.
    MissingHost,
    /// Credentials in URLs leak into logs and are refused.
    Credentials,
    /// Spaces or control characters must be percent-encoded.
    InvalidCharacter(char),
    /// The port is not a number from 1 to 65535.
    InvalidPort(String),
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnsupportedScheme(s) => {
                write!(f, "unsupported scheme `{s}`: only http and https")
            }
            Self::NotAbsolute => write!(f, "the URL must be absolute, like https://example.com/"),
            Self::MissingHost => write!(f, "the URL has no host"),
            Self::Credentials => write!(f, "credentials in the URL (user@host) are not allowed"),
            Self::InvalidCharacter(c) => {
                write!(f, "the URL contains {c:?}, which must be percent-encoded")
            }
            Self::InvalidPort(p) => write!(f, "invalid port `{p}`"),
        }
    }
}

impl std::error::Error for UrlError {}

/// Parses an absolute `http` or `https` URL.
pub fn parse(url: &str) -> Result<HttpUrl, UrlError> {
    let url = url.trim();
    if let Some(c) = url.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(UrlError::InvalidCharacter(c));
    }
    let (scheme, rest) = url.split_once("://").ok_or(UrlError::NotAbsolute)?;
    let https = match scheme.to_ascii_lowercase().as_str() {
        "https" => true,
        "http" => false,
        _ => return Err(UrlError::UnsupportedScheme(scheme.to_string())),
    };
    let rest = rest.split('#').next().unwrap_or_default();
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    if authority.contains('@') {
        return Err(UrlError::Credentials);
    }
    let host_end = if authority.starts_with('[') {
        authority.find(']').map_or(authority.len(), |i| i + 1)
    } else {
        authority.find(':').unwrap_or(authority.len())
    };
    if host_end == 0 || authority[..host_end] == *"[]" {
        return Err(UrlError::MissingHost);
    }
    if let Some(port) = authority[host_end..].strip_prefix(':') {
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => return Err(UrlError::InvalidPort(port.to_string())),
        }
    }
    let mut path_and_query = rest[authority_end..].to_string();
    if !path_and_query.starts_with('/') {
        path_and_query.insert(0, '/');
    }
    Ok(HttpUrl {
        https,
        authority: authority.to_ascii_lowercase(),
        path_and_query,
    })
}

/// Resolves `href` (as found in a page) against the page's URL. When the
/// base is not a usable absolute URL the link is returned as written.
pub fn resolve(base: &str, href: &str) -> String {
    if has_scheme(href) {
        return href.to_string();
    }
    let Some((scheme, after_scheme)) = base.split_once("://") else {
        return href.to_string();
    };
    if let Some(rest) = href.strip_prefix("//") {
        return format!("{scheme}://{rest}");
    }
    let authority_end = after_scheme
        .find(['/', '?', '#'])
        .unwrap_or(after_scheme.len());
    let origin = format!("{scheme}://{}", &after_scheme[..authority_end]);
    let base_path_query = after_scheme[authority_end..]
        .split('#')
        .next()
        .unwrap_or_default();
    let base_path = base_path_query.split('?').next().unwrap_or_default();
    if href.is_empty() {
        return format!("{origin}{base_path_query}");
    }
    if href.starts_with('#') {
        return format!("{origin}{base_path_query}{href}");
    }
    if href.starts_with('?') {
        return format!("{origin}{base_path}{href}");
    }
    let joined = if href.starts_with('/') {
        href.to_string()
    } else {
        let dir_end = base_path.rfind('/').map_or(0, |i| i + 1);
        format!("/{}{href}", base_path[..dir_end].trim_start_matches('/'))
    };
    let suffix_start = joined.find(['?', '#']).unwrap_or(joined.len());
    let (path, suffix) = joined.split_at(suffix_start);
    format!("{origin}{}{suffix}", remove_dot_segments(path))
}

/// Does `s` start with a URL scheme (`mailto:`, `https:` ...)?
fn has_scheme(s: &str) -> bool {
    let Some(colon) = s.find(':') else {
        return false;
    };
    let scheme = &s[..colon];
    scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// Applies `.` and `..` segments of an absolute path (RFC 3986, 5.2.4).
fn remove_dot_segments(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let parts: Vec<&str> = path.split('/').skip(1).collect();
    let last = parts.len().saturating_sub(1);
    for (i, part) in parts.iter().enumerate() {
        match *part {
            "." => {
                if i == last {
                    segments.push("");
                }
            }
            ".." => {
                segments.pop();
                if i == last {
                    segments.push("");
                }
            }
            other => segments.push(other),
        }
    }
    format!("/{}", segments.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_http_urls() {
        let url = parse("https://Example.com:8443/a/b?q=1#frag").unwrap();
        assert!(url.https);
        assert_eq!(url.authority, "example.com:8443");
        assert_eq!(url.path_and_query, "/a/b?q=1");
        assert_eq!(url.to_string(), "https://example.com:8443/a/b?q=1");

        let url = parse("http://example.com?x").unwrap();
        assert_eq!(url.path_and_query, "/?x");
        let url = parse("http://[::1]:80").unwrap();
        assert_eq!(url.authority, "[::1]:80");
    }

    #[test]
    fn refuses_what_cannot_be_fetched() {
        assert_eq!(
            parse("ftp://example.com/"),
            Err(UrlError::UnsupportedScheme("ftp".into()))
        );
        assert_eq!(parse("example.com"), Err(UrlError::NotAbsolute));
        assert_eq!(parse("https:///path"), Err(UrlError::MissingHost));
        assert_eq!(
            parse("https://u:p@example.com/"),
            Err(UrlError::Credentials)
        );
        assert_eq!(
            parse("https://example.com/a b"),
            Err(UrlError::InvalidCharacter(' '))
        );
        assert_eq!(
            parse("https://example.com:99999/"),
            Err(UrlError::InvalidPort("99999".into()))
        );
    }

    #[test]
    fn resolves_relative_links() {
        let base = "https://example.com/docs/guide/page.html?x=1#top";
        assert_eq!(
            resolve(base, "other.html"),
            "https://example.com/docs/guide/other.html"
        );
        assert_eq!(resolve(base, "../api/"), "https://example.com/docs/api/");
        assert_eq!(resolve(base, "../../../up"), "https://example.com/up");
        assert_eq!(resolve(base, "/root?a=b"), "https://example.com/root?a=b");
        assert_eq!(
            resolve(base, "?y=2"),
            "https://example.com/docs/guide/page.html?y=2"
        );
        assert_eq!(
            resolve(base, "#s"),
            "https://example.com/docs/guide/page.html?x=1#s"
        );
        assert_eq!(resolve(base, "//cdn.net/x"), "https://cdn.net/x");
        assert_eq!(resolve(base, "mailto:a@b.c"), "mailto:a@b.c");
        assert_eq!(resolve(base, "./"), "https://example.com/docs/guide/");
        assert_eq!(resolve("https://example.com", "a"), "https://example.com/a");
    }
}
