//! Rows forwarded by edge clusters, applied exactly once.
//!
//! An edge numbers the rows of its outbox 1, 2, 3, ... in commit order and sends them in
//! order, in batches, possibly more than once (after a timeout, a restart or a leader
//! change on either side). For each edge the cluster records the highest sequence number it
//! holds ([`EdgeRecord`], a versioned key beside the SQL data) in the same transaction as the
//! rows, so a batch applied again skips what it holds and inserts only the rest: every row
//! once, in the edge's order. Backups carry the records with the rows.
//!
//! Invariants:
//! - A batch's rows are inserted in one transaction together with the new record, or none
//!   are (a failed insert, say a missing table, leaves the record where it was).
//! - Within one incarnation of an edge, a batch must start at or before the row after the
//!   last one held; a batch past that (rows missing in between) is refused with `edge_gap`.
//!   A new incarnation (a rebuilt or restored edge) starts the record over, from row 1 only:
//!   a batch of a new incarnation starting elsewhere (two edges with one id) is refused.
//! - Once a user has forwarded for an edge id, another user may not (the operator may).

use super::command::{Caller, Ingest, Outcome, StatementError};
use super::state::{ApplyError, StateMachine, fatal};
use crate::raft::Index;
use crate::sql::Database;
use crate::sql::engine::{EdgeRecord, Privilege};
use crate::sql::parser::ast::{Expression, InsertSource, Statement};
use crate::sql::types::Row;
use std::sync::Arc;

fn refused(kind: &str, message: String) -> Outcome {
    Outcome::Executed { results: vec![Err(StatementError::new(kind, message))], txn: None }
}

/// The INSERT statements of a batch's rows: one per run of rows into the same table.
fn inserts(tables: &[(String, Vec<String>)], rows: &[(u32, Row)]) -> Vec<Statement> {
    let mut runs: Vec<(u32, Vec<Vec<Expression>>)> = Vec::new();
    for (table, row) in rows {
        let values = row.iter().cloned().map(Expression::Literal).collect();
        match runs.last_mut() {
            Some((last, run)) if last == table => run.push(values),
            _ => runs.push((*table, vec![values])),
        }
    }
    runs.into_iter()
        .filter_map(|(table, values)| {
            let (name, columns) = tables.get(table as usize)?;
            Some(Statement::Insert {
                table: name.clone(),
                columns: (!columns.is_empty()).then(|| columns.clone()),
                source: InsertSource::Values(values),
                conflict: None,
                returning: Vec::new(),
            })
        })
        .collect()
}

/// What to do with a batch, given the edge's record.
enum Decision {
    /// Refuse it: a kind and a message.
    Refuse(&'static str, String),
    /// Insert the rows from `skip` on; the edge is then held through `through`.
    Insert { skip: usize, through: u64 },
    /// Everything is held already.
    Held(u64),
}

fn decide(record: Option<&EdgeRecord>, batch: &Ingest) -> Decision {
    let Ingest { edge, incarnation, first, rows, caller, .. } = batch;
    let through = first + rows.len() as u64 - 1;
    let Some(record) = record else {
        // A new edge: its numbers start here.
        return Decision::Insert { skip: 0, through };
    };
    if let (Some(owner), Caller::User(user)) = (&record.owner, caller)
        && owner != user
    {
        let message = format!("edge {edge} forwards as user {owner}, not {user}");
        return Decision::Refuse("permission_denied", message);
    }
    if record.incarnation != *incarnation {
        // A new life of the edge (rebuilt, or restored: see `restart_outbox`) numbers from 1.
        // Anything else is another edge using the same id, which must not reset this one.
        if *first != 1 {
            let message = format!(
                "edge {edge} starts a new numbering at {first}, not 1: is another edge using the same --edge-id?"
            );
            return Decision::Refuse("edge_gap", message);
        }
        return Decision::Insert { skip: 0, through };
    }
    if *first > record.held + 1 {
        let message = format!(
            "this cluster holds edge {edge}'s rows through {}, and the batch starts at {first}: rows in between are missing",
            record.held
        );
        return Decision::Refuse("edge_gap", message);
    }
    match (record.held + 1 - first) as usize {
        skip if skip < rows.len() => Decision::Insert { skip, through },
        _ => Decision::Held(record.held),
    }
}

impl StateMachine {
    /// Applies an edge's batch (see the module docs).
    pub(super) fn ingest(
        &mut self,
        index: Index,
        db: &Arc<Database>,
        batch: Ingest,
    ) -> Result<Outcome, ApplyError> {
        if batch.first == 0 || batch.rows.iter().any(|(t, _)| *t as usize >= batch.tables.len()) {
            return Ok(refused("invalid_request", "a malformed batch".into()));
        }
        if batch.rows.is_empty() {
            return Ok(refused("invalid_request", "an empty batch".into()));
        }
        let rights = match super::access::rights_at_apply(db, &batch.caller) {
            Ok(rights) => rights,
            Err(super::Error::Io(message)) => return Err(fatal(index, message)),
            Err(error) => {
                return Ok(Outcome::Executed { results: vec![Err(error.into())], txn: None });
            }
        };
        let statements = inserts(&batch.tables, &batch.rows);
        if let Some(statement) = statements.iter().find(|s| !rights.may(Privilege::of(s))) {
            let message = rights.refusal(Privilege::of(statement), &statement.summary());
            return Ok(refused("permission_denied", message));
        }
        let owner = match &batch.caller {
            Caller::User(user) => Some(user.clone()),
            _ => None,
        };
        let result = db.in_transaction(batch.limits, batch.now, |txn| {
            let record = txn.edge_record(&batch.edge)?;
            let (skip, through) = match decide(record.as_ref(), &batch) {
                Decision::Refuse(kind, message) => return Ok(refused(kind, message)),
                Decision::Held(held) => return Ok(Outcome::Ingested { through: held }),
                Decision::Insert { skip, through } => (skip, through),
            };
            for statement in inserts(&batch.tables, &batch.rows[skip..]) {
                txn.run(&statement)?;
            }
            let owner = record.and_then(|r| r.owner).or(owner);
            let incarnation = batch.incarnation;
            txn.set_edge_record(&batch.edge, &EdgeRecord { incarnation, held: through, owner })?;
            Ok(Outcome::Ingested { through })
        });
        match result {
            Ok(outcome) => Ok(outcome),
            Err(error) if error.is_deterministic() => {
                let (first, last) = (batch.first, batch.first + batch.rows.len() as u64 - 1);
                let message = format!("edge {}'s rows {first}-{last}: {error}", batch.edge);
                Ok(refused(error.kind(), message))
            }
            Err(error) => Err(fatal(index, error)),
        }
    }
}

#[cfg(test)]
#[path = "ingest_tests.rs"]
mod tests;
