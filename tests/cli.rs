//! The `chronos` and `chronosd` command lines, run as processes: output formats, exit codes,
//! the seed's example session byte for byte, and refusals of bad flags and directories.

mod support;

use std::io::Write as _;
use std::process::{Command, Output, Stdio};
use support::{Cluster, serial};

/// Runs `chronos` against `cluster`'s node 1 with `args`, feeding `stdin`.
fn chronos(cluster: &Cluster, args: &[&str], stdin: &str) -> Output {
    chronos_at(&cluster.addresses[&1], args, stdin)
}

fn chronos_at(address: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chronos"))
        .arg("--addr")
        .arg(address)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run chronos");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    child.wait_with_output().expect("chronos output")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("exit code")
}

#[test]
fn the_seed_session_prints_byte_for_byte() {
    let _serial = serial();
    let cluster = Cluster::start(1, &[]);
    let exec = |sql: &str| {
        let output = chronos(&cluster, &["exec", sql], "");
        assert_eq!(code(&output), 0, "{sql}: {}", stderr(&output));
        stdout(&output)
    };
    assert_eq!(exec("CREATE TABLE users (id INT, name STRING, balance FLOAT)"), "Query OK\n");
    assert_eq!(
        exec("INSERT INTO users VALUES (1, 'Alice', 100.5), (2, 'Bob', 250.75)"),
        "Query OK, 2 rows affected\n"
    );
    assert_eq!(
        exec("SELECT * FROM users"),
        "+----+-------+---------+\n\
         | id | name  | balance |\n\
         +----+-------+---------+\n\
         | 1  | Alice | 100.5   |\n\
         | 2  | Bob   | 250.75  |\n\
         +----+-------+---------+\n"
    );
    assert_eq!(exec("DELETE FROM users WHERE id = 2"), "Query OK, 1 row affected\n");
    assert_eq!(
        exec(
            "BEGIN; UPDATE users SET balance = balance + 10 WHERE name = 'Alice'; COMMIT; SELECT * FROM users"
        ),
        "BEGIN (transaction 4)\n\
         Query OK, 1 row affected\n\
         COMMIT\n\
         +----+-------+---------+\n\
         | id | name  | balance |\n\
         +----+-------+---------+\n\
         | 1  | Alice | 110.5   |\n\
         +----+-------+---------+\n"
    );
}

