//! The XML side of XMPP: an XMPP connection is one endless document, so the
//! bytes that arrive are split into the stream header and complete
//! top-level stanzas, each parsed into a small element tree. Text going out
//! is escaped, and characters XML 1.0 forbids are dropped (a server closes
//! the stream on them).

use quick_xml::Reader;
use quick_xml::errors::{Error, IllFormedError};
use quick_xml::events::{BytesStart, Event};

/// The largest stanza kept waiting for its end (Prosody's default limit
/// for a client's stanzas is 256 KiB); a larger one ends the connection.
pub const MAX_STANZA: usize = 256 * 1024;
/// Elements nested deeper than this are refused rather than parsed.
const MAX_DEPTH: usize = 32;

/// Why the stream cannot be read further: the connection must be dropped,
/// since an XML stream cannot be resynchronised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XmlError {
    /// Not well-formed XML.
    Malformed(String),
    /// A stanza larger than [`MAX_STANZA`].
    TooLarge(usize),
}

impl std::fmt::Display for XmlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Malformed(m) => write!(f, "malformed XML from the server: {m}"),
            Self::TooLarge(n) => write!(
                f,
                "a stanza of more than {n} bytes from the server (the limit is {MAX_STANZA})"
            ),
        }
    }
}

/// One element: its qualified name, attributes, children and text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    /// The name as written, with its prefix (`stream:features`).
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    /// The element's own character data, concatenated.
    pub text: String,
}

impl Element {
    /// The name without its prefix.
    pub fn local(&self) -> &str {
        self.name.rsplit(':').next().unwrap_or(&self.name)
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first child with this local name and, when given, this `xmlns`.
    pub fn child(&self, local: &str, ns: Option<&str>) -> Option<&Element> {
        self.children
            .iter()
            .find(|c| c.local() == local && (ns.is_none() || c.attr("xmlns") == ns))
    }

    /// Every child element carrying this `xmlns`.
    pub fn children_in<'a>(&'a self, ns: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children
            .iter()
            .filter(move |c| c.attr("xmlns") == Some(ns))
    }
}

/// What the stream produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// The server's `<stream:stream ...>` header (its attributes).
    Opened(Element),
    /// A complete top-level element.
    Stanza(Element),
    /// `</stream:stream>`: the server closed the stream.
    Closed,
}

/// Splits the bytes of one stream into items.
#[derive(Debug, Default)]
pub struct StreamParser {
    buf: Vec<u8>,
}

impl StreamParser {
    /// Starts over, for a new stream (after SASL, or a new connection).
    pub fn reset(&mut self) {
        self.buf.clear();
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete item, `None` while more bytes are needed.
    pub fn next(&mut self) -> Result<Option<Item>, XmlError> {
        loop {
            match self.scan()? {
                Scan::Incomplete => {
                    if self.buf.len() > MAX_STANZA {
                        return Err(XmlError::TooLarge(self.buf.len()));
                    }
                    return Ok(None);
                }
                Scan::Skip(consumed) => {
                    self.buf.drain(..consumed);
                }
                Scan::Item(item, consumed) => {
                    self.buf.drain(..consumed);
                    return Ok(Some(item));
                }
            }
        }
    }

    fn scan(&self) -> Result<Scan, XmlError> {
        let mut reader = Reader::from_reader(self.buf.as_slice());
        // End names are checked against our own stack: the stream header's
        // start was read by an earlier reader.
        reader.config_mut().check_end_names = false;
        let mut stack: Vec<Element> = Vec::new();
        loop {
            let event = match reader.read_event() {
                Ok(event) => event,
                // The input ended inside a tag, comment or reference: wait.
                Err(Error::Syntax(_))
                | Err(Error::IllFormed(IllFormedError::UnclosedReference)) => {
                    return Ok(Scan::Incomplete);
                }
                // The stream's end: its start was read by an earlier reader.
                Err(Error::IllFormed(IllFormedError::UnmatchedEndTag(name)))
                    if stack.is_empty() && name == "stream:stream" =>
                {
                    return Ok(Scan::Item(Item::Closed, reader.buffer_position() as usize));
                }
                Err(e) => return Err(XmlError::Malformed(e.to_string())),
            };
            let consumed = reader.buffer_position() as usize;
            match event {
                Event::Eof => return Ok(Scan::Incomplete),
                Event::Start(start) => {
                    let element = element(&start)?;
                    if stack.is_empty() && element.name == "stream:stream" {
                        return Ok(Scan::Item(Item::Opened(element), consumed));
                    }
                    if stack.len() >= MAX_DEPTH {
                        return Err(XmlError::Malformed(format!(
                            "elements nested more than {MAX_DEPTH} deep"
                        )));
                    }
                    stack.push(element);
                }
                Event::Empty(start) => {
                    let element = element(&start)?;
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(element),
                        None => return Ok(Scan::Item(Item::Stanza(element), consumed)),
                    }
                }
                Event::End(end) => {
                    let name = decode(end.name().as_ref())?;
                    let Some(done) = stack.pop() else {
                        if name == "stream:stream" {
                            return Ok(Scan::Item(Item::Closed, consumed));
                        }
                        return Err(XmlError::Malformed(format!("unexpected </{name}>")));
                    };
                    if done.name != name {
                        return Err(XmlError::Malformed(format!(
                            "<{}> closed by </{name}>",
                            done.name
                        )));
                    }
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(done),
                        None => return Ok(Scan::Item(Item::Stanza(done), consumed)),
                    }
                }
                Event::Text(text) => {
                    let text = text
                        .decode()
                        .map_err(|e| XmlError::Malformed(e.to_string()))?;
                    match stack.last_mut() {
                        Some(open) => open.text.push_str(&text),
                        // Whitespace keepalives between stanzas.
                        None if text.trim().is_empty() => return Ok(Scan::Skip(consumed)),
                        None => {
                            return Err(XmlError::Malformed("text outside any stanza".into()));
                        }
                    }
                }
                Event::CData(data) => {
                    let text = data
                        .decode()
                        .map_err(|e| XmlError::Malformed(e.to_string()))?;
                    if let Some(open) = stack.last_mut() {
                        open.text.push_str(&text);
                    }
                }
                Event::GeneralRef(reference) => {
                    let resolved = match reference
                        .resolve_char_ref()
                        .map_err(|e| XmlError::Malformed(e.to_string()))?
                    {
                        Some(c) => c.to_string(),
                        None => {
                            let name = reference
                                .decode()
                                .map_err(|e| XmlError::Malformed(e.to_string()))?;
                            quick_xml::escape::resolve_predefined_entity(&name)
                                .ok_or_else(|| {
                                    XmlError::Malformed(format!("unknown entity &{name};"))
                                })?
                                .to_string()
                        }
                    };
                    if let Some(open) = stack.last_mut() {
                        open.text.push_str(&resolved);
                    }
                }
                Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {
                    if stack.is_empty() {
                        return Ok(Scan::Skip(consumed));
                    }
                }
                Event::DocType(_) => {
                    return Err(XmlError::Malformed("a DOCTYPE in an XMPP stream".into()));
                }
            }
        }
    }
}

