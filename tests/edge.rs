//! Store-and-forward (issue 17): an edge cluster (`chronosd --upstream --forward`) accepts
//! writes while its upstream is unreachable and forwards them, in order and exactly once, when
//! it is back, across kill -9 of either side.

mod support;

use chronos::grpc::pb;
use chronos::sql::types::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::scrape::{http_get, scrape, sum_except, value};
use support::{Cluster, eventually, free_ports, serial};

const TABLE: &str = "CREATE TABLE readings (device INT, seq INT, v FLOAT)";

/// A one-node edge forwarding `readings` to `upstream` as edge `id`.
fn edge(upstream: &Cluster, id: &str) -> Cluster {
    edge_with(upstream, id, &[])
}

/// An edge as [`edge`] makes it, with `extra` flags.
fn edge_with(upstream: &Cluster, id: &str, extra: &[&str]) -> Cluster {
    let addresses: Vec<String> = upstream.addresses.values().cloned().collect();
    let upstream = addresses.join(",");
    let mut args = vec!["--upstream", &upstream, "--forward", "readings", "--edge-id", id];
    args.extend_from_slice(extra);
    let edge = Cluster::start(1, &args);
    edge.ok(1, TABLE);
    // Rows are forwarded from the moment the edge has applied its settings.
    edge_status(&edge);
    edge
}

fn edge_status(edge: &Cluster) -> pb::EdgeStatus {
    eventually("the edge to report its forwarding", || edge.status(1)?.edge)
}

/// The `seq` column of `readings` on node `id` of `cluster`, in stored order (the hidden row
/// id: the order the rows arrived in).
fn seqs(cluster: &Cluster, id: u64) -> Option<Vec<i64>> {
    let rows = cluster.rows_on(id, "readings")?;
    Some(
        rows.iter()
            .map(|row| match row[1] {
                Value::Integer(seq) => seq,
                ref other => panic!("seq {other:?}"),
            })
            .collect(),
    )
}

/// Waits until the edge's backlog is empty and the upstream holds what the edge holds; returns
/// the upstream's rows.
fn caught_up(edge: &Cluster, upstream: &Cluster) -> Vec<i64> {
    eventually("the upstream to hold every row of the edge", || {
        let status = edge.status(1)?.edge?;
        let at_edge = seqs(edge, 1)?;
        let leader = upstream.leader();
        let up = seqs(upstream, leader)?;
        (status.backlog == 0 && up.len() >= at_edge.len()).then(|| {
            let mut sorted = at_edge.clone();
            sorted.sort_unstable();
            if up != sorted {
                let twice: Vec<&[i64]> = up.windows(2).filter(|w| w[0] >= w[1]).take(5).collect();
                let missing: Vec<&i64> = sorted.iter().filter(|s| !up.contains(s)).take(5).collect();
                panic!(
                    "the upstream holds {} rows, the edge {}: out of order or twice {twice:?}, missing {missing:?}",
                    up.len(),
                    sorted.len()
                );
            }
            up
        })
    })
}

