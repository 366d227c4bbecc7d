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
    /// It was in force and is no longer (TOTP enrollment).
    Revoked,
    /// Taken in; what it starts runs on without the caller (inbound hooks).
    Accepted,
    /// Done, with the result in the answer.
    Ok,
}
