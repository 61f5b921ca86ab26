//! The console's runtime against a real node serving TLS (hosted in this process): with the
//! cluster's CA it watches the node and runs SQL; without it, the node is reported down.

use super::*;
use chronos::grpc::tls::{make_ca, make_node_certificate};
use chronos::server::{Node, Options, tls::NodeTls};

/// Waits (up to 20 s) for a message `pick` accepts.
async fn next<T>(rx: &mut mpsc::UnboundedReceiver<Msg>, pick: impl Fn(Msg) -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let message = tokio::time::timeout_at(deadline, rx.recv()).await;
        let message = message.expect("a message before the deadline").expect("an open channel");
        if let Some(found) = pick(message) {
            return found;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_watches_and_queries_a_node_over_tls_only_with_its_ca() {
    let ca = make_ca().expect("a CA");
    let node = make_node_certificate(&ca, 1, &["127.0.0.1".into()]).expect("a certificate");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut options = Options::new(1, "127.0.0.1:0", dir.path());
    let tls = NodeTls::from_pem(1, node.cert.into(), node.key.into(), ca.cert.clone().into());
    options.tls = Some(tls.expect("node TLS"));
    let node = Node::start(options).await.expect("a node");
    let address = node.address().to_string();
    let timeout = Duration::from_secs(5);

    let (tx, mut rx) = mpsc::unbounded_channel();
    let tls = Some(ClientTls::new(ca.cert.into_bytes()));
    let mut runtime = Runtime::new(tx, Connector { timeout, tls, user_token: None }, None, None);
    runtime.run(Effect::Watch(1, address.clone()));
    let status = next(&mut rx, |m| match m {
        Msg::Status(1, status) if status.leader == 1 => Some(status),
        _ => None,
    })
    .await;
    assert_eq!(status.id, 1);
    runtime.run(Effect::Execute("SELECT 40 + 2".into()));
    let outcome = next(&mut rx, |m| match m {
        Msg::SqlDone(outcome) => Some(outcome),
        _ => None,
    })
    .await;
    let (_, rows) = outcome.last_query().expect("a result set");
    assert_eq!(rows[0][0].to_string(), "42");

    // Without the CA the console cannot reach the node.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut plain =
        Runtime::new(tx, Connector { timeout, tls: None, user_token: None }, None, None);
    plain.run(Effect::Watch(1, address));
    next(&mut rx, |m| matches!(m, Msg::Down(1, _)).then_some(())).await;
    node.stop().await;
}
