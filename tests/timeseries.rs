//! Time series across a cluster (issue 17): rows past a table's TTL disappear from queries at
//! once and are then deleted through the log by the leader, the same rows on every node,
//! while the live rows stay everywhere; rollups equal a fresh GROUP BY over the raw rows on
//! every node after every batch of writes.

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

/// The rows of a query's only result set on node `id`.
fn query(cluster: &Cluster, id: u64, sql: &str) -> Vec<Vec<Value>> {
    let response = cluster.execute(id, sql);
    let (_, outcome) = response.results.last().expect("a result");
    if let Err(error) = outcome {
        panic!("{sql}: {}", error.message);
    }
    support::query_rows(outcome)
}

#[test]
fn rollups_equal_a_fresh_group_by_on_every_node_after_every_batch() {
    let _serial = serial();
    let cluster = Cluster::start(3, &[]);
    let leader = cluster.leader();
    cluster.ok(
        leader,
        "CREATE TABLE points (device INT NOT NULL, ts TIMESTAMP NOT NULL, v INT, \
         PRIMARY KEY (device, ts)); \
         CREATE ROLLUP per_minute AS SELECT time_bucket('1 minute', ts) AS bucket, device, \
         avg(v), min(v), max(v), sum(v), count(*) AS n FROM points GROUP BY 1, 2; \
         CREATE ROLLUP per_hour AS SELECT time_bucket('1 hour', bucket) AS bucket, \
         avg(avg_v) AS avg_v, max(max_v) AS max_v, sum(n) AS n FROM per_minute GROUP BY 1",
    );
    let fresh_minutes = "SELECT time_bucket('1 minute', ts), device, avg(v), min(v), max(v), \
                         sum(v), count(*) FROM points GROUP BY 1, 2";
    let fresh_hours =
        "SELECT time_bucket('1 hour', ts), avg(v), max(v), count(*) FROM points GROUP BY 1";
    let differences = |id: u64| -> i64 {
        let mut total = 0;
        for (rollup, fresh) in [("per_minute", fresh_minutes), ("per_hour", fresh_hours)] {
            for sql in [
                format!("SELECT count(*) FROM (SELECT * FROM {rollup} EXCEPT {fresh}) AS d"),
                format!("SELECT count(*) FROM ({fresh} EXCEPT SELECT * FROM {rollup}) AS d"),
            ] {
                match query(&cluster, id, &sql)[0][0] {
                    Value::Integer(n) => total += n,
                    ref other => panic!("{other:?}"),
                }
            }
        }
        total
    };
    // Six batches from every node in turn, each spread over many minutes and hours and
    // devices; the values are integers, so the averages are exact on both sides.
    let mut seed: u64 = 17;
    for batch in 0..6u64 {
        let values: Vec<String> = (0..300u64)
            .map(|i| {
                seed = seed
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let second = batch * 300 + i;
                let v = if seed.is_multiple_of(11) {
                    "NULL".to_string()
                } else {
                    (seed >> 40 & 0xff).to_string()
                };
                format!(
                    "({}, TIMESTAMP '2026-03-01 00:00:00' + INTERVAL '{} seconds', {v})",
                    seed % 5,
                    second * 37
                )
            })
            .collect();
        let via = batch % 3 + 1;
        cluster.ok(via, &format!("INSERT INTO points VALUES {}", values.join(", ")));
        // Every node, once it has applied the batch, holds the same state and equal rollups.
        let states = cluster.converged("per_minute$state");
        assert!(!states.is_empty());
        for id in 1..=3 {
            assert_eq!(differences(id), 0, "node {id} after batch {batch}");
        }
    }
    let hours = query(&cluster, 2, "SELECT count(*), sum(n) FROM per_hour");
    assert_eq!(hours[0][1], Value::Integer(1800), "every row counted once: {hours:?}");
}
