//! The node: the SQL engine and the Raft core wired together and served over gRPC.

mod command;
mod state;

pub use command::{Command, Outcome, StatementError, StatementOutcome};
pub use state::{ApplyError, EngineSource, MemorySource, SharedDatabase, SledSource, StateMachine};
