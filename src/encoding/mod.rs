//! Byte encodings shared by the storage and SQL layers.
//!
//! - [`keycode`]: an order-preserving encoding for keys. For any two values `a` and `b` of the
//!   same kind, `encode(a) < encode(b)` (bytewise) exactly when `a < b`, so ordered scans over the
//!   key/value engine return rows in key order.
//! - [`value`]: the codec for stored values (rows, schemas, log entries). It is bincode 2 behind
//!   two functions, so the format can be swapped in one place.

pub mod keycode;
pub mod value;

/// A byte string could not be decoded: the stored data is corrupt or of another format.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot decode stored data: {0}")]
pub struct DecodeError(pub String);
