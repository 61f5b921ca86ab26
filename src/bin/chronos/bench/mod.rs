//! `chronos bench`: a workload against a running cluster, with throughput and latency.
//!
//! Each client is a session of its own on one node (clients are spread over the addresses
//! given), issuing one operation at a time; latency is measured per operation. The run lasts
//! `--duration-secs`, or until `--count` operations have been issued.

mod workload;

use chronos::client::Client;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use workload::{OPENING_BALANCE, Outcome, Worker, Workload};

/// How the report is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// Lines for people.
    Text,
    /// One JSON object, for scripts.
    Json,
}

/// Settings of a run.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// What to run.
    #[arg(long, value_enum, default_value_t = Workload::Insert)]
    workload: Workload,
    /// Concurrent clients.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// How long to run, in seconds (ignored with --count).
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Run this many operations in all instead of for a duration.
    #[arg(long)]
    count: Option<u64>,
    /// Rows per INSERT in the batch workload.
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// Bytes of payload per row.
    #[arg(long, default_value_t = 16)]
    row_size: usize,
    /// Rows preloaded for the read and mixed workloads; accounts for bank; devices for
    /// timeseries.
    #[arg(long, default_value_t = 10_000)]
    rows: u64,
    /// How fresh reads must be.
    #[arg(long, value_enum, default_value_t = super::ConsistencyArg::Linearizable)]
    consistency: super::ConsistencyArg,
    /// `text`, or `json` for one JSON object.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    format: ReportFormat,
}

/// What the clients measured.
struct Tally {
    /// Latency in microseconds per kind of operation.
    latencies: BTreeMap<&'static str, Histogram<u64>>,
    rows: u64,
    conflicts: u64,
    /// Failures by message.
    errors: BTreeMap<String, u64>,
}

impl Tally {
    fn new() -> Self {
        Tally { latencies: BTreeMap::new(), rows: 0, conflicts: 0, errors: BTreeMap::new() }
    }

    fn failed(message: String) -> Self {
        let mut tally = Tally::new();
        tally.record(Outcome::Failed(message), 0);
        tally
    }

    fn record(&mut self, outcome: Outcome, micros: u64) {
        match outcome {
            Outcome::Done { kind, rows } => {
                let histogram = self.latencies.entry(kind).or_insert_with(histogram);
                let _ = histogram.record(micros.max(1));
                self.rows += rows;
            }
            Outcome::Conflict => self.conflicts += 1,
            Outcome::Failed(message) => *self.errors.entry(message).or_default() += 1,
        }
    }

    fn merge(&mut self, other: Tally) {
        for (kind, latencies) in other.latencies {
            let _ = self.latencies.entry(kind).or_insert_with(histogram).add(&latencies);
        }
        self.rows += other.rows;
        self.conflicts += other.conflicts;
        for (message, count) in other.errors {
            *self.errors.entry(message).or_default() += count;
        }
    }

    fn all_latencies(&self) -> Histogram<u64> {
        let mut all = histogram();
        for latencies in self.latencies.values() {
            let _ = all.add(latencies);
        }
        all
    }

    fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Microseconds from 1 to an hour, to 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// Runs the benchmark.
pub async fn run(template: &Client, addresses: Vec<String>, args: BenchArgs) -> ExitCode {
    if args.workload == Workload::Bank && args.rows < 2 {
        eprintln!("chronos: the bank workload needs --rows of at least 2 accounts");
        return ExitCode::from(super::USAGE);
    }
    if args.clients == 0 {
        eprintln!("chronos: --clients must be at least 1");
        return ExitCode::from(super::USAGE);
    }
    let mut admin = match template.sibling(addresses.clone()) {
        Ok(client) => client,
        Err(error) => return super::exit_for(&error),
    };
    let payload = "x".repeat(args.row_size);
    if let Err(code) = set_up(&mut admin, &args, &payload).await {
        return code;
    }
    if args.workload.preloads()
        && args.consistency == super::ConsistencyArg::Stale
        && let Err(message) = wait_loaded(template, &addresses, &args).await
    {
        eprintln!("chronos: {message}");
        return ExitCode::from(super::UNAVAILABLE);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let issued = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client_id in 0..args.clients {
        // Spread the clients over the nodes; each still fails over to the others.
        let mut order = addresses.clone();
        order.rotate_left(client_id % addresses.len());
        let worker = Worker::new(
            args.workload,
            (client_id as u64, args.clients as u64),
            payload.clone(),
            args.batch_size,
            args.rows,
        );
        let (stop, issued, count) = (stop.clone(), issued.clone(), args.count);
        let consistency = super::consistency(args.consistency);
        let client = template.sibling(order);
        tasks.push(tokio::spawn(async move {
            let mut client = match client {
                Ok(client) => client,
                Err(error) => return Tally::failed(error.to_string()),
            };
            client.consistency = consistency;
            client_loop(&mut client, worker, &stop, &issued, count).await
        }));
    }
    let progress = tokio::spawn(show_progress(started, issued.clone(), args.count));
    if args.count.is_none() {
        tokio::time::sleep(Duration::from_secs(args.duration_secs)).await;
        stop.store(true, Ordering::Relaxed);
    }
    let mut tally = Tally::new();
    for task in tasks {
        if let Ok(client) = task.await {
            tally.merge(client);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    progress.abort();
    eprintln!();
    let check = match args.workload {
        Workload::Bank => Some(check_balance(&mut admin, args.rows).await),
        _ => None,
    };
    report(&args, &tally, elapsed, check.as_ref());
    let failed_check = matches!(check, Some(Err(_)));
    if tally.error_count() > 0 || failed_check { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

/// Creates the workload's table and loads its rows.
async fn set_up(admin: &mut Client, args: &BenchArgs, payload: &str) -> Result<(), ExitCode> {
    checked(admin, &args.workload.schema()).await?;
    if args.workload.preloads() {
        let mut first = 0;
        while first < args.rows {
            let end = (first + 1000).min(args.rows);
            checked(admin, &args.workload.preload(first, end, payload)).await?;
            first = end;
        }
    }
    Ok(())
}

/// Waits until every node serves the preloaded rows locally, so stale reads find them.
async fn wait_loaded(
    template: &Client,
    addresses: &[String],
    args: &BenchArgs,
) -> Result<(), String> {
    let sql = format!("SELECT COUNT(*) FROM {}", args.workload.table());
    let deadline = Instant::now() + Duration::from_secs(30);
    for address in addresses {
        let mut client = template.sibling(vec![address.clone()]).map_err(|e| e.to_string())?;
        client.consistency = chronos::replica::Consistency::Stale;
        loop {
            let response = client.execute(&sql, false).await;
            let count = response.ok().and_then(|r| workload::first_integer(&r));
            if count == Some(args.rows as i64) {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("{address} has not caught up with the preloaded rows"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

/// Prints the operations done so far once a second, on standard error.
async fn show_progress(started: Instant, issued: Arc<AtomicU64>, count: Option<u64>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let seconds = started.elapsed().as_secs_f64();
        let done = issued.load(Ordering::Relaxed).min(count.unwrap_or(u64::MAX));
        eprint!("\r{seconds:5.1} s  {done} operations  {:.0}/s   ", done as f64 / seconds);
    }
}

/// The bank's invariant: money moved, none made or lost.
async fn check_balance(admin: &mut Client, accounts: u64) -> Result<i64, String> {
    let expected = accounts as i64 * OPENING_BALANCE;
    let sql = format!("SELECT SUM(balance) FROM {}", Workload::Bank.table());
    let response = admin.execute(&sql, false).await.map_err(|e| e.to_string())?;
    match workload::first_integer(&response) {
        Some(total) if total == expected => Ok(total),
        Some(total) => Err(format!("total balance is {total}, expected {expected}")),
        None => Err(format!("cannot read the total balance: {:?}", response.results)),
    }
}

fn report(args: &BenchArgs, tally: &Tally, elapsed: f64, check: Option<&Result<i64, String>>) {
    let all = tally.all_latencies();
    let ms = |h: &Histogram<u64>, quantile: f64| h.value_at_quantile(quantile) as f64 / 1000.0;
    let operations = all.len();
    let workload = format!("{:?}", args.workload).to_lowercase();
    if args.format == ReportFormat::Json {
        let latency = |h: &Histogram<u64>| {
            serde_json::json!({
                "count": h.len(),
                "p50": ms(h, 0.5), "p90": ms(h, 0.9), "p99": ms(h, 0.99), "max": h.max() as f64 / 1000.0,
            })
        };
        let by_kind: serde_json::Map<String, serde_json::Value> =
            tally.latencies.iter().map(|(kind, h)| (kind.to_string(), latency(h))).collect();
        let report = serde_json::json!({
            "workload": workload,
            "clients": args.clients,
            "seconds": elapsed,
            "operations": operations,
            "operations_per_second": operations as f64 / elapsed,
            "rows_per_second": tally.rows as f64 / elapsed,
            "conflicts": tally.conflicts,
            "errors": tally.error_count(),
            "error_messages": tally.errors,
            "latency_ms": latency(&all),
            "latency_ms_by_kind": by_kind,
            "balance_check": check.map(|c| match c {
                Ok(total) => serde_json::json!({ "ok": true, "total": total }),
                Err(message) => serde_json::json!({ "ok": false, "message": message }),
            }),
        });
        println!("{report}");
        return;
    }
    println!(
        "{workload}: {} clients, {elapsed:.1} s, {operations} operations ({:.0}/s), {} rows ({:.0} rows/s), {} conflicts, {} errors",
        args.clients,
        operations as f64 / elapsed,
        tally.rows,
        tally.rows as f64 / elapsed,
        tally.conflicts,
        tally.error_count(),
    );
    let line = |name: &str, h: &Histogram<u64>| {
        println!(
            "{name:<10} latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}  ({} ops)",
            ms(h, 0.5),
            ms(h, 0.9),
            ms(h, 0.99),
            h.max() as f64 / 1000.0,
            h.len()
        )
    };
    line("all", &all);
    if tally.latencies.len() > 1 {
        for (kind, h) in &tally.latencies {
            line(kind, h);
        }
    }
    for (message, count) in &tally.errors {
        println!("error x{count}: {message}");
    }
    match check {
        Some(Ok(total)) => println!("balance check: ok, the total is still {total}"),
        Some(Err(message)) => println!("balance check FAILED: {message}"),
        None => {}
    }
}

/// Runs setup SQL, failing the run on any error.
async fn checked(client: &mut Client, sql: &str) -> Result<(), ExitCode> {
    match client.execute(sql, false).await {
        Ok(response) => match response.results.iter().find_map(|(_, o)| o.as_ref().err()) {
            None => Ok(()),
            Some(error) => {
                eprintln!("chronos: setup failed: {}", error.message);
                Err(ExitCode::from(super::SQL_ERROR))
            }
        },
        Err(error) => Err(super::exit_for(&error)),
    }
}

/// One client: operations until told to stop or until `count` have been issued in all.
async fn client_loop(
    client: &mut Client,
    mut worker: Worker,
    stop: &AtomicBool,
    issued: &AtomicU64,
    count: Option<u64>,
) -> Tally {
    let mut tally = Tally::new();
    while !stop.load(Ordering::Relaxed) {
        let number = issued.fetch_add(1, Ordering::Relaxed);
        if count.is_some_and(|count| number >= count) {
            break;
        }
        let started = Instant::now();
        let outcome = worker.step(client).await;
        tally.record(outcome, started.elapsed().as_micros() as u64);
    }
    tally
}
