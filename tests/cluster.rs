//! End-to-end tests of a replicated cluster: real `chronosd` processes on 127.0.0.1, killed
//! with SIGKILL and restarted, driven through the client library.

mod support;

use chronos::grpc::pb;
use chronos::sql::StatementResult;
use chronos::sql::types::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::{Cluster, eventually, serial, single_integer, text};

#[test]
fn three_nodes_elect_one_leader_and_replicate_writes_made_through_a_follower() {
    let _serial = serial();
    let cluster = Cluster::start(3, &[]);
    let leader = cluster.leader();
    // Every node's view of the cluster agrees.
    for id in 1..=3 {
        let mut client = cluster.client(id);
        let nodes = cluster.block_on(client.cluster_status()).expect("cluster status");
        assert_eq!(nodes.len(), 3);
        for node in &nodes {
            assert_eq!(node.leader, leader, "node {id}'s view of node {}", node.id);
            let expected = if node.id == leader { pb::Role::Leader } else { pb::Role::Follower };
            assert_eq!(node.role, expected as i32, "node {id}'s view of node {}", node.id);
        }
    }
    let follower = cluster.other_than(leader);
    cluster.ok(
        follower,
        "CREATE TABLE accounts (id INT PRIMARY KEY, owner STRING NOT NULL, balance FLOAT);
         INSERT INTO accounts VALUES (1, 'ada', 10.5), (2, 'grace', 20.25), (3, 'edsger', NULL)",
    );
    let rows = cluster.converged("accounts");
    assert_eq!(text(&rows), vec!["1,ada,10.5", "2,grace,20.25", "3,edsger,NULL"]);
    // A linearizable read on any node sees the write at once, and says what it reflects.
    for id in 1..=3 {
        let response = cluster.execute(id, "SELECT COUNT(*) FROM accounts");
        let (index, outcome) = &response.results[0];
        assert_eq!(single_integer(outcome), 3, "node {id}");
        assert!(*index >= 2, "the read reflects the write's entry, got index {index}");
    }
}

#[test]
fn a_killed_leader_is_replaced_and_catches_up_when_restarted() {
    let _serial = serial();
    let mut cluster = Cluster::start(3, &[]);
    let old = cluster.leader();
    cluster.ok(old, "CREATE TABLE t (id INT PRIMARY KEY, v STRING); INSERT INTO t VALUES (1, 'a')");
    cluster.kill(old);
    let killed = Instant::now();
    let survivor = cluster.other_than(old);
    let mut client = cluster.client(survivor);
    // The first write that succeeds after the kill.
    eventually("a write through a surviving node", || {
        let response = cluster.block_on(client.execute("INSERT INTO t VALUES (2, 'b')", false));
        response.ok().filter(|r| r.results.iter().all(|(_, o)| o.is_ok()))
    });
    println!("kill -9 of the leader to the first successful write: {:?}", killed.elapsed());
    let new = cluster.leader();
    assert_ne!(new, old);
    cluster.ok(new, "INSERT INTO t VALUES (3, 'c')");
    // The old leader comes back as a follower and catches up.
    cluster.spawn(old);
    let rows = cluster.converged("t");
    assert_eq!(text(&rows), vec!["1,a", "2,b", "3,c"]);
    let statuses: Vec<pb::NodeStatus> =
        (1..=3).map(|id| cluster.status(id).expect("status")).collect();
    assert!(statuses.iter().all(|s| s.applied_index == statuses[0].applied_index));
}

#[test]
fn a_node_down_during_compaction_catches_up_by_snapshot() {
    let _serial = serial();
    let mut cluster = Cluster::start(3, &["--snapshot-entries", "20"]);
    let leader = cluster.leader();
    cluster.ok(leader, "CREATE TABLE t (id INT PRIMARY KEY, v STRING)");
    let down = cluster.other_than(leader);
    cluster.converged("t");
    cluster.kill(down);
    for batch in 0..60 {
        cluster.ok(leader, &format!("INSERT INTO t VALUES ({batch}, 'row {batch}')"));
    }
    // The others compacted their logs past where the stopped node left off.
    let up = cluster.running();
    eventually("the running nodes to compact their logs", || {
        up.iter().all(|id| cluster.status(*id).is_some_and(|s| s.first_index > 20)).then_some(())
    });
    cluster.spawn(down);
    let rows = cluster.converged("t");
    assert_eq!(rows.len(), 60);
    let status = cluster.status(down).expect("status");
    assert!(status.snapshot_index > 20, "caught up by snapshot: {status:?}");
    // And it keeps up with new writes afterwards.
    cluster.ok(leader, "INSERT INTO t VALUES (100, 'after')");
    assert_eq!(cluster.converged("t").len(), 61);
}

