//! The workloads of `chronos bench`: the table each one sets up, and one operation of one
//! client. Every operation is one or more requests in the client's own session; its latency
//! is measured by the caller from before the first request to after the last.

use chronos::client::Client;
use chronos::client::Response;
use chronos::rng::Rng;
use chronos::sql::StatementResult;
use chronos::sql::types::Value;

/// The workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// Autocommit single-row INSERTs.
    Insert,
    /// Multi-row INSERTs of `--batch-size` rows.
    Batch,
    /// Point SELECTs by primary key over `--rows` preloaded rows.
    Read,
    /// 90% point SELECTs and 10% single-row UPDATEs over `--rows` preloaded rows.
    Mixed,
    /// Transfers between `--rows` accounts in interactive transactions (BEGIN, SELECT,
    /// UPDATE twice, COMMIT); the total balance is checked at the end.
    Bank,
    /// Sensor data from `--rows` devices: each INSERT carries `--batch-size` points, a point
    /// per device per simulated second, into a table with a per-minute rollup and a
    /// latest-value rollup; one operation in ten reads a device's latest value or its last
    /// ten minutes from the rollups.
    Timeseries,
}

/// Where the timeseries workload's simulated clock starts.
const SERIES_START: &str = "2026-01-01 00:00:00";

/// What every account holds at the start of the bank workload.
pub const OPENING_BALANCE: i64 = 1_000;

/// How an operation ended.
pub enum Outcome {
    /// It succeeded, touching this many rows.
    Done {
        /// The kind of operation (`insert`, `read`, `update`, `transfer`).
        kind: &'static str,
        /// Rows written or read.
        rows: u64,
    },
    /// A transaction lost a conflict with another and was rolled back (expected under
    /// contention; not an error).
    Conflict,
    /// It failed; the message says why.
    Failed(String),
}

/// One client's state within a workload.
pub struct Worker {
    workload: Workload,
    /// Timeseries: the devices this client reports for, the next one, and the simulated
    /// second of the current round.
    devices: Vec<u64>,
    cursor: usize,
    round: u64,
    table: String,
    client_id: u64,
    payload: String,
    batch_size: usize,
    rows: u64,
    sequence: u64,
    rng: Rng,
}

impl Workload {
    /// The table the workload uses.
    pub fn table(self) -> String {
        format!("bench_{}", format!("{self:?}").to_lowercase())
    }

    /// Whether the workload needs `rows` rows loaded before it starts.
    pub fn preloads(self) -> bool {
        matches!(self, Workload::Read | Workload::Mixed | Workload::Bank)
    }

    /// The statements that (re)create the workload's table, empty.
    pub fn schema(self) -> String {
        let table = self.table();
        if self == Workload::Timeseries {
            return format!(
                "DROP ROLLUP IF EXISTS {table}_minute; DROP ROLLUP IF EXISTS {table}_latest; \
                 DROP TABLE IF EXISTS {table}; \
                 CREATE TABLE {table} (device INT NOT NULL, ts TIMESTAMP NOT NULL, v FLOAT, \
                 PRIMARY KEY (device, ts)); \
                 CREATE ROLLUP {table}_minute AS SELECT device, time_bucket('1 minute', ts) AS \
                 bucket, avg(v), min(v), max(v), count(*) AS n FROM {table} GROUP BY 1, 2; \
                 CREATE ROLLUP {table}_latest AS SELECT device, last(v, ts) AS v, max(ts) AS at \
                 FROM {table} GROUP BY device"
            );
        }
        let columns = match self {
            Workload::Bank => "id INT PRIMARY KEY, balance INT",
            _ => "id INT PRIMARY KEY, client INT, payload STRING",
        };
        format!("DROP TABLE IF EXISTS {table}; CREATE TABLE {table} ({columns})")
    }

    /// One INSERT loading rows `first..end` before the run.
    pub fn preload(self, first: u64, end: u64, payload: &str) -> String {
        let values: Vec<String> = (first..end)
            .map(|id| match self {
                Workload::Bank => format!("({id}, {OPENING_BALANCE})"),
                _ => format!("({id}, 0, '{payload}')"),
            })
            .collect();
        format!("INSERT INTO {} VALUES {}", self.table(), values.join(", "))
    }
}

impl Worker {
    /// Client `client_id`'s worker (of `clients`).
    pub fn new(
        workload: Workload,
        (client_id, clients): (u64, u64),
        payload: String,
        batch_size: usize,
        rows: u64,
    ) -> Self {
        // The devices are dealt out among the clients; each client has at least one.
        let mut devices: Vec<u64> = (client_id..rows).step_by(clients.max(1) as usize).collect();
        if devices.is_empty() {
            devices.push(client_id);
        }
        Worker {
            workload,
            devices,
            cursor: 0,
            round: 0,
            table: workload.table(),
            client_id,
            payload,
            batch_size: batch_size.max(1),
            rows: rows.max(1),
            sequence: 0,
            rng: Rng::new(client_id + 1),
        }
    }

    /// A key no other client writes: the client id in the high bits.
    fn fresh_id(&mut self) -> u64 {
        self.sequence += 1;
        (self.client_id << 40) | self.sequence
    }

    fn existing_id(&mut self) -> u64 {
        self.rng.below(self.rows as usize) as u64
    }

