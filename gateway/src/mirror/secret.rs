//! Secrets a mirror needs (a user's password) sealed for the journal: ChaCha20-Poly1305
//! (`ring::aead`) under a 256-bit key from the gateway's state directory (`mirror.key`, 64 hex
//! digits, created with mode 0600 on first start) or given by the caller.
//!
//! The sealed form is an [`EncryptedSecret`]: key id (first 8 hex digits of the key's
//! SHA-256), the JSON pointer where the clear text goes back into the body (also the AEAD's
//! associated data, so a ciphertext cannot be moved to another field), a random 96-bit nonce
//! and the ciphertext with its tag, both hex. Clear text lives only in memory, never in
//! `Debug` output or logs; the journal drops the sealed form once the record is applied.

use std::path::Path;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

use crate::journal::EncryptedSecret;

/// Why a secret could not be sealed or opened.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SecretError {
    #[error("the secret was sealed with key {0}, which is not configured")]
    UnknownKey(String),
    #[error("the sealed secret is damaged or was sealed for another field")]
    Damaged,
    #[error("mirror key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
    #[error("no randomness available")]
    Random,
}

/// The mirror's secret key.
#[derive(Clone)]
pub struct SecretKey {
    key: [u8; 32],
    id: String,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

impl SecretKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(key: [u8; 32]) -> SecretKey {
        let digest = ring::digest::digest(&ring::digest::SHA256, &key);
        SecretKey {
            key,
            id: hex(&digest.as_ref()[..4]),
        }
    }

    /// A fresh random key.
    pub fn generate() -> Result<SecretKey, SecretError> {
        let mut key = [0u8; 32];
        SystemRandom::new()
            .fill(&mut key)
            .map_err(|_| SecretError::Random)?;
        Ok(SecretKey::from_bytes(key))
    }

    /// Reads the key file (64 hex digits), creating it (mode 0600) if it does not exist.
    pub fn load_or_create(path: &Path) -> Result<SecretKey, SecretError> {
        let fail = |reason: String| SecretError::KeyFile {
            path: path.display().to_string(),
            reason,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes = unhex(text.trim()).ok_or_else(|| fail("not hex".into()))?;
                let key: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| fail("not 32 bytes (64 hex digits)".into()))?;
                Ok(SecretKey::from_bytes(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = SecretKey::generate()?;
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                let mut f = opts.open(path).map_err(|e| fail(e.to_string()))?;
                std::io::Write::write_all(&mut f, format!("{}\n", hex(&key.key)).as_bytes())
                    .and_then(|_| f.sync_all())
                    .map_err(|e| fail(e.to_string()))?;
                Ok(key)
            }
            Err(e) => Err(fail(e.to_string())),
        }
    }

    /// The key id recorded with every sealed secret.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn aead(&self) -> Result<LessSafeKey, SecretError> {
        let unbound =
            UnboundKey::new(&CHACHA20_POLY1305, &self.key).map_err(|_| SecretError::Damaged)?;
        Ok(LessSafeKey::new(unbound))
    }

    /// Seals `clear` for the body field at `pointer`.
    pub fn seal(&self, pointer: &str, clear: &str) -> Result<EncryptedSecret, SecretError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| SecretError::Random)?;
        let mut data = clear.as_bytes().to_vec();
        self.aead()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(pointer.as_bytes()),
                &mut data,
            )
            .map_err(|_| SecretError::Damaged)?;
        Ok(EncryptedSecret {
            key_id: self.id.clone(),
            pointer: pointer.to_string(),
            nonce: hex(&nonce),
            ciphertext: hex(&data),
        })
    }

    /// Opens a sealed secret.
    pub fn open(&self, sealed: &EncryptedSecret) -> Result<String, SecretError> {
        if sealed.key_id != self.id {
            return Err(SecretError::UnknownKey(sealed.key_id.clone()));
        }
        let nonce: [u8; NONCE_LEN] = unhex(&sealed.nonce)
            .and_then(|n| n.try_into().ok())
            .ok_or(SecretError::Damaged)?;
        let mut data = unhex(&sealed.ciphertext).ok_or(SecretError::Damaged)?;
        let clear = self
            .aead()?
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(sealed.pointer.as_bytes()),
                &mut data,
            )
            .map_err(|_| SecretError::Damaged)?;
        String::from_utf8(clear.to_vec()).map_err(|_| SecretError::Damaged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens() {
        let k = SecretKey::generate().unwrap();
        let s = k.seal("/user/password", "hunter2").unwrap();
        assert!(!s.ciphertext.contains("hunter2"));
        assert_eq!(k.open(&s).unwrap(), "hunter2");
        // Moved to another field: the associated data no longer matches.
        let mut moved = s.clone();
        moved.pointer = "/user/name".into();
        assert!(matches!(k.open(&moved), Err(SecretError::Damaged)));
        let other = SecretKey::generate().unwrap();
        assert!(matches!(other.open(&s), Err(SecretError::UnknownKey(_))));
        let mut flipped = s;
        flipped.ciphertext.replace_range(0..2, "00");
        flipped.ciphertext.replace_range(2..4, "ff");
        assert!(k.open(&flipped).is_err());
    }

    #[test]
    fn key_file_is_created_once_and_reread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mirror.key");
        let a = SecretKey::load_or_create(&path).unwrap();
        let b = SecretKey::load_or_create(&path).unwrap();
        assert_eq!(a.id(), b.id());
        std::fs::write(&path, "zz").unwrap();
        assert!(SecretKey::load_or_create(&path).is_err());
    }
}
