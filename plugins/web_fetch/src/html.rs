//! A compact HTML to readable-text converter.
//!
//! Agents read web pages as text. A full HTML5 parser (html5ever) would more
//! than double the size of this plugin, and an agent needs far less: the words
//! in reading order, paragraphs and headings kept apart, lists and links
//! recognisable, and none of the script, style or markup. This module is a
//! forgiving single-pass tokenizer that never fails: malformed markup degrades
//! into text, it does not raise errors.

use talon_sdk::http::url::resolve;

/// The readable content of an HTML document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// The `<title>`, whitespace collapsed, if the page has a non-empty one.
    pub title: Option<String>,
    /// The body as plain text with light Markdown: `#` headings, `-` and `1.`
    /// list items, `[text](url)` links, fenced `<pre>` blocks.
    pub text: String,
}

/// Elements whose content is never shown to a reader, or is page furniture
/// (navigation menus, buttons) that would bury the content an agent wants.
const HIDDEN: &[&str] = &[
    "script", "style", "noscript", "template", "svg", "math", "iframe", "object", "embed",
    "canvas", "select", "head", "nav", "button",
];

/// Elements whose content is raw text up to the matching end tag (markup
/// inside them is not markup).
const RAW_TEXT: &[&str] = &["script", "style", "textarea", "title", "xmp", "noscript"];

/// Elements that start and end a paragraph-like block (blank line around).
const PARAGRAPH: &[&str] = &[
    "p",
    "blockquote",
    "table",
    "ul",
    "ol",
    "dl",
    "figure",
    "form",
    "fieldset",
    "details",
    "address",
    "hr",
];

/// Elements that start and end a line.
const LINE: &[&str] = &[
    "div",
    "section",
    "article",
    "main",
    "header",
    "footer",
    "aside",
    "tr",
    "dt",
    "dd",
    "li",
    "caption",
    "figcaption",
    "summary",
    "legend",
    "option",
    "center",
    "body",
    "html",
];

/// Converts an HTML document into readable text.
///
/// `base_url` is the address the document was fetched from; relative links are
/// resolved against it so that an agent can follow them.
pub fn html_to_text(html: &str, base_url: &str) -> Document {
    let mut converter = Converter::new(base_url);
    converter.run(html);
    converter.finish()
}

/// A list being rendered: `None` for bullets, `Some(n)` for the next number.
type ListState = Option<u32>;

/// A link whose text is being collected.
struct OpenLink {
    /// Byte offset in the output where the link's text starts.
    start: usize,
    /// The resolved target, if worth showing.
    href: Option<String>,
}

struct Converter<'a> {
    base_url: &'a str,
    out: String,
    title: Option<String>,
    /// Newlines owed before the next text (0, 1 or 2).
    pending_break: u8,
    /// A space is owed before the next text on the same line.
    pending_space: bool,
    /// Depth of `<pre>` elements: whitespace is kept inside them.
    pre_depth: usize,
    /// Depth of hidden elements (see [`HIDDEN`]) that were not raw text.
    hidden_depth: usize,
    lists: Vec<ListState>,
    links: Vec<OpenLink>,
    /// Cells already written in the current table row.
    cells_in_row: usize,
}

impl<'a> Converter<'a> {
    fn new(base_url: &'a str) -> Self {
        Self {
            base_url,
            out: String::new(),
            title: None,
            pending_break: 0,
            pending_space: false,
            pre_depth: 0,
            hidden_depth: 0,
            lists: Vec::new(),
            links: Vec::new(),
            cells_in_row: 0,
        }
    }

    fn run(&mut self, html: &str) {
        let mut rest = html;
        while !rest.is_empty() {
            let Some(lt) = rest.find('<') else {
                self.text(rest);
                break;
            };
            self.text(&rest[..lt]);
            rest = &rest[lt..];
            rest = self.markup(rest);
        }
    }

