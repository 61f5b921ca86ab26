//! `chronos status`: one row per node, like `etcdctl endpoint status -w table`.

use chronos::client::Client;
use chronos::grpc::pb;
use chronos::sql::format::render_table;
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

fn health(node: &pb::NodeStatus) -> String {
    if node.role == pb::Role::Down as i32 {
        "unreachable".into()
    } else if !node.halted.is_empty() {
        format!("halted: {}", node.halted)
    } else if node.leader == 0 {
        "no leader".into()
    } else {
        "ok".into()
    }
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
                        "health": health(n),
                    })
                })
                .collect();
            println!("{}", serde_json::Value::Array(rows));
        }
        StatusFormat::Table => {
            let columns: Vec<String> = [
                "id", "address", "role", "term", "leader", "last", "commit", "applied", "lag",
                "health",
            ]
            .iter()
            .map(|c| c.to_string())
            .collect();
            let rows: Vec<Vec<Value>> = nodes
                .iter()
                .map(|n| {
                    let down = n.role == pb::Role::Down as i32;
                    let number = |v: u64| {
                        if down { Value::String("-".into()) } else { Value::Integer(v as i64) }
                    };
                    vec![
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
                        Value::String(health(n)),
                    ]
                })
                .collect();
            print!("{}", render_table(&columns, &rows));
        }
    }
    ExitCode::SUCCESS
}
