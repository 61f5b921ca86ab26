//! `chronos bench`: a workload against a running cluster, with throughput and latency.
//!
//! Each client is a session of its own on one node (clients are spread over the addresses
//! given), issuing one request at a time; latency is measured per request.

use chronos::client::Client;
use hdrhistogram::Histogram;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// Autocommit single-row INSERTs.
    Insert,
    /// Multi-row INSERTs of `--batch-size` rows.
    Batch,
    /// Point SELECTs by primary key over `--rows` preloaded rows.
    Read,
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
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Rows per INSERT in the batch workload.
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// Bytes of payload per row.
    #[arg(long, default_value_t = 16)]
    row_size: usize,
    /// Rows preloaded for the read workload.
    #[arg(long, default_value_t = 10_000)]
    rows: u64,
    /// How fresh reads must be.
    #[arg(long, value_enum, default_value_t = super::ConsistencyArg::Linearizable)]
    consistency: super::ConsistencyArg,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// What one client measured.
struct Tally {
    latencies: Histogram<u64>,
    errors: u64,
    rows: u64,
}

/// Runs the benchmark.
pub async fn run(addresses: Vec<String>, timeout: Duration, args: BenchArgs) -> ExitCode {
    let table = format!("bench_{}", format!("{:?}", args.workload).to_lowercase());
    let mut admin = match Client::new(addresses.clone(), timeout) {
        Ok(client) => client,
        Err(error) => return super::exit_for(&error),
    };
    let setup = format!(
        "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id INT PRIMARY KEY, client INT, payload STRING)"
    );
    if let Err(code) = checked(&mut admin, &setup).await {
        return code;
    }
    let payload = "x".repeat(args.row_size);
    if args.workload == Workload::Read {
        let mut id = 0;
        while id < args.rows {
            let end = (id + 1000).min(args.rows);
            let values: Vec<String> = (id..end).map(|i| format!("({i}, 0, '{payload}')")).collect();
            let sql = format!("INSERT INTO {table} VALUES {}", values.join(", "));
            if let Err(code) = checked(&mut admin, &sql).await {
                return code;
            }
            id = end;
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client_id in 0..args.clients {
        // Spread the clients over the nodes; each still fails over to the others.
        let mut order = addresses.clone();
        order.rotate_left(client_id % addresses.len());
        let (stop, done, table, payload, args) =
            (stop.clone(), done.clone(), table.clone(), payload.clone(), args.clone());
        tasks.push(tokio::spawn(async move {
            client_loop(order, timeout, client_id as u64, &table, &payload, &args, &stop, &done)
                .await
        }));
    }
    let progress = tokio::spawn({
        let (stop, done) = (stop.clone(), done.clone());
        async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(1));
            ticker.tick().await;
            while !stop.load(Ordering::Relaxed) {
                ticker.tick().await;
                let seconds = started.elapsed().as_secs_f64();
                let count = done.load(Ordering::Relaxed);
                eprint!("\r{seconds:5.1} s  {count} requests  {:.0}/s   ", count as f64 / seconds);
            }
        }
    });
    tokio::time::sleep(Duration::from_secs(args.duration_secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Histogram::<u64>::new(3).expect("histogram of 3 significant digits");
    let (mut errors, mut rows) = (0, 0);
    for task in tasks {
        if let Ok(tally) = task.await {
            let _ = latencies.add(&tally.latencies);
            errors += tally.errors;
            rows += tally.rows;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    progress.abort();
    eprintln!();
    let requests = latencies.len();
    let ms = |quantile: f64| latencies.value_at_quantile(quantile) as f64 / 1000.0;
    if args.json {
        let report = serde_json::json!({
            "workload": table.trim_start_matches("bench_"),
            "clients": args.clients,
            "seconds": elapsed,
            "requests": requests,
            "requests_per_second": requests as f64 / elapsed,
            "rows_per_second": rows as f64 / elapsed,
            "errors": errors,
            "latency_ms": { "p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "max": latencies.max() as f64 / 1000.0 },
        });
        println!("{report}");
    } else {
        println!(
            "{:?}: {} clients, {elapsed:.1} s, {requests} requests ({:.0}/s), {rows} rows ({:.0} rows/s), {errors} errors",
            args.workload,
            args.clients,
            requests as f64 / elapsed,
            rows as f64 / elapsed,
        );
        println!(
            "latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}",
            ms(0.5),
            ms(0.9),
            ms(0.99),
            latencies.max() as f64 / 1000.0
        );
    }
    if errors > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

/// Runs setup SQL, failing the run on any error.
async fn checked(client: &mut Client, sql: &str) -> Result<(), ExitCode> {
    match client.execute(sql, false).await {
        Ok(response) => match response.results.iter().find_map(|(_, o)| o.as_ref().err()) {
            None => Ok(()),
            Some(error) => {
                eprintln!("chronos: setup failed: {}", error.message);
                Err(ExitCode::from(1))
            }
        },
        Err(error) => Err(super::exit_for(&error)),
    }
}

#[allow(clippy::too_many_arguments)]
async fn client_loop(
    addresses: Vec<String>,
    timeout: Duration,
    client_id: u64,
    table: &str,
    payload: &str,
    args: &BenchArgs,
    stop: &AtomicBool,
    done: &AtomicU64,
) -> Tally {
    let mut tally = Tally {
        latencies: Histogram::new(3).expect("histogram of 3 significant digits"),
        errors: 0,
        rows: 0,
    };
    let Ok(mut client) = Client::new(addresses, timeout) else { return tally };
    client.consistency = super::consistency(args.consistency);
    let mut rng = chronos::rng::Rng::new(client_id + 1);
    let mut sequence = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let (sql, rows) = match args.workload {
            Workload::Insert => {
                sequence += 1;
                let id = (client_id << 40) | sequence;
                (format!("INSERT INTO {table} VALUES ({id}, {client_id}, '{payload}')"), 1)
            }
            Workload::Batch => {
                let values: Vec<String> = (0..args.batch_size)
                    .map(|_| {
                        sequence += 1;
                        format!("({}, {client_id}, '{payload}')", (client_id << 40) | sequence)
                    })
                    .collect();
                (
                    format!("INSERT INTO {table} VALUES {}", values.join(", ")),
                    args.batch_size as u64,
                )
            }
            Workload::Read => {
                let id = rng.below(args.rows.max(1) as usize);
                (format!("SELECT payload FROM {table} WHERE id = {id}"), 1)
            }
        };
        let started = Instant::now();
        let ok = match client.execute(&sql, false).await {
            Ok(response) => response.results.iter().all(|(_, o)| o.is_ok()),
            Err(_) => false,
        };
        let micros = started.elapsed().as_micros() as u64;
        if ok {
            let _ = tally.latencies.record(micros.max(1));
            tally.rows += rows;
        } else {
            tally.errors += 1;
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
    tally
}
