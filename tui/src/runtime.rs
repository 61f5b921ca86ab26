//! Carrying out the console's effects: every network call and node action runs in a task of
//! its own and reports back as a [`Msg`], so drawing never waits for the network.
//!
//! Each watched node has a task that follows its `Admin.Watch` stream (status a few times a
//! second, and its events) and reconnects when the node goes away; a node that sends nothing
//! for [`SILENCE`] is reported down.

use crate::app::{Effect, Msg};
use crate::model::{LogTail, NodeId, SqlOutcome};
use crate::spawn::Spawned;
use chronos::client::Client;
use chronos::grpc::pb;
use chronos::grpc::tls::ClientTls;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, mpsc};

/// How long a node may stay silent on its Watch stream before it is shown as down.
const SILENCE: Duration = Duration::from_secs(2);
/// How long to wait before reconnecting to a node that went away.
const RECONNECT: Duration = Duration::from_millis(500);
/// Log entries fetched per node for the log view.
const LOG_TAIL: u64 = 200;

/// Where messages go.
pub type Sender = mpsc::UnboundedSender<Msg>;

/// Runs effects.
pub struct Runtime {
    tx: Sender,
    connector: Connector,
    addresses: BTreeMap<NodeId, String>,
    watched: BTreeSet<NodeId>,
    /// The SQL pane's client: it keeps the session (an open transaction) between runs.
    sql: Arc<Mutex<Option<Client>>>,
    spawned: Option<Arc<Mutex<Spawned>>>,
    /// The admin token for actions that change the cluster, if the console has one.
    admin_token: Option<String>,
}

/// How the console connects to nodes: its timeout, and TLS if the cluster serves it.
#[derive(Clone, Debug)]
pub struct Connector {
    /// How long a call may take.
    pub timeout: Duration,
    /// The cluster's CA (and a client certificate), if it serves TLS.
    pub tls: Option<ClientTls>,
    /// The logged-in user's token, if the console logged in.
    pub user_token: Option<String>,
}

impl Connector {
    /// A client of the nodes at `addresses`.
    pub fn client(&self, addresses: Vec<String>) -> Result<Client, chronos::client::Error> {
        let mut client = Client::new(addresses, self.timeout)?;
        if let Some(tls) = &self.tls {
            client = client.with_tls(tls.clone());
        }
        if let Some(token) = &self.user_token {
            client = client.with_user_token(token.clone());
        }
        Ok(client)
    }
}

impl Runtime {
    /// A runtime reporting to `tx`, with `spawned` nodes if the console started them, and the
    /// cluster's admin token if it is known.
    pub fn new(
        tx: Sender,
        connector: Connector,
        spawned: Option<Arc<Mutex<Spawned>>>,
        admin_token: Option<String>,
    ) -> Self {
        Self {
            tx,
            connector,
            addresses: BTreeMap::new(),
            watched: BTreeSet::new(),
            sql: Arc::new(Mutex::new(None)),
            spawned,
            admin_token,
        }
    }

    /// A client of the cluster that may change it (with the admin token, if known).
    fn admin_client(&self) -> Result<Client, chronos::client::Error> {
        let mut client = self.connector.client(self.all_addresses())?;
        client.admin_token = self.admin_token.clone();
        Ok(client)
    }

    /// Starts carrying out an effect. `Quit` is the caller's to handle.
    pub fn run(&mut self, effect: Effect) {
        match effect {
            Effect::Watch(id, address) => {
                self.addresses.insert(id, address.clone());
                if self.watched.insert(id) {
                    tokio::spawn(watch(id, address, self.connector.clone(), self.tx.clone()));
                }
            }
            Effect::RefreshDetails => {
                for (id, address) in &self.addresses {
                    let connector = self.connector.clone();
                    tokio::spawn(details(*id, address.clone(), connector, self.tx.clone()));
                }
            }
            Effect::RefreshStatements => {
                for (id, address) in &self.addresses {
                    let (id, tx, connector) = (*id, self.tx.clone(), self.connector.clone());
                    let address = address.clone();
                    tokio::spawn(async move {
                        let fetched = async {
                            let mut client = connector.client(vec![address])?;
                            client.statement_statistics().await
                        };
                        let statistics =
                            fetched.await.map(|r| r.statements).map_err(|e| e.to_string());
                        let _ = tx.send(Msg::Statements(id, statistics));
                    });
                }
            }
            Effect::LoadRows { node, table, offset } => {
                let Some(address) = self.addresses.get(&node).cloned() else { return };
                let (tx, connector) = (self.tx.clone(), self.connector.clone());
                tokio::spawn(async move {
                    let page = async {
                        let mut client = connector.client(vec![address])?;
                        client.scan_table(&table, offset, crate::model::PAGE_ROWS).await
                    };
                    let _ = tx.send(Msg::Rows(node, page.await.map_err(|e| e.to_string())));
                });
            }
            Effect::Execute(sql) => self.execute(sql),
            Effect::Transfer(to) => self.admin(move |mut client| async move {
                client.transfer_leadership(to).await?;
                Ok(format!("leadership handed to node {to}"))
            }),
            Effect::Promote(id) => self.admin(move |mut client| async move {
                let response = client.promote(id).await?;
                Ok(format!("node {id} promoted to voter (index {})", response.index))
            }),
            Effect::Remove(id) => self.admin(move |mut client| async move {
                let response = client.remove_node(id).await?;
                Ok(format!("node {id} removed (index {})", response.index))
            }),
            Effect::Stop(id) => {
                self.spawned_action(move |spawned| Box::pin(async move { spawned.stop(id).await }))
            }
            Effect::Restart(id) => self
                .spawned_action(move |spawned| Box::pin(async move { spawned.restart(id).await })),
            Effect::AddNode => self.add_node(),
            Effect::Quit => {}
        }
    }

