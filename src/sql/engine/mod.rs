//! The SQL engine: the catalog and row storage over MVCC ([`Txn`]), table schemas, and the
//! [`Database`] with its [`Session`]s, which run statements with transaction control.

mod edges;
mod outbox;
mod rollup;
mod schema;
mod session;
mod statistics;
mod store;
mod users;

pub use edges::EdgeRecord;
pub use outbox::{ForwardSettings, OutboxEntry, OutboxStatus};
pub use rollup::{Rollup, RollupAggregate, RollupFunction};
pub use schema::{Column, Index, Statistics, Table, Ttl, View};
pub use session::{Database, Session};
pub use store::Txn;
pub use users::{Privilege, Role, User};
