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
