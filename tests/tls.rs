#![cfg(feature = "tls")]
//! TLS (`--tls-cert`, `--tls-key`, `--tls-ca`; `chronos --ca`): certificates made with
//! `chronos cert`, a 3-node cluster serving TLS with mutual TLS between peers. A client
//! without the cluster's CA is refused; with it every CLI command works. A peer whose
//! certificate another CA signed cannot join, a call claiming one node with another node's
//! certificate is refused, each refusal is logged, and the cluster is unharmed after each.

mod support;

use chronos::grpc::pb;
use chronos::grpc::tls::ClientTls;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use support::{Cluster, eventually, serial};

/// Runs `chronos` with `args`.
fn chronos(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chronos"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run chronos")
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Makes a CA with certificates for nodes 1..=3 and a client in `dir` (with `chronos cert`).
fn make_certificates(dir: &Path) {
    let dir = dir.to_str().expect("a UTF-8 path");
    ok(&chronos(&["cert", "ca", "--dir", dir]));
    for id in ["1", "2", "3", "4"] {
        ok(&chronos(&["cert", "node", id, "--dir", dir, "--host", "127.0.0.1,localhost"]));
    }
    ok(&chronos(&["cert", "client", "alice", "--dir", dir]));
    // Nothing is overwritten.
    assert_eq!(chronos(&["cert", "ca", "--dir", dir]).status.code(), Some(2));
}

fn node_flags(dir: &Path, id: u64) -> Vec<String> {
    let file = |name: String| dir.join(name).display().to_string();
    vec![
        "--tls-cert".into(),
        file(format!("node-{id}.pem")),
        "--tls-key".into(),
        file(format!("node-{id}.key")),
        "--tls-ca".into(),
        file("ca.pem".into()),
    ]
}

