//! Statement statistics and the slow-statement log: after a known workload through one node
//! of a 3-node cluster, `chronos top` reports exactly its fingerprints, counts, errors and
//! rows on that node, and the node's log holds each slow statement with its plan.

mod support;

use std::collections::BTreeMap;
use support::{Cluster, eventually, serial};

#[test]
fn a_known_workload_gives_exact_fingerprints_counts_and_rows() {
    let _serial = serial();
    // Every statement is "slow" on node 2, so each is logged with its plan.
    let cluster = Cluster::start_each(3, &[], |id| match id {
        2 => vec!["--slow-statement-ms".into(), "0".into()],
        _ => Vec::new(),
    });
    let node = 2;
    cluster.ok(node, "CREATE TABLE t (id INT PRIMARY KEY, v STRING)");
    for i in 0..10 {
        cluster.ok(node, &format!("INSERT INTO t VALUES ({i}, 'v{i}')"));
    }
    let clash = cluster.execute(node, "insert into T values (0, 'dup')");
    assert!(clash.results.iter().all(|(_, outcome)| outcome.is_err()));
    for i in 1..=5 {
        cluster.ok(node, &format!("SELECT v FROM t WHERE id = {i}"));
    }
    for _ in 0..3 {
        cluster.ok(node, "select V from T where ID in (1, 2, 3) -- a comment");
    }
    let unparsed = cluster.execute(node, "SELEC nonsense");
    assert!(unparsed.results.iter().all(|(_, outcome)| outcome.is_err()));
    cluster.ok(node, "UPDATE t SET v = 'x' WHERE id < 5");

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_chronos"))
        .args(["--addr", &cluster.addresses[&1], "top", "--format", "json", "--limit", "100"])
        .output()
        .expect("run chronos top");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let rows = rows.as_array().expect("an array");
    // Only node 2 served statements.
    assert!(rows.iter().all(|row| row["node"] == node), "{rows:?}");
    let found: BTreeMap<String, (String, u64, u64, u64, u64)> = rows
        .iter()
        .map(|row| {
            let number = |k: &str| row[k].as_u64().expect("a count");
            let text = |k: &str| row[k].as_str().expect("a string").to_string();
            let counts = (
                text("kind"),
                number("count"),
                number("errors"),
                number("rows_returned"),
                number("rows_written"),
            );
            (text("fingerprint"), counts)
        })
        .collect();
    let expected: BTreeMap<String, (String, u64, u64, u64, u64)> = [
        ("create table t(id int primary key, v string)", ("create_table", 1, 0, 0, 0)),
        ("insert into t values (?, ...)", ("insert", 11, 1, 0, 10)),
        ("select v from t where id = ?", ("select", 5, 0, 5, 0)),
        ("select v from t where id in (?, ...)", ("select", 3, 0, 9, 0)),
        ("selec nonsense", ("unparsed", 1, 1, 0, 0)),
        ("update t set v = ? where id < ?", ("update", 1, 0, 0, 5)),
    ]
    .into_iter()
    .map(|(print, (kind, count, errors, returned, written))| {
        (print.to_string(), (kind.to_string(), count, errors, returned, written))
    })
    .collect();
    assert_eq!(found, expected);
    for row in rows {
        let (p50, p99, max) =
            (row["p50_us"].as_u64(), row["p99_us"].as_u64(), row["max_us"].as_u64());
        assert!(p50 <= p99 && p99 <= max && max > Some(0), "{row}");
    }

    // The slow-statement log shows the statement as written, and its plan.
    eventually("the slow statement with its plan in node 2's log", || {
        let log = cluster.log(node);
        let logged = log.contains("slow statement: SELECT v FROM t WHERE id = 3")
            && log.contains("KeyLookup: t (id IN 3)");
        logged.then_some(())
    });

    // The table form has one row per fingerprint, sorted by count with --sort count.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_chronos"))
        .args(["--addr", &cluster.addresses[&node], "top", "--this-node", "--sort", "count"])
        .output()
        .expect("run chronos top");
    let table = String::from_utf8_lossy(&output.stdout);
    let first = table.lines().nth(3).unwrap_or_default();
    assert!(first.contains("insert into t values (?, ...)"), "{table}");
}
