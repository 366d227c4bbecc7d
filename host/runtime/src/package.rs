//! The package: one file holding a component, its manifest and a signature.
//!
//! Layout (integers little-endian):
//!
//! ```text
//! "TALONPKG" 0x01                 magic and format version
//! u32 len, manifest               the completed manifest, JSON
//! u64 len, component              the WebAssembly component
//! u16 len, signature              empty, or JSON {key, signature} (hex)
//! [32] SHA-256 of all of the above
//! ```
//!
//! The signature is Ed25519 over `"talon-package-v1\n" || SHA-256(manifest)
//! || SHA-256(component)`. The trailing checksum makes any flipped byte,
//! signed package or not, a load error; the signature makes it impossible to
//! alter the manifest or component without the publisher's key.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::LoadError;
use crate::manifest::Manifest;
use crate::signing::{PublicKey, SecretKey, TrustStore};

const MAGIC: &[u8; 9] = b"TALONPKG\x01";
const SIGNING_DOMAIN: &[u8] = b"talon-package-v1\n";
/// The largest manifest a package may hold.
pub const MAX_MANIFEST_BYTES: usize = 1 << 20;
/// The largest component a package may hold (Python components are ~20 MB).
pub const MAX_COMPONENT_BYTES: usize = 128 << 20;
/// The file extension of packages.
pub const EXTENSION: &str = "talon";

/// A parsed package whose checksum matched. Whether it may be loaded is
/// [`Package::check_trust`]'s decision.
#[derive(Debug, Clone)]
pub struct Package {
    /// The manifest, parsed.
    pub manifest: Manifest,
    manifest_bytes: Vec<u8>,
    /// The component's bytes.
    pub component: Vec<u8>,
    signature: Option<SignatureBlock>,
    /// Hex SHA-256 of the file's contents before its checksum (that is, its
    /// checksum): what operators compare.
    pub digest: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureBlock {
    key: String,
    signature: String,
}

/// Who signed a package, as far as the trust store is concerned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Trust {
    /// Signed by a trusted key.
    Trusted {
        /// Short id of the key.
        key_id: String,
    },
    /// Validly signed by a key the store does not hold (development mode).
    Untrusted {
        /// Short id of the key.
        key_id: String,
    },
    /// Not signed (development mode).
    Unsigned,
    /// Shipped inside the daemon's binary: trusted because its contents
    /// match what the binary embeds, not because of a key. The host
    /// decides this; [`Package::check_trust`] never does.
    Bundled,
}

impl Package {
    /// Builds a package file, signed when a key is given.
    pub fn build(
        manifest: &Manifest,
        component: &[u8],
        key: Option<&SecretKey>,
    ) -> Result<Vec<u8>, LoadError> {
        manifest.validate()?;
        let manifest_bytes =
            serde_json::to_vec_pretty(manifest).map_err(|e| LoadError::Manifest(e.to_string()))?;
        if manifest_bytes.len() > MAX_MANIFEST_BYTES {
            return Err(LoadError::Package(format!(
                "manifest is larger than {MAX_MANIFEST_BYTES} bytes"
            )));
        }
        if component.len() > MAX_COMPONENT_BYTES {
            return Err(LoadError::Package(format!(
                "component is larger than {} MiB",
                MAX_COMPONENT_BYTES >> 20
            )));
        }
        let signature = match key {
            Some(key) => {
                let block = SignatureBlock {
                    key: key.public().to_hex(),
                    signature: hex::encode(key.sign(&signed_message(&manifest_bytes, component))),
                };
                serde_json::to_vec(&block).map_err(|e| LoadError::Package(e.to_string()))?
            }
            None => Vec::new(),
        };
        let mut out =
            Vec::with_capacity(manifest_bytes.len() + component.len() + signature.len() + 64);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(manifest_bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&manifest_bytes);
        out.extend_from_slice(&(component.len() as u64).to_le_bytes());
        out.extend_from_slice(component);
        out.extend_from_slice(&(signature.len() as u16).to_le_bytes());
        out.extend_from_slice(&signature);
        let checksum = Sha256::digest(&out);
        out.extend_from_slice(&checksum);
        Ok(out)
    }

