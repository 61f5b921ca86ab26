//! The iot demo against a real one-node cluster hosted in this process: its readings fill
//! the rollups.

use super::*;
use chronos::server::{Node, Options};
use chronos::sql::StatementResult;
use chronos::sql::types::Value;

/// The first value of a one-row query.
async fn single(client: &mut Client, sql: &str) -> Value {
    let response = client.execute(sql, false).await.expect("a response");
    match response.results.into_iter().next().map(|(_, outcome)| outcome) {
        Some(Ok(StatementResult::Query { rows, .. })) => rows[0][0].clone(),
        other => panic!("{sql}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_iot_demo_fills_its_rollups_with_every_reading() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(Options::new(1, "127.0.0.1:0", dir.path())).await.expect("a node");
    let address = node.address().to_string();
    let mut client = Client::new(vec![address], Duration::from_secs(5)).expect("a client");
    // The schema goes in once the one-node cluster has elected itself.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while let Err(error) = set_up(&mut client).await {
        assert!(tokio::time::Instant::now() < deadline, "{error}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    set_up(&mut client).await.expect("the schema again: idempotent");
    for tick in 0..5 {
        write(&mut client, tick).await.expect("a reading");
    }
    let readings = Value::Integer(5 * DEVICES as i64);
    assert_eq!(single(&mut client, "SELECT count(*) FROM sensors").await, readings);
    assert_eq!(single(&mut client, "SELECT sum(n) FROM sensors_minute").await, readings);
    let devices = Value::Integer(DEVICES as i64);
    assert_eq!(single(&mut client, "SELECT count(*) FROM sensors_latest").await, devices);
    let differences = "SELECT count(*) FROM (SELECT device, temperature FROM sensors_latest \
                       EXCEPT SELECT device, last(temperature, ts) FROM sensors GROUP BY device) AS d";
    assert_eq!(single(&mut client, differences).await, Value::Integer(0));
    node.stop().await;
}