    /// Handles markup at the start of `input` (which begins with `<`) and
    /// returns the input after it.
    fn markup<'s>(&mut self, input: &'s str) -> &'s str {
        if let Some(after) = input.strip_prefix("<!--") {
            return after.find("-->").map_or("", |end| &after[end + 3..]);
        }
        if input.starts_with("<!") || input.starts_with("<?") {
            return input.find('>').map_or("", |end| &input[end + 1..]);
        }
        let bytes = input.as_bytes();
        let closing = bytes.get(1) == Some(&b'/');
        let name_start = if closing { 2 } else { 1 };
        if !bytes.get(name_start).is_some_and(u8::is_ascii_alphabetic) {
            // A lone `<` such as in `a < b` is text.
            self.text("<");
            return &input[1..];
        }
        let (tag, rest) = parse_tag(&input[name_start..]);
        if closing {
            self.end_tag(&tag.name);
            return rest;
        }
        if RAW_TEXT.contains(&tag.name.as_str()) && !tag.self_closing {
            let (content, after) = split_raw_text(rest, &tag.name);
            if tag.name == "title" && self.title.is_none() {
                let title = collapse_whitespace(&decode_entities(content));
                if !title.is_empty() {
                    self.title = Some(title);
                }
            } else if tag.name == "textarea" {
                self.text(content);
            }
            return after;
        }
        self.start_tag(&tag);
        rest
    }

    fn start_tag(&mut self, tag: &Tag) {
        let name = tag.name.as_str();
        if HIDDEN.contains(&name) {
            if !tag.self_closing {
                self.hidden_depth += 1;
            }
            return;
        }
        if self.hidden_depth > 0 {
            return;
        }
        match name {
            "br" => self.line_break(1),
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                self.block_break(2);
                let level = usize::from(name.as_bytes()[1] - b'0');
                self.raw(&"#".repeat(level));
                self.raw(" ");
            }
            "pre" => {
                self.block_break(2);
                self.raw("```\n");
                self.pre_depth += 1;
            }
            "ul" | "menu" => {
                self.block_break(if self.lists.is_empty() { 2 } else { 1 });
                self.lists.push(None);
            }
            "ol" => {
                self.block_break(if self.lists.is_empty() { 2 } else { 1 });
                let start = tag
                    .attr("start")
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(1);
                self.lists.push(Some(start));
            }
            "li" => {
                self.block_break(1);
                let depth = self.lists.len().max(1);
                let indent = "  ".repeat(depth - 1);
                let marker = match self.lists.last_mut() {
                    Some(Some(n)) => {
                        let marker = format!("{n}. ");
                        *n += 1;
                        marker
                    }
                    _ => "- ".to_string(),
                };
                self.raw(&indent);
                self.raw(&marker);
            }
            "tr" => {
                self.block_break(1);
                self.cells_in_row = 0;
            }
            "td" | "th" => {
                if self.cells_in_row > 0 {
                    self.raw(" | ");
                }
                self.cells_in_row += 1;
            }
            "a" => {
                // Inside code, link syntax would corrupt the code.
                let href = if self.pre_depth > 0 {
                    None
                } else {
                    tag.attr("href").and_then(|h| self.link_target(h))
                };
                self.links.push(OpenLink {
                    start: self.out.len(),
                    href,
                });
            }
            "img" => {
                if let Some(alt) = tag.attr("alt").map(collapse_whitespace)
                    && !alt.is_empty()
                {
                    self.text(&format!("[image: {alt}]"));
                }
            }
            _ if PARAGRAPH.contains(&name) => self.block_break(2),
            _ if LINE.contains(&name) => self.block_break(1),
            _ => {}
        }
    }

    fn end_tag(&mut self, name: &str) {
        if HIDDEN.contains(&name) {
            self.hidden_depth = self.hidden_depth.saturating_sub(1);
            return;
        }
        if self.hidden_depth > 0 {
            return;
        }
        match name {
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => self.block_break(2),
            "pre" => {
                if self.pre_depth > 0 {
                    self.pre_depth -= 1;
                    if !self.out.ends_with('\n') {
                        self.out.push('\n');
                    }
                    self.out.push_str("```");
                }
                self.block_break(2);
            }
            "ul" | "ol" | "menu" => {
                self.lists.pop();
                self.block_break(if self.lists.is_empty() { 2 } else { 1 });
            }
            "a" => self.close_link(),
            _ if PARAGRAPH.contains(&name) => self.block_break(2),
            _ if LINE.contains(&name) => self.block_break(1),
            _ => {}
        }
    }

    /// Returns the link target worth showing, resolved against the page.
    fn link_target(&self, href: &str) -> Option<String> {
        let href = decode_entities(href.trim());
        let lower = href.to_ascii_lowercase();
        if href.is_empty() || href.starts_with('#') || lower.starts_with("javascript:") {
            return None;
        }
        Some(resolve(self.base_url, &href))
    }

    fn close_link(&mut self) {
        let Some(link) = self.links.pop() else {
            return;
        };
        let Some(href) = link.href else {
            return;
        };
        let start = link.start.min(self.out.len());
        let Some(offset) = self.out[start..].find(|c: char| !c.is_whitespace()) else {
            return;
        };
        let text_start = start + offset;
        if self.out[text_start..].trim_end() == href {
            // A bare URL as its own text says it all.
            return;
        }
        self.out.insert(text_start, '[');
        self.out.push_str("](");
        self.out.push_str(&href);
        self.out.push(')');
    }

    /// Asks for at least `newlines` line breaks before the next text.
    fn block_break(&mut self, newlines: u8) {
        if self.pre_depth == 0 {
            self.pending_break = self.pending_break.max(newlines);
            self.pending_space = false;
        }
    }

    /// An explicit `<br>`: one more line break, even on an empty line.
    fn line_break(&mut self, newlines: u8) {
        if self.pre_depth > 0 {
            self.out.push('\n');
        } else {
            self.out.push('\n');
            self.pending_space = false;
            self.pending_break = self.pending_break.saturating_sub(newlines);
        }
    }

    /// Writes owed line breaks, then `s` verbatim.
    fn raw(&mut self, s: &str) {
        self.flush_breaks();
        self.out.push_str(s);
    }

    fn flush_breaks(&mut self) {
        if self.out.is_empty() {
            self.pending_break = 0;
            self.pending_space = false;
            return;
        }
        if self.pending_break > 0 {
            while self.out.ends_with(' ') {
                self.out.pop();
            }
            let have = self.out.chars().rev().take_while(|&c| c == '\n').count();
            for _ in have..usize::from(self.pending_break) {
                self.out.push('\n');
            }
            self.pending_break = 0;
            self.pending_space = false;
        } else if self.pending_space {
            if !self.out.ends_with([' ', '\n']) {
                self.out.push(' ');
            }
            self.pending_space = false;
        }
    }

    fn text(&mut self, raw: &str) {
        if raw.is_empty() || self.hidden_depth > 0 {
            return;
        }
        let decoded = decode_entities(raw);
        if self.pre_depth > 0 {
            self.flush_breaks();
            self.out.push_str(&decoded);
            return;
        }
        let mut words = decoded.split(is_html_space).peekable();
        let leading_space = decoded.starts_with(is_html_space);
        let trailing_space = decoded.ends_with(is_html_space);
        if leading_space {
            self.pending_space = true;
        }
        let mut first = true;
        while let Some(word) = words.next() {
            if word.is_empty() {
                continue;
            }
            if !first {
                self.pending_space = true;
            }
            self.flush_breaks();
            self.out.push_str(word);
            first = false;
            if words.peek().is_none() {
                break;
            }
        }
        if trailing_space && !first {
            self.pending_space = true;
        }
    }

    fn finish(mut self) -> Document {
        while self.out.ends_with([' ', '\n']) {
            self.out.pop();
        }
        // Lines made only of spaces (from nested blocks) are noise.
        let mut text = String::with_capacity(self.out.len());
        let mut blank_run = 0;
        for line in self.out.lines() {
            let line = line.trim_end();
            if line.is_empty() {
                blank_run += 1;
                if blank_run > 1 {
                    continue;
                }
            } else {
                blank_run = 0;
            }
            text.push_str(line);
            text.push('\n');
        }
        text.pop();
        Document {
            title: self.title,
            text,
        }
    }
}

