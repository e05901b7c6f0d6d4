//! Versioned value encoding: one format byte, then bincode 2 (serde, standard config);
//! event records, the bulk of the store, have their own layout (`event_format`).
//!
//! Decoding is bounded (a length prefix cannot make us allocate more than the record could
//! hold) and a record that fails to decode is reported as corruption, never a panic.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::StoreError;

/// The format byte written in front of every record but event records.
pub const FORMAT_V1: u8 = 1;
/// The format byte of event records since schema 4, whose bytes `event_format` lays out
/// by hand; schema 3 and earlier wrote them as bincode behind [`FORMAT_V1`].
pub const EVENT_FORMAT: u8 = 2;
/// The format byte of event records with a route written since schema 7: as
/// [`EVENT_FORMAT`], but the route is its per-tenant number (`columns::KIND_ROUTE`), not a
/// [`super::records::Text`].
pub const EVENT_FORMAT_ROUTED: u8 = 4;
/// The format byte of token records written since schema 7: bincode of a layout with
/// the times as differences (see `records::TokenRecord::encode`); older ones are
/// [`FORMAT_V1`].
pub const TOKEN_FORMAT: u8 = 3;
/// Largest record we will ever decode.
const MAX_RECORD: usize = 1 << 20;

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    encode_as(FORMAT_V1, value)
}

/// `value` in bincode behind format byte `format`.
pub fn encode_as<T: Serialize>(format: u8, value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![format];
    let body = bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| StoreError::Corrupt(format!("encoding a record: {e}")))?;
    out.extend_from_slice(&body);
    Ok(out)
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, StoreError> {
    decode_as(FORMAT_V1, bytes, what)
}

/// What [`encode_as`] wrote behind format byte `format`; any other format is corruption.
pub fn decode_as<T: DeserializeOwned>(
    format: u8,
    bytes: &[u8],
    what: &str,
) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&found, body)) if found == format => {
            let config = bincode::config::standard().with_limit::<MAX_RECORD>();
            bincode::serde::decode_from_slice(body, config)
                .map(|(value, _)| value)
                .map_err(|e| StoreError::Corrupt(format!("{what} record does not decode: {e}")))
        }
        Some((version, _)) => Err(StoreError::Corrupt(format!(
            "{what} record has unknown format {version}"
        ))),
        None => Err(StoreError::Corrupt(format!("{what} record is empty"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let v = (7u64, "x".to_owned(), Some(3u32));
        let bytes = encode(&v).expect("encodes");
        assert_eq!(bytes[0], FORMAT_V1);
        let back: (u64, String, Option<u32>) = decode(&bytes, "t").expect("decodes");
        assert_eq!(back, v);
        assert!(decode::<(u64, String)>(&[], "t").is_err());
        assert!(decode::<(u64, String)>(&[9, 1], "t").is_err());
        // A huge length prefix must fail cleanly, not allocate.
        assert!(decode::<Vec<u8>>(&[1, 0xfc, 0xff, 0xff, 0xff, 0xff], "t").is_err());
    }
}

#[cfg(test)]
mod no_panics {
    use super::*;
    use crate::store::records::{EventRecord, KeyRecord, RecordHead, TokenRecord};
    use proptest::prelude::*;

    proptest! {
        /// A damaged record is reported as corruption, never a panic or a huge allocation.
        #[test]
        fn arbitrary_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            for format in [FORMAT_V1, EVENT_FORMAT, TOKEN_FORMAT] {
                let mut framed = vec![format];
                framed.extend_from_slice(&bytes);
                for candidate in [&bytes, &framed] {
                    let _ = EventRecord::decode(candidate);
                    let _ = RecordHead::decode(candidate);
                    let _ = TokenRecord::decode(candidate);
                    let _ = decode::<KeyRecord>(candidate, "key");
                }
            }
        }
    }
}