#[test]
fn kill_9_of_edge_and_upstream_during_forwarding_loses_and_duplicates_nothing() {
    let _serial = serial();
    let mut upstream = Cluster::start(3, &[]);
    let leader = upstream.leader();
    upstream.ok(leader, TABLE);
    let mut edge = edge(&upstream, "edge-a");
    // UPDATE and DELETE are refused on a forwarded table.
    let refused = edge.execute(1, "DELETE FROM readings");
    let message = refused.results[0].1.as_ref().unwrap_err().message.clone();
    assert!(message.contains("append-only"), "{message}");

    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acknowledged, stop) = (acknowledged.clone(), stop.clone());
        let address = edge.addresses[&1].clone();
        std::thread::spawn(move || {
            let runtime = support::runtime();
            let mut client = chronos::client::Client::new(vec![address], Duration::from_secs(5))
                .expect("client");
            client.retry_for = Duration::from_secs(20);
            let mut seq = 0i64;
            while !stop.load(Ordering::Relaxed) {
                let first = seq + 1;
                seq += 20;
                let values: Vec<String> =
                    (first..=seq).map(|s| format!("({}, {s}, {s}.5)", s % 7)).collect();
                let sql = format!("INSERT INTO readings VALUES {}", values.join(", "));
                match runtime.block_on(client.execute(&sql, false)) {
                    Ok(response) if response.results.iter().all(|(_, r)| r.is_ok()) => {
                        acknowledged.lock().unwrap_or_else(|p| p.into_inner()).extend(first..=seq);
                    }
                    _ => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        })
    };
    // While rows flow: cut the upstream off until a backlog builds, bring it back, and kill -9
    // a side while the backlog drains, when a batch is likely applied upstream but not yet
    // acknowledged at the edge (so it is sent again) or in flight.
    let count = |acknowledged: &Arc<Mutex<Vec<i64>>>| acknowledged.lock().map_or(0, |a| a.len());
    for round in 0..4 {
        for id in upstream.running() {
            upstream.kill(id);
        }
        eventually("a backlog at the edge", || {
            (edge.status(1)?.edge?.backlog >= 3_000).then_some(())
        });
        for id in 1..=3 {
            upstream.spawn(id);
        }
        let before = edge_status(&edge).forwarded;
        eventually("forwarding to resume", || {
            let status = edge.status(1)?.edge?;
            (status.forwarded > before && status.backlog > 0).then_some(())
        });
        if round % 2 == 0 {
            edge.kill(1);
            edge.spawn(1);
        } else {
            let victim = upstream.leader();
            upstream.kill(victim);
            upstream.spawn(victim);
        }
    }
    let target = count(&acknowledged) + 400;
    eventually("more rows acknowledged", || (count(&acknowledged) >= target).then_some(()));
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");

    let upstream_rows = caught_up(&edge, &upstream);
    let acknowledged = acknowledged.lock().map(|a| a.clone()).unwrap_or_default();
    for seq in &acknowledged {
        assert!(upstream_rows.binary_search(seq).is_ok(), "acknowledged row {seq} is upstream");
    }
    // Every upstream node holds the same rows.
    let converged = upstream.converged("readings");
    assert_eq!(converged.len(), upstream_rows.len());
    println!("{} rows acknowledged, {} upstream", acknowledged.len(), upstream_rows.len());
}

#[test]
fn an_edge_cut_off_for_long_keeps_its_writes_and_catches_up_in_order() {
    let _serial = serial();
    let ports = free_ports(2);
    let (edge_metrics, upstream_metrics) =
        (format!("127.0.0.1:{}", ports[0]), format!("127.0.0.1:{}", ports[1]));
    let own = upstream_metrics.clone();
    let mut upstream =
        Cluster::start_each(1, &[], move |_| vec!["--metrics-listen".into(), own.clone()]);
    upstream.kill(1);
    let edge = edge_with(&upstream, "edge-b", &["--metrics-listen", &edge_metrics]);
    // Many batches' worth of rows while the upstream is down.
    for batch in 0..25 {
        let values: Vec<String> = (batch * 200 + 1..=batch * 200 + 200)
            .map(|s| format!("({}, {s}, 0.25)", s % 10))
            .collect();
        edge.ok(1, &format!("INSERT INTO readings VALUES {}", values.join(", ")));
    }
    let status = eventually("the edge to report the failed forwarding", || {
        edge.status(1)?.edge.filter(|e| !e.error.is_empty())
    });
    assert_eq!((status.backlog, status.forwarded), (5_000, 0));
    assert_eq!(status.edge, "edge-b");
    // The metrics show the backlog, its age and the failed attempts.
    let metrics = scrape(&edge_metrics);
    assert_eq!(value(&metrics, "chronos_edge_backlog_rows", &[]), 5_000.0);
    let (_, text) = http_get(&edge_metrics, "/metrics");
    assert!(text.contains("# TYPE chronos_edge_lag_seconds gauge"), "{text}");
    assert!(value(&metrics, "chronos_edge_batches_total", &[("outcome", "failed")]) >= 1.0);
    assert_eq!(value(&metrics, "chronos_edge_batches_total", &[("outcome", "acknowledged")]), 0.0);

    // The upstream is back but lacks the table: forwarding fails with the reason, keeps
    // everything, and goes on once the table exists.
    upstream.spawn(1);
    upstream.leader();
    let status = eventually("the edge to report the missing table", || {
        edge.status(1)?.edge.filter(|e| e.error.contains("readings"))
    });
    assert_eq!(status.backlog, 5_000);
    // `chronos status` shows the backlog too.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_chronos"))
        .args(["--addr", &edge.addresses[&1], "status", "--format", "json"])
        .output()
        .expect("chronos status");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(json[0]["forward"]["backlog"], 5_000, "{json}");
    // The upstream counts the batches it refused, by reason.
    let refused = sum_except(&scrape(&upstream_metrics), INGESTED, "outcome", "ok");
    assert!(refused >= 1.0, "refused batches: {refused}");
    upstream.ok(1, TABLE);

    let rows = caught_up(&edge, &upstream);
    assert_eq!(rows, (1..=5_000).collect::<Vec<i64>>());
    let status = edge_status(&edge);
    assert_eq!((status.backlog, status.forwarded, status.error.as_str()), (0, 5_000, ""));
    let metrics = scrape(&edge_metrics);
    assert_eq!(value(&metrics, "chronos_edge_backlog_rows", &[]), 0.0);
    assert_eq!(value(&metrics, "chronos_edge_lag_seconds", &[]), 0.0);
    // At most 1,000 rows a batch: at least five batches, every row in one of them.
    let acknowledged = &[("outcome", "acknowledged")];
    assert!(value(&metrics, "chronos_edge_batches_total", acknowledged) >= 5.0);
    assert!(value(&metrics, "chronos_edge_rows_forwarded_total", &[]) >= 5_000.0);
    let upstream_metrics = scrape(&upstream_metrics);
    assert!(value(&upstream_metrics, INGESTED, &[("outcome", "ok")]) >= 5.0);
}

