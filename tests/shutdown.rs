//! Shutdown always finishes (issue 13): SIGTERM stops a busy node, cancelling what it runs,
//! and the node serves again after a restart.

mod support;

use std::time::{Duration, Instant};
use support::{Cluster, serial, single_integer};

/// The CPU time a process has used so far, in clock ticks (`utime + stime`).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    field(11) + field(12)
}

/// What a busy node's client got back (it may be cut off).
type Answer = std::thread::JoinHandle<Result<chronos::client::Response, chronos::client::Error>>;

/// A one-node cluster (started with `args`) with tables `t` (ids `0..rows`) and `u` (empty),
/// busy running `sql` for a client on another thread: once the node has used half a second
/// of CPU on it. The client keeps resuming a cut-off request for minutes: do not wait for it
/// unless the statement was cancelled.
fn busy_with(args: &[&str], rows: usize, sql: &'static str) -> (Cluster, Answer) {
    let cluster = Cluster::start(1, args);
    let values: Vec<String> = (0..rows).map(|i| format!("({i})")).collect();
    cluster.ok(1, "CREATE TABLE t (id INT PRIMARY KEY); CREATE TABLE u (id INT PRIMARY KEY)");
    cluster.ok(1, &format!("INSERT INTO t VALUES {}", values.join(", ")));
    let pid = cluster.pid(1).expect("running");
    let before = cpu_ticks(pid);
    let address = cluster.addresses[&1].clone();
    let answer = std::thread::spawn(move || {
        let runtime = support::runtime();
        let mut client =
            chronos::client::Client::new(vec![address], Duration::from_secs(900)).expect("client");
        runtime.block_on(client.execute(sql, false))
    });
    support::eventually("the node to be busy", || (cpu_ticks(pid) > before + 50).then_some(()));
    (cluster, answer)
}

#[test]
fn sigterm_stops_a_node_running_a_long_query() {
    let _serial = serial();
    // 27 billion combinations: hours of work. The query timeout is far away: only the stop
    // can end the query in time.
    let sql = "SELECT COUNT(*) FROM t a CROSS JOIN t b CROSS JOIN t c";
    let (mut cluster, query) = busy_with(&["--query-timeout-ms", "600000"], 3000, sql);
    let asked = Instant::now();
    assert_eq!(cluster.terminate(1), Some(0), "{}", cluster.log(1));
    let stopped = asked.elapsed();
    assert!(stopped < Duration::from_secs(10), "the node took {stopped:?} to stop");
    // Cancelled by the stop (or cut off with its connection): it never counted.
    match query.join().expect("query thread") {
        Ok(response) => {
            let outcome = &response.results[0].1;
            assert!(outcome.as_ref().is_err_and(|e| e.kind == "query_canceled"), "{outcome:?}");
        }
        Err(_cut_off) => {}
    }
    // It serves again after a restart.
    cluster.spawn(1);
    let counted = support::eventually("the node to serve again", || {
        let mut client = cluster.client(1);
        cluster.block_on(client.execute("SELECT COUNT(*) FROM t", false)).ok()
    });
    assert_eq!(single_integer(&counted.results[0].1), 3000);
}

/// A one-node cluster busy applying one entry that writes 4,000,000 rows.
fn applying_a_heavy_entry() -> (Cluster, Answer) {
    let limits = ["--statement-write-mb", "100000", "--statement-memory-mb", "100000"];
    let sql = "INSERT INTO u SELECT a.id * 2000 + b.id FROM t a CROSS JOIN t b";
    busy_with(&limits, 2000, sql)
}

#[test]
fn sigterm_stops_a_node_applying_a_heavy_entry() {
    let _serial = serial();
    let (mut cluster, _write) = applying_a_heavy_entry();
    let asked = Instant::now();
    assert_eq!(cluster.terminate(1), Some(0), "{}", cluster.log(1));
    let stopped = asked.elapsed();
    assert!(stopped < Duration::from_secs(10), "the node took {stopped:?} to stop");
    assert!(cluster.log(1).contains("the next start replays it from the log"));
}

#[test]
fn a_second_signal_stops_a_node_at_once() {
    let _serial = serial();
    let (mut cluster, _write) = applying_a_heavy_entry();
    cluster.signal(1, "TERM");
    support::eventually("the node to start stopping", || {
        cluster.log(1).contains("stopping").then_some(())
    });
    assert_eq!(cluster.terminate(1), Some(130), "{}", cluster.log(1));
    assert!(cluster.log(1).contains("second signal"));
}