#[test]
fn without_a_quorum_writes_fail_as_unavailable_and_acknowledged_writes_survive() {
    let _serial = serial();
    let mut cluster = Cluster::start(3, &["--request-timeout-ms", "1500"]);
    let leader = cluster.leader();
    cluster.ok(leader, "CREATE TABLE t (id INT PRIMARY KEY)");
    let mut acknowledged = Vec::new();
    for id in 0..20 {
        cluster.ok(leader, &format!("INSERT INTO t VALUES ({id})"));
        acknowledged.push(id);
    }
    let keep = cluster.other_than(leader);
    for id in cluster.running() {
        if id != keep {
            cluster.kill(id);
        }
    }
    let started = Instant::now();
    let response = cluster.execute(keep, "INSERT INTO t VALUES (1000)");
    let (_, outcome) = &response.results[0];
    let error = outcome.as_ref().expect_err("no quorum, no write");
    assert_eq!(error.kind, "unavailable", "{}", error.message);
    assert!(started.elapsed() < Duration::from_secs(10), "answered within the client timeout");
    // A linearizable read cannot be served either; a stale one can.
    let read = cluster.execute(keep, "SELECT COUNT(*) FROM t");
    assert_eq!(read.results[0].1.as_ref().expect_err("no quorum").kind, "unavailable");
    for id in 1..=3 {
        if id != keep {
            cluster.spawn(id);
        }
    }
    cluster.leader();
    let rows = cluster.converged("t");
    let ids: Vec<i64> = rows
        .iter()
        .filter_map(|row| match row[0] {
            Value::Integer(i) => Some(i),
            _ => None,
        })
        .collect();
    for id in &acknowledged {
        assert_eq!(ids.iter().filter(|i| *i == id).count(), 1, "row {id} exactly once");
    }
}

#[test]
fn concurrent_clients_insert_every_row_exactly_once() {
    let _serial = serial();
    let cluster = Cluster::start(3, &[]);
    let leader = cluster.leader();
    cluster.ok(leader, "CREATE TABLE t (client INT, n INT)");
    const CLIENTS: i64 = 16;
    const INSERTS: i64 = 500;
    let addresses: Vec<String> = cluster.addresses.values().cloned().collect();
    std::thread::scope(|scope| {
        for client in 0..CLIENTS {
            // Clients spread over all nodes: followers forward their writes.
            let address = addresses[client as usize % addresses.len()].clone();
            scope.spawn(move || {
                let runtime = support::runtime();
                let mut session =
                    chronos::client::Client::new(vec![address], Duration::from_secs(10)).unwrap();
                for n in 0..INSERTS {
                    let sql = format!("INSERT INTO t VALUES ({client}, {n})");
                    let response = runtime.block_on(session.execute(&sql, false)).unwrap();
                    assert!(response.results[0].1.is_ok(), "{sql}: {:?}", response.results[0].1);
                }
            });
        }
    });
    let rows = cluster.converged("t");
    assert_eq!(rows.len() as i64, CLIENTS * INSERTS);
    let mut seen = BTreeMap::new();
    for row in text(&rows) {
        *seen.entry(row).or_insert(0) += 1;
    }
    assert_eq!(seen.len() as i64, CLIENTS * INSERTS, "no row twice");
}