/// The upstream's counter of `Sql.Ingest` batches.
const INGESTED: &str = "chronos_ingest_batches_total";

/// A batch of `readings` rows `first..=last` as an edge sends it.
fn batch(edge: &str, incarnation: u64, first: i64, last: i64) -> pb::IngestRequest {
    let rows: Vec<Vec<Value>> = (first..=last)
        .map(|s| vec![Value::Integer(s % 3), Value::Integer(s), Value::Float(0.5)])
        .collect();
    pb::IngestRequest {
        edge: edge.into(),
        incarnation,
        first: first as u64,
        tables: vec![pb::IngestTable {
            name: "readings".into(),
            columns: vec!["device".into(), "seq".into(), "v".into()],
        }],
        row_tables: vec![0; rows.len()],
        rows: chronos::grpc::convert::rows(&rows),
    }
}

#[test]
fn a_batch_sent_again_or_overlapping_is_applied_once_on_a_real_cluster() {
    let _serial = serial();
    let upstream = Cluster::start(3, &[]);
    let leader = upstream.leader();
    upstream.ok(leader, TABLE);
    let follower = upstream.other_than(leader);
    let mut client = upstream.client(follower);
    let mut send = |request| upstream.block_on(client.ingest(request));
    assert_eq!(send(batch("e", 1, 1, 10)), Ok(10));
    // Sent again (the edge never heard the answer), and cut differently: only 11-15 are new.
    assert_eq!(send(batch("e", 1, 1, 10)), Ok(10));
    assert_eq!(send(batch("e", 1, 5, 15)), Ok(15));
    // Rows missing in between are refused, and change nothing.
    let gap = send(batch("e", 1, 20, 25)).unwrap_err().to_string();
    assert!(gap.contains("edge_gap"), "{gap}");
    // An empty batch is refused before it reaches the log.
    let empty = send(batch("e", 1, 16, 15)).unwrap_err().to_string();
    assert!(empty.contains("carries at least one row"), "{empty}");
    // A rebuilt edge numbers from 1 in a new incarnation: its rows are new.
    assert_eq!(send(batch("e", 2, 1, 2)), Ok(2));
    let mut expected: Vec<i64> = (1..=15).collect();
    expected.extend([1, 2]);
    assert_eq!(seqs(&upstream, leader), Some(expected.clone()));
    // Every node holds the same.
    assert_eq!(upstream.converged("readings").len(), expected.len());
}
