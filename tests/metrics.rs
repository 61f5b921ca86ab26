//! Prometheus metrics (`--metrics-listen`): a 3-node cluster under writes is scraped over
//! HTTP and parsed with a Prometheus text parser; counters rise with the work done, and the
//! term and indexes agree with the Admin status (what `chronos status` prints), which also
//! reports each node's fsync p99 and storage size.

mod support;

use prometheus_parse::Scrape;
use support::scrape::{http_get, scrape, value};
use support::{Cluster, eventually, free_ports, serial};

#[test]
fn a_cluster_under_writes_exposes_metrics_that_agree_with_its_status() {
    let _serial = serial();
    let ports = free_ports(3);
    let metrics: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let listen = metrics.clone();
    let cluster = Cluster::start_each(3, &[], move |id| {
        vec!["--metrics-listen".into(), listen[id as usize - 1].clone()]
    });
    let address = |id: u64| metrics[id as usize - 1].as_str();
    let leader = cluster.leader();
    let follower = cluster.other_than(leader);

    cluster.ok(follower, "CREATE TABLE t (id INT PRIMARY KEY, v STRING)");
    let before: Vec<Scrape> = (1..=3).map(|id| scrape(address(id))).collect();
    let writes = 20;
    for i in 0..writes {
        cluster.ok(follower, &format!("INSERT INTO t VALUES ({i}, 'v{i}')"));
    }
    let failed = cluster.execute(follower, "INSERT INTO t VALUES (0, 'again')");
    assert!(failed.results.iter().any(|(_, outcome)| outcome.is_err()));
    cluster.ok(follower, "SELECT * FROM t");
    cluster.converged("t");
    let after: Vec<Scrape> = (1..=3).map(|id| scrape(address(id))).collect();

    // Help and type lines follow Prometheus' conventions (a labelled family shows once used).
    let (_, text) = http_get(address(follower), "/metrics");
    for line in [
        "# TYPE chronos_raft_term gauge",
        "# TYPE chronos_raft_proposals_total counter",
        "# TYPE chronos_raft_fsync_seconds histogram",
        "# TYPE chronos_sql_statement_seconds histogram",
        "# TYPE chronos_grpc_requests_total counter",
        "# TYPE chronos_storage_size_bytes gauge",
        "# TYPE chronos_process_resident_memory_bytes gauge",
    ] {
        assert!(text.contains(line), "missing {line:?}");
    }
    assert_eq!(http_get(address(follower), "/other").0, 404);

    let rise = |id: u64, metric: &str, labels: &[(&str, &str)]| {
        let i = id as usize - 1;
        value(&after[i], metric, labels) - value(&before[i], metric, labels)
    };
    // Statements count on the node that served them, by kind and outcome, with their rows.
    let inserted = [("kind", "insert"), ("outcome", "ok")];
    assert_eq!(rise(follower, "chronos_sql_statements_total", &inserted), writes as f64);
    let clashed = [("kind", "insert"), ("outcome", "primary_key_violation")];
    assert_eq!(rise(follower, "chronos_sql_statements_total", &clashed), 1.0);
    let selected = [("kind", "select"), ("outcome", "ok")];
    assert_eq!(rise(follower, "chronos_sql_statements_total", &selected), 1.0);
    assert_eq!(rise(follower, "chronos_sql_rows_written_total", &[]), writes as f64);
    assert_eq!(rise(follower, "chronos_sql_rows_returned_total", &[]), writes as f64);
    let timed = [("kind", "insert")];
    assert_eq!(rise(follower, "chronos_sql_statement_seconds_count", &timed), writes as f64 + 1.0);
    // The leader proposed every write (forwarded to it); every node fsynced its log.
    assert!(rise(leader, "chronos_raft_proposals_total", &[]) >= writes as f64 + 1.0);
    for id in 1..=3 {
        assert!(rise(id, "chronos_raft_fsync_seconds_count", &[]) > 0.0, "node {id}");
        assert!(rise(id, "chronos_raft_append_seconds_count", &[]) > 0.0, "node {id}");
    }
    let runs = [("method", "/chronos.v1.Sql/Run"), ("code", "Ok")];
    assert!(rise(follower, "chronos_grpc_requests_total", &runs) >= writes as f64 + 2.0);
    // Only the leader reports its peers, each with a match index and lag.
    let i = leader as usize - 1;
    let peer = follower.to_string();
    assert!(value(&after[i], "chronos_raft_peer_match_index", &[("peer", &peer)]) > 0.0);
    assert!(value(&after[i], "chronos_raft_role", &[("role", "leader")]) == 1.0);
    assert!(value(&after[i], "chronos_raft_leader_changes_total", &[]) >= 1.0);
    assert!(value(&after[i], "chronos_process_resident_memory_bytes", &[]) > 1e6);
    assert!(value(&after[i], "chronos_storage_size_bytes", &[]) > 0.0);
    let live = value(&after[i], "chronos_mvcc_live_versions", &[]);
    let next = value(&after[i], "chronos_mvcc_next_version", &[]);
    let horizon = value(&after[i], "chronos_mvcc_gc_horizon_version", &[]);
    assert!(live > writes as f64 && live == next - horizon, "{live} {next} {horizon}");

    // A large, compressible row goes to the followers compressed (lz4): the leader counts
    // the bytes its messages took before and after.
    let saved = |s: &Scrape| {
        value(s, "chronos_raft_message_bytes_total", &[("stage", "encoded")])
            - value(s, "chronos_raft_message_bytes_total", &[("stage", "sent")])
    };
    let before_big = scrape(address(leader));
    let big = "sensor 17 reading ok; ".repeat(10_000);
    cluster.ok(follower, &format!("INSERT INTO t VALUES (1000, '{big}')"));
    cluster.converged("t");
    let after_big = scrape(address(leader));
    let bytes_saved = saved(&after_big) - saved(&before_big);
    assert!(bytes_saved > 1.5 * big.len() as f64, "saved {bytes_saved} of 2 x {}", big.len());

    // At rest, the term and indexes agree with the status every node reports.
    for id in 1..=3 {
        eventually(&format!("node {id}'s metrics to agree with its status"), || {
            let status = cluster.status(id)?;
            let metrics = scrape(address(id));
            let agree = value(&metrics, "chronos_raft_term", &[]) == status.term as f64
                && value(&metrics, "chronos_raft_commit_index", &[]) == status.commit_index as f64
                && value(&metrics, "chronos_raft_applied_index", &[])
                    == status.applied_index as f64
                && value(&metrics, "chronos_raft_last_index", &[]) == status.last_index as f64
                && value(&metrics, "chronos_raft_leader_id", &[]) == status.leader as f64;
            // The status again: had the cluster moved meanwhile, they would differ.
            let key = |s: &chronos::grpc::pb::NodeStatus| {
                (s.term, s.commit_index, s.applied_index, s.last_index, s.leader)
            };
            let settled = key(&cluster.status(id)?) == key(&status);
            (agree && settled).then_some(())
        });
    }

    // The status `chronos status` prints carries each node's fsync p99 and storage size.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_chronos"))
        .args(["--addr", &cluster.addresses[&leader], "status", "--format", "json"])
        .output()
        .expect("run chronos status");
    let nodes: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("chronos status --format json");
    let nodes = nodes.as_array().expect("an array of nodes");
    assert_eq!(nodes.len(), 3);
    for node in nodes {
        assert!(node["fsync_p99_us"].as_u64().is_some_and(|us| us > 0), "{node}");
        assert!(node["storage_bytes"].as_u64().is_some_and(|b| b > 0), "{node}");
    }
}

#[test]
fn a_metrics_address_that_is_taken_stops_the_node_at_start() {
    let _serial = serial();
    let data = tempfile::tempdir().expect("temp dir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("address").port().to_string();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_chronosd"))
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data.path())
        .output()
        .expect("run chronosd");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot serve metrics on"), "{stderr}");
}
