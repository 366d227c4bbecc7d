//! Ed25519 publisher keys: generation, key files, key ids and the trust store.

use std::path::Path;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::error::LoadError;

/// First line of a secret key file, so a key is recognized for what it is.
const SECRET_HEADER: &str = "talon-secret-key-ed25519";

/// A publisher's signing key.
pub struct SecretKey(SigningKey);

/// A publisher's public key, as operators list it in `plugins.trusted_keys`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl SecretKey {
    /// A new random key.
    pub fn generate() -> Result<Self, LoadError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)
            .map_err(|e| LoadError::Key(format!("no randomness available: {e}")))?;
        Ok(Self(SigningKey::from_bytes(&seed)))
    }

    /// The key's public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Signs a message.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }

    /// The key file's text: a header line and the hex seed.
    pub fn to_file_text(&self) -> String {
        format!("{SECRET_HEADER}\n{}\n", hex::encode(self.0.to_bytes()))
    }

    /// Parses a key file written by [`SecretKey::to_file_text`].
    pub fn from_file_text(text: &str) -> Result<Self, LoadError> {
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        if lines.next() != Some(SECRET_HEADER) {
            return Err(LoadError::Key(format!(
                "not a Talon secret key (expected the first line to be {SECRET_HEADER:?}; create one with `talon plugin keygen`)"
            )));
        }
        let seed = lines
            .next()
            .and_then(|l| hex::decode(l).ok())
            .and_then(|b| <[u8; 32]>::try_from(b).ok());
        let seed = seed.ok_or_else(|| LoadError::Key("secret key is not 64 hex digits".into()))?;
        Ok(Self(SigningKey::from_bytes(&seed)))
    }

    /// Reads a key file.
    pub fn read(path: &Path) -> Result<Self, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|e| LoadError::io(path, e))?;
        Self::from_file_text(&text)
    }
}

impl std::fmt::Debug for SecretKey {
    // Never prints the secret: only which key it is.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.public().id())
    }
}

impl PublicKey {
    /// Parses 64 hex digits, optionally prefixed with `ed25519:`.
    pub fn parse(text: &str) -> Result<Self, LoadError> {
        let hex_part = text.trim().strip_prefix("ed25519:").unwrap_or(text.trim());
        let bytes = hex::decode(hex_part)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| LoadError::Key(format!("public key {text:?} is not 64 hex digits")))?;
        VerifyingKey::from_bytes(&bytes).map(Self).map_err(|_| {
            LoadError::Key(format!("public key {text:?} is not a valid Ed25519 point"))
        })
    }

    /// The key as 64 hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.as_bytes())
    }

    /// A short id: the first 16 hex digits of the key's SHA-256.
    pub fn id(&self) -> String {
        hex::encode(&Sha256::digest(self.0.as_bytes())[..8])
    }

    /// Whether `signature` signs `message` with this key.
    pub fn verifies(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        self.0
            .verify(message, &Signature::from_bytes(signature))
            .is_ok()
    }
}

/// The publisher keys an operator trusts.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    keys: Vec<PublicKey>,
}

impl TrustStore {
    /// Builds the store from the config's `plugins.trusted_keys`.
    pub fn from_config(keys: &[String]) -> Result<Self, LoadError> {
        Ok(Self {
            keys: keys
                .iter()
                .map(|k| PublicKey::parse(k))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Whether `key` is trusted.
    pub fn trusts(&self, key: &PublicKey) -> bool {
        self.keys.contains(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_round_trip() {
        let key = SecretKey::generate().unwrap();
        let again = SecretKey::from_file_text(&key.to_file_text()).unwrap();
        assert_eq!(key.public(), again.public());
        let public = PublicKey::parse(&format!("ed25519:{}", key.public().to_hex())).unwrap();
        assert_eq!(public, key.public());
        assert_eq!(public.id().len(), 16);
        let sig = key.sign(b"hello");
        assert!(public.verifies(b"hello", &sig));
        assert!(!public.verifies(b"hellO", &sig));
    }

    #[test]
    fn malformed_keys_say_what_to_do() {
        let err = SecretKey::from_file_text("hello").unwrap_err().to_string();
        assert!(err.contains("talon plugin keygen"), "{err}");
        assert!(SecretKey::from_file_text(&format!("{SECRET_HEADER}\nzz")).is_err());
        assert!(PublicKey::parse("abc").is_err());
        assert!(TrustStore::from_config(&["nope".into()]).is_err());
    }
}
