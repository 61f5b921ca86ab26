//! kill -9 at random moments while the cluster compacts its log, creates views, streams
//! snapshots and installs them (issue 12): afterwards every acknowledged write is present
//! exactly once on every node.
//!
//! `cargo test --test kill` runs a few rounds; `KILL_ROUNDS=40 KILL_SEED=7 cargo test --release
//! --test kill -- --nocapture` a longer run (the seed picks the victims and the moments).

mod support;

use chronos::raft::sim::Rng;
use chronos::sql::types::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{Cluster, eventually, serial};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
fn kill_9_during_compaction_snapshots_and_installs_loses_and_duplicates_nothing() {
    let _serial = serial();
    let rounds = env("KILL_ROUNDS", 6);
    let seed = env("KILL_SEED", 1);
    let mut rng = Rng::new(seed);
    // Compaction every 40 entries: a node down for a moment is sent a snapshot.
    let mut cluster = Cluster::start(3, &["--snapshot-entries", "40"]);
    let leader = cluster.leader();
    cluster.ok(leader, "CREATE TABLE t (id INT PRIMARY KEY, payload STRING)");
    let addresses: Vec<String> = cluster.addresses.values().cloned().collect();
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acknowledged, stop) = (acknowledged.clone(), stop.clone());
        std::thread::spawn(move || {
            let runtime = support::runtime();
            let mut client =
                chronos::client::Client::new(addresses, Duration::from_secs(5)).expect("client");
            client.retry_for = Duration::from_secs(20);
            let payload = "p".repeat(4_000);
            let mut id = 0i64;
            while !stop.load(Ordering::Relaxed) {
                id += 1;
                let sql = format!("INSERT INTO t VALUES ({id}, '{payload}')");
                if let Ok(response) = runtime.block_on(client.execute(&sql, false))
                    && response.results.iter().all(|(_, r)| r.is_ok())
                {
                    acknowledged.lock().unwrap_or_else(|p| p.into_inner()).push(id);
                }
            }
        })
    };
    for round in 0..rounds {
        // Let writes (and compactions) happen, then kill a node at a random moment.
        std::thread::sleep(Duration::from_millis(rng.between(200, 1_200)));
        let victims = cluster.running();
        let victim = victims[rng.below(victims.len())];
        cluster.kill(victim);
        // Down long enough to fall behind the leader's compacted log.
        std::thread::sleep(Duration::from_millis(rng.between(500, 2_000)));
        cluster.spawn(victim);
        // Sometimes kill it again while it receives or installs the leader's state, or kill
        // the leader while it streams one.
        if rng.chance(60) {
            std::thread::sleep(Duration::from_millis(rng.between(20, 600)));
            let again = match rng.chance(50) {
                true => victim,
                false => cluster.leader(),
            };
            println!("round {round}: killed {victim}, then {again} during its catch-up");
            cluster.kill(again);
            std::thread::sleep(Duration::from_millis(rng.between(100, 800)));
            cluster.spawn(again);
        } else {
            println!("round {round}: killed {victim}");
        }
        cluster.leader();
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    let acknowledged = acknowledged.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert!(acknowledged.len() > 20, "the writer got through: {}", acknowledged.len());
    let rows = cluster.converged("t");
    let mut count: BTreeMap<i64, usize> = BTreeMap::new();
    for row in &rows {
        if let Value::Integer(id) = row[0] {
            *count.entry(id).or_default() += 1;
        }
    }
    for id in &acknowledged {
        assert_eq!(count.get(id), Some(&1), "acknowledged row {id} exactly once");
    }
    assert!(count.values().all(|n| *n == 1), "no row twice");
    let installed = (1..=3).filter(|id| cluster.log(*id).contains("received a snapshot")).count();
    println!(
        "{} acknowledged writes, {} rows, snapshots received by {installed} node(s)",
        acknowledged.len(),
        rows.len()
    );
    eventually("every node to answer", || {
        (1..=3).all(|id| cluster.status(id).is_some()).then_some(())
    });
}