#[test]
fn conflicting_interactive_transactions_commit_one_and_abort_the_other() {
    let _serial = serial();
    let cluster = Cluster::start(3, &[]);
    let leader = cluster.leader();
    let follower = cluster.other_than(leader);
    cluster.ok(leader, "CREATE TABLE acct (id INT PRIMARY KEY, balance INT); INSERT INTO acct VALUES (1, 100), (2, 0)");
    // Two sessions on different nodes, each moving money out of account 1.
    let mut first = cluster.client(leader);
    let mut second = cluster.client(follower);
    let run = |client: &mut chronos::client::Client, sql: &str| {
        cluster.block_on(client.execute(sql, false)).expect("request").results
    };
    run(&mut first, "BEGIN");
    run(&mut second, "BEGIN");
    let moved = run(
        &mut first,
        "UPDATE acct SET balance = balance - 30 WHERE id = 1; UPDATE acct SET balance = balance + 30 WHERE id = 2",
    );
    assert!(moved.iter().all(|(_, o)| o.is_ok()));
    // The second transaction's read runs on its own node and sees its snapshot.
    let seen = run(&mut second, "SELECT balance FROM acct WHERE id = 1");
    assert_eq!(single_integer(&seen[0].1), 100);
    let conflict = run(&mut second, "UPDATE acct SET balance = balance - 50 WHERE id = 1");
    assert_eq!(conflict[0].1.as_ref().expect_err("conflict").kind, "serialization_failure");
    let committed = run(&mut first, "COMMIT");
    assert!(matches!(committed[0].1, Ok(StatementResult::Commit { .. })));
    let rolled_back = run(&mut second, "ROLLBACK");
    assert!(matches!(rolled_back[0].1, Ok(StatementResult::Rollback { .. })));
    let rows = cluster.converged("acct");
    assert_eq!(text(&rows), vec!["1,70", "2,30"], "the loser left nothing behind");
}

#[test]
fn an_abandoned_transaction_is_rolled_back_after_its_timeout() {
    let _serial = serial();
    let cluster = Cluster::start(3, &["--transaction-timeout-secs", "1"]);
    let leader = cluster.leader();
    cluster.ok(leader, "CREATE TABLE t (id INT PRIMARY KEY, v STRING)");
    let follower = cluster.other_than(leader);
    let mut gone = cluster.client(follower);
    let results =
        cluster.block_on(gone.execute("BEGIN; INSERT INTO t VALUES (1, 'abandoned')", false));
    assert!(results.expect("request").results.iter().all(|(_, o)| o.is_ok()));
    drop(gone);
    // The row's key is locked until the leader rolls the transaction back.
    eventually("the abandoned transaction to be rolled back", || {
        let response = cluster.execute(leader, "INSERT INTO t VALUES (1, 'mine')");
        response.results[0].1.is_ok().then_some(())
    });
    assert_eq!(text(&cluster.converged("t")), vec!["1,mine"]);
}

#[test]
fn membership_changes_keep_the_cluster_available() {
    let _serial = serial();
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.leader();
    cluster.ok(leader, "CREATE TABLE t (id INT PRIMARY KEY)");
    let mut next = 0;
    let mut write = |cluster: &Cluster| {
        next += 1;
        let id = cluster.running()[0];
        cluster.ok(id, &format!("INSERT INTO t VALUES ({next})"));
    };
    write(&cluster);
    let address = cluster.reserve(4);
    cluster.spawn_with(4, &["--join"]);
    let mut admin = cluster.admin_client(cluster.other_than(leader));
    let added = cluster.block_on(admin.add_learner(4, &address)).expect("add learner");
    assert!(added.members.iter().any(|m| m.id == 4 && !m.voter));
    write(&cluster);
    eventually("the learner to catch up", || {
        let status = cluster.status(4)?;
        (status.role == pb::Role::Learner as i32 && status.applied_index >= added.index)
            .then_some(())
    });
    let promoted = cluster.block_on(admin.promote(4)).expect("promote");
    assert!(promoted.members.iter().any(|m| m.id == 4 && m.voter));
    write(&cluster);
    // Remove a node that is not the leader, then the leader itself.
    let victim = (1..=3).find(|id| *id != cluster.leader()).expect("a follower");
    let removed = cluster.block_on(admin.remove_node(victim)).expect("remove");
    assert!(removed.members.iter().all(|m| m.id != victim));
    cluster.kill(victim);
    write(&cluster);
    let rows = cluster.converged("t");
    assert_eq!(rows.len(), next);
    let status = cluster.status(4).expect("status");
    assert_eq!(status.members.len(), 3, "{status:?}");
}

#[test]
fn sigterm_makes_a_leader_hand_over_and_exit_cleanly() {
    let _serial = serial();
    let mut cluster = Cluster::start(3, &[]);
    let old = cluster.leader();
    cluster.ok(old, "CREATE TABLE t (id INT)");
    assert_eq!(cluster.terminate(old), Some(0), "a clean exit");
    assert!(cluster.log(old).contains("handed leadership over"), "{}", cluster.log(old));
    let new = cluster.leader();
    assert_ne!(new, old);
    cluster.ok(new, "INSERT INTO t VALUES (1)");
    // It rejoins with the same data directory and id.
    cluster.spawn(old);
    assert_eq!(text(&cluster.converged("t")), vec!["1"]);
}

