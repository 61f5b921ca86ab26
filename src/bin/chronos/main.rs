//! `chronos`: the Chronos command line.
//!
//! - `chronos exec "SQL; SQL"` (or `-f FILE`, `-` for stdin) runs statements in order and prints
//!   their results as tables, CSV or JSON lines.
//! - `chronos shell` is an interactive prompt.
//! - `chronos status` shows every node of the cluster.
//! - `chronos top` shows the statements the nodes served, by fingerprint.
//! - `chronos cert` makes a CA and certificates for trying TLS.
//! - `chronos member add|promote|remove` and `chronos transfer-leader` change the cluster.
//!
//! Exit codes: 0 success, 1 an SQL error (or a refused request), 2 a usage error, 3 the cluster
//! is unreachable or unavailable (nothing was applied: safe to retry), 4 a write's outcome is
//! unknown (it was cut off after it was sent and may or may not have been applied), 5 not
//! authenticated (no login where the cluster has users, a wrong password), 6 permission
//! denied (the user's roles do not allow it).

mod bench;
mod cert;
mod output;
mod shell;
mod status;
mod top;

use chronos::client::{self, Client, Event, Script};
use chronos::grpc::tls::ClientTls;
use chronos::replica::Consistency;
use clap::{Parser, Subcommand};
use output::Format;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

/// The Chronos command line.
#[derive(Parser, Debug)]
#[command(name = "chronos", version, about)]
struct Args {
    /// Node addresses (HOST:PORT), tried in order; any node serves any request.
    #[arg(long, global = true, value_delimiter = ',', default_value = "127.0.0.1:7001")]
    addr: Vec<String>,
    /// How long to wait for an answer, in milliseconds.
    #[arg(long, global = true, default_value_t = client::DEFAULT_TIMEOUT.as_millis() as u64)]
    timeout_ms: u64,
    /// The file holding the admin token, which membership changes and leadership transfers
    /// need (each node writes it to DATA_DIR/admin_token). The environment variable
    /// CHRONOS_ADMIN_TOKEN may hold the token instead.
    #[arg(long, global = true)]
    admin_token_file: Option<std::path::PathBuf>,
    /// Connect over TLS, trusting this CA certificate (PEM; the cluster's --tls-ca).
    #[arg(long, global = true, value_name = "FILE")]
    ca: Option<std::path::PathBuf>,
    /// A client certificate to present over TLS (PEM), where the cluster asks for one.
    #[arg(long, global = true, value_name = "FILE", requires_all = ["ca", "key"])]
    cert: Option<std::path::PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, global = true, value_name = "FILE", requires_all = ["ca", "cert"])]
    key: Option<std::path::PathBuf>,
    /// Log in as this user (needed once the cluster has users). The password comes from
    /// CHRONOS_PASSWORD, or a prompt.
    #[arg(long, global = true, value_name = "NAME")]
    user: Option<String>,
    #[command(subcommand)]
    command: Command,
}

/// Read consistency, as a flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ConsistencyArg {
    /// Reflect every write acknowledged before the read (default).
    Linearizable,
    /// Read the node's local state at once.
    Stale,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run SQL statements in order.
    Exec {
        /// The statements, separated by semicolons.
        sql: Option<String>,
        /// Read the statements from a file (`-` for stdin).
        #[arg(short, long, conflicts_with = "sql")]
        file: Option<String>,
        /// How to print results.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Keep going after a failed statement.
        #[arg(long)]
        continue_on_error: bool,
        /// How fresh reads must be.
        #[arg(long, value_enum, default_value_t = ConsistencyArg::Linearizable)]
        consistency: ConsistencyArg,
    },
    /// An interactive SQL prompt.
    Shell {
        /// How fresh reads must be.
        #[arg(long, value_enum, default_value_t = ConsistencyArg::Linearizable)]
        consistency: ConsistencyArg,
    },
    /// Show every node of the cluster.
    Status {
        /// `table` or `json`.
        #[arg(long, value_enum, default_value_t = status::StatusFormat::Table)]
        format: status::StatusFormat,
    },
    /// Show the statements the cluster's nodes served, by fingerprint (literals replaced by
    /// `?`), with counts, errors, rows and latencies.
    Top(top::TopArgs),
    /// Change the cluster's membership.
    Member {
        #[command(subcommand)]
        change: MemberChange,
    },
    /// Run a workload against the cluster and report throughput and latency.
    Bench(bench::BenchArgs),
    /// Write a consistent backup of the cluster's data to FILE while it keeps serving (restore
    /// it with chronosd --restore FILE). Needs the admin role or the admin token.
    Backup {
        /// Where to write it (written beside as FILE.partial, renamed when complete).
        file: std::path::PathBuf,
        /// Back up as of this MVCC version (within the GC retention window) instead of now.
        #[arg(long, value_name = "VERSION")]
        as_of: Option<u64>,
    },
    /// Make certificates for a test cluster: a CA, node and client certificates.
    Cert {
        #[command(subcommand)]
        command: cert::CertCommand,
    },
    /// Hand leadership to another voter.
    TransferLeader {
        /// The new leader's id.
        id: u64,
    },
}

