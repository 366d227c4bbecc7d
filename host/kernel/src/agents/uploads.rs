//! Uploaded attachments: bytes in `data/uploads/<id>`, metadata in redb.

use chrono::{DateTime, Utc};
use redb::ReadableDatabase;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::store::tables::UPLOADS;
use crate::store::{self, Store, StoreError};

/// Largest upload accepted, in bytes.
pub const MAX_UPLOAD_BYTES: usize = 20 * 1024 * 1024;

const TABLE: &str = "uploads.v1";

/// One uploaded file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Upload {
    /// Upload id, used as `file_id` in messages and `GET /api/uploads/{id}`.
    pub id: Uuid,
    /// The agent it was uploaded to.
    pub agent_id: Uuid,
    /// The client's file name.
    pub filename: String,
    /// The client's content type.
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
    /// When it arrived.
    pub created_at: DateTime<Utc>,
}

pub(crate) fn insert(store: &Store, upload: &Upload) -> Result<(), StoreError> {
    let bytes = store::encode(TABLE, upload)?;
    let tx = store.db()?.begin_write()?;
    tx.open_table(UPLOADS)?
        .insert(upload.id.to_string().as_str(), bytes.as_slice())?;
    tx.commit()?;
    Ok(())
}

pub(crate) fn get(store: &Store, id: Uuid) -> Result<Option<Upload>, StoreError> {
    let tx = store.db()?.begin_read()?;
    let table = tx.open_table(UPLOADS)?;
    let value = table.get(id.to_string().as_str())?;
    value.map(|v| store::decode(TABLE, v.value())).transpose()
}

/// Longest attachment text handed to a model, in characters.
pub const MAX_ATTACHMENT_CHARS: usize = 200_000;

const TEXT_EXTENSIONS: &[&str] = &[
    "txt", "md", "markdown", "rst", "csv", "tsv", "log", "json", "yaml", "yml", "toml", "xml",
    "ini", "conf", "cfg", "env", "html", "css", "js", "ts", "tsx", "jsx", "vue", "svelte", "py",
    "rs", "go", "java", "kt", "swift", "scala", "c", "cpp", "h", "hpp", "rb", "php", "lua", "r",
    "sh", "bash", "sql", "graphql", "proto", "ipynb",
];
const TEXT_NAMES: &[&str] = &["Dockerfile", "Makefile", "LICENSE", "README"];
const TEXT_APPLICATION_TYPES: &[&str] = &[
    "application/json",
    "application/xml",
    "application/yaml",
    "application/x-yaml",
    "application/toml",
    "application/javascript",
    "application/typescript",
    "application/sql",
    "application/graphql",
    "application/x-sh",
];

/// How an attachment reaches the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachmentClass {
    /// An inline image block.
    Image,
    /// A PDF, whose extracted text is handed over.
    Pdf,
    /// UTF-8 text or code.
    Text,
    /// Nothing the model can use.
    Unsupported,
}

/// Classifies an upload by content type, or by file name when the client
/// left the type blank or generic.
pub fn classify(filename: &str, content_type: &str) -> AttachmentClass {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if matches!(
        mime.as_str(),
        "image/png" | "image/jpeg" | "image/webp" | "image/gif"
    ) {
        return AttachmentClass::Image;
    }
    if mime == "application/pdf" {
        return AttachmentClass::Pdf;
    }
    if mime.starts_with("text/") || TEXT_APPLICATION_TYPES.contains(&mime.as_str()) {
        return AttachmentClass::Text;
    }
    let extension = filename
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase());
    if extension
        .as_deref()
        .is_some_and(|e| TEXT_EXTENSIONS.contains(&e))
        || TEXT_NAMES.contains(&filename)
    {
        return AttachmentClass::Text;
    }
    AttachmentClass::Unsupported
}