#[test]
fn admin_reports_tables_the_log_and_a_live_event_stream() {
    let _serial = serial();
    let cluster = Cluster::start(3, &[]);
    let leader = cluster.leader();
    cluster.ok(
        leader,
        "CREATE TABLE a (id INT); CREATE TABLE b (id INT); INSERT INTO b VALUES (1), (2)",
    );
    cluster.converged("b");
    let watcher = cluster.other_than(leader);
    let mut client = cluster.client(watcher);
    let tables = cluster.block_on(client.list_tables()).expect("tables");
    let counts: Vec<(String, u64)> =
        tables.tables.iter().map(|t| (t.name.clone(), t.rows)).collect();
    assert_eq!(counts, vec![("a".to_string(), 0), ("b".to_string(), 2)]);
    let tail = cluster.block_on(client.log_tail(10)).expect("log tail");
    let last = tail.entries.last().expect("entries");
    assert_eq!(last.kind, "command");
    assert!(last.summary.contains("INSERT INTO b (2 rows)"), "{}", last.summary);
    assert!(tail.commit_index >= last.index);
    // The stream sends the status, and events as they happen: a leadership transfer.
    let mut stream = cluster.block_on(client.watch()).expect("watch");
    let first_term = |event: &pb::WatchEvent| match &event.event {
        Some(pb::watch_event::Event::Status(status)) => status.term,
        _ => u64::MAX,
    };
    let first = cluster.block_on(stream.message()).expect("stream").expect("an event");
    assert!(matches!(first.event, Some(pb::watch_event::Event::Status(_))));
    let mut admin = cluster.admin_client(leader);
    let target = (1..=3).find(|id| *id != leader).expect("another node");
    assert_eq!(cluster.block_on(admin.transfer_leadership(target)).expect("transfer"), target);
    let event = cluster.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match stream.message().await {
                    Ok(Some(pb::WatchEvent {
                        event: Some(pb::watch_event::Event::NodeEvent(e)),
                    })) if e.kind == "leader" && e.message.contains(&format!("node {target}")) => {
                        return Some(e);
                    }
                    Ok(Some(_)) => continue,
                    _ => return None,
                }
            }
        })
        .await
    });
    let event = event.ok().flatten().expect("an event naming the new leader");
    assert!(event.at_ms > 0 && event.term > first_term(&first), "{event:?}");
    assert_eq!(cluster.leader(), target);
}

/// Issue 12, item 13: the README's way to add a node. `chronosd --join` without `--peers`
/// learns the members' addresses from the cluster that adds it, catches up, shows as a
/// learner, and once promoted can lead.
#[test]
fn a_node_joining_without_peers_catches_up_and_can_lead() {
    let _serial = serial();
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.leader();
    cluster.ok(leader, "CREATE TABLE t (id INT PRIMARY KEY)");
    for id in 0..5 {
        cluster.ok(leader, &format!("INSERT INTO t VALUES ({id})"));
    }
    let address = cluster.reserve(4);
    cluster.spawn_alone(4, &["--join"]);
    eventually("node 4 to answer", || cluster.status(4));
    let mut admin = cluster.admin_client(1);
    let added = cluster.block_on(admin.add_learner(4, &address)).expect("add learner");
    eventually("node 4 to catch up as a learner", || {
        let status = cluster.status(4)?;
        (status.role == pb::Role::Learner as i32 && status.applied_index >= added.index)
            .then_some(())
    });
    assert_eq!(cluster.rows_on(4, "t").map(|rows| rows.len()), Some(5));
    let nodes = cluster.block_on(admin.cluster_status()).expect("cluster status");
    let four = nodes.iter().find(|n| n.id == 4).expect("node 4 listed");
    assert_eq!(four.role, pb::Role::Learner as i32, "{four:?}");
    // Promoted, it leads: it knows every member's address from the log.
    cluster.block_on(admin.promote(4)).expect("promote");
    let leader = cluster.block_on(admin.transfer_leadership(4)).expect("transfer");
    assert_eq!(leader, 4);
    cluster.ok(4, "INSERT INTO t VALUES (100)");
    assert_eq!(cluster.converged("t").len(), 6);
}