    /// Runs one operation.
    pub async fn step(&mut self, client: &mut Client) -> Outcome {
        let (table, client_id) = (self.table.clone(), self.client_id);
        match self.workload {
            Workload::Insert => {
                let id = self.fresh_id();
                let sql =
                    format!("INSERT INTO {table} VALUES ({id}, {client_id}, '{}')", self.payload);
                single(client, &sql, "insert", 1).await
            }
            Workload::Batch => {
                let values: Vec<String> = (0..self.batch_size)
                    .map(|_| format!("({}, {client_id}, '{}')", self.fresh_id(), self.payload))
                    .collect();
                let sql = format!("INSERT INTO {table} VALUES {}", values.join(", "));
                single(client, &sql, "insert", self.batch_size as u64).await
            }
            Workload::Read => {
                let sql = format!("SELECT payload FROM {table} WHERE id = {}", self.existing_id());
                single(client, &sql, "read", 1).await
            }
            Workload::Mixed => {
                let id = self.existing_id();
                if self.rng.below(10) == 0 {
                    let sql = format!(
                        "UPDATE {table} SET payload = '{}', client = {client_id} WHERE id = {id}",
                        self.payload
                    );
                    single(client, &sql, "update", 1).await
                } else {
                    single(
                        client,
                        &format!("SELECT payload FROM {table} WHERE id = {id}"),
                        "read",
                        1,
                    )
                    .await
                }
            }
            Workload::Timeseries => self.timeseries(client).await,
            Workload::Bank => {
                let from = self.existing_id();
                // Any other account (the run checks there are at least two).
                let to = (from + 1 + self.rng.below(self.rows as usize - 1) as u64) % self.rows;
                let amount = 1 + self.rng.below(100) as i64;
                let outcome = transfer(client, &table, from, to, amount).await;
                if client.transaction().is_some() {
                    // Whatever failed, leave no transaction open.
                    let _ = client.execute("ROLLBACK", false).await;
                }
                outcome
            }
        }
    }
}

impl Worker {
    /// One timeseries operation: a batch of points, or (one in ten) a read of the rollups.
    async fn timeseries(&mut self, client: &mut Client) -> Outcome {
        let table = self.table.clone();
        self.sequence += 1;
        if self.sequence.is_multiple_of(10) {
            let device = self.existing_id();
            return match self.sequence.is_multiple_of(20) {
                true => {
                    let sql = format!("SELECT v, at FROM {table}_latest WHERE device = {device}");
                    single(client, &sql, "latest", 1).await
                }
                false => {
                    let sql = format!(
                        "SELECT bucket, avg_v, n FROM {table}_minute WHERE device = {device} \
                         ORDER BY bucket DESC LIMIT 10"
                    );
                    single(client, &sql, "rollup", 10).await
                }
            };
        }
        let mut values = Vec::with_capacity(self.batch_size);
        for _ in 0..self.batch_size {
            let device = self.devices[self.cursor];
            let v = (device * 7 + self.round) % 100;
            values.push(format!(
                "({device}, TIMESTAMP '{SERIES_START}' + INTERVAL '{} seconds', {v}.{})",
                self.round,
                self.rng.below(10)
            ));
            self.cursor += 1;
            if self.cursor == self.devices.len() {
                self.cursor = 0;
                self.round += 1;
            }
        }
        let sql = format!("INSERT INTO {table} VALUES {}", values.join(", "));
        single(client, &sql, "insert", self.batch_size as u64).await
    }
}

/// Runs one request; a statement error becomes the outcome.
async fn request(client: &mut Client, sql: &str) -> Result<Response, Outcome> {
    let response = client.execute(sql, false).await.map_err(|e| Outcome::Failed(e.to_string()))?;
    match response.results.iter().find_map(|(_, o)| o.as_ref().err()) {
        Some(error) if error.kind == "serialization_failure" => Err(Outcome::Conflict),
        Some(error) => Err(Outcome::Failed(format!("{}: {}", error.kind, error.message))),
        None => Ok(response),
    }
}

/// Runs one request as a whole operation.
async fn single(client: &mut Client, sql: &str, kind: &'static str, rows: u64) -> Outcome {
    match request(client, sql).await {
        Ok(_) => Outcome::Done { kind, rows },
        Err(outcome) => outcome,
    }
}

/// Moves `amount` from one account to another if the first holds enough, in one interactive
/// transaction of four requests.
async fn transfer(client: &mut Client, table: &str, from: u64, to: u64, amount: i64) -> Outcome {
    let steps = async {
        request(client, "BEGIN").await?;
        let read = format!("SELECT balance FROM {table} WHERE id = {from}");
        let balance = first_integer(&request(client, &read).await?)
            .ok_or_else(|| Outcome::Failed(format!("account {from} has no balance")))?;
        if balance >= amount {
            let sql = format!(
                "UPDATE {table} SET balance = balance - {amount} WHERE id = {from}; \
                 UPDATE {table} SET balance = balance + {amount} WHERE id = {to}"
            );
            request(client, &sql).await?;
        }
        request(client, "COMMIT").await
    };
    match steps.await {
        Ok(_) => Outcome::Done { kind: "transfer", rows: 2 },
        Err(outcome) => outcome,
    }
}

/// The first column of the first row of the first result, as an integer.
pub fn first_integer(response: &Response) -> Option<i64> {
    let (_, outcome) = response.results.first()?;
    match outcome.as_ref().ok()? {
        StatementResult::Query { rows, .. } => match rows.first()?.first()? {
            Value::Integer(value) => Some(*value),
            _ => None,
        },
        _ => None,
    }
}
