//! The one place records become bytes and back.
//!
//! bincode 2 (serde mode) behind a leading format-version byte: bincode's 3.0
//! release is a compile error and the crate is unmaintained, so keeping every
//! encode and decode here lets the format move to a compatible crate, or a
//! new version byte, without touching any other module.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The version byte every record written by this build starts with.
const FORMAT_V1: u8 = 1;

/// A stored value that this build cannot read.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The value is empty or was cut short.
    #[error("record is truncated")]
    Truncated,
    /// A newer or unknown format.
    #[error("record has unknown format version {0}")]
    UnknownVersion(u8),
    /// The bytes do not decode as the expected record.
    #[error("record does not decode: {0}")]
    Malformed(String),
}

/// No record comes near this; a damaged length prefix must fail to decode
/// rather than ask the allocator for terabytes (which aborts the process).
const MAX_RECORD_BYTES: usize = 1 << 20;

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_RECORD_BYTES>()
}

/// Encodes a record with its version byte.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![FORMAT_V1];
    // Encoding plain owned structs into a Vec cannot fail.
    let body = bincode::serde::encode_to_vec(value, bincode_config())
        .unwrap_or_else(|e| unreachable!("encoding a record into memory failed: {e}"));
    out.extend_from_slice(&body);
    out
}

/// Decodes a record written by `encode`, refusing trailing bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Truncated)?;
    if version != FORMAT_V1 {
        return Err(CodecError::UnknownVersion(version));
    }
    let (value, used) =
        bincode::serde::decode_from_slice(body, bincode_config()).map_err(|e| match e {
            bincode::error::DecodeError::UnexpectedEnd { .. } => CodecError::Truncated,
            other => CodecError::Malformed(other.to_string()),
        })?;
    if used != body.len() {
        return Err(CodecError::Malformed("trailing bytes".into()));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sample {
        name: String,
        n: u64,
    }

    #[test]
    fn round_trip() {
        let s = Sample {
            name: "x".into(),
            n: 7,
        };
        assert_eq!(decode::<Sample>(&encode(&s)).unwrap(), s);
    }

    #[test]
    fn a_damaged_length_prefix_is_an_error_not_a_huge_allocation() {
        // Version, then a string length of 2^40 as a bincode varint (found
        // by the record_bytes fuzz target: it used to abort the process).
        let mut bytes = vec![FORMAT_V1, 253];
        bytes.extend_from_slice(&(1u64 << 40).to_le_bytes());
        bytes.extend_from_slice(b"abc");
        assert!(decode::<Sample>(&bytes).is_err());
    }

    #[test]
    fn refuses_unknown_version_truncation_and_garbage() {
        let mut bytes = encode(&Sample {
            name: "abc".into(),
            n: 1,
        });
        assert!(matches!(decode::<Sample>(&[]), Err(CodecError::Truncated)));
        assert!(matches!(
            decode::<Sample>(&bytes[..3]),
            Err(CodecError::Truncated)
        ));
        bytes.push(0);
        assert!(matches!(
            decode::<Sample>(&bytes),
            Err(CodecError::Malformed(_))
        ));
        bytes[0] = 9;
        assert!(matches!(
            decode::<Sample>(&bytes),
            Err(CodecError::UnknownVersion(9))
        ));
    }
}