/// Whitespace as HTML defines it (the non-breaking space is not included:
/// `&nbsp;` is decoded to a plain space before this runs).
fn is_html_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c')
}

fn collapse_whitespace(s: &str) -> String {
    s.split(is_html_space)
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A parsed start or end tag.
struct Tag {
    /// Lower-cased element name.
    name: String,
    /// Attributes in source order, names lower-cased, values raw.
    attrs: Vec<(String, String)>,
    self_closing: bool,
}

impl Tag {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a tag from just after `<` or `</` and returns it with the input
/// after its closing `>`. An unterminated tag consumes the rest of the input.
fn parse_tag(input: &str) -> (Tag, &str) {
    let name_end = input
        .find(|c: char| c.is_whitespace() || c == '/' || c == '>')
        .unwrap_or(input.len());
    let name = input[..name_end].to_ascii_lowercase();
    let mut rest = &input[name_end..];
    let mut attrs = Vec::new();
    let mut self_closing = false;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        if let Some(after) = rest.strip_prefix('>') {
            rest = after;
            break;
        }
        if let Some(after) = rest.strip_prefix('/') {
            self_closing = after.trim_start().starts_with('>');
            rest = after;
            continue;
        }
        let attr_end = rest
            .find(|c: char| c.is_whitespace() || c == '=' || c == '>' || c == '/')
            .unwrap_or(rest.len());
        // A stray `=` with no name: skip it so the loop always advances.
        let attr_end = attr_end.max(rest.chars().next().map_or(0, char::len_utf8));
        let attr_name = rest[..attr_end].to_ascii_lowercase();
        rest = rest[attr_end..].trim_start();
        let mut value = String::new();
        if let Some(after) = rest.strip_prefix('=') {
            let after = after.trim_start();
            let (v, r) = match after.chars().next() {
                Some(q @ ('"' | '\'')) => {
                    let body = &after[1..];
                    match body.find(q) {
                        Some(end) => (&body[..end], &body[end + 1..]),
                        None => (body, ""),
                    }
                }
                _ => {
                    let end = after
                        .find(|c: char| c.is_whitespace() || c == '>')
                        .unwrap_or(after.len());
                    (&after[..end], &after[end..])
                }
            };
            value = v.to_string();
            rest = r;
        }
        attrs.push((attr_name, value));
    }
    (
        Tag {
            name,
            attrs,
            self_closing,
        },
        rest,
    )
}

/// Splits raw text content from the input after its start tag, up to the
/// matching end tag (matched case-insensitively), and returns the content and
/// the input after the end tag.
fn split_raw_text<'s>(input: &'s str, name: &str) -> (&'s str, &'s str) {
    let needle = format!("</{name}");
    let lower = input.to_ascii_lowercase();
    match lower.find(&needle) {
        Some(start) => {
            let after_name = &input[start + needle.len()..];
            let after = after_name
                .find('>')
                .map_or("", |end| &after_name[end + 1..]);
            (&input[..start], after)
        }
        None => (input, ""),
    }
}

