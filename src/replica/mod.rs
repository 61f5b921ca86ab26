//! The replica layer: what clients, the gRPC surface and a node share about a replicated SQL
//! database. It holds the replicated command and its outcome (`command.rs`) and what a request
//! asks of a replica (`request.rs`). Clients, the CLI and the console use these types and
//! [`crate::client`], never the node's code (`server`).

mod command;
mod request;

pub use command::{Command, Outcome, RequestId, StatementError, StatementOutcome};
pub use request::{Consistency, Settings, Transaction};
