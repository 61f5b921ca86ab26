//! End-to-end benchmarks of a 3-node cluster on loopback: real nodes (sled, fsync, gRPC on
//! 127.0.0.1) running in this process, driven through the client library. One client runs
//! one request at a time, so these are latencies; `insert_32_clients` measures throughput
//! with 32 clients spread over the nodes.

use chronos::client::Client;
use chronos::replica::Consistency;
use chronos::server::{Node, Options};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use std::time::{Duration, Instant};

/// Three nodes serving on free ports of 127.0.0.1, with data in a temporary directory.
struct Cluster {
    _dir: tempfile::TempDir,
    nodes: Vec<Node>,
    addresses: Vec<String>,
    runtime: tokio::runtime::Runtime,
}

impl Cluster {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let listeners: Vec<_> = (0..3)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("free port"))
            .collect();
        let addresses: Vec<String> =
            listeners.iter().map(|l| l.local_addr().expect("address").to_string()).collect();
        drop(listeners);
        let nodes = runtime.block_on(async {
            let mut nodes = Vec::new();
            let secret = chronos::server::auth::ClusterSecret::generate().expect("secret");
            for (i, address) in addresses.iter().enumerate() {
                let id = i as u64 + 1;
                let mut options =
                    Options::new(id, address.clone(), dir.path().join(id.to_string()));
                options.peers = addresses
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(j, a)| (j as u64 + 1, a.clone()))
                    .collect();
                options.cluster_secret = Some(secret.clone());
                nodes.push(Node::start(options).await.expect("start node"));
            }
            nodes
        });
        let cluster = Cluster { _dir: dir, nodes, addresses, runtime };
        let mut client = cluster.client(0);
        cluster.execute(&mut client, "CREATE TABLE t (id INT PRIMARY KEY, v STRING)");
        // Rows 1..=1000 for the point reads; the inserts use ids above a million.
        cluster.execute(&mut client, &format!("INSERT INTO t VALUES {}", values(1, 1000)));
        cluster
    }

    /// A client that talks to node `first` (and fails over to the others).
    fn client(&self, first: usize) -> Client {
        let mut order = self.addresses.clone();
        let nodes = order.len();
        order.rotate_left(first % nodes);
        Client::new(order, Duration::from_secs(10)).expect("client")
    }

    /// Runs `sql`, waiting for a leader first if the cluster has none yet.
    fn execute(&self, client: &mut Client, sql: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.runtime.block_on(client.execute(sql, false)) {
                Ok(response) => match response.results.iter().find_map(|(_, r)| r.as_ref().err()) {
                    None => return,
                    Some(error) => panic!("{sql}: {error:?}"),
                },
                Err(error) if error.is_unavailable() && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(error) => panic!("{sql}: {error}"),
            }
        }
    }

    fn stop(self) {
        self.runtime.block_on(async {
            for node in self.nodes {
                node.stop().await;
            }
        });
    }
}

fn values(first: u64, count: u64) -> String {
    let rows: Vec<String> =
        (first..first + count).map(|id| format!("({id}, 'value {id}')")).collect();
    rows.join(", ")
}

fn cluster(c: &mut Criterion) {
    let cluster = Cluster::start();
    let mut group = c.benchmark_group("cluster");
    // Ids handed out so far; every insert takes fresh ones.
    let mut next = 1_000_000u64;
    let mut fresh = |count: u64| {
        let first = next + 1;
        next += count;
        first
    };
    // Through a follower's address first: most clients of a cluster are not on the leader.
    let mut client = cluster.client(1);
    group.bench_function("insert", |b| {
        b.iter(|| {
            let sql = format!("INSERT INTO t VALUES {}", values(fresh(1), 1));
            cluster.execute(&mut client, &sql);
        })
    });
    for rows in [100u64, 1000] {
        group.throughput(Throughput::Elements(rows));
        group.sample_size(if rows >= 1000 { 20 } else { 50 });
        group.bench_function(BenchmarkId::new("insert_batch", rows), |b| {
            b.iter(|| {
                let sql = format!("INSERT INTO t VALUES {}", values(fresh(rows), rows));
                cluster.execute(&mut client, &sql);
            })
        });
    }
    group.sample_size(50);
    group.throughput(Throughput::Elements(1));
    group.bench_function("insert_32_clients", |b| {
        b.iter_custom(|iterations| {
            let base = fresh(iterations);
            let started = Instant::now();
            cluster.runtime.block_on(async {
                let tasks: Vec<_> = (0..32u64)
                    .map(|c| {
                        let mut client = cluster.client(c as usize);
                        let count = iterations / 32 + u64::from(c < iterations % 32);
                        // Client c takes ids base + c, base + c + 32, ...
                        let ids = (0..count).map(move |k| base + c + 32 * k);
                        tokio::spawn(async move {
                            for id in ids {
                                let sql = format!("INSERT INTO t VALUES {}", values(id, 1));
                                let response = client.execute(&sql, false).await;
                                let ok = response
                                    .is_ok_and(|r| r.results.iter().all(|(_, o)| o.is_ok()));
                                assert!(ok, "{sql} failed");
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.expect("a client failed");
                }
            });
            started.elapsed()
        })
    });
    for (name, consistency) in [
        ("point_read_linearizable", Consistency::Linearizable),
        ("point_read_stale", Consistency::Stale),
    ] {
        client.consistency = consistency;
        let mut id = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                id = (id + 7919) % 1000 + 1;
                cluster.execute(&mut client, &format!("SELECT v FROM t WHERE id = {id}"));
            })
        });
    }
    group.finish();
    cluster.stop();
}

criterion_group! {
    name = benches;
    config = super::config();
    targets = cluster
}
