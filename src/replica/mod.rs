//! The replica layer: what clients, the gRPC surface and a node share about a replicated SQL
//! database. It holds the replicated command and its outcome (`command.rs`), what a request
//! asks of a replica (`request.rs`), and the session and transaction rules: where each
//! statement goes (`session.rs`). Clients, the CLI and the console use these types and
//! [`crate::client`], never the node's code (`server`).

mod command;
mod request;
mod session;

pub use command::{Command, Outcome, RequestId, StatementError, StatementOutcome};
pub use request::{Consistency, Settings, Transaction};
pub use session::{Open, Route, route};
