//! Chronos: a small distributed SQL database.
//!
//! The crate is layered, and calls go downward only:
//!
//! - [`encoding`]: order-preserving key encoding and the value codec.
//! - [`storage`]: the key/value [`storage::Engine`] trait (redb and sled on disk, a BTreeMap in memory)
//!   and multi-version concurrency control ([`storage::mvcc`]) on top of it.
//! - [`sql`]: the SQL dialect: parser, planner and a deterministic executor over MVCC.
//! - [`raft`]: the consensus core (pure) and its Ready loop; it knows nothing of SQL.
//! - [`replica`]: the types a replica, its clients and the gRPC surface share.
//! - [`server`]: the node, wiring Raft to the SQL state machine and serving [`grpc`].
//! - [`client`]: the client library the CLI and the console use (never [`server`]).
//!
//! See `docs/ARCHITECTURE.md` for the whole picture.

#![warn(clippy::all)]
#![warn(missing_docs)]

pub mod client;
pub mod encoding;
pub mod grpc;
pub mod raft;
pub mod replica;
pub mod rng;
pub mod server;
pub mod sql;
pub mod storage;