    /// Parses a package file and checks its checksum and signature. It does
    /// not decide trust: see [`Package::check_trust`].
    pub fn parse(bytes: &[u8]) -> Result<Self, LoadError> {
        if !bytes.starts_with(&MAGIC[..8]) {
            return Err(LoadError::Package(
                "not a Talon package (build one with `talon plugin pack`)".into(),
            ));
        }
        if bytes.len() < MAGIC.len() + 32 {
            return Err(LoadError::Tampered("the file is truncated".into()));
        }
        let (body, checksum) = bytes.split_at(bytes.len() - 32);
        let body_hash = Sha256::digest(body);
        if body_hash.as_slice() != checksum {
            return Err(LoadError::Tampered("checksum mismatch".into()));
        }
        if body[8] != MAGIC[8] {
            return Err(LoadError::Package(format!(
                "package format {} is not supported by this host (it reads format 1)",
                body[8]
            )));
        }
        let mut reader = Reader {
            bytes: body,
            at: MAGIC.len(),
        };
        let manifest_len = u32::from_le_bytes(reader.array()?) as usize;
        if manifest_len > MAX_MANIFEST_BYTES {
            return Err(LoadError::Package("manifest is too large".into()));
        }
        let manifest_bytes = reader.take(manifest_len)?.to_vec();
        let component_len = u64::from_le_bytes(reader.array()?);
        if component_len > MAX_COMPONENT_BYTES as u64 {
            return Err(LoadError::Package("component is too large".into()));
        }
        let component = reader.take(component_len as usize)?.to_vec();
        let signature_len = u16::from_le_bytes(reader.array()?) as usize;
        let signature_bytes = reader.take(signature_len)?;
        if reader.at != body.len() {
            return Err(LoadError::Package(
                "unexpected bytes after the signature".into(),
            ));
        }
        let signature = match signature_len {
            0 => None,
            _ => Some(
                serde_json::from_slice::<SignatureBlock>(signature_bytes)
                    .map_err(|e| LoadError::Package(format!("signature block: {e}")))?,
            ),
        };
        let package = Self {
            manifest: Manifest::from_json(&manifest_bytes)?,
            manifest_bytes,
            component,
            signature,
            // The checksum already is the SHA-256 of everything it follows:
            // it identifies the package without hashing it again.
            digest: hex::encode(body_hash),
        };
        package.verify_signature()?;
        Ok(package)
    }

    /// The signing key, if the package is signed (its signature verified).
    pub fn signer(&self) -> Option<PublicKey> {
        self.signature
            .as_ref()
            .and_then(|s| PublicKey::parse(&s.key).ok())
    }

    fn verify_signature(&self) -> Result<(), LoadError> {
        let Some(block) = &self.signature else {
            return Ok(());
        };
        let key = PublicKey::parse(&block.key)?;
        let signature = hex::decode(&block.signature)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .ok_or_else(|| LoadError::Package("signature is not 128 hex digits".into()))?;
        if !key.verifies(
            &signed_message(&self.manifest_bytes, &self.component),
            &signature,
        ) {
            return Err(LoadError::Tampered(format!(
                "signature by key {} does not match",
                key.id()
            )));
        }
        Ok(())
    }

    /// Decides whether this host may load the package: signed by a trusted
    /// key, or anything valid in development mode.
    pub fn check_trust(&self, trust: &TrustStore, dev_mode: bool) -> Result<Trust, LoadError> {
        match self.signer() {
            Some(key) if trust.trusts(&key) => Ok(Trust::Trusted { key_id: key.id() }),
            Some(key) if dev_mode => Ok(Trust::Untrusted { key_id: key.id() }),
            Some(key) => Err(LoadError::Untrusted {
                key_id: key.id(),
                public_key: key.to_hex(),
            }),
            None if dev_mode => Ok(Trust::Unsigned),
            None => Err(LoadError::Unsigned),
        }
    }
}