#[test]
fn exec_formats_and_exit_codes() {
    let _serial = serial();
    let cluster = Cluster::start(1, &[]);
    let setup = chronos(
        &cluster,
        &[
            "exec",
            "CREATE TABLE t (id INT PRIMARY KEY, name STRING, score FLOAT, ok BOOL); INSERT INTO t VALUES (1, 'a,b', 1.5, TRUE), (2, NULL, NULL, FALSE)",
        ],
        "",
    );
    assert_eq!(code(&setup), 0, "{}", stderr(&setup));

    let csv = chronos(&cluster, &["exec", "--format", "csv", "SELECT * FROM t ORDER BY id"], "");
    assert_eq!(stdout(&csv), "id,name,score,ok\n1,\"a,b\",1.5,TRUE\n2,,,FALSE\n");

    let json = chronos(
        &cluster,
        &[
            "exec",
            "--format",
            "json",
            "SELECT * FROM t ORDER BY id; UPDATE t SET score = 2 WHERE id = 2; SELECT nope FROM t",
        ],
        "",
    );
    assert_eq!(
        stdout(&json),
        "{\"columns\":[\"id\",\"name\",\"score\",\"ok\"],\"rows\":[[1,\"a,b\",1.5,true],[2,null,null,false]]}\n\
         {\"rows_affected\":1}\n\
         {\"error\":{\"kind\":\"unknown_column\",\"message\":\"column \\\"nope\\\" does not exist (line 1, column 74)\"}}\n"
    );
    assert_eq!(code(&json), 1, "an SQL error exits with 1");

    // Execution stops at the first error unless told otherwise.
    let stop = chronos(
        &cluster,
        &["exec", "SELECT * FROM missing; INSERT INTO t VALUES (3, 'c', 0, TRUE)"],
        "",
    );
    assert_eq!(code(&stop), 1);
    assert!(stderr(&stop).contains("ERROR (unknown_table)"), "{}", stderr(&stop));
    // A name error points at the name, by line and column in the whole script.
    let name =
        chronos(&cluster, &["exec", "SELECT id FROM t;\nSELECT id,\n  t.nothing FROM t"], "");
    assert!(
        stderr(&name).contains("column \"t.nothing\" does not exist (line 3, column 3)"),
        "{}",
        stderr(&name)
    );
    let go_on = chronos(
        &cluster,
        &[
            "exec",
            "--continue-on-error",
            "SELECT * FROM missing; INSERT INTO t VALUES (3, 'c', 0, TRUE)",
        ],
        "",
    );
    assert_eq!(code(&go_on), 1);
    assert_eq!(stdout(&go_on), "Query OK, 1 row affected\n");

    // Scripts from a file and from stdin.
    let file = cluster.dir.path().join("script.sql");
    std::fs::write(&file, "SELECT COUNT(*) AS n FROM t;\n-- a comment\nSELECT MAX(id) FROM t;\n")
        .unwrap();
    let from_file =
        chronos(&cluster, &["exec", "--format", "csv", "-f", file.to_str().unwrap()], "");
    assert_eq!(stdout(&from_file), "n\n3\nmax\n3\n");
    let from_stdin =
        chronos(&cluster, &["exec", "--format", "csv", "-f", "-"], "SELECT 40 + 2 AS answer");
    assert_eq!(stdout(&from_stdin), "answer\n42\n");
    let stale = chronos(
        &cluster,
        &["exec", "--consistency", "stale", "--format", "csv", "SELECT id FROM t WHERE id = 3"],
        "",
    );
    assert_eq!(stdout(&stale), "id\n3\n");

    // Usage errors exit with 2.
    assert_eq!(code(&chronos(&cluster, &["exec"], "")), 2);
    assert_eq!(code(&chronos(&cluster, &["exec", "SELECT 1", "-f", "x.sql"], "")), 2);
    assert_eq!(code(&chronos(&cluster, &["exec", "--format", "xml", "SELECT 1"], "")), 2);
    assert_eq!(code(&chronos(&cluster, &["frobnicate"], "")), 2);
    let missing = chronos(&cluster, &["exec", "-f", "/nonexistent/script.sql"], "");
    assert_eq!(code(&missing), 2);

    // A syntax error names its position.
    let syntax = chronos(&cluster, &["exec", "SELEC 1"], "");
    assert_eq!(code(&syntax), 1);
    assert!(stderr(&syntax).contains("line 1, column 1"), "{}", stderr(&syntax));

    // An unreachable cluster exits with 3.
    let port = support::free_ports(1)[0];
    let unreachable = chronos_at(&format!("127.0.0.1:{port}"), &["exec", "SELECT 1"], "");
    assert_eq!(code(&unreachable), 3, "{}", stderr(&unreachable));
    // With several addresses, a dead one is skipped.
    let failover = chronos_at(
        &format!("127.0.0.1:{port},{}", cluster.addresses[&1]),
        &["exec", "--format", "csv", "SELECT 1 AS one"],
        "",
    );
    assert_eq!(stdout(&failover), "one\n1\n");
}

#[test]
fn status_lists_every_node_as_a_table_or_json() {
    let _serial = serial();
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.leader();
    let table = chronos(&cluster, &["status"], "");
    assert_eq!(code(&table), 0);
    let text = stdout(&table);
    assert!(text.starts_with("+----+"), "{text}");
    assert!(text.contains("| id | address"), "{text}");
    let roles: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("| ") && !line.starts_with("| id "))
        .map(|line| line.split('|').nth(3).unwrap_or("").trim())
        .collect();
    assert_eq!(roles.iter().filter(|r| **r == "leader").count(), 1, "{text}");
    assert_eq!(roles.len(), 3, "{text}");
    let down = cluster.other_than(leader);
    cluster.kill(down);
    let json = chronos_at(&cluster.addresses[&leader], &["status", "--format", "json"], "");
    let nodes: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    let nodes = nodes.as_array().expect("an array");
    assert_eq!(nodes.len(), 3);
    for node in nodes {
        for key in [
            "id",
            "address",
            "role",
            "term",
            "leader",
            "last_index",
            "commit_index",
            "applied_index",
        ] {
            assert!(node.get(key).is_some(), "{key} in {node}");
        }
        let expected = if node["id"] == down {
            "down"
        } else if node["id"] == leader {
            "leader"
        } else {
            "follower"
        };
        assert_eq!(node["role"], expected, "{node}");
    }
}

