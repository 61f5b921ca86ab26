//! The MVCC key layout: tags, key builders and stored-value encoding.

use super::Version;
use crate::encoding::keycode;
use crate::storage::engine::Engine;
use crate::storage::{Error, Result};

/// Key tags, one per key space (see the module docs).
pub(super) mod tag {
    pub const NEXT_VERSION: u8 = 0x01;
    pub const TXN_ACTIVE: u8 = 0x02;
    pub const TXN_SNAPSHOT: u8 = 0x03;
    pub const TXN_WRITE: u8 = 0x04;
    pub const VERSION: u8 = 0x05;
    pub const UNVERSIONED: u8 = 0x06;
    pub const GC_HORIZON: u8 = 0x07;
    pub const SUPERSEDED: u8 = 0x08;
}

/// `TxnActive` flag: the transaction holds the exclusive (schema) lock.
pub(super) const FLAG_EXCLUSIVE: u8 = 0x01;

/// How many deletes garbage collection puts in one batch.
pub(super) const GC_BATCH: usize = 1024;

pub(super) fn version_key(key: &[u8], version: Version) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 12);
    out.push(tag::VERSION);
    keycode::put_bytes(&mut out, key);
    keycode::put_u64(&mut out, version);
    out
}

pub(super) fn versioned_tag_key(tag: u8, version: Version) -> Vec<u8> {
    let mut out = Vec::with_capacity(9);
    out.push(tag);
    keycode::put_u64(&mut out, version);
    out
}

pub(super) fn txn_write_key(version: Version, key: &[u8]) -> Vec<u8> {
    let mut out = versioned_tag_key(tag::TXN_WRITE, version);
    out.extend_from_slice(key);
    out
}

/// The record that `version` wrote `key` over an older version or wrote a tombstone: once
/// below the horizon, what it marks is garbage. Ordered by version, so garbage collection
/// reads only the records below its horizon.
pub(super) fn superseded_key(version: Version, key: &[u8]) -> Vec<u8> {
    let mut out = versioned_tag_key(tag::SUPERSEDED, version);
    out.extend_from_slice(key);
    out
}

/// Splits a `TxnWrite` or `Superseded` key into its version and user key.
pub(super) fn split_versioned_tag_key(raw: &[u8]) -> Result<(Version, &[u8])> {
    if raw.len() < 9 {
        return Err(Error::Corrupt(format!("invalid MVCC record key {raw:02x?}")));
    }
    Ok((keycode::KeyReader::new(&raw[1..9]).get_u64()?, &raw[9..]))
}

pub(super) fn unversioned_key(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 1);
    out.push(tag::UNVERSIONED);
    out.extend_from_slice(key);
    out
}

/// Splits a `Version` key into its escaped user-key part and its version.
pub(super) fn split_version_key(raw: &[u8]) -> Result<(&[u8], Version)> {
    if raw.len() < 11 || raw[0] != tag::VERSION {
        return Err(Error::Corrupt(format!("invalid MVCC version key {raw:02x?}")));
    }
    let (prefix, version) = raw.split_at(raw.len() - 8);
    Ok((prefix, keycode::KeyReader::new(version).get_u64()?))
}

/// Decodes the user key from the escaped part of a `Version` key.
pub(super) fn decode_user_key(prefix: &[u8]) -> Result<Vec<u8>> {
    let mut reader = keycode::KeyReader::new(&prefix[1..]);
    let key = reader.get_bytes()?;
    reader.finish()?;
    Ok(key)
}

/// Encodes a stored version: a tombstone (`[0]`) or a value followed by `1`. The tag is last,
/// so decoding only pops it.
pub(super) fn encode_stored(value: Option<&[u8]>) -> Vec<u8> {
    match value {
        None => vec![0],
        Some(value) => {
            let mut out = Vec::with_capacity(value.len() + 1);
            out.extend_from_slice(value);
            out.push(1);
            out
        }
    }
}

/// Whether a stored version is a tombstone.
pub(super) fn is_tombstone(stored: &[u8]) -> bool {
    stored == [0]
}

/// Decodes a stored version; `None` is a tombstone.
pub(super) fn decode_stored(mut raw: Vec<u8>) -> Result<Option<Vec<u8>>> {
    match raw.pop() {
        Some(1) => Ok(Some(raw)),
        Some(0) if raw.is_empty() => Ok(None),
        _ => Err(Error::Corrupt("invalid MVCC stored value".into())),
    }
}

pub(super) fn get_u64(engine: &dyn Engine, key: &[u8]) -> Result<Option<u64>> {
    match engine.get(key)? {
        Some(bytes) => Ok(Some(keycode::KeyReader::new(&bytes).get_u64()?)),
        None => Ok(None),
    }
}

pub(super) fn u64_bytes(value: u64) -> Vec<u8> {
    value.to_be_bytes().to_vec()
}
