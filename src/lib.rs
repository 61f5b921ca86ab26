//! Chronos: a small distributed SQL database.
//!
//! The crate is layered, and each layer only calls the one below it:
//!
//! - [`encoding`]: order-preserving key encoding and the value codec.
//! - [`storage`]: the key/value [`storage::Engine`] trait (redb and sled on disk, a BTreeMap in memory)
//!   and multi-version concurrency control ([`storage::mvcc`]) on top of it.
//! - [`sql`]: the SQL dialect: parser, planner and a deterministic executor over MVCC.
//!
//! See `docs/ARCHITECTURE.md` for the whole picture.

#![warn(clippy::all)]
#![warn(missing_docs)]

pub mod client;
pub mod encoding;
pub mod grpc;
pub mod raft;
pub mod rng;
pub mod server;
pub mod sql;
pub mod storage;
