//! Retention across a cluster (issue 17): rows past a table's TTL disappear from queries at
//! once and are then deleted through the log by the leader, the same rows on every node,
//! while the live rows stay everywhere.

mod support;

use chronos::sql::types::Value;
use support::{Cluster, eventually, serial};

#[test]
fn ttl_deletes_the_same_expired_rows_on_every_node_and_keeps_the_live_ones() {
    let _serial = serial();
    let cluster = Cluster::start(3, &[]);
    let leader = cluster.leader();
    cluster.ok(
        leader,
        "CREATE TABLE readings (device TEXT NOT NULL, ts TIMESTAMP NOT NULL, v INT, \
         PRIMARY KEY (device, ts)) WITH (ttl = '1 hour', ttl_column = ts)",
    );
    // 1,000 rows a minute apart, the newest a minute old: 940 are past the hour (more than the
    // 256 one expiry entry deletes, so it takes several).
    let values: Vec<String> = (1..=1000)
        .map(|i| format!("('d{}', now() - INTERVAL '{i} minutes', {i})", i % 7))
        .collect();
    cluster.ok(leader, &format!("INSERT INTO readings VALUES {}", values.join(", ")));

    // Queries on any node see only the live rows, whether or not they were deleted yet.
    for id in 1..=3 {
        let response = cluster.execute(id, "SELECT count(*), max(v) FROM readings");
        let rows = support::query_rows(&response.results[0].1);
        assert_eq!(rows[0][1], Value::Integer(59), "node {id}");
        assert!(matches!(rows[0][0], Value::Integer(n) if n <= 59), "node {id}: {rows:?}");
    }

    // The leader deletes the expired rows through the log: every node ends with the same
    // stored rows, all live.
    let stored = eventually("the expired rows to be deleted everywhere", || {
        let rows = cluster.converged("readings");
        (rows.len() <= 60).then_some(rows)
    });
    let kept: Vec<i64> = stored
        .iter()
        .map(|row| match row[2] {
            Value::Integer(v) => v,
            ref other => panic!("{other:?}"),
        })
        .collect();
    assert!(kept.iter().all(|v| *v <= 60), "only rows younger than an hour stay: {kept:?}");
    assert!(kept.len() >= 58, "the live rows stay: {kept:?}");
    let log = cluster.log(leader);
    assert!(!log.contains("cannot look for expired rows"), "{log}");
}
