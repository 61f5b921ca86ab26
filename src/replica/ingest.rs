//! Rows forwarded by edge clusters, applied exactly once.
//!
//! An edge numbers the rows of its outbox 1, 2, 3, ... in commit order and sends them in
//! order, in batches, possibly more than once (after a timeout, a restart or a leader
//! change on either side). For each edge the state machine records the highest sequence
//! number it holds, in the same atomic batch as the rows themselves, so a batch applied again
//! skips what it holds and inserts only the rest: every row once, in the edge's order.
//!
//! Invariants:
//! - A batch's rows are inserted in one transaction together with the new record, or none
//!   are (a failed insert, say a missing table, leaves the record where it was).
//! - A known edge's batch must start at or before the row after the last one held; a batch
//!   past that (rows missing in between) is refused with `edge_gap` and changes nothing.

use super::command::{Ingest, Outcome, StatementError};
use super::state::{ApplyError, StateMachine, fatal};
use crate::encoding::value as codec;
use crate::raft::Index;
use crate::sql::Database;
use crate::sql::engine::Privilege;
use crate::sql::parser::ast::{Expression, InsertSource, Statement};
use crate::storage::Engine;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The prefix of the edges' records (the highest sequence number held), then the edge id.
const EDGE_PREFIX: u8 = 0xf2;

fn edge_key(edge: &str) -> Vec<u8> {
    let mut key = vec![EDGE_PREFIX];
    key.extend_from_slice(edge.as_bytes());
    key
}

/// The edges' records in a store.
pub(super) fn load_edges(store: &dyn Engine) -> Result<BTreeMap<String, u64>, String> {
    let mut edges = BTreeMap::new();
    for item in store.scan_prefix(&[EDGE_PREFIX]) {
        let (key, value) = item.map_err(|e| e.to_string())?;
        let edge = String::from_utf8(key[1..].to_vec())
            .map_err(|_| "an edge record's key is damaged".to_string())?;
        let held: u64 =
            codec::decode(&value).map_err(|e| format!("an edge record is damaged: {e}"))?;
        edges.insert(edge, held);
    }
    Ok(edges)
}

fn refused(kind: &str, message: String) -> Outcome {
    Outcome::Executed { results: vec![Err(StatementError::new(kind, message))], txn: None }
}

/// The INSERT statements of a batch's rows: one per run of rows into the same table.
fn inserts(
    tables: &[(String, Vec<String>)],
    rows: &[(u32, crate::sql::types::Row)],
) -> Vec<Statement> {
    let mut statements: Vec<(u32, Vec<Vec<Expression>>)> = Vec::new();
    for (table, row) in rows {
        let values = row.iter().cloned().map(Expression::Literal).collect();
        match statements.last_mut() {
            Some((last, run)) if last == table => run.push(values),
            _ => statements.push((*table, vec![values])),
        }
    }
    statements
        .into_iter()
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

impl StateMachine {
    /// Applies an edge's batch (see the module docs).
    pub(super) fn ingest(
        &mut self,
        index: Index,
        db: &Arc<Database>,
        ingest: Ingest,
    ) -> Result<Outcome, ApplyError> {
        let Ingest { edge, first, tables, rows, caller, limits, now } = ingest;
        let held = self.edges.get(&edge).copied();
        if let Some(held) = held
            && first > held + 1
        {
            return Ok(refused(
                "edge_gap",
                format!(
                    "this cluster holds edge {edge}'s rows through {held}, and the batch starts at {first}: rows in between are missing"
                ),
            ));
        }
        if rows.iter().any(|(table, _)| *table as usize >= tables.len()) {
            return Ok(refused("invalid_request", "a row names no table of the batch".into()));
        }
        let skip = held.map_or(0, |held| (held + 1).saturating_sub(first)) as usize;
        let Some(fresh) = rows.get(skip..).filter(|fresh| !fresh.is_empty()) else {
            return Ok(Outcome::Ingested { through: held.unwrap_or(0) });
        };
        let through = first + rows.len() as u64 - 1;
        let statements = inserts(&tables, fresh);
        let rights = match super::access::rights_at_apply(db, &caller) {
            Ok(rights) => rights,
            Err(super::Error::Io(message)) => return Err(fatal(index, message)),
            Err(error) => {
                return Ok(Outcome::Executed { results: vec![Err(error.into())], txn: None });
            }
        };
        if let Some(statement) = statements.iter().find(|s| !rights.may(Privilege::of(s))) {
            let message = rights.refusal(Privilege::of(statement), &statement.summary());
            return Ok(refused("permission_denied", message));
        }
        let mut session = db.session();
        session.set_limits(limits);
        session.set_clock(now);
        let begin = Statement::Begin { read_only: false, as_of: None };
        for statement in std::iter::once(&begin).chain(&statements).chain([&Statement::Commit]) {
            match session.execute_statement(statement) {
                Ok(_) => {}
                Err(error) if error.is_deterministic() => {
                    if session.in_transaction() {
                        session
                            .execute_statement(&Statement::Rollback)
                            .map_err(|e| fatal(index, e))?;
                    }
                    let message = format!("edge {edge}'s rows {first}-{through}: {error}");
                    return Ok(refused(error.kind(), message));
                }
                Err(error) => return Err(fatal(index, error)),
            }
        }
        self.store.set(&edge_key(&edge), codec::encode(&through)).map_err(|e| fatal(index, e))?;
        self.edges.insert(edge, through);
        Ok(Outcome::Ingested { through })
    }

    /// The highest sequence number held of each edge that forwarded rows here.
    pub fn edges(&self) -> &BTreeMap<String, u64> {
        &self.edges
    }
}

#[cfg(test)]
#[path = "ingest_tests.rs"]
mod tests;
