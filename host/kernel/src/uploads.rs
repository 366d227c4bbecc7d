//! Uploaded attachments: bytes in `data/uploads/<id>`, metadata in redb.

use chrono::{DateTime, Utc};
use redb::ReadableDatabase;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::store::{self, Store, StoreError, UPLOADS};

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
    let tx = store.db().begin_write()?;
    tx.open_table(UPLOADS)?
        .insert(upload.id.to_string().as_str(), bytes.as_slice())?;
    tx.commit()?;
    Ok(())
}

pub(crate) fn get(store: &Store, id: Uuid) -> Result<Option<Upload>, StoreError> {
    let tx = store.db().begin_read()?;
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
    /// A PDF, whose text would be extracted (not supported yet: skipped).
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
        AttachmentClass::Text => {
            let text = String::from_utf8_lossy(bytes);
            let mut cut: String = text.chars().take(MAX_ATTACHMENT_CHARS).collect();
            if cut.len() < text.len() {
                cut.push_str("\n[truncated at 200,000 characters]");
            }
            Some(talon_llm::ContentPart::text(format!(
                "[Attached file: {}]\n{cut}",
                upload.filename
            )))
        }
        AttachmentClass::Pdf | AttachmentClass::Unsupported => {
            tracing::warn!(file = %upload.filename, content_type = %upload.content_type,
                "attachment skipped: the model cannot read this type");
            None
        }
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
