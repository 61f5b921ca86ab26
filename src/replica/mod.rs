//! The replica layer, between the node and SQL: a replicated SQL database on top of any
//! consensus that can order commands.
//!
//! - What clients, the gRPC surface and the node share: the replicated command and its
//!   outcome (`command.rs`), what a request asks and gets back (`request.rs`).
//! - The session and transaction rules: where each statement goes (`session.rs`, pure), how
//!   a session is signed (`proof.rs`), which transactions clients still use (`activity.rs`).
//! - The state machine every replica applies the log to (`state.rs`).
//! - Serving scripts on top of the small [`Consensus`] trait the node implements with Raft
//!   (`consensus.rs`): the [`Replica`] service (`service.rs`) runs each script (`serve.rs`:
//!   statements cut from a stream by `script.rs`, writes proposed as log runs, reads after a
//!   read index, queries in `query.rs`).
//!
//! - Who is asking and what they may do (`access.rs`: users' logins, tokens, roles).
//! - Rows forwarded by edges, applied exactly once (`ingest.rs`).
//! - Online backups and restores of the SQL data (`backup.rs`).
//! - What it tells the node of each statement served (`observe.rs`: metrics, statistics).
//!
//! Clients, the CLI and the console use these types and [`crate::client`], never the node's
//! code (`server`); this layer does not know gRPC or the node either (`tests/layers.rs`).

pub mod access;
pub mod activity;
pub mod backup;
mod command;
mod consensus;
mod ingest;
mod observe;
pub mod proof;
mod query;
mod request;
mod script;
mod serve;
mod service;
mod session;
mod state;

pub use command::{Caller, Command, Ingest, Outcome, RequestId, StatementError, StatementOutcome};
pub use consensus::{Consensus, Error};
pub use observe::{SeenStatement, StatementObserver, Unobserved, statement_kind};
pub use request::{Chunk, Consistency, Response, Settings, Transaction};
pub use serve::{MAX_RUN_BYTES, MAX_STATEMENT_BYTES};
pub use service::{Replica, ServeOptions};
pub use session::{Open, Route, route};
pub use state::{ApplyError, Meta, SharedDatabase, StateMachine, read_database};