#[test]
fn chronosd_refuses_bad_flags_and_foreign_data_directories() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_chronosd")).args(args).output().expect("run chronosd")
    };
    let bad_peer = run(&["--peers", "2=nowhere"]);
    assert_eq!(code(&bad_peer), 2);
    assert!(stderr(&bad_peer).contains("HOST:PORT"), "{}", stderr(&bad_peer));
    assert_eq!(code(&run(&["--id", "0"])), 2);
    assert_eq!(code(&run(&["--id", "x"])), 2);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let port = support::free_ports(1)[0];
    let listen = format!("127.0.0.1:{port}");
    // A data directory that belongs to node 1 is refused to node 2.
    std::fs::write(dir.path().join("node_id"), "1\n").unwrap();
    let foreign = run(&["--id", "2", "--data-dir", data, "--listen", &listen]);
    assert_eq!(code(&foreign), 1);
    assert!(stderr(&foreign).contains("belongs to node 1"), "{}", stderr(&foreign));
    let self_peer = run(&["--id", "1", "--peers", "1=127.0.0.1:1", "--data-dir", data]);
    assert_eq!(code(&self_peer), 2);
    assert!(stderr(&self_peer).contains("own peer"), "{}", stderr(&self_peer));
    let short = run(&["--heartbeat-ms", "100", "--election-timeout-ms", "150", "--data-dir", data]);
    assert_eq!(code(&short), 2);
    assert!(stderr(&short).contains("twice the heartbeat"), "{}", stderr(&short));
}

