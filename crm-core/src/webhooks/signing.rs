//! Standard Webhooks signatures (<https://www.standardwebhooks.com>): the sender signs
//! `id.timestamp.body` with HMAC-SHA256 under the endpoint's secret and sends
//! `webhook-signature: v1,<base64>`; the receiver recomputes it. [`verify`] is public so
//! Rust receivers need nothing else. Several signatures may be listed (space
//! separated) so a receiver keeps working while a secret is rotated.

use std::fmt;

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::error::{CrmError, Result};

/// The header naming the message; the same across retries, so receivers deduplicate on it.
pub const HEADER_ID: &str = "webhook-id";
/// The header with the send time in Unix seconds; fresh on every attempt.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// The header with the signatures.
pub const HEADER_SIGNATURE: &str = "webhook-signature";
/// How far a timestamp may be from the receiver's clock, either way, by default
/// (the specification's five minutes): a captured request cannot be replayed later.
pub const DEFAULT_TOLERANCE: Duration = Duration::minutes(5);

const SECRET_PREFIX: &str = "whsec_";
/// 32 random bytes: the HMAC-SHA256 block input is never short of key material.
const SECRET_BYTES: usize = 32;

/// An endpoint's signing key. Shown to its admins as `whsec_<base64>`; `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

impl WebhookSecret {
    /// A new random secret.
    pub fn generate() -> Result<Self> {
        let mut bytes = vec![0u8; SECRET_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| CrmError::Internal(format!("no randomness: {e}")))?;
        Ok(WebhookSecret(bytes))
    }

    /// Reads `whsec_<base64>` (the prefix is optional, as in the reference libraries).
    pub fn parse(text: &str) -> std::result::Result<Self, VerifyError> {
        let encoded = text.strip_prefix(SECRET_PREFIX).unwrap_or(text);
        match STANDARD.decode(encoded) {
            Ok(bytes) if !bytes.is_empty() => Ok(WebhookSecret(bytes)),
            _ => Err(VerifyError::InvalidSecret),
        }
    }

    /// The secret as given to the endpoint's admins: `whsec_<base64>`.
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0))
    }

    fn mac(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(format!("{msg_id}.{timestamp}.").as_bytes());
        mac.update(body);
        mac
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// The `webhook-signature` value of a message: `v1,<base64 HMAC-SHA256 of id.timestamp.body>`.
pub fn sign(secret: &WebhookSecret, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = secret.mac(msg_id, timestamp, body).finalize().into_bytes();
    format!("v1,{}", STANDARD.encode(tag))
}

/// The three Standard Webhooks headers of a received request, as text.
#[derive(Debug, Clone, Copy)]
pub struct SignedHeaders<'a> {
    /// `webhook-id`.
    pub id: &'a str,
    /// `webhook-timestamp` (Unix seconds).
    pub timestamp: &'a str,
    /// `webhook-signature`: one or more `v1,<base64>`, space separated.
    pub signature: &'a str,
}

/// Why a received webhook is not to be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The secret is not `whsec_` followed by base64.
    #[error("the webhook secret is not `whsec_` followed by base64")]
    InvalidSecret,
    /// `webhook-timestamp` is not a number of seconds.
    #[error("webhook-timestamp is not a Unix time in seconds")]
    InvalidTimestamp,
    /// The timestamp is further from now than the tolerance: a replay, or a skewed clock.
    #[error("webhook-timestamp is outside the tolerance")]
    OutsideTolerance,
    /// No `v1` signature in `webhook-signature` matches the body under the secret.
    #[error("no webhook-signature matches")]
    NoMatchingSignature,
}

/// Checks a received webhook: its timestamp is within `tolerance` of `now` and one of
/// its `v1` signatures matches `body` under `secret` (compared in constant time).
/// Other signature versions are ignored, as the specification says.
pub fn verify(
    secret: &WebhookSecret,
    headers: SignedHeaders<'_>,
    body: &[u8],
    now: DateTime<Utc>,
    tolerance: Duration,
) -> std::result::Result<(), VerifyError> {
    let timestamp: i64 = headers.timestamp.trim().parse().map_err(|_| VerifyError::InvalidTimestamp)?;
    if (now.timestamp() - timestamp).abs() > tolerance.num_seconds() {
        return Err(VerifyError::OutsideTolerance);
    }
    let matches = headers
        .signature
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|encoded| STANDARD.decode(encoded).ok())
        .any(|tag| secret.mac(headers.id, timestamp, body).verify_slice(&tag).is_ok());
    if matches { Ok(()) } else { Err(VerifyError::NoMatchingSignature) }
}