#[derive(Subcommand, Debug)]
enum MemberChange {
    /// Add a node (started with `chronosd --join`) as a non-voting learner.
    Add {
        /// Its id.
        id: u64,
        /// Where it serves (HOST:PORT).
        address: String,
    },
    /// Make a learner a voter.
    Promote {
        /// Its id.
        id: u64,
    },
    /// Remove a node.
    Remove {
        /// Its id.
        id: u64,
    },
}

/// Exit codes.
const SQL_ERROR: u8 = 1;
const USAGE: u8 = 2;
const UNAVAILABLE: u8 = 3;
const OUTCOME_UNKNOWN: u8 = 4;
const UNAUTHENTICATED: u8 = 5;
const PERMISSION_DENIED: u8 = 6;

/// The exit code for a failed statement's error kind.
fn code_for_kind(kind: &str) -> u8 {
    match kind {
        "unavailable" => UNAVAILABLE,
        "outcome_unknown" => OUTCOME_UNKNOWN,
        "unauthenticated" => UNAUTHENTICATED,
        "permission_denied" => PERMISSION_DENIED,
        _ => SQL_ERROR,
    }
}

/// The exit code for a client error.
fn exit_for(error: &client::Error) -> ExitCode {
    eprintln!("chronos: {error}");
    match error {
        client::Error::Unreachable(_) | client::Error::Unavailable(_) => {
            ExitCode::from(UNAVAILABLE)
        }
        client::Error::OutcomeUnknown(_) => ExitCode::from(OUTCOME_UNKNOWN),
        client::Error::Unauthenticated(_) => ExitCode::from(UNAUTHENTICATED),
        client::Error::PermissionDenied(_) => ExitCode::from(PERMISSION_DENIED),
        client::Error::Invalid(_) | client::Error::Server(_) => ExitCode::from(SQL_ERROR),
    }
}