/// Issue 12, item 3: adding a node id that is already a member is refused before anything
/// changes; the member keeps its address and keeps replicating.
#[test]
fn adding_an_existing_member_is_refused_and_changes_nothing() {
    let _serial = serial();
    let cluster = Cluster::start(3, &[]);
    let leader = cluster.leader();
    cluster.ok(leader, "CREATE TABLE t (id INT PRIMARY KEY)");
    let member = cluster.other_than(leader);
    let mut admin = cluster.admin_client(leader);
    let error = cluster
        .block_on(admin.add_learner(member, "127.0.0.1:1"))
        .expect_err("an existing member cannot be added again");
    assert!(error.to_string().contains("already a member"), "{error}");
    let status = cluster.status(leader).expect("status");
    let recorded = status.members.iter().find(|m| m.id == member).expect("still a member");
    assert_eq!(recorded.address, cluster.addresses[&member]);
    cluster.ok(leader, "INSERT INTO t VALUES (1)");
    assert_eq!(cluster.converged("t").len(), 1);
    let nodes = cluster.block_on(admin.cluster_status()).expect("cluster status");
    assert!(nodes.iter().all(|n| n.role != pb::Role::Down as i32), "{nodes:?}");
}

/// Issue 12, item 12 (and issue 13, item 4): session state that comes back from a client is
/// authenticated. A forged read-only session cannot read uncommitted writes, and a client
/// cannot take over a read-write transaction it never opened.
#[test]
fn forged_or_hijacked_sessions_are_refused() {
    let _serial = serial();
    let cluster = Cluster::start(1, &[]);
    cluster.ok(1, "CREATE TABLE t (id INT PRIMARY KEY, v STRING); INSERT INTO t VALUES (1, 'a')");
    // The owner opens a transaction and writes without committing.
    let mut owner = cluster.client(1);
    let begun =
        cluster.block_on(owner.execute("BEGIN; UPDATE t SET v = 'secret' WHERE id = 1", false));
    let begun = begun.expect("begin");
    let Some(chronos::replica::Transaction::ReadWrite { version, index }) = begun.transaction
    else {
        panic!("a read-write transaction: {begun:?}");
    };
    let address = format!("http://{}", cluster.addresses[&1]);
    // A raw Run call with a made-up session; the refusal comes as the stream's status.
    let send = |transaction: pb::Transaction, sql: &str| {
        cluster.block_on(async {
            let mut raw =
                pb::sql_client::SqlClient::connect(address.clone()).await.expect("connect");
            let settings = pb::RunSettings {
                session: Some(pb::Session { transaction: Some(transaction) }),
                ..Default::default()
            };
            let request = pb::RunRequest {
                settings: Some(settings),
                sql: sql.as_bytes().to_vec(),
                end: true,
            };
            let mut stream = raw.run(tokio_stream::iter(vec![request])).await?.into_inner();
            let mut messages = Vec::new();
            while let Some(message) = stream.message().await? {
                messages.push(message);
            }
            Ok::<_, tonic::Status>(messages)
        })
    };
    // Another client claims the owner's transaction by its version.
    let hijack =
        pb::Transaction { version, read_only: false, active: vec![], index, proof: vec![] };
    let refused = send(hijack, "UPDATE t SET v = 'stolen' WHERE id = 1; COMMIT");
    let status = refused.expect_err("a session the cluster did not issue");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    // A read-only session with an empty in-flight set would see the uncommitted write.
    let forged = pb::Transaction {
        version: version + 1,
        read_only: true,
        active: vec![],
        index,
        proof: vec![0; 32],
    };
    let status = send(forged, "SELECT v FROM t").expect_err("a forged snapshot");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    // A genuine session, signed for one client, is refused to another.
    let run = |client_id: u64, session: Option<pb::Session>, sql: &str| {
        cluster.block_on(async {
            let mut raw =
                pb::sql_client::SqlClient::connect(address.clone()).await.expect("connect");
            let settings = pb::RunSettings { session, client_id, ..Default::default() };
            let request = pb::RunRequest {
                settings: Some(settings),
                sql: sql.as_bytes().to_vec(),
                end: true,
            };
            let mut stream = raw.run(tokio_stream::iter(vec![request])).await?.into_inner();
            let mut last = None;
            while let Some(message) = stream.message().await? {
                if let Some(pb::run_response::Event::Session(session)) = message.event {
                    last = Some(session);
                }
            }
            Ok::<_, tonic::Status>(last)
        })
    };
    let issued = run(111, None, "BEGIN READ ONLY").expect("begin").expect("a session");
    let status = run(222, Some(issued.clone()), "SELECT v FROM t").expect_err("another client");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    run(111, Some(issued), "SELECT v FROM t; COMMIT").expect("its own client");
    // The owner's transaction is untouched and commits its own write.
    let committed = cluster.block_on(owner.execute("COMMIT", false)).expect("commit");
    assert!(committed.results.iter().all(|(_, r)| r.is_ok()), "{committed:?}");
    assert_eq!(text(&cluster.converged("t")), vec!["1,secret"]);
    // A genuine read-only session still moves between requests.
    let mut reader = cluster.client(1);
    cluster.block_on(reader.execute("BEGIN READ ONLY", false)).expect("begin read only");
    let read = cluster.block_on(reader.execute("SELECT v FROM t; COMMIT", false)).expect("read");
    assert!(read.results.iter().all(|(_, r)| r.is_ok()), "{read:?}");
}

