//! `chronos-tui --spawn 3 --demo iot`: sensors writing into the spawned cluster, so a newcomer
//! sees writes replicate, a per-minute rollup fill and the latest value of each sensor, live.
//!
//! Every half second one INSERT carries a reading of each of [`DEVICES`] sensors at the
//! statement's time. The table keeps an hour of readings (a TTL); the rollups keep their own.

use crate::app::Msg;
use chronos::client::Client;
use std::time::Duration;

/// How many sensors report.
pub const DEVICES: u64 = 12;
/// How often they report.
const INTERVAL: Duration = Duration::from_millis(500);

/// The demo's schema (idempotent, so a restarted demo on kept data goes on).
pub const SCHEMA: &str = "\
CREATE TABLE IF NOT EXISTS sensors (device INT NOT NULL, ts TIMESTAMP NOT NULL, \
temperature FLOAT, PRIMARY KEY (device, ts)) WITH (ttl = '1 hour', ttl_column = ts); \
CREATE ROLLUP IF NOT EXISTS sensors_minute AS SELECT device, time_bucket('1 minute', ts) AS \
minute, avg(temperature), min(temperature), max(temperature), count(*) AS n FROM sensors \
GROUP BY 1, 2 WITH (ttl = '1 day'); \
CREATE ROLLUP IF NOT EXISTS sensors_latest AS SELECT device, last(temperature, ts) AS \
temperature, max(ts) AS at FROM sensors GROUP BY device";

/// The query the demo suggests in its first message.
pub const SUGGESTED_QUERY: &str = "SELECT * FROM sensors_minute WHERE minute >= now() - INTERVAL '5 minutes' ORDER BY minute DESC, device";

/// The INSERT of reading number `tick` (a slow wave per sensor, the same on every run).
pub fn readings(tick: u64) -> String {
    let values: Vec<String> = (0..DEVICES)
        .map(|device| {
            let phase = (tick + device * 17) % 120;
            let wave = if phase < 60 { phase } else { 120 - phase };
            format!("({device}, now(), {}.{})", 15 + device + wave / 6, (tick + device) % 10)
        })
        .collect();
    format!("INSERT INTO sensors VALUES {}", values.join(", "))
}

/// Runs one script, giving its first error as text.
async fn run_script(client: &mut Client, sql: &str) -> Result<(), String> {
    let response = client.execute(sql, false).await.map_err(|e| e.to_string())?;
    match response.results.into_iter().find_map(|(_, outcome)| outcome.err()) {
        Some(error) => Err(format!("{}: {}", error.kind, error.message)),
        None => Ok(()),
    }
}

/// Creates the schema (once the cluster can take it).
pub async fn set_up(client: &mut Client) -> Result<(), String> {
    run_script(client, SCHEMA).await
}

/// Writes reading `tick`.
pub async fn write(client: &mut Client, tick: u64) -> Result<(), String> {
    run_script(client, &readings(tick)).await
}

/// The demo's loop: the schema, then readings until the console ends; what goes wrong is
/// reported to the console, and the demo tries again a little later.
pub async fn run(mut client: Client, tx: crate::runtime::Sender) {
    while let Err(error) = set_up(&mut client).await {
        let _ = tx.send(Msg::ActionDone(Err(format!("iot demo: {error}; retrying"))));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let message = format!(
        "iot demo: {DEVICES} sensors write every {} ms; try {SUGGESTED_QUERY}",
        INTERVAL.as_millis()
    );
    let _ = tx.send(Msg::ActionDone(Ok(message)));
    let mut ticker = tokio::time::interval(INTERVAL);
    let mut tick = 0;
    loop {
        ticker.tick().await;
        if tx.is_closed() {
            return;
        }
        match write(&mut client, tick).await {
            Ok(()) => tick += 1,
            Err(error) => {
                let _ = tx.send(Msg::ActionDone(Err(format!("iot demo: {error}"))));
            }
        }
    }
}

#[cfg(test)]
#[path = "demo_tests.rs"]
mod tests;
