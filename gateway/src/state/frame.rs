//! Framed values: how every value the gateway's modules store is laid out, so that a torn,
//! bit-flipped or misplaced value is detected on read.
//!
//! ```text
//! offset 0  u8       format version (FRAME_VERSION = 1)
//! offset 1  u32 BE   CRC-32C over (namespace name ‖ key ‖ payload)
//! offset 5  ...      payload (module-specific: JSON, or a big-endian integer)
//! ```
//! The checksum covers the namespace and the key, so a value copied to the wrong place fails
//! too. A value shorter than 5 bytes, with an unknown version or a wrong checksum is
//! [`StateError::Corrupt`]; nothing here panics on bad input.

use crc32c::crc32c_append;

use super::{Namespace, StateError};

/// The current frame format version.
pub const FRAME_VERSION: u8 = 1;
/// Bytes before the payload.
pub const HEADER_LEN: usize = 5;

/// CRC-32C (Castagnoli: iSCSI, ext4, etcd's WAL), with the CPU's CRC instructions where
/// there are some.
fn checksum(ns: Namespace, key: &[u8], payload: &[u8]) -> u32 {
    let crc = crc32c_append(0, ns.as_str().as_bytes());
    let crc = crc32c_append(crc, key);
    crc32c_append(crc, payload)
}

/// Frames `payload` for storage at `ns`/`key`.
pub fn seal(ns: Namespace, key: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.push(FRAME_VERSION);
    out.extend_from_slice(&checksum(ns, key, payload).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Checks a framed value read from `ns`/`key` and returns its payload.
pub fn open<'v>(ns: Namespace, key: &[u8], value: &'v [u8]) -> Result<&'v [u8], StateError> {
    let (header, payload) = match value.split_at_checked(HEADER_LEN) {
        Some(parts) => parts,
        None => {
            return Err(StateError::corrupt(
                ns,
                key,
                format!("value of {} bytes is shorter than its header", value.len()),
            ))
        }
    };
    if header[0] != FRAME_VERSION {
        return Err(StateError::corrupt(
            ns,
            key,
            format!("unknown frame version {}", header[0]),
        ));
    }
    let stored = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    let actual = checksum(ns, key, payload);
    if stored != actual {
        return Err(StateError::corrupt(
            ns,
            key,
            format!("checksum mismatch: stored {stored:#010x}, computed {actual:#010x}"),
        ));
    }
    Ok(payload)
}

/// Frames a big-endian u64.
pub fn seal_u64(ns: Namespace, key: &[u8], n: u64) -> Vec<u8> {
    seal(ns, key, &n.to_be_bytes())
}

/// Opens a framed big-endian u64.
pub fn open_u64(ns: Namespace, key: &[u8], value: &[u8]) -> Result<u64, StateError> {
    let payload = open(ns, key, value)?;
    let bytes: [u8; 8] = payload
        .try_into()
        .map_err(|_| StateError::corrupt(ns, key, "expected an 8-byte integer"))?;
    Ok(u64::from_be_bytes(bytes))
}

/// Frames a big-endian i64.
pub fn seal_i64(ns: Namespace, key: &[u8], n: i64) -> Vec<u8> {
    seal(ns, key, &n.to_be_bytes())
}

/// Opens a framed big-endian i64.
pub fn open_i64(ns: Namespace, key: &[u8], value: &[u8]) -> Result<i64, StateError> {
    let payload = open(ns, key, value)?;
    let bytes: [u8; 8] = payload
        .try_into()
        .map_err(|_| StateError::corrupt(ns, key, "expected an 8-byte integer"))?;
    Ok(i64::from_be_bytes(bytes))
}

/// Frames a JSON encoding of `value`.
pub fn seal_json<T: serde::Serialize>(
    ns: Namespace,
    key: &[u8],
    value: &T,
) -> Result<Vec<u8>, StateError> {
    let payload = serde_json::to_vec(value)
        .map_err(|e| StateError::Invalid(format!("cannot encode value for {ns}: {e}")))?;
    Ok(seal(ns, key, &payload))
}

/// Opens a framed JSON value.
pub fn open_json<T: serde::de::DeserializeOwned>(
    ns: Namespace,
    key: &[u8],
    value: &[u8],
) -> Result<T, StateError> {
    let payload = open(ns, key, value)?;
    serde_json::from_slice(payload)
        .map_err(|e| StateError::corrupt(ns, key, format!("undecodable payload: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: Namespace = Namespace::new("test");

    #[test]
    fn round_trip() {
        let v = seal(NS, b"k", b"hello");
        assert_eq!(open(NS, b"k", &v).unwrap(), b"hello");
        assert_eq!(open_u64(NS, b"n", &seal_u64(NS, b"n", 42)).unwrap(), 42);
        assert_eq!(open_i64(NS, b"n", &seal_i64(NS, b"n", -7)).unwrap(), -7);
    }

    #[test]
    fn the_checksum_is_crc32c_over_namespace_key_and_payload() {
        // The format's pinned value: CRC-32C's check value, crc("123456789") = 0xE3069283,
        // split over the three parts. State files written earlier stay readable.
        let v = seal(Namespace::new("1234"), b"5678", b"9");
        assert_eq!(v[1..HEADER_LEN], 0xE306_9283u32.to_be_bytes());
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let v = seal(NS, b"key", b"{\"a\":1}");
        for i in 0..v.len() * 8 {
            let mut bad = v.clone();
            bad[i / 8] ^= 1 << (i % 8);
            let err = open(NS, b"key", &bad).unwrap_err();
            assert_eq!(err.kind(), "corrupt", "bit {i}");
        }
    }

    #[test]
    fn wrong_place_truncation_and_garbage_are_corrupt() {
        let v = seal(NS, b"a", b"x");
        assert!(open(NS, b"b", &v).is_err());
        assert!(open(Namespace::new("other"), b"a", &v).is_err());
        assert!(open(NS, b"a", &v[..3]).is_err());
        assert!(open(NS, b"a", &[]).is_err());
        assert!(open_u64(NS, b"a", &seal(NS, b"a", b"abc")).is_err());
        assert!(open_json::<Vec<u32>>(NS, b"a", &seal(NS, b"a", b"{")).is_err());
    }
}