/// The content block an upload becomes in a message, or `None` for files
/// the model cannot use (logged and skipped, as the reference does).
///
/// A PDF becomes its extracted text under an `[Attached PDF: <name>]` header.
/// A PDF with no extractable text (scanned pages), or one that cannot be read
/// at all (damaged, encrypted, not a PDF), still becomes a text part, saying so:
/// the message goes through and the model can tell the user what is wrong with
/// the file, rather than the whole message being refused.
///
/// PDF extraction is CPU work on untrusted input: call this off the async
/// runtime (the kernel runs it in `spawn_blocking`).
pub fn attachment_part(upload: &Upload, bytes: &[u8]) -> Option<talon_llm::ContentPart> {
    use base64::Engine as _;
    match classify(&upload.filename, &upload.content_type) {
        AttachmentClass::Image => Some(talon_llm::ContentPart::image(
            upload
                .content_type
                .split(';')
                .next()
                .unwrap_or("image/png")
                .trim(),
            base64::engine::general_purpose::STANDARD.encode(bytes),
        )),
        AttachmentClass::Text => Some(talon_llm::ContentPart::text(format!(
            "[Attached file: {}]\n{}",
            upload.filename,
            cut_text(&String::from_utf8_lossy(bytes))
        ))),
        AttachmentClass::Pdf => {
            let body = match pdf_text(bytes) {
                Ok(text) if text.trim().is_empty() => {
                    "(No text could be extracted from this PDF: it may be scanned or image-only.)"
                        .to_string()
                }
                Ok(text) => cut_text(&text),
                Err(e) => {
                    tracing::warn!(file = %upload.filename, error = %e, "PDF attachment unreadable");
                    format!("(This PDF could not be read: {e}.)")
                }
            };
            Some(talon_llm::ContentPart::text(format!(
                "[Attached PDF: {}]\n{body}",
                upload.filename
            )))
        }
        AttachmentClass::Unsupported => {
            tracing::warn!(file = %upload.filename, content_type = %upload.content_type,
                "attachment skipped: the model cannot read this type");
            None
        }
    }
}

/// `text` cut at [`MAX_ATTACHMENT_CHARS`], with a note when it was cut.
fn cut_text(text: &str) -> String {
    let mut cut: String = text.chars().take(MAX_ATTACHMENT_CHARS).collect();
    if cut.len() < text.len() {
        cut.push_str("\n[truncated at 200,000 characters]");
    }
    cut
}

/// Largest PDF whose text is extracted, in bytes: the upload limit. Uploads
/// are already refused above it; this guards bytes that reach the extractor
/// any other way.
pub const MAX_PDF_BYTES: usize = MAX_UPLOAD_BYTES;

/// Most bytes one compressed stream (an object stream, or a page's content)
/// may inflate to. A small crafted file can otherwise decompress to gigabytes.
const MAX_PDF_STREAM_BYTES: usize = 32 * 1024 * 1024;

/// Why a PDF's text could not be extracted.
#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    /// Larger than [`MAX_PDF_BYTES`].
    #[error("the file is {0} bytes; PDFs over {MAX_PDF_BYTES} bytes are not read")]
    TooLarge(usize),
    /// Not a PDF, damaged beyond repair, or encrypted.
    #[error("it is not a valid PDF ({0})")]
    Invalid(String),
    /// The file is valid but no page's text could be decoded.
    #[error("no page's text could be decoded ({0})")]
    Undecodable(String),
    /// The parser panicked on this input (a bug in it, triggered by the file).
    #[error("the PDF parser failed on this file")]
    ParserPanicked,
}

/// The text of a PDF's pages, in page order, stopping once more than
/// [`MAX_ATTACHMENT_CHARS`] characters are collected (the rest would be cut).
///
/// Hostile input is expected: the size is capped, stream decompression is
/// bounded, and a panic inside the parser is caught and reported as
/// [`PdfError::ParserPanicked`] instead of unwinding into the caller.
/// `Ok("")` means the PDF was read but holds no extractable text.
pub fn pdf_text(bytes: &[u8]) -> Result<String, PdfError> {
    if bytes.len() > MAX_PDF_BYTES {
        return Err(PdfError::TooLarge(bytes.len()));
    }
    guarded(|| extract_pdf_text(bytes))
}

/// Runs `extract`, turning a panic into [`PdfError::ParserPanicked`].
fn guarded(extract: impl FnOnce() -> Result<String, PdfError>) -> Result<String, PdfError> {
    // The parser only reads its input and builds its own values, so nothing
    // observable is left half-updated if it unwinds.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(extract))
        .unwrap_or(Err(PdfError::ParserPanicked))
}

