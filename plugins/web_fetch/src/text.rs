//! From response bytes to the text an agent reads: media type and charset
//! detection, decoding, HTML conversion and the length cap.

use crate::html::html_to_text;

/// A fetched resource.
pub struct Page<'a> {
    /// The URL that answered (relative links resolve against it).
    pub url: String,
    /// The `Content-Type` header, if any.
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
}

/// The text of a page.
#[derive(Debug, PartialEq, Eq)]
pub struct Rendered {
    pub title: Option<String>,
    pub content: String,
    /// The content was cut at the character limit.
    pub truncated: bool,
}

/// Media types that are never text, whatever their bytes look like.
const BINARY_PREFIXES: &[&str] = &[
    "image/",
    "audio/",
    "video/",
    "font/",
    "application/octet-stream",
    "application/pdf",
    "application/zip",
    "application/gzip",
    "application/x-",
    "application/vnd.",
    "application/wasm",
];

/// Renders `page` as text of at most `max_chars` characters. With `raw` the
/// decoded body is returned as is, HTML included.
pub fn render(page: &Page<'_>, raw: bool, max_chars: usize) -> Result<Rendered, String> {
    let (media_type, charset) = parse_content_type(page.content_type.unwrap_or(""));
    if BINARY_PREFIXES.iter().any(|p| media_type.starts_with(p))
        && !media_type.ends_with("+xml")
        && !media_type.ends_with("+json")
    {
        return Err(format!(
            "{} is {media_type} ({} bytes), not text; web_fetch returns text only",
            page.url,
            page.body.len()
        ));
    }
    if media_type.is_empty() && page.body.iter().take(1024).any(|&b| b == 0) {
        return Err(format!(
            "{} returned binary data ({} bytes); web_fetch returns text only",
            page.url,
            page.body.len()
        ));
    }
    let is_html = match media_type.as_str() {
        "text/html" | "application/xhtml+xml" => true,
        "" => looks_like_html(page.body),
        _ => false,
    };
    let charset = charset.or_else(|| is_html.then(|| meta_charset(page.body)).flatten());
    let text = decode(page.body, charset.as_deref());
    let (title, content) = if is_html && !raw {
        let document = html_to_text(&text, &page.url);
        (document.title, document.text)
    } else {
        (None, text)
    };
    let (content, truncated) = truncate_chars(content, max_chars);
    Ok(Rendered {
        title,
        content,
        truncated,
    })
}

/// Splits a `Content-Type` value into the lower-cased media type and the
/// charset parameter, if any.
fn parse_content_type(value: &str) -> (String, Option<String>) {
    let mut parts = value.split(';');
    let media_type = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let charset = parts.find_map(|p| {
        let (name, value) = p.split_once('=')?;
        (name.trim().eq_ignore_ascii_case("charset"))
            .then(|| value.trim().trim_matches('"').to_ascii_lowercase())
    });
    (media_type, charset)
}

fn looks_like_html(body: &[u8]) -> bool {
    let head = String::from_utf8_lossy(&body[..body.len().min(1024)]).to_ascii_lowercase();
    let head = head.trim_start_matches('\u{feff}').trim_start();
    head.starts_with("<!doctype html") || head.starts_with("<html") || head.contains("<body")
}

/// The charset an HTML document declares in its first kilobyte
/// (`<meta charset="...">` or the http-equiv form).
fn meta_charset(body: &[u8]) -> Option<String> {
    let head = String::from_utf8_lossy(&body[..body.len().min(1024)]).to_ascii_lowercase();
    let start = head.find("charset=")? + "charset=".len();
    let value: String = head[start..]
        .trim_start_matches(['"', '\''])
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        .collect();
    (!value.is_empty()).then_some(value)
}

/// Decodes the body: UTF-8 (the default, invalid bytes replaced), or the
/// single-byte Western charsets that still occur on old pages.
fn decode(body: &[u8], charset: Option<&str>) -> String {
    match charset {
        Some("iso-8859-1" | "latin1" | "latin-1" | "windows-1252" | "cp1252" | "us-ascii") => {
            body.iter().map(|&b| windows_1252(b)).collect()
        }
        _ => {
            let body = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body);
            String::from_utf8_lossy(body).into_owned()
        }
    }
}

