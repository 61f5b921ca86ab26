//! `chronos top`: the statements the cluster's nodes served, by fingerprint (text with the
//! literals replaced), with counts, errors, rows and latencies; one row per node and
//! fingerprint, sorted by total time (or another column).

use chronos::client::Client;
use chronos::grpc::pb;
use chronos::sql::format::render_table;
use chronos::sql::types::Value;
use std::process::ExitCode;

/// What `chronos top` sorts by (most first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SortBy {
    /// Time spent in all.
    Total,
    /// Times served.
    Count,
    /// 99th percentile latency.
    P99,
    /// Longest latency.
    Max,
    /// Failures.
    Errors,
}

/// Output formats of `chronos top`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TopFormat {
    /// An ASCII table.
    Table,
    /// A JSON array of objects.
    Json,
}

/// `chronos top`'s flags.
#[derive(clap::Args, Debug)]
pub struct TopArgs {
    /// The column to sort by, most first.
    #[arg(long, value_enum, default_value_t = SortBy::Total)]
    sort: SortBy,
    /// How many rows to show.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Only the node `--addr` reaches first, not every member.
    #[arg(long)]
    this_node: bool,
    /// `table` or `json`.
    #[arg(long, value_enum, default_value_t = TopFormat::Table)]
    format: TopFormat,
}

/// Prints the statement statistics of every reachable member (or of one node).
pub async fn print(client: &mut Client, args: TopArgs) -> ExitCode {
    let mut answers = Vec::new();
    if args.this_node {
        match client.statement_statistics().await {
            Ok(answer) => answers.push(answer),
            Err(error) => return super::exit_for(&error),
        }
    } else {
        let nodes = match client.cluster_status().await {
            Ok(nodes) => nodes,
            Err(error) => return super::exit_for(&error),
        };
        for node in nodes.iter().filter(|n| n.role != pb::Role::Down as i32) {
            let answer = match client.sibling(vec![node.address.clone()]) {
                Ok(mut member) => member.statement_statistics().await,
                Err(error) => Err(error),
            };
            match answer {
                Ok(answer) => answers.push(answer),
                Err(error) => eprintln!("chronos: node {} did not answer: {error}", node.id),
            }
        }
    }
    if answers.is_empty() {
        eprintln!("chronos: no node answered");
        return ExitCode::from(super::UNAVAILABLE);
    }
    let mut rows: Vec<(u64, pb::StatementStatistic)> = answers
        .into_iter()
        .flat_map(|answer| {
            let node = answer.node;
            answer.statements.into_iter().map(move |s| (node, s))
        })
        .collect();
    let key = |s: &pb::StatementStatistic| match args.sort {
        SortBy::Total => s.total_us,
        SortBy::Count => s.count,
        SortBy::P99 => s.p99_us,
        SortBy::Max => s.max_us,
        SortBy::Errors => s.errors,
    };
    rows.sort_by(|(na, a), (nb, b)| {
        key(b).cmp(&key(a)).then_with(|| a.fingerprint.cmp(&b.fingerprint)).then(na.cmp(nb))
    });
    rows.truncate(args.limit);
    match args.format {
        TopFormat::Json => {
            let rows: Vec<serde_json::Value> = rows
                .iter()
                .map(|(node, s)| {
                    serde_json::json!({
                        "node": node,
                        "fingerprint": s.fingerprint,
                        "kind": s.kind,
                        "count": s.count,
                        "errors": s.errors,
                        "rows_returned": s.rows_returned,
                        "rows_written": s.rows_written,
                        "total_us": s.total_us,
                        "p50_us": s.p50_us,
                        "p99_us": s.p99_us,
                        "max_us": s.max_us,
                        "last_seen_ms": s.last_seen_ms,
                    })
                })
                .collect();
            println!("{}", serde_json::Value::Array(rows));
        }
        TopFormat::Table => {
            let columns: Vec<String> =
                ["node", "count", "errors", "rows", "total", "p50", "p99", "max", "statement"]
                    .iter()
                    .map(|c| c.to_string())
                    .collect();
            let millis = |us: u64| Value::String(format!("{:.2} ms", us as f64 / 1000.0));
            let table: Vec<Vec<Value>> = rows
                .iter()
                .map(|(node, s)| {
                    vec![
                        Value::Integer(*node as i64),
                        Value::Integer(s.count as i64),
                        Value::Integer(s.errors as i64),
                        Value::Integer((s.rows_returned + s.rows_written) as i64),
                        millis(s.total_us),
                        millis(s.p50_us),
                        millis(s.p99_us),
                        millis(s.max_us),
                        Value::String(s.fingerprint.clone()),
                    ]
                })
                .collect();
            print!("{}", render_table(&columns, &table));
        }
    }
    ExitCode::SUCCESS
}