/// Issue 12, item 2: a follower that was down during large writes catches up, by appends
/// (bounded in bytes, so no frame exceeds the transport's limit) and then by a streamed
/// snapshot of a state of tens of megabytes.
#[test]
fn a_follower_down_during_large_writes_catches_up() {
    let _serial = serial();
    let mut cluster = Cluster::start(3, &["--snapshot-entries", "400"]);
    let leader = cluster.leader();
    cluster.ok(leader, "CREATE TABLE big (id INT PRIMARY KEY, payload STRING)");
    let payload = "x".repeat(30_000);
    let mut client = cluster.client(leader);
    let mut insert = |cluster: &Cluster, from: i64, to: i64| {
        for id in from..to {
            let sql = format!("INSERT INTO big VALUES ({id}, '{payload}')");
            let response = cluster.block_on(client.execute(&sql, false)).expect("insert");
            assert!(response.results.iter().all(|(_, r)| r.is_ok()), "{response:?}");
        }
    };
    // Appends: 300 writes of 30 KB while node `down` is away (the log is not compacted yet).
    let down = cluster.other_than(leader);
    cluster.kill(down);
    insert(&cluster, 0, 300);
    cluster.spawn(down);
    // The row count a node serves, once it answers.
    let count = |cluster: &Cluster, id: u64| -> Option<i64> {
        let mut client = cluster.client(id);
        let response = cluster.block_on(client.execute("SELECT COUNT(*) FROM big", false)).ok()?;
        response.results[0].1.as_ref().ok()?;
        Some(single_integer(&response.results[0].1))
    };
    eventually("the follower to catch up by appends", || {
        (count(&cluster, down)? == 300).then_some(())
    });
    // A snapshot: another follower misses writes past a compaction.
    let other = (1..=3).find(|id| *id != leader && *id != down).expect("a third node");
    cluster.kill(other);
    insert(&cluster, 300, 700);
    let status = cluster.status(leader).expect("status");
    assert!(status.snapshot_index > 300, "the leader compacted its log: {status:?}");
    cluster.spawn(other);
    eventually("the follower to catch up by snapshot", || {
        (count(&cluster, other)? == 700).then_some(())
    });
    assert!(cluster.log(other).contains("received a snapshot"), "{}", cluster.log(other));
    assert_eq!(cluster.converged("big").len(), 700);
}

/// Issue 12, item 6: a write cut off mid-commit has an unknown outcome; the client retries it
/// with the same request id, and the log applies it exactly once. Only one follower comes
/// back, so the old leader (whose log has the cut-off entry) is elected again and commits it
/// while the client retries.
#[test]
fn a_write_with_an_unknown_outcome_is_retried_and_applied_exactly_once() {
    let _serial = serial();
    let mut cluster = Cluster::start(3, &["--tick-ms", "100", "--request-timeout-ms", "1500"]);
    let leader = cluster.leader();
    cluster.ok(leader, "CREATE TABLE t (id INT)");
    let followers: Vec<u64> = cluster.running().into_iter().filter(|id| *id != leader).collect();
    for id in &followers {
        cluster.kill(*id);
    }
    let address = cluster.addresses[&leader].clone();
    let writer = std::thread::spawn(move || {
        let runtime = support::runtime();
        let mut client =
            chronos::client::Client::new(vec![address], Duration::from_secs(10)).expect("client");
        client.retry_for = Duration::from_secs(60);
        runtime.block_on(client.execute("INSERT INTO t VALUES (1)", false))
    });
    // Let at least one attempt time out with its entry in the leader's log.
    std::thread::sleep(Duration::from_secs(3));
    cluster.spawn(followers[0]);
    let response = writer.join().expect("writer").expect("the write succeeds once retried");
    assert!(response.results[0].1.is_ok(), "{:?}", response.results);
    let count = cluster.execute(leader, "SELECT COUNT(*) FROM t");
    assert_eq!(single_integer(&count.results[0].1), 1, "the write is applied exactly once");
}

