//! The Admin calls on data and users: streaming a backup, logging in, statement statistics
//! (their handlers in `admin.rs` check who may call them).

use super::context::Context;
use crate::grpc::pb;
use std::time::{Duration, UNIX_EPOCH};
use tonic::Status;

/// The chunks of a backup as of `as_of` (now if `None`), streamed from the blocking pool two
/// frames ahead of the network, so memory stays a few frames whatever the data.
pub(super) fn stream_backup(
    cx: &Context,
    as_of: Option<u64>,
    from: String,
) -> tokio_stream::wrappers::ReceiverStream<Result<pb::BackupChunk, Status>> {
    let (db, index) = (cx.database(), cx.applied_index());
    let (chunks, stream) = tokio::sync::mpsc::channel(2);
    tokio::task::spawn_blocking(move || {
        let mut send = |data: Vec<u8>| {
            let chunk = pb::BackupChunk { data, ..Default::default() };
            chunks.blocking_send(Ok(chunk)).map_err(|_| "the client went away".to_string())
        };
        let last = match crate::replica::backup::dump(&db, as_of, index, &mut send) {
            Ok(summary) => {
                tracing::info!(%from, version = summary.version, records = summary.records, bytes = summary.bytes, "backup streamed");
                Ok(pb::BackupChunk {
                    done: true,
                    version: summary.version,
                    records: summary.records,
                    ..Default::default()
                })
            }
            Err(error) => {
                tracing::warn!(%from, "backup failed: {error}");
                Err(Status::failed_precondition(format!("the backup failed: {error}")))
            }
        };
        let _ = chunks.blocking_send(last);
    });
    tokio_stream::wrappers::ReceiverStream::new(stream)
}

/// Checks a user's password (one of the node's few hashing turns) and returns a token.
pub(super) async fn login(
    cx: &Context,
    from: &str,
    user: String,
    password: String,
) -> Result<pb::LoginResponse, Status> {
    let key = cx.session_key.borrow().clone().ok_or_else(|| {
        Status::unavailable("the cluster has not set its session key yet (no leader yet)")
    })?;
    let (db, now) = (cx.database(), super::auth::now_ms());
    let name = user.clone();
    let _turn = crate::replica::access::hashing_turn().await?;
    let token = tokio::task::spawn_blocking(move || {
        crate::replica::access::login(&db, &key, &name, &password, now)
    })
    .await
    .map_err(|e| Status::internal(e.to_string()))?;
    match token {
        Ok(token) => {
            let expires_ms = now + crate::replica::access::TOKEN_LIFETIME_MS;
            Ok(pb::LoginResponse { token, expires_ms })
        }
        Err(error) => {
            tracing::warn!(%from, user, "refused a login: {error}");
            Err(error.into())
        }
    }
}

/// This node's statement statistics, by total time.
pub(super) fn statement_statistics(cx: &Context) -> pb::StatementStatisticsResponse {
    let (statistics, evicted) = cx.statistics.snapshot();
    let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    let statements = statistics
        .into_iter()
        .map(|s| pb::StatementStatistic {
            kind: s.kind.to_string(),
            count: s.count,
            errors: s.errors,
            rows_returned: s.rows_returned,
            rows_written: s.rows_written,
            total_us: micros(s.total),
            p50_us: micros(s.p50),
            p99_us: micros(s.p99),
            max_us: micros(s.max),
            last_seen_ms: s
                .last_seen
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            fingerprint: s.fingerprint,
        })
        .collect();
    pb::StatementStatisticsResponse { node: cx.id(), statements, evicted }
}