#[test]
fn the_shell_runs_multi_line_statements_transactions_and_meta_commands() {
    let _serial = serial();
    let cluster = Cluster::start(1, &[]);
    let home = tempfile::tempdir().unwrap();
    let input = "CREATE TABLE t (a INT);\n\
                 BEGIN;\n\
                 INSERT INTO t\n   VALUES (1),\n   (2);\n\
                 SELECT COUNT(*) AS n FROM t;\n\
                 COMMIT;\n\
                 \\status\n\
                 SELEC 1;\n\
                 \\help\n\
                 \\q\n";
    let mut child = Command::new(env!("CARGO_BIN_EXE_chronos"))
        .args(["--addr", &cluster.addresses[&1], "shell"])
        .env("HOME", home.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run chronos shell");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let text = stdout(&output);
    let expected_in_order = [
        "Query OK (",
        "BEGIN (transaction 2) (",
        "Query OK, 2 rows affected (",
        "| n |",
        "| 2 |",
        "1 row (",
        "COMMIT (",
        "| id | address",
        "ERROR (syntax_error): syntax error at line 1, column 1",
        "Meta-commands",
    ];
    let mut rest = text.as_str();
    for piece in expected_in_order {
        let at = rest.find(piece).unwrap_or_else(|| panic!("{piece:?} in order in:\n{text}"));
        rest = &rest[at + piece.len()..];
    }
    assert!(home.path().join(".chronos_history").exists(), "history is saved");
}

/// `chronos bench` against a 3-node cluster: every workload runs its `--count` of operations
/// with no errors, the mixed workload reports reads and updates separately, and the bank's
/// concurrent transfers keep the total balance.
#[test]
fn bench_runs_each_workload_and_the_bank_keeps_its_total() {
    let _serial = serial();
    let cluster = Cluster::start(3, &[]);
    let leader = cluster.leader();
    let follower = cluster.other_than(leader);
    let addresses = format!("{},{}", cluster.addresses[&leader], cluster.addresses[&follower]);
    let bench = |workload: &str, clients: &str, extra: &[&str]| -> serde_json::Value {
        let mut args =
            vec!["bench", "--workload", workload, "--clients", clients, "--count", "120"];
        args.extend(["--format", "json", "--rows", "20", "--batch-size", "10"]);
        args.extend(extra);
        let output = chronos_at(&addresses, &args, "");
        assert_eq!(code(&output), 0, "{workload}: {}", stderr(&output));
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
        assert_eq!(report["errors"], 0, "{report}");
        report
    };
    let insert = bench("insert", "4", &[]);
    assert_eq!(insert["operations"], 120, "{insert}");
    let rows = cluster.ok(leader, "SELECT COUNT(*) FROM bench_insert");
    assert_eq!(support::single_integer(&Ok(rows[0].clone())), 120);
    let batch = bench("batch", "4", &[]);
    assert_eq!(batch["operations"], 120, "{batch}");
    let rows = cluster.ok(leader, "SELECT COUNT(*) FROM bench_batch");
    assert_eq!(support::single_integer(&Ok(rows[0].clone())), 1200);
    let read = bench("read", "4", &["--consistency", "stale"]);
    assert_eq!(read["operations"], 120, "{read}");
    let mixed = bench("mixed", "4", &[]);
    let kinds = &mixed["latency_ms_by_kind"];
    let (reads, updates) = (&kinds["read"]["count"], &kinds["update"]["count"]);
    assert!(reads.as_u64() > updates.as_u64() && updates.as_u64() > Some(0), "{mixed}");
    // Twenty accounts and eight clients: transfers conflict, and the total still holds.
    let bank = bench("bank", "8", &[]);
    assert_eq!(bank["balance_check"]["ok"], true, "{bank}");
    let done = bank["operations"].as_u64().unwrap_or(0);
    let conflicts = bank["conflicts"].as_u64().unwrap_or(0);
    assert_eq!(done + conflicts, 120, "{bank}");
    assert!(done > 0, "{bank}");
}

/// Issue 17: `chronos bench --workload timeseries` writes a point per device per simulated
/// second in batches, reads the latest values and the per-minute rollup, and leaves rollups
/// equal to a fresh GROUP BY over the points it wrote.
#[test]
fn bench_timeseries_writes_points_and_reads_the_rollups() {
    let _serial = serial();
    let cluster = Cluster::start(3, &[]);
    let leader = cluster.leader();
    let args = [
        "bench",
        "--workload",
        "timeseries",
        "--clients",
        "4",
        "--count",
        "200",
        "--rows",
        "30",
        "--batch-size",
        "25",
        "--format",
        "json",
    ];
    let output = chronos_at(&cluster.addresses[&leader], &args, "");
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(report["errors"], 0, "{report}");
    let kinds = &report["latency_ms_by_kind"];
    let inserts = kinds["insert"]["count"].as_i64().unwrap_or(0);
    assert!(inserts > 0 && kinds["latest"]["count"].as_i64() > Some(0), "{report}");
    assert!(kinds["rollup"]["count"].as_i64() > Some(0), "{report}");
    let count = |sql: &str| support::single_integer(&Ok(cluster.ok(leader, sql)[0].clone()));
    assert_eq!(count("SELECT count(*) FROM bench_timeseries"), inserts * 25);
    assert_eq!(count("SELECT count(DISTINCT device) FROM bench_timeseries"), 30);
    let fresh = "SELECT device, time_bucket('1 minute', ts), avg(v), min(v), max(v), count(*) \
                 FROM bench_timeseries GROUP BY 1, 2";
    for sql in [
        format!("SELECT count(*) FROM (SELECT * FROM bench_timeseries_minute EXCEPT {fresh}) AS d"),
        format!("SELECT count(*) FROM ({fresh} EXCEPT SELECT * FROM bench_timeseries_minute) AS d"),
        "SELECT count(*) FROM (SELECT * FROM bench_timeseries_latest EXCEPT SELECT device, \
         last(v, ts), max(ts) FROM bench_timeseries GROUP BY device) AS d"
            .to_string(),
    ] {
        assert_eq!(count(&sql), 0, "{sql}");
    }
}

/// Issue 12, item 6: a write refused for lack of quorum (nothing applied, exit 3) and a write
/// cut off mid-commit (it may or may not be applied, exit 4) are told apart.
#[test]
fn an_unknown_outcome_has_its_own_kind_and_exit_code() {
    let _serial = serial();
    // Long ticks: the leader keeps its lease for about a second after losing its followers.
    let mut cluster = Cluster::start(3, &["--tick-ms", "100", "--request-timeout-ms", "1500"]);
    let leader = cluster.leader();
    cluster.ok(leader, "CREATE TABLE t (id INT PRIMARY KEY)");
    let follower = cluster.other_than(leader);
    let followers: Vec<u64> = cluster.running().into_iter().filter(|id| *id != leader).collect();
    for id in &followers {
        cluster.kill(*id);
    }
    // The leader appends the write but can never commit it.
    let cut_off = chronos_at(
        &cluster.addresses[&leader],
        &["exec", "--format", "json", "INSERT INTO t VALUES (1)"],
        "",
    );
    assert_eq!(code(&cut_off), 4, "{}{}", stdout(&cut_off), stderr(&cut_off));
    assert!(stdout(&cut_off).contains("\"kind\":\"outcome_unknown\""), "{}", stdout(&cut_off));
    // A node alone, with no leader to be found, refuses before proposing anything.
    cluster.kill(leader);
    cluster.spawn(follower);
    support::eventually("the restarted follower to answer", || cluster.status(follower));
    let refused = chronos_at(
        &cluster.addresses[&follower],
        &["exec", "--format", "json", "INSERT INTO t VALUES (2)"],
        "",
    );
    assert_eq!(code(&refused), 3, "{}{}", stdout(&refused), stderr(&refused));
    assert!(stdout(&refused).contains("\"kind\":\"unavailable\""), "{}", stdout(&refused));
}

/// Issue 12, item 5: no 4 MiB walls. A 15 MB script streams to the server from a file, a
/// result of 15 MB streams back, and a single row of 16 MiB goes in and comes out.
#[test]
fn scripts_results_and_rows_of_any_size_stream() {
    let _serial = serial();
    let cluster = Cluster::start(1, &[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("big.sql");
    let value = "y".repeat(10_000);
    let mut text = String::from("CREATE TABLE t (id INT PRIMARY KEY, v STRING);\n");
    for id in 0..1_500 {
        text.push_str(&format!("INSERT INTO t VALUES ({id}, '{value}');\n"));
    }
    assert!(text.len() > 15_000_000);
    std::fs::write(&script, &text).expect("write the script");
    let loaded = chronos(&cluster, &["exec", "-f", script.to_str().expect("path")], "");
    assert_eq!(code(&loaded), 0, "{}", stderr(&loaded));
    // 15 MB of rows come back (CSV streams them).
    let all = chronos(&cluster, &["exec", "--format", "csv", "SELECT id, v FROM t"], "");
    assert_eq!(code(&all), 0, "{}", stderr(&all));
    assert!(all.stdout.len() > 15_000_000, "{} bytes", all.stdout.len());
    assert_eq!(stdout(&all).lines().count(), 1_501);
    // One row of 16 MiB, in and out.
    let big = "z".repeat(16 << 20);
    let row = dir.path().join("row.sql");
    std::fs::write(&row, format!("INSERT INTO t VALUES (-1, '{big}')")).expect("write");
    let inserted = chronos(&cluster, &["exec", "-f", row.to_str().expect("path")], "");
    assert_eq!(code(&inserted), 0, "{}", stderr(&inserted));
    let length = chronos(
        &cluster,
        &["exec", "--format", "csv", "SELECT LENGTH(v) FROM t WHERE id = -1"],
        "",
    );
    assert_eq!(stdout(&length), format!("length\n{}\n", 16 << 20), "{}", stderr(&length));
    let back = chronos(&cluster, &["exec", "--format", "csv", "SELECT v FROM t WHERE id = -1"], "");
    assert_eq!(code(&back), 0, "{}", stderr(&back));
    assert_eq!(back.stdout.len(), 2 + (16 << 20) + 1, "header, the value, newline");
}

/// A table of `rows` integers, inserted in one statement.
fn numbers(cluster: &Cluster, rows: usize) {
    let values: Vec<String> = (0..rows).map(|i| format!("({i})")).collect();
    let sql = format!("CREATE TABLE a (x INT); INSERT INTO a VALUES {}", values.join(", "));
    let output = chronos(cluster, &["exec", "-f", "-"], &sql);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
}

/// Issue 12, item 11: reads are bounded. A query past the query timeout is cancelled; at most
/// `--max-queries` run at once (more wait, then fail as busy); and a query whose client goes
/// away stops at once, freeing its place.
#[test]
fn queries_are_bounded_in_time_and_number_and_stop_when_their_client_goes_away() {
    let _serial = serial();
    // The time limit.
    let cluster = Cluster::start(1, &["--query-timeout-ms", "500"]);
    numbers(&cluster, 2_000);
    let started = std::time::Instant::now();
    let long = chronos(
        &cluster,
        &["exec", "--format", "json", "SELECT COUNT(*) FROM a l CROSS JOIN a m CROSS JOIN a r"],
        "",
    );
    assert_eq!(code(&long), 1, "{}", stderr(&long));
    assert!(stdout(&long).contains("\"kind\":\"query_canceled\""), "{}", stdout(&long));
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    drop(cluster);

    // One query at a time, a generous query timeout.
    let cluster = Cluster::start(1, &["--max-queries", "1", "--request-timeout-ms", "1500"]);
    numbers(&cluster, 2_000);
    // A client that stops reading its rows holds the one place...
    let mut stuck = Command::new(env!("CARGO_BIN_EXE_chronos"))
        .args(["--addr", &cluster.addresses[&1], "exec", "--format", "csv"])
        .arg("SELECT l.x, m.x FROM a l CROSS JOIN a m CROSS JOIN a r")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run chronos");
    let mut first = [0u8; 1];
    std::io::Read::read_exact(stuck.stdout.as_mut().expect("stdout"), &mut first).expect("rows");
    // ...so another query waits and is refused as busy.
    let busy = chronos(&cluster, &["exec", "--format", "json", "SELECT 1"], "");
    assert_eq!(code(&busy), 3, "{}{}", stdout(&busy), stderr(&busy));
    assert!(stdout(&busy).contains("busy"), "{}", stdout(&busy));
    // Once that client goes away its query stops, and the next query runs at once.
    stuck.kill().expect("kill the client");
    stuck.wait().expect("wait for the client");
    support::eventually("the abandoned query to stop", || {
        let next = chronos(&cluster, &["exec", "--format", "csv", "SELECT 1 AS one"], "");
        (code(&next) == 0 && stdout(&next) == "one\n1\n").then_some(())
    });
}

/// Issue 12, item 10, through a cluster: a statement past its limits fails with the same error
/// on every node, which all stay up and agree, also after a restart replays it.
#[test]
fn a_statement_past_its_memory_limit_fails_on_every_node_alike() {
    let _serial = serial();
    let mut cluster = Cluster::start(3, &["--statement-memory-mb", "4"]);
    numbers(&cluster, 20_000);
    let crossed = chronos(
        &cluster,
        &[
            "exec",
            "--format",
            "json",
            "CREATE TABLE b (x INT, y INT); INSERT INTO b SELECT l.x, r.x FROM a l CROSS JOIN a r",
        ],
        "",
    );
    assert_eq!(code(&crossed), 1, "{}", stderr(&crossed));
    assert!(stdout(&crossed).contains("\"kind\":\"resource_limit\""), "{}", stdout(&crossed));
    let leader = cluster.leader();
    let other = cluster.other_than(leader);
    cluster.kill(other);
    cluster.spawn(other);
    cluster.ok(leader, "INSERT INTO b VALUES (1, 2)");
    assert_eq!(cluster.converged("b").len(), 1);
}
