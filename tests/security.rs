//! Nothing from outside the cluster changes it (issue 13): Raft calls need the cluster's
//! credentials, calls that change the cluster need the admin token, and a node of several
//! needs the cluster's secret to start. Each test checks that the cluster still serves after
//! what it refused.

mod support;

use chronos::grpc::pb;
use chronos::raft::{Envelope, Message};
use chronos::replica::Command;
use chronos::server::auth::{ClusterSecret, PEER_HEADER};
use std::process::Command as Process;
use std::time::Duration;
use support::{Cluster, serial, single_integer};

/// A Raft client of `address` whose calls carry `credentials` (`ID:TOKEN`), if any.
async fn raft_client(
    address: &str,
    credentials: Option<String>,
) -> pb::raft_client::RaftClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        impl tonic::service::Interceptor,
    >,
> {
    let channel =
        chronos::grpc::wire::endpoint(address).expect("endpoint").connect().await.unwrap();
    pb::raft_client::RaftClient::with_interceptor(channel, move |mut request: tonic::Request<()>| {
        if let Some(credentials) = &credentials {
            request.metadata_mut().insert(PEER_HEADER, credentials.parse().unwrap());
        }
        Ok(request)
    })
}

/// The cluster still elects, writes and reads, with every node's term small and node 3 at
/// its own address.
fn assert_serving(cluster: &Cluster, rows: i64) {
    let leader = cluster.leader();
    cluster.ok(leader, &format!("INSERT INTO t VALUES ({rows})"));
    let counted = cluster.execute(cluster.other_than(leader), "SELECT COUNT(*) FROM t");
    assert_eq!(single_integer(&counted.results[0].1), rows);
    for id in 1..=3 {
        let status = cluster.status(id).expect("status");
        assert!(status.term < 100, "node {id} is at term {}", status.term);
    }
    let nodes = cluster.block_on(cluster.client(1).cluster_status()).expect("cluster status");
    let third = nodes.iter().find(|n| n.id == 3).expect("node 3");
    assert_eq!(third.address, cluster.addresses[&3]);
}

/// A `Raft.Forward` stream carrying one command.
fn forward(command: &[u8]) -> impl tokio_stream::Stream<Item = pb::ForwardBatch> + use<> {
    let command = pb::ForwardedCommand { id: 0, command: command.to_vec(), transaction: None };
    tokio_stream::iter(vec![pb::ForwardBatch { commands: vec![command] }])
}

/// A three-node cluster with an empty table `t`, and its leader.
fn three_nodes_with_a_table() -> (Cluster, u64) {
    let cluster = Cluster::start(3, &[]);
    cluster.ok(cluster.leader(), "CREATE TABLE t (id INT PRIMARY KEY)");
    let leader = cluster.leader();
    (cluster, leader)
}

#[test]
fn forged_raft_calls_are_refused_and_change_nothing() {
    let _serial = serial();
    let (cluster, leader) = three_nodes_with_a_table();
    let forged_heartbeat = chronos::encoding::value::encode(&Envelope {
        from: 3,
        to: leader,
        term: u64::MAX,
        message: Message::Heartbeat { commit: 0, read_seq: 0 },
    });
    let forged_address = Command::SetAddress { id: 3, address: "127.0.0.1:1".into() }.encode();
    let stranger = ClusterSecret::generate().unwrap();
    // No credentials; another cluster's credentials; this cluster's token for another id.
    let attempts = [
        None,
        Some(format!("3:{}", stranger.peer_token(3))),
        Some(format!("3:{}", stranger.peer_token(2))),
    ];
    for credentials in attempts {
        cluster.block_on(async {
            let mut client = raft_client(&cluster.addresses[&leader], credentials).await;
            let batch = pb::RaftBatch { messages: vec![forged_heartbeat.clone()], lz4: Vec::new() };
            let stepped = client.step(tokio_stream::iter(vec![batch])).await;
            assert_eq!(stepped.unwrap_err().code(), tonic::Code::Unauthenticated);
            let proposed = client.forward(forward(&forged_address)).await;
            assert_eq!(proposed.unwrap_err().code(), tonic::Code::Unauthenticated);
            let touched = client.touch(pb::TouchRequest { transactions: vec![1] }).await;
            assert_eq!(touched.unwrap_err().code(), tonic::Code::Unauthenticated);
        });
    }
    // A node that holds the secret but is not a member proposes nothing either; a member's
    // messages carry only its own name.
    let real = ClusterSecret::parse(&std::fs::read(cluster.secret_file()).unwrap()).unwrap();
    cluster.block_on(async {
        let outsider = Some(format!("9:{}", real.peer_token(9)));
        let mut client = raft_client(&cluster.addresses[&leader], outsider).await;
        let proposed = client.forward(forward(&forged_address)).await;
        assert_eq!(proposed.unwrap_err().code(), tonic::Code::Unauthenticated);
        let member = cluster.other_than(leader);
        let credentials = Some(format!("{member}:{}", real.peer_token(member)));
        let mut client = raft_client(&cluster.addresses[&leader], credentials).await;
        let in_another_name =
            pb::RaftBatch { messages: vec![forged_heartbeat.clone()], lz4: Vec::new() };
        client.step(tokio_stream::iter(vec![in_another_name])).await.expect("a member's stream");
    });
    assert!(
        cluster.log(leader).contains("refused a Raft call without this cluster's credentials"),
        "{}",
        cluster.log(leader)
    );
    assert_serving(&cluster, 1);
}

