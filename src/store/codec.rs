//! The one place records become bytes and back.
//!
//! bincode 2 (serde mode) behind a leading format-version byte: bincode's 3.0
//! release is a compile error and the crate is unmaintained, so keeping every
//! encode and decode here lets the format move to a compatible crate, or a
//! new version byte, without touching any other module.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::records::{
    IdentityRecord, MailRecord, MessageRecord, SessionRecord, SessionRecordV1, SessionRecordV2,
    TicketRecord, UserRecord, UserRecordV1, UserRecordV2,
};

/// The first format version; users and messages are still written in it.
const FORMAT_V1: u8 = 1;

/// A stored record type: the version byte this build writes for it, and
/// how it reads bodies written under older versions, so a new field never
/// makes old records unreadable.
pub trait Record: Serialize + DeserializeOwned {
    /// What `encode` writes in front of the body.
    const FORMAT: u8 = FORMAT_V1;

    /// Reads a body written under `version`, older than `FORMAT`.
    fn upgrade(version: u8, _body: &[u8]) -> Result<Self, CodecError> {
        Err(CodecError::UnknownVersion(version))
    }
}

impl Record for MessageRecord {}
impl Record for super::audit::AuditRecord {}
impl Record for IdentityRecord {}
impl Record for TicketRecord {}
impl Record for MailRecord {}

/// Version 2 added second factors; a version-1 user has none. Version 3
/// added `email_verified`; no earlier user had proved an address.
impl Record for UserRecord {
    const FORMAT: u8 = 3;

    fn upgrade(version: u8, body: &[u8]) -> Result<Self, CodecError> {
        match version {
            FORMAT_V1 => Ok(decode_body::<UserRecordV1>(body)?.into()),
            2 => Ok(decode_body::<UserRecordV2>(body)?.into()),
            other => Err(CodecError::UnknownVersion(other)),
        }
    }
}

/// Version 2 added `remember`; a version-1 session was made before
/// "remember me" existed, when every cookie was persistent. Version 3
/// added `amr`; every earlier session was a password's.
impl Record for SessionRecord {
    const FORMAT: u8 = 3;

    fn upgrade(version: u8, body: &[u8]) -> Result<Self, CodecError> {
        match version {
            FORMAT_V1 => Ok(decode_body::<SessionRecordV1>(body)?.into()),
            2 => Ok(decode_body::<SessionRecordV2>(body)?.into()),
            other => Err(CodecError::UnknownVersion(other)),
        }
    }
}

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
pub fn encode<T: Record>(value: &T) -> Vec<u8> {
    let mut out = vec![T::FORMAT];
    // Encoding plain owned structs into a Vec cannot fail.
    let body = bincode::serde::encode_to_vec(value, bincode_config())
        .unwrap_or_else(|e| unreachable!("encoding a record into memory failed: {e}"));
    out.extend_from_slice(&body);
    out
}

/// Decodes a record written by `encode` (by this build or an older one),
/// refusing trailing bytes.
pub fn decode<T: Record>(bytes: &[u8]) -> Result<T, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Truncated)?;
    if version == T::FORMAT {
        decode_body(body)
    } else if version < T::FORMAT {
        T::upgrade(version, body)
    } else {
        Err(CodecError::UnknownVersion(version))
    }
}

/// Decodes a body without its version byte.
fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, CodecError> {
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

/// Appends one frame to `out`: a kind byte, the length as a big-endian
/// u32, the bytes. A backup lays its records end to end this way, so its
/// size is bounded by none of theirs.
pub fn push_frame(out: &mut Vec<u8>, kind: u8, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    out.push(kind);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    for part in parts {
        out.extend_from_slice(part);
    }
}

/// The frames `push_frame` wrote, in order; one cut short is `Truncated`.
pub fn frames(mut bytes: &[u8]) -> impl Iterator<Item = Result<(u8, &[u8]), CodecError>> {
    std::iter::from_fn(move || {
        if bytes.is_empty() {
            return None;
        }
        if bytes.len() < 5 {
            bytes = &[];
            return Some(Err(CodecError::Truncated));
        }
        let kind = bytes[0];
        let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
        let rest = &bytes[5..];
        if rest.len() < len {
            bytes = &[];
            return Some(Err(CodecError::Truncated));
        }
        bytes = &rest[len..];
        Some(Ok((kind, &rest[..len])))
    })
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

    impl Record for Sample {}

    #[test]
    fn a_session_written_before_remember_me_reads_as_remembered() {
        let old = SessionRecordV1 {
            user_id: 7,
            created_at_ms: 1,
            last_seen_at_ms: 2,
            absolute_expires_at_ms: 3,
            idle_expires_at_ms: 4,
            user_agent: "ua".into(),
            ip: "127.0.0.1".into(),
        };
        let mut bytes = vec![FORMAT_V1];
        bytes.extend(bincode::serde::encode_to_vec(&old, bincode_config()).unwrap());
        let read: SessionRecord = decode(&bytes).unwrap();
        assert!(read.remember);
        assert_eq!((read.user_id, read.idle_expires_at_ms), (7, 4));
        let session = SessionRecord {
            remember: false,
            ..read
        };
        let again: SessionRecord = decode(&encode(&session)).unwrap();
        assert_eq!(again, session);
        assert_eq!(encode(&session)[0], 3);
        assert_eq!(again.amr, vec![crate::domain::Amr::Pwd]);
    }

    #[test]
    fn a_user_written_before_second_factors_reads_with_none() {
        let old = UserRecordV1 {
            id: 3,
            username: "alice".into(),
            email: "a@example.com".into(),
            role: crate::domain::Role::User,
            password_hash: "$argon2id$x".into(),
            created_at_ms: 9,
        };
        let mut bytes = vec![FORMAT_V1];
        bytes.extend(bincode::serde::encode_to_vec(&old, bincode_config()).unwrap());
        let read: UserRecord = decode(&bytes).unwrap();
        assert!(!read.factors.any() && !read.email_verified);
        assert_eq!((read.id, read.username.as_str()), (3, "alice"));
        assert_eq!(encode(&read)[0], 3);
        assert_eq!(decode::<UserRecord>(&encode(&read)).unwrap(), read);
    }

    #[test]
    fn a_user_written_before_verification_reads_as_unverified() {
        let old = UserRecordV2 {
            id: 4,
            username: "bob".into(),
            email: "b@example.com".into(),
            role: crate::domain::Role::Admin,
            password_hash: "$argon2id$x".into(),
            created_at_ms: 9,
            factors: Default::default(),
        };
        let mut bytes = vec![2];
        bytes.extend(bincode::serde::encode_to_vec(&old, bincode_config()).unwrap());
        let read: UserRecord = decode(&bytes).unwrap();
        assert_eq!(
            (read.id, read.role, read.email_verified),
            (4, crate::domain::Role::Admin, false)
        );
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
        bytes[0] = 0;
        assert!(matches!(
            decode::<Sample>(&bytes),
            Err(CodecError::UnknownVersion(0))
        ));
        bytes[0] = 9;
        assert!(matches!(
            decode::<Sample>(&bytes),
            Err(CodecError::UnknownVersion(9))
        ));
    }
}