fn signed_message(manifest: &[u8], component: &[u8]) -> Vec<u8> {
    let mut message = SIGNING_DOMAIN.to_vec();
    message.extend_from_slice(&Sha256::digest(manifest));
    message.extend_from_slice(&Sha256::digest(component));
    message
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], LoadError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len());
        let end = end.ok_or_else(|| LoadError::Package("the file is truncated".into()))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], LoadError> {
        let slice = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest::from_toml(
            "name = \"demo\"\nversion = \"0.1.0\"\nkind = \"tool\"\nwit = \"0.1.0\"\n",
        )
        .unwrap()
    }

    #[test]
    fn signed_round_trip_and_trust() {
        let key = SecretKey::generate().unwrap();
        let bytes = Package::build(&manifest(), b"\0asm component", Some(&key)).unwrap();
        let package = Package::parse(&bytes).unwrap();
        assert_eq!(package.component, b"\0asm component");
        assert_eq!(package.manifest.name, "demo");
        let trusted = TrustStore::from_config(&[key.public().to_hex()]).unwrap();
        assert_eq!(
            package.check_trust(&trusted, false).unwrap(),
            Trust::Trusted {
                key_id: key.public().id()
            }
        );
        let err = package
            .check_trust(&TrustStore::default(), false)
            .unwrap_err();
        assert!(matches!(err, LoadError::Untrusted { .. }), "{err}");
        assert!(err.to_string().contains(&key.public().to_hex()));
        assert!(package.check_trust(&TrustStore::default(), true).is_ok());
    }

    #[test]
    fn unsigned_needs_dev_mode() {
        let bytes = Package::build(&manifest(), b"component", None).unwrap();
        let package = Package::parse(&bytes).unwrap();
        assert!(matches!(
            package.check_trust(&TrustStore::default(), false),
            Err(LoadError::Unsigned)
        ));
        assert_eq!(
            package.check_trust(&TrustStore::default(), true).unwrap(),
            Trust::Unsigned
        );
    }

    #[test]
    fn every_flipped_byte_is_refused() {
        let key = SecretKey::generate().unwrap();
        let bytes = Package::build(&manifest(), b"\0asm a small component", Some(&key)).unwrap();
        for i in 0..bytes.len() {
            let mut tampered = bytes.clone();
            tampered[i] ^= 0x01;
            assert!(
                Package::parse(&tampered).is_err(),
                "flipping byte {i} went unnoticed"
            );
        }
    }

    #[test]
    fn a_resealed_checksum_does_not_hide_a_changed_component() {
        // An attacker who recomputes the trailing checksum still cannot
        // change the component without breaking the signature.
        let key = SecretKey::generate().unwrap();
        let mut bytes = Package::build(&manifest(), b"\0asm original!", Some(&key)).unwrap();
        let at = bytes.windows(8).position(|w| w == b"original").unwrap();
        bytes[at] = b'O';
        let len = bytes.len();
        let checksum = Sha256::digest(&bytes[..len - 32]);
        bytes[len - 32..].copy_from_slice(&checksum);
        let err = Package::parse(&bytes).unwrap_err();
        assert!(matches!(err, LoadError::Tampered(_)), "{err}");
    }

    #[test]
    fn garbage_is_refused_clearly() {
        assert!(
            Package::parse(b"")
                .unwrap_err()
                .to_string()
                .contains("talon plugin pack")
        );
        assert!(Package::parse(b"\0asm\x01\0\0\0").is_err());
        assert!(Package::parse(b"TALONPKG").is_err());
        let mut huge = MAGIC.to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        let checksum = Sha256::digest(&huge);
        huge.extend_from_slice(&checksum);
        assert!(
            Package::parse(&huge)
                .unwrap_err()
                .to_string()
                .contains("too large")
        );
    }
}
