//! The `status` word of answers that report what a request did, in
//! LibreFang's spelling (`{"status": "deleted", "goal_id": ...}`).

use serde::Serialize;
use utoipa::ToSchema;

/// What the request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It was there and is gone.
    Deleted,
    /// It was there and is gone (LibreFang's word for triggers).
    Removed,
}