#[test]
fn a_tls_cluster_serves_only_clients_that_trust_its_ca_and_only_its_own_peers() {
    let _serial = serial();
    let certs = tempfile::tempdir().expect("temp dir");
    let rogue = tempfile::tempdir().expect("temp dir");
    make_certificates(certs.path());
    make_certificates(rogue.path());
    let ca: PathBuf = certs.path().join("ca.pem");
    let tls = ClientTls::load(&ca, None, None).expect("the CA");
    let dir = certs.path().to_path_buf();
    let mut cluster =
        Cluster::start_with_tls(3, &[], move |id| node_flags(&dir, id), Some(tls.clone()));
    let leader = cluster.leader();
    let address = cluster.addresses[&leader].clone();
    let ca_flag = ca.display().to_string();

    // Without the CA, or trusting another CA, a client is refused.
    let plain = chronos(&["--addr", &address, "exec", "SELECT 1"]);
    assert!(!plain.status.success());
    assert!(String::from_utf8_lossy(&plain.stderr).contains("--ca"), "{plain:?}");
    let rogue_ca = rogue.path().join("ca.pem").display().to_string();
    let foreign = chronos(&["--addr", &address, "--ca", &rogue_ca, "exec", "SELECT 1"]);
    assert_eq!(foreign.status.code(), Some(3), "{foreign:?}");

    // With it, every command works: exec, the shell, status, top, bench, a leadership
    // transfer, a backup, membership changes; with a client certificate too.
    let with_ca = |args: &[&str]| {
        let mut all = vec!["--addr", address.as_str(), "--ca", ca_flag.as_str()];
        all.extend_from_slice(args);
        chronos(&all)
    };
    ok(&with_ca(&["exec", "CREATE TABLE t (id INT PRIMARY KEY, v STRING)"]));
    ok(&with_ca(&["exec", "INSERT INTO t VALUES (1, 'one'), (2, 'two')"]));
    assert!(ok(&with_ca(&["exec", "SELECT v FROM t WHERE id = 2"])).contains("two"));
    let mut shell = Command::new(env!("CARGO_BIN_EXE_chronos"))
        .args(["--addr", &address, "--ca", &ca_flag, "shell"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the shell");
    {
        use std::io::Write as _;
        let mut stdin = shell.stdin.take().expect("stdin");
        stdin.write_all(b"SELECT count(*) FROM t;\n\\q\n").expect("write");
    }
    let shell = shell.wait_with_output().expect("shell output");
    assert!(String::from_utf8_lossy(&shell.stdout).contains('2'), "{shell:?}");
    let status = ok(&with_ca(&["status", "--format", "json"]));
    assert_eq!(status.matches("\"role\":\"leader\"").count(), 1, "{status}");
    assert!(ok(&with_ca(&["top", "--format", "json"])).contains("insert into t values"));
    ok(&with_ca(&["bench", "--workload", "insert", "--count", "20", "--clients", "2"]));
    let cert = certs.path().join("client-alice.pem").display().to_string();
    let key = certs.path().join("client-alice.key").display().to_string();
    ok(&with_ca(&["--cert", &cert, "--key", &key, "exec", "SELECT 1"]));
    let token_file = cluster.dir.path().join("admin.token");
    std::fs::write(&token_file, cluster.admin_token()).expect("token file");
    let target = cluster.other_than(leader).to_string();
    let token = token_file.display().to_string();
    ok(&with_ca(&["--admin-token-file", &token, "transfer-leader", &target]));
    let leader = cluster.leader();
    assert_eq!(leader.to_string(), target);
    let backup = cluster.dir.path().join("over-tls.backup");
    let backup_path = backup.display().to_string();
    assert!(
        ok(&with_ca(&["--admin-token-file", &token, "backup", &backup_path]))
            .contains("backup of version")
    );
    assert!(std::fs::metadata(&backup).is_ok_and(|m| m.len() > 0));

    // Membership over TLS: node 4 (with its own certificate) joins, is promoted, is removed.
    let address4 = cluster.reserve(4);
    let flags4: Vec<String> = node_flags(certs.path(), 4);
    let mut join: Vec<&str> = flags4.iter().map(String::as_str).collect();
    join.push("--join");
    cluster.spawn_alone(4, &join);
    ok(&with_ca(&["--admin-token-file", &token, "member", "add", "4", &address4]));
    eventually("node 4 to catch up and be promoted", || {
        with_ca(&["--admin-token-file", &token, "member", "promote", "4"])
            .status
            .success()
            .then_some(())
    });
    ok(&with_ca(&["--admin-token-file", &token, "member", "remove", "4"]));
    cluster.kill(4);
    let status = ok(&with_ca(&["status", "--format", "json"]));
    assert!(!status.contains("\"id\":4"), "{status}");

    // A call that proves node 3 by its token but presents node 2's certificate is refused.
    let secret = std::fs::read(cluster.secret_file()).expect("secret");
    let secret = chronos::server::auth::ClusterSecret::parse(&secret).expect("secret");
    let node2 = ClientTls::load(
        &ca,
        Some(&certs.path().join("node-2.pem")),
        Some(&certs.path().join("node-2.key")),
    )
    .expect("node 2's certificate");
    let refused = cluster.block_on(async {
        let endpoint = chronos::grpc::wire::endpoint_with(&cluster.addresses[&1], Some(&node2))
            .expect("endpoint");
        let channel = endpoint.connect().await.expect("a TLS connection");
        let mut client =
            pb::raft_client::RaftClient::with_interceptor(channel, secret.peer_credentials(3));
        client.touch(pb::TouchRequest { transactions: Vec::new() }).await
    });
    let refused = refused.expect_err("a borrowed certificate");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    assert!(refused.message().contains("node 2"), "{refused:?}");
    eventually("node 1 to log the refusal", || {
        cluster
            .log(1)
            .contains("refused a Raft call claiming node 3 with a certificate for node 2")
            .then_some(())
    });

    // Node 3 restarted with a certificate another CA signed cannot rejoin: its peers refuse
    // its connections (and log it), and the cluster goes on without it.
    let refusals = |cluster: &Cluster| -> usize {
        [1, 2].iter().map(|id| cluster.log(*id).matches("refused a TLS connection").count()).sum()
    };
    let before = refusals(&cluster);
    cluster.kill(3);
    cluster.set_own_args(3, node_flags(rogue.path(), 3));
    cluster.spawn(3);
    // Node 3 refuses its peers' certificates, and they its: either side's alert is logged.
    eventually("the survivors to log the rogue node's refused handshakes", || {
        (refusals(&cluster) > before).then_some(())
    });
    let leader = cluster.leader_among(&[1, 2]);
    cluster.ok(leader, "INSERT INTO t VALUES (3, 'three')");
    let commit = cluster.status(leader).expect("leader status").commit_index;
    let rogue_tls = ClientTls::load(&rogue.path().join("ca.pem"), None, None).expect("rogue CA");
    let rogue_status = cluster.block_on(async {
        let mut client = chronos::client::Client::new(
            vec![cluster.addresses[&3].clone()],
            std::time::Duration::from_secs(5),
        )
        .expect("client")
        .with_tls(rogue_tls);
        client.status().await
    });
    let rogue_status = rogue_status.expect("the rogue node answers its own CA's clients");
    assert!(rogue_status.applied_index < commit, "{rogue_status:?} vs commit {commit}");

    // With its own certificate again, node 3 catches up: the cluster is unharmed.
    cluster.kill(3);
    cluster.set_own_args(3, node_flags(certs.path(), 3));
    cluster.spawn(3);
    let rows = cluster.converged("t");
    assert_eq!(rows.len(), 3, "{rows:?}");
}
