//! Store-and-forward: an edge cluster (`chronosd --upstream ADDRS --forward TABLE,...`)
//! forwards the rows of its forwarded tables to an upstream cluster, and any cluster takes
//! such rows (`Sql.Ingest`).
//!
//! On the edge, every row inserted into a forwarded table enters the outbox when its
//! transaction commits (`sql::engine::outbox`), on every replica. The edge's leader reads the
//! outbox in order, sends it upstream in batches, and once the upstream answers how far it
//! holds the edge's rows, proposes [`Command::Forwarded`] to delete them from the outbox. The
//! upstream skips rows it already holds (`replica::ingest`), so a batch sent again (after a
//! timeout, a crash, a leader change on either side) inserts nothing twice.
//!
//! Invariants:
//! - The edge accepts writes whether or not the upstream is reachable; the outbox keeps them
//!   durably (it is replicated state) until the upstream has them.
//! - Rows leave the outbox only after the upstream acknowledged them, and reach the upstream
//!   in the edge's commit order, each exactly once.
//! - Only the leader forwards; what a deposed leader still sends is deduplicated upstream.

use super::context::Context;
use crate::grpc::{convert, pb};
use crate::raft::Role;
use crate::replica::{Caller, Command, Ingest, Outcome};
use crate::sql::engine::ForwardSettings;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tonic::Status;

/// The most rows one batch carries.
pub const BATCH_ROWS: usize = 1_000;
/// About the most bytes of rows one batch carries (at least one row goes).
pub const BATCH_BYTES: usize = 1 << 20;
/// How often the leader looks for new rows when the outbox is empty.
const POLL: Duration = Duration::from_millis(100);
/// The longest pause between attempts while the upstream is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// The longest edge id.
const MAX_EDGE_ID: usize = 128;

/// What makes a cluster an edge.
#[derive(Clone, Debug, Default)]
pub struct EdgeOptions {
    /// The upstream cluster's nodes (`host:port`).
    pub upstream: Vec<String>,
    /// The tables to forward.
    pub tables: BTreeSet<String>,
    /// The edge's id upstream; none: the one the edge has, or a new random one.
    pub id: Option<String>,
    /// A user and password to log in to the upstream with (none: no login).
    pub login: Option<(String, String)>,
    /// The upstream's CA, if it serves TLS.
    pub tls: Option<crate::grpc::tls::ClientTls>,
}

/// Why the last attempt to forward failed, if it did (shown in the status).
#[derive(Default)]
pub struct ForwardReport {
    error: std::sync::Mutex<Option<String>>,
}

impl ForwardReport {
    fn set(&self, error: Option<String>) {
        *self.error.lock().unwrap_or_else(|p| p.into_inner()) = error;
    }

