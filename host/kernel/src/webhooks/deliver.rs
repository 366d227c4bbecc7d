//! One delivery attempt: the signature, the POST, and the backoff after a failure.
//!
//! A receiver verifies `X-Talon-Signature: sha256=<hex>`, the HMAC-SHA256
//! under the subscription's secret of `<X-Talon-Timestamp>.<body>` (the
//! timestamp in Unix seconds, the body's exact bytes), compares it in
//! constant time, refuses a timestamp far from its clock (five minutes is
//! usual) and drops a repeated `X-Talon-Delivery` id.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use rand::RngExt;
use sha2_v11::Sha256;

use super::records::Delivery;

/// The header holding the signature.
pub const SIGNATURE_HEADER: &str = "x-talon-signature";
/// The header holding the Unix time the signature covers.
pub const TIMESTAMP_HEADER: &str = "x-talon-timestamp";
/// The header holding the delivery's id.
pub const DELIVERY_HEADER: &str = "x-talon-delivery";
/// The header holding the event's type.
pub const EVENT_HEADER: &str = "x-talon-event";

/// `sha256=<hex>` of HMAC-SHA256(`secret`, `<timestamp>.<body>`).
pub fn sign(secret: &str, timestamp: i64, body: &str) -> String {
    // HMAC takes a key of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The delay before attempt `attempts + 1`: `base * 2^(attempts-1)`, capped,
/// with up to a quarter of it added at random so receivers coming back up
/// are not hit by every retry at once.
pub fn backoff(attempts: u32, base: Duration, cap: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
    let delay = exp.min(cap);
    let jitter = rand::rng().random_range(0..=delay.as_millis() as u64 / 4);
    delay + Duration::from_millis(jitter)
}

/// Sends one attempt; the receiver's status (any 2xx is success) or why it failed.
pub async fn attempt(
    client: &reqwest::Client,
    url: &str,
    secret: &str,
    delivery: &Delivery,
    now: i64,
) -> Result<u16, String> {
    let response = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(TIMESTAMP_HEADER, now.to_string())
        .header(SIGNATURE_HEADER, sign(secret, now, &delivery.body))
        .header(DELIVERY_HEADER, delivery.id.to_string())
        .header(EVENT_HEADER, &delivery.event_type)
        .body(delivery.body.clone())
        .send()
        .await
        .map_err(|e| format!("{e}"))?;
    let status = response.status().as_u16();
    if response.status().is_success() {
        Ok(status)
    } else {
        Err(format!("the receiver answered {status}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_vector_and_backoff_grows_to_the_cap() {
        // HMAC-SHA256("key", "1.{}"), computed independently with openssl.
        assert_eq!(
            sign("key", 1, "{}"),
            "sha256=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
        );
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(1);
        let first = backoff(1, base, cap);
        assert!(first >= base && first <= base + base / 4);
        let third = backoff(3, base, cap);
        assert!(third >= base * 4 && third <= base * 5);
        let late = backoff(30, base, cap);
        assert!(late >= cap && late <= cap + cap / 4);
    }
}