#[test]
fn the_wider_dialect_replicates_to_the_same_rows_on_every_node() {
    let _serial = serial();
    let cluster = Cluster::start(3, &[]);
    let follower = cluster.other_than(cluster.leader());
    // Subqueries run as each replica plans the statement (correlated ones per row or as
    // semi-joins), views and common tables are planned in place, joins are reordered: every
    // replica must still store the same rows.
    cluster.ok(
        follower,
        "CREATE TABLE t (id INT PRIMARY KEY, g INT, v INT);
         INSERT INTO t VALUES (1, 1, 10), (2, 1, 20), (3, 2, 30), (4, 2, NULL), (5, 3, 50);
         CREATE TABLE u (id INT PRIMARY KEY, x INT);
         INSERT INTO u VALUES (1, 1), (2, 3), (3, NULL);
         CREATE VIEW totals (g, total) AS SELECT g, SUM(v) FROM t GROUP BY g;
         CREATE TABLE out (id INT PRIMARY KEY, label STRING, n INT);
         INSERT INTO out SELECT g, printf('group %d: %s', g, group_concat(v, '+')), COUNT(*)
             FROM t GROUP BY g;
         INSERT INTO out WITH s AS (SELECT g, total FROM totals) SELECT g + 10, 'total', total
             FROM s WHERE total > (SELECT MIN(v) FROM t);
         INSERT INTO out SELECT id + 20, 'set', x FROM u WHERE x IS NOT NULL
             UNION SELECT 30, 'one', 1 EXCEPT SELECT 21, 'set', 1;
         UPDATE out SET n = (SELECT MAX(x) FROM u) WHERE id IN (SELECT g FROM t WHERE v IS NULL);
         UPDATE out SET n = n + (SELECT COUNT(*) FROM t WHERE t.g = out.id)
             WHERE EXISTS (SELECT 1 FROM t WHERE t.id = out.id AND t.v > 15);
         DELETE FROM out WHERE id IN (SELECT a.id + 10 FROM u AS a, t AS b, u AS c
             WHERE b.g = c.x AND a.x = b.id AND b.id = 1);
         INSERT INTO out VALUES (40, substr('replicated', 3, 4) || typeof(1.5), (SELECT COUNT(*) FROM totals))",
    );
    // A write's RETURNING rows come back through the log, from the node it was sent to.
    let returned =
        cluster.execute(follower, "UPDATE out SET n = n + 1 WHERE id = 1 RETURNING id, n");
    match &returned.results[0].1 {
        Ok(StatementResult::Query { rows, .. }) => {
            assert_eq!(rows, &[vec![Value::Integer(1), Value::Integer(3)]]);
        }
        other => panic!("{other:?}"),
    }
    // Keys of several columns, upserts on them, statistics: the same on every node.
    cluster.ok(
        follower,
        "CREATE TABLE pairs (a INT, b INT, v INT, PRIMARY KEY (a, b));
         INSERT INTO pairs SELECT g, id, v FROM t WHERE v IS NOT NULL;
         INSERT INTO pairs VALUES (1, 1, 5), (9, 9, 9) ON CONFLICT (b, a) DO UPDATE SET v = pairs.v + excluded.v;
         ANALYZE",
    );
    assert_eq!(
        text(&cluster.converged("pairs")),
        vec!["1,1,15", "1,2,20", "2,3,30", "3,5,50", "9,9,9"]
    );
    let rows = cluster.converged("out");
    assert_eq!(
        text(&rows),
        vec![
            "1,group 1: 10+20,3",
            "2,group 2: 30,5",
            "3,group 3: 50,2",
            "12,total,30",
            "13,total,50",
            "22,set,3",
            "30,one,1",
            "40,plicreal,3",
        ]
    );
}
