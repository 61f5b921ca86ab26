//! The codec for stored values: rows, schemas, transaction snapshots and log entries.
//!
//! Everything that is stored as a value goes through [`encode`] and [`decode`], which use
//! bincode 2 (its serde integration, standard configuration: little-endian, variable-length
//! integers). Swapping the format means changing only this file.

use super::DecodeError;
use bincode::config::{Configuration, Limit, LittleEndian, Varint};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The largest value the decoder accepts (it guards allocations driven by corrupt lengths).
pub const MAX_VALUE_SIZE: usize = 512 << 20;

/// The bincode configuration used for every stored value.
const CONFIG: Configuration<LittleEndian, Varint, Limit<MAX_VALUE_SIZE>> =
    bincode::config::standard().with_limit::<MAX_VALUE_SIZE>();

/// Encodes a value.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // faulty code: our stored types are plain structs, enums, sequences and maps, which bincode
    // always encodes (it only fails on serde features we do not use).
    bincode::serde::encode_to_vec(value, CONFIG)
        .unwrap_or_else(|error| panic!("value encoding failed: {error}"))
}

/// Decodes a value, failing on malformed input or trailing bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let (value, read) = bincode::serde::decode_from_slice(bytes, CONFIG)
        .map_err(|error| DecodeError(error.to_string()))?;
    if read != bytes.len() {
        return Err(DecodeError(format!("{} trailing bytes after value", bytes.len() - read)));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn roundtrip_and_trailing_bytes() {
        let set: BTreeSet<u64> = [1, 5, 300].into();
        let bytes = encode(&set);
        assert_eq!(decode::<BTreeSet<u64>>(&bytes).unwrap(), set);
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode::<BTreeSet<u64>>(&longer).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        // A huge declared length must not allocate or panic.
        let garbage = [0xfc, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
        assert!(decode::<Vec<String>>(&garbage).is_err());
        assert!(decode::<(String, u64)>(&[]).is_err());
    }
}