/// Windows-1252, which browsers use for ISO-8859-1 too: Latin-1 plus
/// printable characters in 0x80-0x9F.
fn windows_1252(byte: u8) -> char {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž',
        '\u{8f}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}',
        'ž', 'Ÿ',
    ];
    match byte {
        0x80..=0x9f => HIGH[usize::from(byte - 0x80)],
        _ => char::from(byte),
    }
}

/// Cuts `text` to at most `max_chars` characters, preferring to end on a
/// line break near the cut.
fn truncate_chars(text: String, max_chars: usize) -> (String, bool) {
    let Some((cut, _)) = text.char_indices().nth(max_chars) else {
        return (text, false);
    };
    let head = &text[..cut];
    let end = match head.rfind('\n') {
        Some(newline) if newline > cut * 9 / 10 => newline,
        _ => cut,
    };
    (text[..end].to_string(), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page<'a>(content_type: Option<&'a str>, body: &'a [u8]) -> Page<'a> {
        Page {
            url: "https://example.com/a/".into(),
            content_type,
            body,
        }
    }

    #[test]
    fn html_becomes_text_with_title() {
        let body = b"<html><head><title>T</title></head><body><h1>Hi</h1><a href=x>x link</a></body></html>";
        let r = render(&page(Some("text/html; charset=UTF-8"), body), false, 1000).unwrap();
        assert_eq!(r.title.as_deref(), Some("T"));
        assert_eq!(r.content, "# Hi\n\n[x link](https://example.com/a/x)");
        assert!(!r.truncated);
    }

    #[test]
    fn raw_keeps_markup_and_plain_text_is_untouched() {
        let body = b"<p>a</p>";
        let r = render(&page(Some("text/html"), body), true, 1000).unwrap();
        assert_eq!(r.content, "<p>a</p>");
        let r = render(&page(Some("application/json"), b"{\"a\": 1}"), false, 1000).unwrap();
        assert_eq!(r.content, "{\"a\": 1}");
    }

    #[test]
    fn sniffs_html_without_a_content_type() {
        let r = render(&page(None, b"  <!DOCTYPE html><p>x</p>"), false, 100).unwrap();
        assert_eq!(r.content, "x");
    }

    #[test]
    fn refuses_binary() {
        assert!(render(&page(Some("image/png"), b"\x89PNG"), false, 100).is_err());
        assert!(render(&page(None, b"ab\0cd"), false, 100).is_err());
        assert!(render(&page(Some("application/atom+xml"), b"<feed/>"), false, 100).is_ok());
    }

    #[test]
    fn decodes_latin1_and_meta_charsets() {
        let r = render(
            &page(Some("text/plain; charset=ISO-8859-1"), b"caf\xe9 \x80"),
            false,
            100,
        )
        .unwrap();
        assert_eq!(r.content, "café €");
        let body =
            b"<html><head><meta charset=\"windows-1252\"></head><body>na\xefve</body></html>";
        let r = render(&page(Some("text/html"), body), false, 100).unwrap();
        assert_eq!(r.content, "naïve");
        let r = render(&page(Some("text/plain"), b"\xef\xbb\xbfbom"), false, 100).unwrap();
        assert_eq!(r.content, "bom");
    }

    #[test]
    fn truncates_on_characters_preferring_line_ends() {
        let (text, cut) = truncate_chars("ééééé".into(), 3);
        assert_eq!((text.as_str(), cut), ("ééé", true));
        let (text, cut) = truncate_chars(format!("{}\n{}", "a".repeat(95), "b".repeat(10)), 100);
        assert_eq!((text.len(), cut), (95, true));
        let (text, cut) = truncate_chars("short".into(), 100);
        assert_eq!((text.as_str(), cut), ("short", false));
    }
}