enum Scan {
    Incomplete,
    Skip(usize),
    Item(Item, usize),
}

fn decode(bytes: &[u8]) -> Result<String, XmlError> {
    std::str::from_utf8(bytes)
        .map(str::to_string)
        .map_err(|e| XmlError::Malformed(e.to_string()))
}

fn element(start: &BytesStart<'_>) -> Result<Element, XmlError> {
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| XmlError::Malformed(e.to_string()))?;
        let key = decode(attr.key.as_ref())?;
        let value = attr
            .unescape_value()
            .map_err(|e| XmlError::Malformed(e.to_string()))?
            .into_owned();
        attrs.push((key, value));
    }
    Ok(Element {
        name: decode(start.name().as_ref())?,
        attrs,
        children: Vec::new(),
        text: String::new(),
    })
}

/// `text` escaped for XML character data or a quoted attribute, without
/// the characters XML 1.0 forbids (control characters but tab, CR, LF).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(parser: &mut StreamParser) -> Vec<Item> {
        let mut items = Vec::new();
        while let Some(item) = parser.next().unwrap() {
            items.push(item);
        }
        items
    }

    #[test]
    fn stanzas_are_split_out_of_the_stream_whatever_the_chunks() {
        let stream = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
            xmlns:stream='http://etherx.jabber.org/streams' id='s1'> \
            <message from='a@x/r' type='chat'><body>a &amp; b &#x263A; <![CDATA[<c>]]></body></message>\n\
            <presence/></stream:stream>";
        for chunk in [1, 3, 7, stream.len()] {
            let mut parser = StreamParser::default();
            let mut items = Vec::new();
            for piece in stream.as_bytes().chunks(chunk) {
                parser.push(piece);
                items.extend(all(&mut parser));
            }
            assert_eq!(items.len(), 4, "chunk {chunk}: {items:?}");
            assert!(matches!(&items[0], Item::Opened(e) if e.attr("id") == Some("s1")));
            let Item::Stanza(message) = &items[1] else {
                panic!("{items:?}")
            };
            assert_eq!(message.attr("from"), Some("a@x/r"));
            assert_eq!(
                message.child("body", None).map(|b| b.text.as_str()),
                Some("a & b \u{263A} <c>")
            );
            assert!(matches!(&items[2], Item::Stanza(p) if p.name == "presence"));
            assert_eq!(items[3], Item::Closed);
        }
    }

    #[test]
    fn malformed_oversized_and_deep_input_is_an_error_not_a_wait() {
        let mut parser = StreamParser::default();
        parser.push(b"<stream:stream><message><body>x</message>");
        assert!(matches!(parser.next(), Ok(Some(Item::Opened(_)))));
        assert!(matches!(parser.next(), Err(XmlError::Malformed(_))));

        let mut parser = StreamParser::default();
        parser.push(b"<stream:stream><message><body>");
        parser.push(&vec![b'a'; MAX_STANZA + 1]);
        assert!(matches!(parser.next(), Ok(Some(Item::Opened(_)))));
        assert!(matches!(parser.next(), Err(XmlError::TooLarge(_))));

        let mut parser = StreamParser::default();
        parser.push(b"<stream:stream>");
        parser.push("<a>".repeat(100).as_bytes());
        assert!(matches!(parser.next(), Ok(Some(Item::Opened(_)))));
        assert!(matches!(parser.next(), Err(XmlError::Malformed(_))));

        let mut parser = StreamParser::default();
        parser.push(b"<stream:stream><message><body>&bogus;</body></message>");
        assert!(matches!(parser.next(), Ok(Some(Item::Opened(_)))));
        assert!(matches!(parser.next(), Err(XmlError::Malformed(_))));
    }

    #[test]
    fn escaping_keeps_markup_out_and_drops_forbidden_characters() {
        assert_eq!(
            escape("<x a=\"1\">&'\u{0}\u{7}ok\n"),
            "&lt;x a=&quot;1&quot;&gt;&amp;&apos;ok\n"
        );
    }
}
