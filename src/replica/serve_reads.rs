//! Serving reads: the read barrier (a read index shared by the statements that arrived
//! before it was asked for) and queries, inline or on the blocking pool with their rows
//! streamed back (part of `serve.rs`).

use super::{ROW_BATCHES_AHEAD, Run};
use crate::raft::Index;
use crate::replica::consensus::{Consensus, Error};
use crate::replica::observe::Summary;
use crate::replica::query::{self, Reader};
use crate::replica::{Consistency, Response, StatementError};
use crate::sql::budget::Budget;
use crate::sql::engine::Privilege;
use crate::sql::parser::ast::Statement;
use std::time::Instant;
use tokio::sync::mpsc;

impl<C: Consensus> Run<C> {
    /// Waits until a read outside a transaction may be served: after a read index
    /// (linearizable) or at once (stale). Returns the index the read reflects at least.
    ///
    /// A read is invoked when its text reaches this node: a client that sends several
    /// statements in one piece does not wait for one's result before sending the next. So a
    /// read index asked for after a statement arrived covers it, and the statements that
    /// arrived with it share one read index instead of a round to the leader each.
    pub(super) async fn barrier(&mut self, end: u64) -> Result<Index, StatementError> {
        let consensus = &self.replica.consensus;
        if self.settings.consistency == Consistency::Stale {
            return Ok(consensus.applied());
        }
        if let Some((covered, index)) = self.read_index
            && end <= covered
        {
            return Ok(index.max(consensus.applied()));
        }
        let covered = self.received;
        let index = consensus.read_index().await?;
        self.read_index = Some((covered, index));
        Ok(index)
    }

    /// Runs a query (or EXPLAIN): inline if it is short, otherwise on the blocking pool,
    /// streaming its rows (`query.rs`).
    pub(super) async fn query(
        &mut self,
        statement: Statement,
        reader: Reader,
        index: Index,
        end: u64,
    ) {
        let replica = &self.replica;
        let permit = match replica.query_permit().await {
            Ok(permit) => permit,
            Err(error) => return self.result(index, Err(error.into()), end, 0).await,
        };
        let db = replica.database();
        // Checked again now that this node has applied what the read must see: the request
        // was authenticated against what it had applied when it arrived.
        let caller = self.settings.principal.caller();
        let allowed = crate::replica::access::rights_at_apply(&db, &caller).and_then(|rights| {
            match rights.may(Privilege::Read) {
                true => Ok(()),
                false => Err(Error::PermissionDenied(rights.refusal(Privilege::Read, "read"))),
            }
        });
        if let Err(error) = allowed {
            drop(permit);
            return self.result(index, Err(error.into()), end, 0).await;
        }
        let deadline = Instant::now() + replica.options.query_timeout;
        let timeout = replica.options.query_timeout;
        let limits = replica.options.statement_limits;
        let stopping = replica.stopping.clone();
        let budget = Budget::new(limits).with_deadline(deadline, move || *stopping.borrow());
        if let Some((events, outcome)) = query::run_inline(&db, &statement, reader.clone(), budget)
        {
            drop(permit);
            for event in events {
                self.send(event).await;
            }
            return self.query_end(index, end, outcome).await;
        }
        let (rows, mut incoming) = mpsc::channel::<query::Event>(ROW_BATCHES_AHEAD);
        let stopping = self.replica.stopping.clone();
        let worker = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            // The query stops at its deadline, when the client (hence `rows`) is gone, or when
            // the node stops.
            let gone = rows.clone();
            let budget = Budget::new(limits)
                .with_deadline(deadline, move || gone.is_closed() || *stopping.borrow());
            query::run_on_pool(&db, &statement, reader, budget, &rows, deadline, timeout)
        });
        // Pass the batches on as they come (the channel bounds what waits).
        while let Some(event) = incoming.recv().await {
            // Columns go with the first rows; each batch of rows goes at once.
            let rows = matches!(event, Response::Rows(_));
            self.send(event).await;
            if rows {
                self.deliver().await;
            }
            if self.stopped {
                break; // the client went away: dropping `incoming` stops the query
            }
        }
        drop(incoming);
        let outcome = worker.await.unwrap_or_else(|error| {
            Err(StatementError::new("internal", format!("query task failed: {error}")))
        });
        self.query_end(index, end, outcome).await;
    }

    /// Sends a query's result: how many rows it sent, or why it failed.
    pub(super) async fn query_end(
        &mut self,
        index: Index,
        end: u64,
        outcome: Result<u64, StatementError>,
    ) {
        match outcome {
            Ok(count) => {
                self.summary = Some(Summary { rows_returned: count, ..Summary::default() });
                self.send(Response::QueryEnd { index, rows: count, end, part: 0 }).await;
            }
            Err(error) => self.result(index, Err(error), end, 0).await,
        }
    }
}
