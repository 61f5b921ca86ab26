//! Large-data runs (issue 12), ignored by default; run them in release:
//!
//! ```sh
//! cargo test --release --test scale -- --ignored --nocapture --test-threads 1
//! SCALE_ROWS=5000,100000,1000000,10000000 cargo test --release --test scale restart -- --ignored --nocapture
//! SNAPSHOT_MB=2048 cargo test --release --test scale snapshot -- --ignored --nocapture
//! ```
//!
//! They print the figures the README quotes: restart-to-serving time after `kill -9` and the
//! node's memory at each size, and the time and memory of streaming and installing a snapshot
//! of gigabytes.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{Cluster, eventually, serial, single_integer};

/// A process's memory in KiB: resident now (`VmRSS`) or at its peak (`VmHWM`).
fn memory_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|line| line.starts_with(field))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

/// The memory a node may reach at any data size, in MiB: its caches and limits, with room.
const MEMORY_BOUND_MIB: f64 = 200.0;

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The bytes under a directory.
fn disk_bytes(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => disk_bytes(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Loads `rows` rows of about `row_bytes` bytes into `t`, through `clients` concurrent
/// clients sending statements of `per_statement` rows. Returns the time it took.
fn load(cluster: &Cluster, node: u64, rows: u64, row_bytes: usize, per_statement: u64) -> Duration {
    let clients = 4;
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let address = cluster.addresses[&node].clone();
    std::thread::scope(|scope| {
        for _ in 0..clients {
            let (next, address) = (next.clone(), address.clone());
            scope.spawn(move || {
                let runtime = support::runtime();
                let mut client =
                    chronos::client::Client::new(vec![address], Duration::from_secs(30))
                        .expect("client");
                let payload = "x".repeat(row_bytes);
                loop {
                    let from = next.fetch_add(per_statement, Ordering::Relaxed);
                    if from >= rows {
                        return;
                    }
                    let to = (from + per_statement).min(rows);
                    let values: Vec<String> =
                        (from..to).map(|id| format!("({id}, '{payload}')")).collect();
                    let sql = format!("INSERT INTO t VALUES {}", values.join(", "));
                    let response = runtime.block_on(client.execute(&sql, false)).expect("insert");
                    assert!(response.results.iter().all(|(_, r)| r.is_ok()), "{response:?}");
                }
            });
        }
    });
    started.elapsed()
}

/// The row count node `id` serves.
fn count(cluster: &Cluster, id: u64) -> Result<i64, String> {
    let mut client = cluster.client(id);
    let response = cluster
        .block_on(client.execute("SELECT COUNT(*) FROM t", false))
        .map_err(|e| format!("node {id}: {e}"))?;
    let (_, first) = response.results.first().ok_or("no result")?;
    first.as_ref().map_err(|e| format!("node {id}: {e:?}"))?;
    Ok(single_integer(first))
}

/// Restart time and memory do not grow with the data: the state machine is durable, so a
/// restart replays only the log's tail.
#[test]
#[ignore = "a large-data run: cargo test --release --test scale -- --ignored --nocapture"]
fn restart_time_and_memory_do_not_grow_with_the_data() {
    let _serial = serial();
    let sizes: Vec<u64> = std::env::var("SCALE_ROWS")
        .unwrap_or_else(|_| "5000,100000,1000000".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    println!(
        "| rows | load | data on disk | peak memory loading | restart to serving | memory serving after restart | peak after a full scan |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut restarts = Vec::new();
    for rows in sizes {
        let mut cluster = Cluster::start(1, &[]);
        cluster.ok(1, "CREATE TABLE t (id INT PRIMARY KEY, v STRING)");
        let loading = load(&cluster, 1, rows, 40, 1000);
        let pid = cluster.pid(1).expect("running");
        let peak_loading = memory_kib(pid, "VmHWM");
        let disk = disk_bytes(&cluster.data_dir(1));
        cluster.kill(1);
        let started = Instant::now();
        cluster.spawn(1);
        eventually("the node to serve again", || {
            let mut client = cluster.client(1);
            cluster.block_on(client.execute("SELECT 1", false)).ok().map(|_| ())
        });
        let restart = started.elapsed();
        let serving = memory_kib(cluster.pid(1).expect("running"), "VmRSS");
        assert_eq!(count(&cluster, 1), Ok(rows as i64), "every row is back");
        let after = memory_kib(cluster.pid(1).expect("running"), "VmHWM");
        println!(
            "| {rows} | {:.1} s | {:.0} MiB | {:.0} MiB | {:.2} s | {:.0} MiB | {:.0} MiB |",
            loading.as_secs_f64(),
            disk as f64 / (1 << 20) as f64,
            mib(peak_loading),
            restart.as_secs_f64(),
            mib(serving),
            mib(after)
        );
        restarts.push((rows, restart));
        // Memory is bounded by caches and limits, not by the data (about 80 MiB measured).
        for (what, kib) in [("loading", peak_loading), ("after a full scan", after)] {
            assert!(mib(kib) < MEMORY_BOUND_MIB, "{rows} rows: {} MiB {what}", mib(kib));
        }
    }
    let smallest = restarts.first().map(|(_, t)| *t).unwrap_or_default();
    for (rows, restart) in &restarts {
        assert!(
            *restart <= smallest * 2 + Duration::from_millis(300),
            "restart at {rows} rows took {restart:?}, at the smallest size {smallest:?}"
        );
    }
}

/// A snapshot of gigabytes is created, streamed to a follower that was down, installed, and
/// restarted from, with memory bounded on both sides.
#[test]
#[ignore = "a large-data run: cargo test --release --test scale -- --ignored --nocapture"]
fn a_snapshot_of_gigabytes_streams_to_a_follower_that_was_down() {
    let _serial = serial();
    let megabytes: u64 =
        std::env::var("SNAPSHOT_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(2048);
    let row_bytes = 1000;
    let rows = megabytes * (1 << 20) / row_bytes as u64;
    let mut cluster = Cluster::start(3, &["--snapshot-entries", "1000"]);
    let leader = cluster.leader();
    cluster.ok(leader, "CREATE TABLE t (id INT PRIMARY KEY, v STRING)");
    let down = cluster.other_than(leader);
    cluster.kill(down);
    let loading = load(&cluster, leader, rows, row_bytes, 100);
    let leader_disk = disk_bytes(&cluster.data_dir(leader));
    let status = cluster.status(leader).expect("status");
    assert!(status.snapshot_index > 1000, "the leader compacted its log: {status:?}");
    // Sample both processes' memory while the state streams and installs (from what each
    // held just before).
    let sender_before = memory_kib(cluster.pid(leader).expect("leader"), "VmRSS");
    let peaks = Arc::new(Mutex::new((0u64, 0u64)));
    let done = Arc::new(AtomicBool::new(false));
    cluster.spawn(down);
    let started = Instant::now();
    let sampler = {
        let (peaks, done) = (peaks.clone(), done.clone());
        let (sender, receiver) =
            (cluster.pid(leader).expect("leader"), cluster.pid(down).expect("down"));
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let mut peaks = peaks.lock().unwrap_or_else(|p| p.into_inner());
                peaks.0 = peaks.0.max(memory_kib(sender, "VmRSS"));
                peaks.1 = peaks.1.max(memory_kib(receiver, "VmRSS"));
                drop(peaks);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let caught_up = cluster
            .status(down)
            .zip(cluster.status(leader))
            .is_some_and(|(d, l)| d.applied_index >= l.commit_index && d.snapshot_index > 1000);
        if caught_up {
            break;
        }
        assert!(Instant::now() < deadline, "the follower did not catch up");
        std::thread::sleep(Duration::from_millis(200));
    }
    let transfer = started.elapsed();
    done.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler");
    assert!(cluster.log(down).contains("received a snapshot"), "{}", cluster.log(down));
    assert_eq!(count(&cluster, down), Ok(rows as i64));
    let (sender_peak, receiver_peak) = *peaks.lock().unwrap_or_else(|p| p.into_inner());
    // Restarted, the follower serves from the installed state at once.
    cluster.kill(down);
    let restarted = Instant::now();
    cluster.spawn(down);
    eventually("the follower to serve again", || {
        let mut client = cluster.client(down);
        cluster.block_on(client.execute("SELECT 1", false)).ok().map(|_| ())
    });
    let restart = restarted.elapsed();
    let after_restart = count(&cluster, down);
    assert_eq!(after_restart, Ok(rows as i64), "{}", cluster.log(down));
    assert!(mib(receiver_peak) < MEMORY_BOUND_MIB, "receiver: {} MiB", mib(receiver_peak));
    assert!(
        mib(sender_peak.saturating_sub(sender_before)) < MEMORY_BOUND_MIB,
        "sender: {} MiB more while streaming",
        mib(sender_peak.saturating_sub(sender_before))
    );
    println!(
        "snapshot of {megabytes} MiB of rows ({rows} rows, {:.1} GiB on the leader's disk): loaded in {:.0} s; streamed and installed in {:.0} s ({:.0} MiB/s); memory while streaming: sender {:.0} MiB before, {:.0} MiB at most; receiver {:.0} MiB at most; restart from it to serving {:.2} s",
        leader_disk as f64 / (1u64 << 30) as f64,
        loading.as_secs_f64(),
        transfer.as_secs_f64(),
        megabytes as f64 / transfer.as_secs_f64(),
        mib(sender_before),
        mib(sender_peak),
        mib(receiver_peak),
        restart.as_secs_f64()
    );
}
