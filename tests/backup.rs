//! Online backup and restore: a backup taken while 16 clients write to a 3-node cluster
//! restores into a new cluster (grown to 3 nodes) whose data equals the source as of the
//! backup's version, row by row, on every node; a damaged backup is refused.

mod support;

use chronos::sql::types::Value;
use std::process::{Command, Stdio};
use support::{Cluster, eventually, same_rows, serial};

#[test]
fn a_backup_taken_under_writes_restores_a_new_cluster_equal_to_the_source_at_its_version() {
    let _serial = serial();
    let source = Cluster::start(3, &[]);
    let addresses: Vec<String> = source.addresses.values().cloned().collect();
    let addresses = addresses.join(",");
    // 16 clients insert for a few seconds (chronos bench, a process of its own).
    let mut load = Command::new(env!("CARGO_BIN_EXE_chronos"))
        .args(["--addr", &addresses, "bench", "--workload", "insert", "--clients", "16"])
        .args(["--duration-secs", "4", "--format", "json"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the load");
    let counted = |cluster: &Cluster| -> Option<i64> {
        let response = cluster
            .block_on(cluster.client(1).execute("SELECT count(*) FROM bench_insert", false))
            .ok()?;
        let (_, outcome) = response.results.into_iter().next()?;
        // Until the load has made its table, there is nothing to count.
        outcome.is_ok().then(|| support::single_integer(&outcome))
    };
    eventually("the load to write rows", || counted(&source).filter(|n| *n > 50));

    // The backup, while the writes go on.
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("cluster.backup");
    let token = dir.path().join("admin.token");
    std::fs::write(&token, source.admin_token()).expect("token file");
    let backup = Command::new(env!("CARGO_BIN_EXE_chronos"))
        .args(["--addr", &source.addresses[&2], "--admin-token-file"])
        .arg(&token)
        .arg("backup")
        .arg(&file)
        .output()
        .expect("run chronos backup");
    let printed = String::from_utf8_lossy(&backup.stdout).into_owned();
    assert!(backup.status.success(), "{printed} {}", String::from_utf8_lossy(&backup.stderr));
    let version: u64 = printed
        .split_whitespace()
        .nth(3)
        .and_then(|v| v.trim_end_matches(':').parse().ok())
        .unwrap_or_else(|| panic!("a version in {printed:?}"));
    let during = counted(&source).expect("a count");
    assert!(load.wait().expect("the load ends").success());
    let after = counted(&source).expect("a count");
    assert!(after > during, "the writes went on during and after the backup");

    // The source as of the backup's version, row by row.
    let as_of = format!(
        "BEGIN READ ONLY AS OF SYSTEM TIME {version}; SELECT * FROM bench_insert ORDER BY id"
    );
    let response = source.block_on(source.client(3).execute(&as_of, false)).expect("as of");
    let expected = support::query_rows(&response.results.last().expect("the query").1);
    assert!(expected.len() > 50 && (expected.len() as i64) < after);

    // A damaged copy is refused by chronosd --restore, which starts nothing.
    let mut damaged = std::fs::read(&file).expect("the backup");
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x01;
    let damaged_file = dir.path().join("damaged.backup");
    std::fs::write(&damaged_file, &damaged).expect("write");
    let refused = Command::new(env!("CARGO_BIN_EXE_chronosd"))
        .args(["--listen", "127.0.0.1:0", "--restore"])
        .arg(&damaged_file)
        .arg("--data-dir")
        .arg(dir.path().join("refused"))
        .output()
        .expect("run chronosd");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("damaged"), "{stderr}");

    // A new cluster from the backup: node 1 restores it and starts alone; nodes 2 and 3
    // join empty, are added, and get the data from node 1. Every node then holds exactly the
    // source's rows as of the version.
    let restore = file.display().to_string();
    let mut restored =
        Cluster::start_each(1, &[], move |_| vec!["--restore".into(), restore.clone()]);
    for id in [2, 3] {
        let address = restored.reserve(id);
        restored.spawn_alone(id, &["--join"]);
        let mut admin = restored.admin_client(1);
        restored.block_on(admin.add_learner(id, &address)).expect("add a learner");
        eventually("the learner to catch up and be promoted", || {
            restored.block_on(admin.promote(id)).ok()
        });
    }
    let rows = restored.converged("bench_insert");
    assert_eq!(restored.running().len(), 3);
    assert!(
        same_rows(&rows, &expected),
        "{} rows restored, {} expected",
        rows.len(),
        expected.len()
    );
    assert!(rows.iter().all(|row| matches!(row[0], Value::Integer(_))));
    // And it serves writes.
    restored.ok(2, "INSERT INTO bench_insert VALUES (-1, 0, 'after the restore')");
    assert_eq!(restored.converged("bench_insert").len(), expected.len() + 1);
}
