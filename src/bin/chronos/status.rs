//! `chronos status`: one row per node, like `etcdctl endpoint status -w table`.

use chronos::client::Client;
use chronos::grpc::pb;
use chronos::sql::format::{human_bytes, render_table};
use chronos::sql::types::Value;
use std::process::ExitCode;

/// Output formats of `chronos status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFormat {
    /// An ASCII table.
    Table,
    /// A JSON array of objects.
    Json,
}

/// The role as a word.
pub fn role_name(role: i32) -> &'static str {
    match pb::Role::try_from(role).unwrap_or(pb::Role::Unknown) {
        pb::Role::Leader => "leader",
        pb::Role::Follower => "follower",
        pb::Role::Candidate => "candidate",
        pb::Role::Learner => "learner",
        pb::Role::Down => "down",
        pb::Role::Unknown => "unknown",
    }
}

/// How far a node's applied index trails the furthest commit index any node reports.
fn lag(node: &pb::NodeStatus, nodes: &[pb::NodeStatus]) -> u64 {
    let commit = nodes.iter().map(|n| n.commit_index).max().unwrap_or(0);
    commit.saturating_sub(node.applied_index)
}

/// How long a follower may be behind without progress before it shows as stalled (the
/// node's own threshold for logging it).
const STALLED_MS: u64 = 5_000;

/// A node's health, with the leader's view of its replication: a follower that answers but
/// does not catch up shows as stalled, one being sent a snapshot as catching up.
fn health(node: &pb::NodeStatus, nodes: &[pb::NodeStatus]) -> String {
    let replication = nodes
        .iter()
        .find(|n| n.role == pb::Role::Leader as i32)
        .and_then(|leader| leader.peers.iter().find(|p| p.id == node.id));
    if node.role == pb::Role::Down as i32 {
        "unreachable".into()
    } else if !node.halted.is_empty() {
        format!("halted: {}", node.halted)
    } else if node.leader == 0 {
        "no leader".into()
    } else if let Some(peer) = replication.filter(|p| p.stalled_ms >= STALLED_MS) {
        let snapshot = if peer.receiving_snapshot { ", receiving a snapshot" } else { "" };
        format!("stalled {}s at index {}{snapshot}", peer.stalled_ms / 1000, peer.match_index)
    } else if replication.is_some_and(|p| p.receiving_snapshot) {
        "catching up (snapshot)".into()
    } else {
        "ok".into()
    }
}

/// A line on the edge's forwarding, as its leader (or else any node) reports it.
fn forwarding(nodes: &[pb::NodeStatus]) -> Option<String> {
    let leader = nodes.iter().find(|n| n.role == pb::Role::Leader as i32 && n.edge.is_some());
    let edge = leader.or_else(|| nodes.iter().find(|n| n.edge.is_some()))?.edge.as_ref()?;
    let upstream = if edge.upstream.is_empty() {
        "(no --upstream here)".into()
    } else {
        edge.upstream.join(",")
    };
    let mut line = format!(
        "edge {} forwards {} to {upstream}: upstream holds through #{}, backlog {} rows",
        edge.edge,
        edge.tables.join(", "),
        edge.forwarded,
        edge.backlog
    );
    if !edge.error.is_empty() {
        line.push_str(&format!("\nforwarding failed: {}", edge.error));
    }
    Some(line)
}

/// Prints the cluster's status.
pub async fn print(client: &mut Client, format: StatusFormat) -> ExitCode {
    let nodes = match client.cluster_status().await {
        Ok(nodes) => nodes,
        Err(error) => return super::exit_for(&error),
    };
    match format {
        StatusFormat::Json => {
            let rows: Vec<serde_json::Value> = nodes
                .iter()
                .map(|n| {
                    serde_json::json!({
                        "id": n.id,
                        "address": n.address,
                        "role": role_name(n.role),
                        "term": n.term,
                        "leader": n.leader,
                        "last_index": n.last_index,
                        "commit_index": n.commit_index,
                        "applied_index": n.applied_index,
                        "lag": lag(n, &nodes),
                        "fsync_p99_us": n.fsync_p99_us,
                        "storage_bytes": n.data_bytes,
                        "health": health(n, &nodes),
                        "forward": n.edge.as_ref().map(|e| serde_json::json!({
                            "edge": e.edge,
                            "tables": e.tables,
                            "upstream": e.upstream,
                            "backlog": e.backlog,
                            "forwarded": e.forwarded,
                            "lag_ms": e.lag_ms,
                            "error": e.error,
                        })),
                    })
                })
                .collect();
            println!("{}", serde_json::Value::Array(rows));
        }
        StatusFormat::Table => {
            let edge = nodes.iter().any(|n| n.edge.is_some());
            let mut columns: Vec<String> = [
                "id",
                "address",
                "role",
                "term",
                "leader",
                "last",
                "commit",
                "applied",
                "lag",
                "fsync p99",
                "storage",
                "health",
            ]
            .iter()
            .map(|c| c.to_string())
            .collect();
            if edge {
                columns.extend(["backlog".to_string(), "forward lag".to_string()]);
            }
            let rows: Vec<Vec<Value>> = nodes
                .iter()
                .map(|n| {
                    let down = n.role == pb::Role::Down as i32;
                    let number = |v: u64| {
                        if down { Value::String("-".into()) } else { Value::Integer(v as i64) }
                    };
                    let mut row = vec![
                        Value::Integer(n.id as i64),
                        Value::String(n.address.clone()),
                        Value::String(role_name(n.role).into()),
                        number(n.term),
                        if down || n.leader == 0 {
                            Value::String("-".into())
                        } else {
                            Value::Integer(n.leader as i64)
                        },
                        number(n.last_index),
                        number(n.commit_index),
                        number(n.applied_index),
                        number(lag(n, &nodes)),
                        Value::String(match n.fsync_p99_us {
                            _ if down => "-".into(),
                            0 => "-".into(),
                            us => format!("{:.2} ms", us as f64 / 1000.0),
                        }),
                        Value::String(if down { "-".into() } else { human_bytes(n.data_bytes) }),
                        Value::String(health(n, &nodes)),
                    ];
                    if edge {
                        let forward = n.edge.as_ref().filter(|_| !down);
                        row.push(forward.map_or(Value::String("-".into()), |e| {
                            Value::Integer(e.backlog as i64)
                        }));
                        row.push(Value::String(
                            forward.map_or("-".into(), |e| {
                                format!("{:.1} s", e.lag_ms as f64 / 1000.0)
                            }),
                        ));
                    }
                    row
                })
                .collect();
            print!("{}", render_table(&columns, &rows));
            if let Some(line) = forwarding(&nodes) {
                println!("{line}");
            }
        }
    }
    ExitCode::SUCCESS
}
