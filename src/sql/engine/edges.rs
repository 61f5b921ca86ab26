//! What a cluster holds of each edge that forwards rows to it (see `replica::ingest`), kept
//! as versioned keys beside the SQL data: the rows of a batch and the edge's new record
//! commit in one transaction, and backups carry both.
//!
//! Key layout: `Edge(id)` → an [`EdgeRecord`].

use super::store::Txn;
use crate::encoding::keycode;
use crate::encoding::value as codec;
use crate::sql::budget::{Budget, Limits};
use crate::sql::error::Result;
use crate::sql::execution::{StatementResult, execute};
use crate::sql::parser::ast::Statement;
use crate::sql::planner::Planner;
use serde::{Deserialize, Serialize};

const EDGE: u8 = 0x0d;

/// How far a cluster holds one edge's rows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeRecord {
    /// The edge's life the numbers belong to: a rebuilt or restored edge numbers its rows
    /// from 1 again under a new one.
    pub incarnation: u64,
    /// The highest sequence number held.
    pub held: u64,
    /// The user that forwards for the edge, once one has (another user may not).
    pub owner: Option<String>,
}

fn edge_key(edge: &str) -> Vec<u8> {
    let mut key = vec![EDGE];
    keycode::put_str(&mut key, edge);
    key
}

impl Txn {
    /// The record of edge `edge`, if it has forwarded rows here.
    pub fn edge_record(&self, edge: &str) -> Result<Option<EdgeRecord>> {
        match self.inner.get(&edge_key(edge))? {
            Some(bytes) => Ok(Some(codec::decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Sets the record of edge `edge`.
    pub fn set_edge_record(&mut self, edge: &str, record: &EdgeRecord) -> Result<()> {
        Ok(self.inner.set(&edge_key(edge), codec::encode(record))?)
    }

    /// Plans and runs a statement in this transaction.
    pub fn run(&mut self, statement: &Statement) -> Result<StatementResult> {
        Planner::new(self).plan(statement).and_then(|plan| execute(plan, self))
    }
}

impl super::Database {
    /// Runs `work` in one read-write transaction at time `now` within `limits`: committed if
    /// it succeeds, rolled back if it fails.
    pub fn in_transaction<T>(
        &self,
        limits: Limits,
        now: i64,
        work: impl FnOnce(&mut Txn) -> Result<T>,
    ) -> Result<T> {
        let _guard = self.lock_writes();
        crate::sql::clock::with_time(Some(now), || {
            let mut txn = Txn::new(self.mvcc().begin()?);
            txn.set_budget(Budget::new(limits));
            match work(&mut txn) {
                Ok(value) => {
                    txn.commit()?;
                    Ok(value)
                }
                Err(error) => {
                    txn.rollback()?;
                    Err(error)
                }
            }
        })
    }
}