#[test]
fn changing_the_cluster_needs_the_admin_token() {
    let _serial = serial();
    let (cluster, leader) = three_nodes_with_a_table();
    let other = cluster.other_than(leader);
    let stranger = ClusterSecret::generate().unwrap();
    for token in [None, Some(stranger.admin_token()), Some("not hex".to_string())] {
        let mut client = cluster.client(other);
        client.admin_token = token;
        let removed = cluster.block_on(client.remove_node(other));
        assert!(removed.unwrap_err().to_string().contains("admin token"));
        let transferred = cluster.block_on(client.transfer_leadership(other));
        assert!(transferred.unwrap_err().to_string().contains("admin token"));
        let added = cluster.block_on(client.add_learner(4, "127.0.0.1:1"));
        assert!(added.unwrap_err().to_string().contains("admin token"));
        let promoted = cluster.block_on(client.promote(other));
        assert!(promoted.unwrap_err().to_string().contains("admin token"));
    }
    // Nothing changed: the same leader, three voters.
    assert_eq!(cluster.leader(), leader);
    let nodes = cluster.block_on(cluster.client(1).cluster_status()).expect("cluster status");
    assert_eq!(nodes.len(), 3);
    assert_serving(&cluster, 1);
    // The command line reads the token from the environment (or --admin-token-file).
    let transfer = |token: Option<String>| {
        let mut command = Process::new(env!("CARGO_BIN_EXE_chronos"));
        command.args([
            "--addr",
            &cluster.addresses[&leader],
            "transfer-leader",
            &other.to_string(),
        ]);
        command.env_remove("CHRONOS_ADMIN_TOKEN");
        if let Some(token) = token {
            command.env("CHRONOS_ADMIN_TOKEN", token);
        }
        command.output().expect("run chronos")
    };
    let refused = transfer(None);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("admin token"));
    let done = transfer(Some(cluster.admin_token()));
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    support::eventually("the transfer", || (cluster.leader() == other).then_some(()));
}

#[test]
fn a_node_of_several_starts_only_with_its_clusters_secret() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("n1");
    let port = support::free_ports(1)[0];
    let run = |extra: &[&str]| {
        let mut command = Process::new(env!("CARGO_BIN_EXE_chronosd"));
        command.args(["--id", "1", "--listen", &format!("127.0.0.1:{port}")]);
        command.args(["--peers", "2=127.0.0.1:1", "--data-dir", data.to_str().unwrap()]);
        command.args(extra).output().expect("run chronosd")
    };
    let without = run(&[]);
    assert_eq!(without.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&without.stderr).contains("--cluster-secret-file"));
    let short = dir.path().join("short");
    std::fs::write(&short, "tiny").unwrap();
    let too_short = run(&["--cluster-secret-file", short.to_str().unwrap()]);
    assert_eq!(too_short.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&too_short.stderr).contains("at least 16 bytes"));
    // A data directory keeps its cluster's secret and refuses another one.
    let kept = ClusterSecret::generate().unwrap();
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("cluster_secret"), kept.as_bytes()).unwrap();
    let other = dir.path().join("other");
    std::fs::write(&other, ClusterSecret::generate().unwrap().as_bytes()).unwrap();
    let mismatched = run(&["--cluster-secret-file", other.to_str().unwrap()]);
    assert_eq!(mismatched.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&mismatched.stderr).contains("another secret"));
}

#[test]
fn a_node_alone_makes_a_private_secret_and_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("n1");
    let listen = format!("127.0.0.1:{}", support::free_ports(1)[0]);
    let start = || {
        Process::new(env!("CARGO_BIN_EXE_chronosd"))
            .args(["--id", "1", "--listen", &listen, "--data-dir", data.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start chronosd")
    };
    let files = || {
        let secret = std::fs::read(data.join("cluster_secret")).ok()?;
        let token = std::fs::read_to_string(data.join("admin_token")).ok()?;
        Some((secret, token))
    };
    let mut node = start();
    let (secret, token) = support::eventually("the secret and token files", files);
    let secret = ClusterSecret::parse(&secret).expect("a valid secret");
    assert_eq!(token.trim(), secret.admin_token());
    use std::os::unix::fs::PermissionsExt;
    for file in ["cluster_secret", "admin_token"] {
        let mode = std::fs::metadata(data.join(file)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{file} is readable by others");
    }
    let _ = node.kill();
    let _ = node.wait();
    // A restart keeps the same secret.
    let mut node = start();
    support::eventually("the node to serve", || {
        let mut client =
            chronos::client::Client::new(vec![listen.clone()], Duration::from_secs(5)).ok()?;
        support::runtime().block_on(client.status()).ok().map(|_| ())
    });
    assert_eq!(files().map(|(s, _)| s), Some(secret.as_bytes().to_vec()));
    let _ = node.kill();
    let _ = node.wait();
    // A node with a log but no secret may be one of several (restarted without --peers): it
    // does not make a secret of its own, which would cut it off from the others.
    std::fs::remove_file(data.join("cluster_secret")).unwrap();
    let refused = Process::new(env!("CARGO_BIN_EXE_chronosd"))
        .args(["--id", "1", "--listen", &listen, "--data-dir", data.to_str().unwrap()])
        .output()
        .expect("run chronosd");
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--cluster-secret-file"));
    assert!(!data.join("cluster_secret").exists());
}
