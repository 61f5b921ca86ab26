//! A local cluster started inside the console (`--spawn N`): real nodes through the library,
//! serving gRPC on free ports of 127.0.0.1, with their data under a temporary or given
//! directory. The console can stop, restart and add nodes.
//!
//! Each node keeps its address for the life of the directory (`cluster.txt` records them), so
//! a restarted node, or the whole cluster started again on the same `--data-dir`, is found
//! where its peers expect it.

use crate::model::NodeId;
use chronos::server::auth::ClusterSecret;
use chronos::server::{Node, Options};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The file that records each node's address.
const ADDRESSES: &str = "cluster.txt";

/// A spawned node: its settings, and the node while it runs.
struct Member {
    options: Options,
    node: Option<Node>,
}

/// The nodes this console started.
pub struct Spawned {
    /// Removed on drop when the data lives in a temporary directory.
    _temp: Option<tempfile::TempDir>,
    root: PathBuf,
    members: BTreeMap<NodeId, Member>,
    /// The secret every node of this cluster is given (kept in the root directory).
    secret: ClusterSecret,
}

impl Spawned {
    /// Starts `count` nodes forming one cluster, with data under `dir` (a temporary directory
    /// when `None`). An existing directory's cluster is started again as it was.
    pub async fn start(count: u64, dir: Option<PathBuf>) -> Result<Self, String> {
        let (temp, root) = match dir {
            Some(dir) => {
                std::fs::create_dir_all(&dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                (None, dir)
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("chronos-tui-")
                    .tempdir()
                    .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
                let root = temp.path().to_path_buf();
                (Some(temp), root)
            }
        };
        let mut addresses = read_addresses(&root)?;
        if addresses.is_empty() {
            for (id, port) in (1..=count).zip(free_ports(count as usize)?) {
                addresses.insert(id, format!("127.0.0.1:{port}"));
            }
            write_addresses(&root, &addresses)?;
        }
        let secret = cluster_secret(&root)?;
        let mut spawned = Self { _temp: temp, root, members: BTreeMap::new(), secret };
        for (id, address) in &addresses {
            let mut options =
                Options::new(*id, address.clone(), spawned.root.join(format!("node{id}")));
            options.peers =
                addresses.iter().filter(|(p, _)| *p != id).map(|(p, a)| (*p, a.clone())).collect();
            options.cluster_secret = Some(spawned.secret.clone());
            spawned.members.insert(*id, Member { options, node: None });
        }
        let ids: Vec<NodeId> = spawned.members.keys().copied().collect();
        for id in ids {
            spawned.restart(id).await?;
        }
        Ok(spawned)
    }

    /// Where the nodes keep their data.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every spawned node and its address.
    pub fn addresses(&self) -> Vec<(NodeId, String)> {
        self.members.iter().map(|(id, m)| (*id, m.options.listen.clone())).collect()
    }

    /// Which spawned nodes run.
    pub fn running(&self) -> Vec<(NodeId, bool)> {
        self.members.iter().map(|(id, m)| (*id, m.node.is_some())).collect()
    }

    /// Stops a node gracefully (a leader hands over leadership first).
    pub async fn stop(&mut self, id: NodeId) -> Result<String, String> {
        let member = self.members.get_mut(&id).ok_or(format!("node {id} was not spawned here"))?;
        let node = member.node.take().ok_or(format!("node {id} is already stopped"))?;
        node.stop().await;
        Ok(format!("stopped node {id}"))
    }

    /// Starts a stopped node again with its data.
    pub async fn restart(&mut self, id: NodeId) -> Result<String, String> {
        let member = self.members.get_mut(&id).ok_or(format!("node {id} was not spawned here"))?;
        if member.node.is_some() {
            return Err(format!("node {id} is running"));
        }
        let node = Node::start(member.options.clone())
            .await
            .map_err(|e| format!("cannot start node {id}: {e}"))?;
        member.node = Some(node);
        Ok(format!("started node {id} on {}", member.options.listen))
    }

    /// The token that authorizes changing this cluster.
    pub fn admin_token(&self) -> String {
        self.secret.admin_token()
    }

    /// Starts a new node that waits to be added to the cluster; returns its id and address.
    pub async fn add(&mut self) -> Result<(NodeId, String), String> {
        let id = self.members.keys().max().copied().unwrap_or(0) + 1;
        let port = free_ports(1)?[0];
        let address = format!("127.0.0.1:{port}");
        let mut options = Options::new(id, address.clone(), self.root.join(format!("node{id}")));
        options.join = true;
        options.peers = self.addresses().into_iter().collect();
        options.cluster_secret = Some(self.secret.clone());
        self.members.insert(id, Member { options, node: None });
        let mut addresses: BTreeMap<NodeId, String> = self.addresses().into_iter().collect();
        addresses.insert(id, address.clone());
        write_addresses(&self.root, &addresses)?;
        self.restart(id).await?;
        Ok((id, address))
    }

    /// Stops every node at once (no leadership hand-over: the console is closing).
    pub async fn shutdown(&mut self) {
        for member in self.members.values_mut() {
            if let Some(node) = member.node.take() {
                node.kill().await;
            }
        }
    }
}

fn free_ports(count: usize) -> Result<Vec<u16>, String> {
    let listeners = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot find a free port: {e}"))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot find a free port: {e}"))
}

fn read_addresses(root: &Path) -> Result<BTreeMap<NodeId, String>, String> {
    let path = root.join(ADDRESSES);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let (id, address) = line
                .split_once('=')
                .ok_or(format!("{}: {line:?} is not ID=ADDRESS", path.display()))?;
            let id =
                id.trim().parse().map_err(|_| format!("{}: bad node id {id:?}", path.display()))?;
            Ok((id, address.trim().to_string()))
        })
        .collect()
}

fn write_addresses(root: &Path, addresses: &BTreeMap<NodeId, String>) -> Result<(), String> {
    let text: String = addresses.iter().map(|(id, a)| format!("{id}={a}\n")).collect();
    let path = root.join(ADDRESSES);
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The cluster secret kept in `root`, made (and kept) the first time.
fn cluster_secret(root: &Path) -> Result<ClusterSecret, String> {
    let path = root.join("cluster_secret");
    match std::fs::read(&path) {
        Ok(bytes) => ClusterSecret::parse(&bytes).map_err(|e| format!("{}: {e}", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let secret = ClusterSecret::generate()?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600); // readable by its owner only, from the start
            }
            let written = options.open(&path).and_then(|mut file| {
                use std::io::Write;
                file.write_all(secret.as_bytes())?;
                file.sync_all()
            });
            written.map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok(secret)
        }
        Err(error) => Err(format!("cannot read {}: {error}", path.display())),
    }
}