/// `chronos backup`: streams the backup into FILE.partial, then renames it.
async fn backup(client: &mut Client, file: &std::path::Path, as_of: Option<u64>) -> ExitCode {
    let mut partial = file.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    let mut out = match std::fs::File::create(&partial) {
        Ok(out) => std::io::BufWriter::new(out),
        Err(error) => {
            eprintln!("chronos: cannot create {}: {error}", partial.display());
            return ExitCode::from(USAGE);
        }
    };
    let written = client.backup(as_of.unwrap_or(0), &mut out).await;
    let finished = written.and_then(|done| {
        let file = out.into_inner().map_err(|e| client::Error::Invalid(e.to_string()))?;
        file.sync_all().map_err(|e| client::Error::Invalid(e.to_string()))?;
        Ok(done)
    });
    match finished {
        Ok((version, records)) => {
            if let Err(error) = std::fs::rename(&partial, file) {
                eprintln!("chronos: cannot rename {}: {error}", partial.display());
                return ExitCode::from(SQL_ERROR);
            }
            println!("backup of version {version}: {records} records in {}", file.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            let _ = std::fs::remove_file(&partial);
            exit_for(&error)
        }
    }
}

fn consistency(arg: ConsistencyArg) -> Consistency {
    match arg {
        ConsistencyArg::Linearizable => Consistency::Linearizable,
        ConsistencyArg::Stale => Consistency::Stale,
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Certificates are made locally: no cluster, no runtime.
    if let Command::Cert { command } = &args.command {
        return cert::run(command.clone());
    }
    let timeout = Duration::from_millis(args.timeout_ms.max(1));
    let mut client = match Client::new(args.addr.clone(), timeout) {
        Ok(client) => client,
        Err(error) => {
            eprintln!("chronos: {error}");
            return ExitCode::from(USAGE);
        }
    };
    if let Some(ca) = &args.ca {
        match ClientTls::load(ca, args.cert.as_deref(), args.key.as_deref()) {
            Ok(tls) => client = client.with_tls(tls),
            Err(error) => {
                eprintln!("chronos: {error}");
                return ExitCode::from(USAGE);
            }
        }
    }
    client.admin_token = match &args.admin_token_file {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(token) => Some(token.trim().to_string()),
            Err(error) => {
                eprintln!("chronos: cannot read the admin token {}: {error}", path.display());
                return ExitCode::from(USAGE);
            }
        },
        None => std::env::var(chronos::grpc::wire::ADMIN_TOKEN_ENV).ok(),
    };
    let runtime = match args.command {
        // The workload's clients run in parallel; everything else is one request at a time.
        Command::Bench(_) => tokio::runtime::Builder::new_multi_thread().enable_all().build(),
        _ => tokio::runtime::Builder::new_current_thread().enable_all().build(),
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("chronos: cannot start the runtime: {error}");
            return ExitCode::from(SQL_ERROR);
        }
    };
    if let Some(user) = &args.user {
        let password = match std::env::var(chronos::grpc::wire::PASSWORD_ENV) {
            Ok(password) => password,
            Err(_) => match rpassword::prompt_password(format!("password for {user}: ")) {
                Ok(password) => password,
                Err(error) => {
                    eprintln!("chronos: cannot read the password: {error}");
                    return ExitCode::from(USAGE);
                }
            },
        };
        if let Err(error) = runtime.block_on(client.login(user, &password)) {
            return exit_for(&error);
        }
    }
    match args.command {
        Command::Exec { sql, file, format, continue_on_error, consistency: level } => {
            let script = match (sql, file) {
                (Some(sql), None) => Script::Text(sql),
                (None, Some(path)) => match open_script(&path) {
                    Ok(script) => script,
                    Err(error) => {
                        eprintln!("chronos: cannot read {path}: {error}");
                        return ExitCode::from(USAGE);
                    }
                },
                _ => {
                    eprintln!("chronos: exec needs SQL or -f FILE (see chronos exec --help)");
                    return ExitCode::from(USAGE);
                }
            };
            client.consistency = consistency(level);
            runtime.block_on(exec(&mut client, script, format, continue_on_error))
        }
        Command::Shell { consistency: level } => {
            client.consistency = consistency(level);
            shell::run(&runtime, client)
        }
        Command::Status { format } => runtime.block_on(status::print(&mut client, format)),
        Command::Top(top) => runtime.block_on(top::print(&mut client, top)),
        Command::Cert { command } => cert::run(command),
        Command::Backup { file, as_of } => runtime.block_on(backup(&mut client, &file, as_of)),
        Command::Bench(bench) => runtime.block_on(bench::run(&client, args.addr, bench)),
        Command::Member { change } => runtime.block_on(async {
            let result = match change {
                MemberChange::Add { id, address } => client.add_learner(id, &address).await,
                MemberChange::Promote { id } => client.promote(id).await,
                MemberChange::Remove { id } => client.remove_node(id).await,
            };
            match result {
                Ok(response) => {
                    let members: Vec<String> = response
                        .members
                        .iter()
                        .map(|m| {
                            let kind = if m.voter { "voter" } else { "learner" };
                            format!("{} ({kind}, {})", m.id, m.address)
                        })
                        .collect();
                    println!("configuration at index {}: {}", response.index, members.join(", "));
                    ExitCode::SUCCESS
                }
                Err(error) => exit_for(&error),
            }
        }),
        Command::TransferLeader { id } => runtime.block_on(async {
            match client.transfer_leadership(id).await {
                Ok(leader) => {
                    println!("leader: node {leader}");
                    ExitCode::SUCCESS
                }
                Err(error) => exit_for(&error),
            }
        }),
    }
}

/// A script read as it is sent: a file, or stdin for `-`.
fn open_script(path: &str) -> std::io::Result<Script> {
    if path == "-" {
        Ok(Script::Reader(Box::new(std::io::stdin())))
    } else {
        Ok(Script::Reader(Box::new(std::fs::File::open(path)?)))
    }
}

/// Runs a script and prints its results as they arrive; the exit code says how it went. The
/// script streams to the server as it is read and results stream back, so neither needs to
/// fit in memory.
async fn exec(
    client: &mut Client,
    script: Script,
    format: Format,
    continue_on_error: bool,
) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    let mut printer = output::Printer::new(format);
    let mut code = 0;
    let mut broken = None;
    let ran = client
        .run(script, continue_on_error, |event| {
            let written = match &event {
                Event::Columns(columns) => printer.columns(&mut stdout, columns),
                Event::Rows(rows) => printer.rows(&mut stdout, rows.clone()),
                Event::Result(_, outcome) => {
                    let written = printer.result(&mut stdout, outcome);
                    if let Err(error) = outcome {
                        if format != Format::Json {
                            let _ = stdout.flush();
                            eprintln!("{}", output::error_line(&error.kind, &error.message));
                        }
                        code = code.max(code_for_kind(&error.kind));
                    }
                    written
                }
            };
            if let Err(error) = written
                && broken.is_none()
            {
                broken = Some(error);
            }
        })
        .await;
    let _ = stdout.flush();
    if let Some(error) = broken
        && error.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("chronos: cannot write the results: {error}");
    }
    if let Err(error) = ran {
        return exit_for(&error);
    }
    if client.transaction().is_some() {
        // Like a closed connection in other databases: an unfinished transaction is undone.
        eprintln!("chronos: the script left a transaction open; rolling it back");
        if let Err(error) = client.execute("ROLLBACK", false).await {
            eprintln!("chronos: {error} (the cluster rolls it back after its timeout)");
        }
    }
    ExitCode::from(code)
}