fn extract_pdf_text(bytes: &[u8]) -> Result<String, PdfError> {
    let options = lopdf::LoadOptions {
        max_decompressed_size: Some(MAX_PDF_STREAM_BYTES),
        ..Default::default()
    };
    let doc = lopdf::Document::load_mem_with_options(bytes, options)
        .map_err(|e| PdfError::Invalid(e.to_string()))?;
    // The page tree can name pages whose objects are missing (a truncated
    // file); those have nothing to read.
    let mut pages = doc.get_pages();
    pages.retain(|_, id| doc.get_dictionary(*id).is_ok());
    // Lenient loading accepts almost anything that starts like a PDF; a
    // document without a single page is what garbage usually loads as.
    if pages.is_empty() {
        return Err(PdfError::Invalid("no pages found".into()));
    }
    let mut text = String::new();
    let mut chars = 0usize;
    let mut first_error = None;
    for page in pages.into_keys() {
        // A page (or one font of it) that cannot be decoded is skipped: the
        // other pages are still worth having.
        for chunk in doc.extract_text_chunks_with_limit(&[page], MAX_PDF_STREAM_BYTES) {
            match chunk {
                Ok(chunk) => {
                    chars += chunk.chars().count();
                    text.push_str(&chunk);
                }
                Err(e) => {
                    first_error.get_or_insert_with(|| e.to_string());
                }
            }
        }
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        if chars > MAX_ATTACHMENT_CHARS {
            break;
        }
    }
    match first_error {
        Some(e) if text.trim().is_empty() => Err(PdfError::Undecodable(e)),
        _ => Ok(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachments_are_classified_by_type_then_name() {
        assert_eq!(classify("a.png", "image/png"), AttachmentClass::Image);
        assert_eq!(classify("a.pdf", "application/pdf"), AttachmentClass::Pdf);
        assert_eq!(classify("main.rs", ""), AttachmentClass::Text);
        assert_eq!(
            classify("Dockerfile", "application/octet-stream"),
            AttachmentClass::Text
        );
        assert_eq!(
            classify("x.bin", "application/octet-stream"),
            AttachmentClass::Unsupported
        );
    }

    fn upload(filename: &str, content_type: &str) -> Upload {
        Upload {
            id: Uuid::nil(),
            agent_id: Uuid::nil(),
            filename: filename.into(),
            content_type: content_type.into(),
            size: 0,
            created_at: Utc::now(),
        }
    }

    /// A minimal valid PDF written by hand: one page per sentence, Helvetica,
    /// an exact cross-reference table.
    fn hand_written_pdf(sentences: &[&str]) -> Vec<u8> {
        let n = sentences.len();
        let font = 3 + 2 * n;
        let kids: Vec<String> = (0..n).map(|i| format!("{} 0 R", 3 + 2 * i)).collect();
        let mut objects = vec![
            "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
            format!("<< /Type /Pages /Kids [{}] /Count {n} >>", kids.join(" ")),
        ];
        for (i, sentence) in sentences.iter().enumerate() {
            let content = format!("BT /F1 12 Tf 72 720 Td ({sentence}) Tj ET");
            objects.push(format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] \
                 /Resources << /Font << /F1 {font} 0 R >> >> /Contents {} 0 R >>",
                4 + 2 * i
            ));
            objects.push(format!(
                "<< /Length {} >>\nstream\n{content}\nendstream",
                content.len()
            ));
        }
        objects.push("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string());
        let mut out = b"%PDF-1.4\n".to_vec();
        let mut offsets = Vec::new();
        for (i, object) in objects.iter().enumerate() {
            offsets.push(out.len());
            out.extend_from_slice(format!("{} 0 obj\n{object}\nendobj\n", i + 1).as_bytes());
        }
        let xref = out.len();
        out.extend_from_slice(
            format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
        );
        for offset in offsets {
            out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
        }
        out.extend_from_slice(
            format!(
                "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
                objects.len() + 1
            )
            .as_bytes(),
        );
        out
    }

    /// The same kind of document written by lopdf, with compressed content streams.
    fn lopdf_written_pdf(sentence: &str) -> Vec<u8> {
        use lopdf::content::{Content, Operation};
        use lopdf::{Document, Object, Stream, dictionary};
        let mut doc = Document::with_version("1.5");
        let pages_id = doc.new_object_id();
        let font_id = doc.add_object(dictionary! {
            "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Courier",
        });
        let resources_id = doc.add_object(dictionary! {
            "Font" => dictionary! { "F1" => font_id },
        });
        let content = Content {
            operations: vec![
                Operation::new("BT", vec![]),
                Operation::new("Tf", vec!["F1".into(), 12.into()]),
                Operation::new("Td", vec![72.into(), 720.into()]),
                Operation::new("Tj", vec![Object::string_literal(sentence)]),
                Operation::new("ET", vec![]),
            ],
        };
        let content_id = doc.add_object(Stream::new(dictionary! {}, content.encode().unwrap()));
        let page_id = doc.add_object(dictionary! {
            "Type" => "Page", "Parent" => pages_id, "Contents" => content_id,
        });
        doc.objects.insert(
            pages_id,
            Object::Dictionary(dictionary! {
                "Type" => "Pages", "Kids" => vec![page_id.into()], "Count" => 1,
                "Resources" => resources_id, "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
            }),
        );
        let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
        doc.trailer.set("Root", catalog_id);
        doc.compress();
        let mut out = Vec::new();
        doc.save_to(&mut out).unwrap();
        out
    }

    #[test]
    fn pdf_attachments_become_their_text_under_a_header() {
        let pdf = hand_written_pdf(&["The quick brown fox reads PDFs.", "Second page here."]);
        let Some(talon_llm::ContentPart::Text { text }) =
            attachment_part(&upload("report.pdf", "application/pdf"), &pdf)
        else {
            panic!("text expected")
        };
        assert!(text.starts_with("[Attached PDF: report.pdf]\n"), "{text}");
        assert!(text.contains("The quick brown fox reads PDFs."), "{text}");
        let first = text.find("quick").unwrap();
        assert!(
            text.find("Second page").unwrap() > first,
            "pages in order: {text}"
        );
    }

    #[test]
    fn compressed_pdfs_written_by_a_library_are_read() {
        let pdf = lopdf_written_pdf("Compressed streams are inflated.");
        let text = pdf_text(&pdf).unwrap();
        assert!(text.contains("Compressed streams are inflated."), "{text}");
    }

    #[test]
    fn pdf_text_is_cut_at_the_limit() {
        // 300 pages of 1,000 characters: more than the limit, so extraction stops early
        // and the part is cut with the same note as text files.
        let line = "x".repeat(1000);
        let pages: Vec<&str> = std::iter::repeat_n(line.as_str(), 300).collect();
        let pdf = hand_written_pdf(&pages);
        let Some(talon_llm::ContentPart::Text { text }) =
            attachment_part(&upload("long.pdf", "application/pdf"), &pdf)
        else {
            panic!("text expected")
        };
        assert!(text.ends_with("[truncated at 200,000 characters]"));
        let body = text.strip_prefix("[Attached PDF: long.pdf]\n").unwrap();
        let body = body
            .strip_suffix("\n[truncated at 200,000 characters]")
            .unwrap();
        assert_eq!(body.chars().count(), MAX_ATTACHMENT_CHARS);
    }

    #[test]
    fn unreadable_pdfs_become_a_note_not_an_error() {
        for garbage in [
            b"this is not a pdf at all".to_vec(),
            Vec::new(),
            b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 9 0 R >> endobj\n%%EOF".to_vec(),
            // A valid file cut in half.
            hand_written_pdf(&["cut short"])[..120].to_vec(),
        ] {
            assert!(pdf_text(&garbage).is_err(), "{garbage:?}");
            let Some(talon_llm::ContentPart::Text { text }) =
                attachment_part(&upload("bad.pdf", "application/pdf"), &garbage)
            else {
                panic!("text expected")
            };
            assert!(text.starts_with("[Attached PDF: bad.pdf]\n("), "{text}");
            assert!(text.contains("could not be read"), "{text}");
        }
        let Err(PdfError::Invalid(_)) = pdf_text(b"this is not a pdf at all") else {
            panic!("garbage is not a valid PDF")
        };
    }

    #[test]
    fn pdfs_without_text_say_so() {
        // A valid page that shows no text, as a scanned page would.
        let pdf = hand_written_pdf(&[""]);
        assert_eq!(pdf_text(&pdf).unwrap().trim(), "");
        let Some(talon_llm::ContentPart::Text { text }) =
            attachment_part(&upload("scan.pdf", "application/pdf"), &pdf)
        else {
            panic!("text expected")
        };
        assert!(
            text.starts_with("[Attached PDF: scan.pdf]\n(No text could be extracted"),
            "{text}"
        );
    }

    #[test]
    fn pdfs_over_the_size_cap_are_not_parsed() {
        let big = vec![b' '; MAX_PDF_BYTES + 1];
        assert!(matches!(pdf_text(&big), Err(PdfError::TooLarge(_))));
    }

    #[test]
    fn a_panic_in_the_parser_is_an_error_not_an_unwind() {
        let result = guarded(|| panic!("parser bug"));
        assert!(matches!(result, Err(PdfError::ParserPanicked)));
    }

    #[test]
    fn text_attachments_are_cut_at_the_limit() {
        let upload = Upload {
            id: Uuid::nil(),
            agent_id: Uuid::nil(),
            filename: "big.txt".into(),
            content_type: "text/plain".into(),
            size: 0,
            created_at: Utc::now(),
        };
        let bytes = "é".repeat(MAX_ATTACHMENT_CHARS + 10);
        let Some(talon_llm::ContentPart::Text { text }) =
            attachment_part(&upload, bytes.as_bytes())
        else {
            panic!("text expected")
        };
        assert!(text.starts_with("[Attached file: big.txt]\n"));
        assert!(text.ends_with("[truncated at 200,000 characters]"));
    }
}