    fn get(&self) -> Option<String> {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Starts forwarding, if the node has an upstream.
pub fn spawn(cx: &Arc<Context>) -> Option<tokio::task::JoinHandle<()>> {
    let edge = cx.opts.edge.clone()?;
    Some(tokio::spawn(forward(cx.clone(), edge)))
}

/// A new edge's id and the life of its numbering.
fn new_identity() -> Result<(String, u64), String> {
    let random = crate::replica::proof::random_u64;
    Ok((format!("edge-{:016x}", random()?), random()?))
}

/// On the leader: makes the state's settings match the options, then forwards the outbox.
async fn forward(cx: Arc<Context>, edge: EdgeOptions) {
    let mut backoff = POLL;
    let mut client: Option<crate::client::Client> = None;
    loop {
        if cx.state.borrow().raft.role != Role::Leader || *cx.stopping.borrow() {
            client = None;
            tokio::time::sleep(POLL).await;
            continue;
        }
        match forward_once(&cx, &edge, &mut client).await {
            Ok(true) => backoff = POLL,
            Ok(false) => tokio::time::sleep(POLL).await,
            Err(error) => {
                tracing::debug!("forwarding upstream: {error}");
                cx.forward_report.set(Some(error));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// One step: settle the settings, or send one batch. `Ok(true)`: a batch went.
async fn forward_once(
    cx: &Arc<Context>,
    edge: &EdgeOptions,
    client: &mut Option<crate::client::Client>,
) -> Result<bool, String> {
    let db = cx.database();
    let have = db.forward_settings().map_err(|e| e.to_string())?;
    let settled = have.as_ref().filter(|have| {
        have.tables == edge.tables && edge.id.as_ref().is_none_or(|id| *id == have.edge)
    });
    let Some(settings) = settled.cloned() else {
        // A random id is only a candidate: if another leader's got in first, it stays.
        let (random_id, incarnation) = new_identity()?;
        let id = edge.id.clone().unwrap_or(random_id);
        let settings = ForwardSettings { edge: id, incarnation, tables: edge.tables.clone() };
        propose(cx, Command::SetForward { settings, keep_id: edge.id.is_none() }).await?;
        return Ok(false);
    };
    let batch = tokio::task::spawn_blocking(move || db.outbox_batch(BATCH_ROWS, BATCH_BYTES))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let (entries, tables) = batch;
    let Some(first) = entries.first().map(|(seq, _)| *seq) else { return Ok(false) };
    let request = pb::IngestRequest {
        edge: settings.edge,
        incarnation: settings.incarnation,
        first,
        row_tables: entries
            .iter()
            .map(|(_, e)| tables.iter().position(|(name, _)| *name == e.table).unwrap_or(0) as u32)
            .collect(),
        rows: convert::rows(&entries.into_iter().map(|(_, e)| e.row).collect::<Vec<_>>()),
        tables: tables
            .into_iter()
            .map(|(name, columns)| pb::IngestTable { name, columns })
            .collect(),
    };
    let failed = |error: String| {
        cx.metrics.edge_batches.with_label_values(&["failed"]).inc();
        Err(error)
    };
    if client.is_none() {
        match connect(edge).await {
            Ok(connected) => *client = Some(connected),
            Err(error) => return failed(error),
        }
    }
    let Some(upstream) = client.as_mut() else { return Ok(false) };
    let rows = request.rows.len() as u64;
    let through = match upstream.ingest(request).await {
        Ok(through) => through,
        Err(error) => {
            // Reconnect (and log in again) on the next attempt.
            *client = None;
            return failed(format!("upstream: {error}"));
        }
    };
    // Counted once the outbox lets go of the rows: a batch whose trim failed goes again.
    if let Err(error) = propose(cx, Command::Forwarded { through }).await {
        return failed(error);
    }
    cx.metrics.edge_batches.with_label_values(&["acknowledged"]).inc();
    cx.metrics.edge_rows_forwarded.inc_by(rows);
    cx.forward_report.set(None);
    Ok(true)
}

async fn connect(edge: &EdgeOptions) -> Result<crate::client::Client, String> {
    let mut client = crate::client::Client::new(edge.upstream.clone(), super::REQUEST_TIMEOUT * 2)
        .map_err(|e| e.to_string())?;
    if let Some(tls) = &edge.tls {
        client = client.with_tls(tls.clone());
    }
    if let Some((user, password)) = &edge.login {
        client.login(user, password).await.map_err(|e| format!("upstream login: {e}"))?;
    }
    Ok(client)
}

async fn propose(cx: &Context, command: Command) -> Result<(), String> {
    match cx.propose(&command).await {
        Ok((_, Outcome::Executed { results, .. })) => match results.into_iter().next() {
            Some(Err(error)) => Err(error.message),
            _ => Ok(()),
        },
        Ok(_) => Ok(()),
        Err(error) => Err(error.to_string()),
    }
}

/// The edge's forwarding as this node sees it, if the cluster forwards anything.
pub fn status(cx: &Context) -> Option<pb::EdgeStatus> {
    let db = cx.database();
    let settings = db.forward_settings().ok().flatten()?;
    let outbox = db.outbox_status().ok()?;
    let lag_ms =
        outbox.oldest.map_or(0, |time| (db.read_time().saturating_sub(time) / 1000).max(0) as u64);
    Some(pb::EdgeStatus {
        edge: settings.edge,
        tables: settings.tables.into_iter().collect(),
        upstream: cx.opts.edge.as_ref().map(|e| e.upstream.clone()).unwrap_or_default(),
        backlog: outbox.backlog,
        forwarded: outbox.forwarded,
        lag_ms,
        error: cx.forward_report.get().unwrap_or_default(),
    })
}

/// The command for an `Sql.Ingest` request, checked.
pub fn ingest_command(
    request: pb::IngestRequest,
    caller: Caller,
    limits: crate::sql::budget::Limits,
) -> Result<Ingest, Status> {
    let invalid = |message: &str| Err(Status::invalid_argument(message.to_string()));
    if request.edge.is_empty() || request.edge.len() > MAX_EDGE_ID {
        return invalid("an edge id is 1 to 128 bytes");
    }
    if request.first == 0 {
        return invalid("sequence numbers start at 1");
    }
    if request.rows.is_empty() {
        return invalid("an empty batch: a batch carries at least one row");
    }
    if request.row_tables.len() != request.rows.len() {
        return invalid("every row needs its table");
    }
    if request.first.checked_add(request.rows.len() as u64).is_none() {
        return invalid("the sequence numbers overflow");
    }
    if request.row_tables.iter().any(|t| *t as usize >= request.tables.len()) {
        return invalid("a row names no table of the batch");
    }
    let rows = convert::from_rows(request.rows);
    Ok(Ingest {
        edge: request.edge,
        incarnation: request.incarnation,
        first: request.first,
        tables: request.tables.into_iter().map(|t| (t.name, t.columns)).collect(),
        rows: request.row_tables.into_iter().zip(rows).collect(),
        caller,
        limits,
        now: crate::sql::clock::wall_clock(),
    })
}

/// Applies an `Sql.Ingest` request through the log: the highest sequence number held.
pub async fn ingest(cx: &Context, ingest: Ingest) -> Result<u64, Status> {
    let outcome = |label: &str| cx.metrics.ingest_batches.with_label_values(&[label]).inc();
    match cx.propose(&Command::Ingest(Box::new(ingest))).await {
        Ok((_, Outcome::Ingested { through })) => {
            outcome("ok");
            Ok(through)
        }
        Ok((_, Outcome::Executed { results, .. })) => {
            let error = results.into_iter().find_map(Result::err);
            let (kind, message) = error.map_or_else(
                || ("internal".to_string(), "no outcome".to_string()),
                |e| (e.kind, e.message),
            );
            outcome(&kind);
            Err(match kind.as_str() {
                "permission_denied" => Status::permission_denied(message),
                "unauthenticated" => Status::unauthenticated(message),
                _ => Status::failed_precondition(format!("{kind}: {message}")),
            })
        }
        Ok(_) => {
            outcome("internal");
            Err(Status::internal("the log applied a different command"))
        }
        Err(error) => {
            outcome(error.kind());
            Err(error.into())
        }
    }
}