/// Decodes character references: numeric ones and the named ones that occur
/// in ordinary prose. Unknown references are kept as written.
pub fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        match decode_one(rest) {
            Some((decoded, used)) => {
                out.push_str(decoded.as_str());
                rest = &rest[used..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Decodes the reference at the start of `s` (which starts with `&`),
/// returning the text and how many bytes it used.
fn decode_one(s: &str) -> Option<(String, usize)> {
    let body = &s[1..];
    let end = body
        .char_indices()
        .take(32)
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '#'))
        .map_or(body.len().min(32), |(i, _)| i);
    let name = &body[..end];
    let used = 1 + end + usize::from(body[end..].starts_with(';'));
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        let c = char::from_u32(code)
            .filter(|&c| c != '\0')
            .unwrap_or('\u{fffd}');
        return Some((c.to_string(), used));
    }
    let text = match name {
        "amp" => "&",
        "lt" => "<",
        "gt" => ">",
        "quot" => "\"",
        "apos" => "'",
        "nbsp" | "ensp" | "emsp" | "thinsp" => " ",
        "shy" | "zwj" | "zwnj" | "lrm" | "rlm" => "",
        "copy" => "©",
        "reg" => "®",
        "trade" => "™",
        "hellip" => "…",
        "mdash" => "—",
        "ndash" => "–",
        "minus" => "−",
        "lsquo" => "‘",
        "rsquo" => "’",
        "sbquo" => "‚",
        "ldquo" => "“",
        "rdquo" => "”",
        "bdquo" => "„",
        "laquo" => "«",
        "raquo" => "»",
        "bull" => "•",
        "middot" => "·",
        "deg" => "°",
        "times" => "×",
        "divide" => "÷",
        "plusmn" => "±",
        "euro" => "€",
        "pound" => "£",
        "yen" => "¥",
        "cent" => "¢",
        "sect" => "§",
        "para" => "¶",
        "larr" => "←",
        "rarr" => "→",
        "uarr" => "↑",
        "darr" => "↓",
        "eacute" => "é",
        "egrave" => "è",
        "aacute" => "á",
        "agrave" => "à",
        "uuml" => "ü",
        "ouml" => "ö",
        "auml" => "ä",
        "szlig" => "ß",
        "ccedil" => "ç",
        "ntilde" => "ñ",
        _ => return None,
    };
    Some((text.to_string(), used))
}

#[cfg(test)]
mod tests;