    fn all_addresses(&self) -> Vec<String> {
        self.addresses.values().cloned().collect()
    }

    fn execute(&self, sql: String) {
        let (tx, connector, addresses, client) =
            (self.tx.clone(), self.connector.clone(), self.all_addresses(), self.sql.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let mut client = client.lock().await;
            if client.is_none() {
                match connector.client(addresses) {
                    Ok(new) => *client = Some(new),
                    Err(error) => {
                        let message = error.to_string();
                        let _ = tx.send(Msg::SqlDone(SqlOutcome::Failed {
                            message,
                            elapsed: started.elapsed(),
                        }));
                        return;
                    }
                }
            }
            let Some(client) = client.as_mut() else { return };
            let outcome = match client.execute(&sql, false).await {
                Ok(response) => SqlOutcome::Ran {
                    results: response.results,
                    node: client.address().to_string(),
                    elapsed: started.elapsed(),
                },
                Err(error) => {
                    SqlOutcome::Failed { message: error.to_string(), elapsed: started.elapsed() }
                }
            };
            let _ = tx.send(Msg::SqlDone(outcome));
        });
    }

    /// Runs an Admin call through any live node and reports its outcome.
    fn admin<F, Fut>(&self, call: F)
    where
        F: FnOnce(Client) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<String, chronos::client::Error>> + Send,
    {
        let (tx, client) = (self.tx.clone(), self.admin_client());
        tokio::spawn(async move {
            let result = match client {
                Ok(client) => call(client).await,
                Err(error) => Err(error),
            };
            let _ = tx.send(Msg::ActionDone(result.map_err(|e| e.to_string())));
        });
    }

    /// Runs an action on the spawned cluster and reports it and which nodes now run.
    fn spawned_action<F>(&self, action: F)
    where
        F: for<'a> FnOnce(
                &'a mut Spawned,
            ) -> std::pin::Pin<
                Box<dyn std::future::Future<Output = Result<String, String>> + Send + 'a>,
            > + Send
            + 'static,
    {
        let tx = self.tx.clone();
        let Some(spawned) = self.spawned.clone() else {
            let _ = tx.send(Msg::ActionDone(Err(
                "only nodes this console spawned can be stopped or started".into(),
            )));
            return;
        };
        tokio::spawn(async move {
            let mut spawned = spawned.lock().await;
            let result = action(&mut spawned).await;
            let _ = tx.send(Msg::Spawned(spawned.running()));
            let _ = tx.send(Msg::ActionDone(result));
        });
    }

    fn add_node(&self) {
        let (tx, client) = (self.tx.clone(), self.admin_client());
        let Some(spawned) = self.spawned.clone() else { return };
        tokio::spawn(async move {
            let mut spawned = spawned.lock().await;
            let result = async {
                let (id, address) = spawned.add().await?;
                let mut client = client.map_err(|e| e.to_string())?;
                let response = client.add_learner(id, &address).await.map_err(|e| e.to_string())?;
                Ok(format!("node {id} ({address}) added as a learner (index {})", response.index))
            }
            .await;
            let _ = tx.send(Msg::Spawned(spawned.running()));
            let _ = tx.send(Msg::ActionDone(result));
        });
    }
}

/// Follows a node's Watch stream for as long as the console runs.
async fn watch(id: NodeId, address: String, connector: Connector, tx: Sender) {
    while !tx.is_closed() {
        let reason = follow(id, &address, &connector, &tx).await;
        if tx.send(Msg::Down(id, reason)).is_err() {
            return;
        }
        tokio::time::sleep(RECONNECT).await;
    }
}

/// Forwards one Watch stream's messages until it fails; returns why.
async fn follow(id: NodeId, address: &str, connector: &Connector, tx: &Sender) -> String {
    let mut client = match connector.client(vec![address.to_string()]) {
        Ok(client) => client,
        Err(error) => return error.to_string(),
    };
    let mut stream = match tokio::time::timeout(SILENCE, client.watch()).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => return error.to_string(),
        Err(_) => return "no answer".into(),
    };
    loop {
        let message = match tokio::time::timeout(SILENCE, stream.message()).await {
            Ok(Ok(Some(message))) => message,
            Ok(Ok(None)) => return "the node closed its status stream".into(),
            Ok(Err(status)) => return format!("unreachable: {}", status.message()),
            Err(_) => return format!("silent for {} s", SILENCE.as_secs()),
        };
        let msg = match message.event {
            Some(pb::watch_event::Event::Status(status)) => Msg::Status(id, Box::new(status)),
            Some(pb::watch_event::Event::NodeEvent(event)) => Msg::NodeEvent(event),
            None => continue,
        };
        if tx.send(msg).is_err() {
            return "the console closed".into();
        }
    }
}

/// Fetches a node's tables and log tail.
async fn details(id: NodeId, address: String, connector: Connector, tx: Sender) {
    let connector = Connector { timeout: connector.timeout.min(SILENCE), ..connector };
    let Ok(mut client) = connector.client(vec![address]) else { return };
    if let Ok(tables) = client.list_tables().await {
        let _ = tx.send(Msg::Tables(id, tables.tables));
    }
    let tail: LogTail = client.log_tail(LOG_TAIL).await.map_err(|e| e.to_string());
    let _ = tx.send(Msg::Log(id, tail));
}

#[cfg(test)]
#[path = "runtime_tests.rs"]
mod tests;
