//! A node's periodic work: rolling back abandoned transactions, garbage-collecting old
//! versions and deleting expired rows (each decided by the leader and carried out through the
//! log), and reporting transaction use to the leader.

use super::context::Context;
use crate::grpc::pb;
use crate::raft::{Role, Term};
use crate::replica::Command;
use crate::storage::mvcc::Version;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often transaction use is reported and abandoned transactions are looked for.
const ACTIVITY_INTERVAL: Duration = Duration::from_secs(1);
/// How often the leader looks for expired rows (tables with a TTL).
const EXPIRY_INTERVAL: Duration = Duration::from_secs(1);
/// The most expired rows one log entry deletes: a backlog goes in many small entries, with
/// writes between them.
pub const EXPIRY_BATCH_ROWS: u64 = 256;

/// Starts the background tasks.
pub fn spawn(cx: Arc<Context>) -> Vec<tokio::task::JoinHandle<()>> {
    vec![
        tokio::spawn(transactions(cx.clone())),
        tokio::spawn(collect_garbage(cx.clone())),
        tokio::spawn(expire_rows(cx.clone())),
        tokio::spawn(set_session_key(cx)),
    ]
}

/// On a leader of a cluster without a session key: proposes a random one (once applied, every
/// replica has the same key and this task ends).
async fn set_session_key(cx: Arc<Context>) {
    let mut state = cx.state.clone();
    loop {
        if cx.session_key.borrow().is_some() {
            return;
        }
        if state.borrow_and_update().raft.role == Role::Leader {
            match crate::replica::proof::new_key() {
                Ok(key) => {
                    if let Err(error) = cx.propose(&Command::SetSessionKey { key }).await {
                        tracing::debug!("session key not set yet: {error}");
                        tokio::time::sleep(cx.opts.tick).await;
                    }
                }
                Err(error) => {
                    tracing::error!("{error}");
                    return;
                }
            }
            continue;
        }
        if state.changed().await.is_err() {
            return;
        }
    }
}

/// The role and term now.
fn leadership(cx: &Context) -> (Role, Term, Option<u64>) {
    let state = cx.state.borrow();
    (state.raft.role, state.raft.term, state.raft.leader)
}

/// Reports transaction use to the leader; on the leader, rolls back abandoned transactions.
async fn transactions(cx: Arc<Context>) {
    let mut ticker = tokio::time::interval(ACTIVITY_INTERVAL);
    let mut led_term: Option<Term> = None;
    loop {
        ticker.tick().await;
        let (role, term, leader) = leadership(&cx);
        if role != Role::Leader {
            led_term = None;
            let touched = cx.activity.take_touched();
            if let (false, Some(leader)) = (touched.is_empty(), leader)
                && let Some(mut client) = cx.transport.raft_client(leader)
            {
                let request = pb::TouchRequest { transactions: touched };
                let _ = tokio::time::timeout(ACTIVITY_INTERVAL, client.touch(request)).await;
            }
            continue;
        }
        if led_term != Some(term) {
            // A new leadership: every open transaction's clock starts now.
            cx.activity.reset();
            led_term = Some(term);
        }
        cx.activity.take_touched();
        let open: Vec<Version> = cx.database().mvcc().active_versions().into_iter().collect();
        let abandoned = cx.activity.abandoned(&open, cx.opts.transaction_timeout, Instant::now());
        if !abandoned.is_empty() {
            tracing::info!(?abandoned, "rolling back transactions whose clients went away");
            let message = format!("rolled back abandoned transactions {abandoned:?}");
            if cx.propose(&Command::Abort { txns: abandoned }).await.is_ok() {
                cx.publish("transaction", message);
            }
        }
    }
}

/// On the leader: when a table with a TTL has rows that expired by the leader's clock,
/// proposes their deletion in batches of [`EXPIRY_BATCH_ROWS`], one entry after another until
/// none are left, then looks again a tick later.
async fn expire_rows(cx: Arc<Context>) {
    let mut ticker = tokio::time::interval(EXPIRY_INTERVAL);
    loop {
        ticker.tick().await;
        loop {
            if leadership(&cx).0 != Role::Leader {
                break;
            }
            let db = cx.database();
            let now = db.read_time();
            // The check reads through the index or table: off the async threads.
            let expired = tokio::task::spawn_blocking(move || db.has_expired_rows(now)).await;
            match expired {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => break,
                Ok(Err(error)) => {
                    tracing::warn!("cannot look for expired rows: {error}");
                    break;
                }
                Err(_) => break,
            }
            let command = Command::Expire { now, limit: EXPIRY_BATCH_ROWS };
            let deleted = match cx.propose(&command).await {
                Ok((_, crate::replica::Outcome::Executed { results, .. })) => {
                    results.first().and_then(|r| r.as_ref().ok()).map(|r| r.rows_affected())
                }
                _ => None,
            };
            match deleted {
                Some(count) if count > 0 => {
                    tracing::debug!(count, "deleted expired rows");
                    // A full batch: more are likely waiting; yield to writes, then go on.
                    tokio::task::yield_now().await;
                }
                _ => break,
            }
        }
    }
}

/// On the leader: garbage-collects versions older than the retention period. The leader
/// samples the version counter; a sample older than the retention becomes the horizon.
async fn collect_garbage(cx: Arc<Context>) {
    let mut ticker = tokio::time::interval(cx.opts.gc_interval);
    let mut samples: VecDeque<(Instant, Version)> = VecDeque::new();
    let mut led_term: Option<Term> = None;
    let mut collected: Version = 0;
    loop {
        ticker.tick().await;
        let (role, term, _) = leadership(&cx);
        if role != Role::Leader || led_term != Some(term) {
            samples.clear();
            led_term = (role == Role::Leader).then_some(term);
            if role != Role::Leader {
                continue;
            }
        }
        let now = Instant::now();
        let next_version = cx.database().mvcc().status().next_version;
        samples.push_back((now, next_version));
        let mut horizon = None;
        while let Some((at, version)) = samples.front().copied() {
            if now.duration_since(at) < cx.opts.gc_retention {
                break;
            }
            horizon = Some(version);
            samples.pop_front();
        }
        if let Some(horizon) = horizon.filter(|h| *h > collected)
            && cx.propose(&Command::Collect { horizon }).await.is_ok()
        {
            collected = horizon;
        }
    }
}
