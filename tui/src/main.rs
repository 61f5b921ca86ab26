//! `chronos-tui`: the live operator console for a Chronos cluster.
//!
//! `chronos-tui --spawn 3` starts a local 3-node cluster inside the console; `--peers` or
//! `--addr` connect to a running one. The console talks to the nodes only through the gRPC
//! client library. Structure (the Elm architecture): `app` holds the state and updates it from
//! messages, `ui` draws it, `runtime` carries out the effects updates ask for, and this file
//! owns the terminal and the loop between them.
//!
//! The terminal is restored on every exit path, a panic included (`ratatui::init` installs the
//! hook).

mod app;
mod demo;
mod editor;
mod model;
mod runtime;
mod spawn;
mod statements;
mod ui;

use app::{App, Effect, Msg};
use chronos::grpc::tls::ClientTls;
use clap::Parser;
use model::{NodeId, TICKS_PER_SECOND};
use ratatui::crossterm::event::{self, DisableMouseCapture, EnableMouseCapture, Event};
use ratatui::crossterm::execute;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// The live operator console for a Chronos cluster.
#[derive(Parser, Debug)]
#[command(name = "chronos-tui", version, about)]
struct Args {
    /// Start a local cluster of N nodes inside the console (on free ports of 127.0.0.1).
    #[arg(long, value_name = "N", conflicts_with_all = ["peers", "addr"])]
    spawn: Option<u64>,
    /// With --spawn: keep the nodes' data here (default: a temporary directory).
    #[arg(long, requires = "spawn")]
    data_dir: Option<PathBuf>,
    /// With --spawn: write demo data (`iot`: sensors, with a per-minute rollup).
    #[arg(long, value_enum, requires = "spawn")]
    demo: Option<Demo>,
    /// The cluster's nodes: ID=HOST:PORT,...
    #[arg(long, value_delimiter = ',', value_parser = parse_peer, conflicts_with = "addr")]
    peers: Vec<(NodeId, String)>,
    /// Any node of the cluster (the rest are found from its status).
    #[arg(long, default_value = "127.0.0.1:7001")]
    addr: String,
    /// How long to wait for a node's answer, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Connect over TLS, trusting this CA certificate (PEM; the cluster's --tls-ca).
    #[arg(long, value_name = "FILE", conflicts_with = "spawn")]
    ca: Option<PathBuf>,
    /// A client certificate to present over TLS (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["ca", "key"])]
    cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["ca", "cert"])]
    key: Option<PathBuf>,
    /// Log in as this user (needed once the cluster has users); the password comes from
    /// CHRONOS_PASSWORD, or a prompt.
    #[arg(long, value_name = "NAME", conflicts_with = "spawn")]
    user: Option<String>,
}

/// The demos `--demo` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Demo {
    /// Sensors writing readings, a per-minute rollup and the latest value of each.
    Iot,
}

fn parse_peer(text: &str) -> Result<(NodeId, String), String> {
    let (id, address) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not ID=HOST:PORT (for example 2=127.0.0.1:7002)"))?;
    let id = id.trim().parse().map_err(|_| format!("{id:?} is not a node id"))?;
    Ok((id, address.trim().to_string()))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("chronos-tui: cannot start the runtime: {error}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    let timeout = Duration::from_millis(args.timeout_ms);
    let tls = match &args.ca {
        Some(ca) => match ClientTls::load(ca, args.cert.as_deref(), args.key.as_deref()) {
            Ok(tls) => Some(tls),
            Err(error) => {
                eprintln!("chronos-tui: {error}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let mut connector = runtime::Connector { timeout, tls, user_token: None };
    if let Some(user) = &args.user {
        match login(&connector, &args.addr, user).await {
            Ok(token) => connector.user_token = Some(token),
            Err(error) => {
                eprintln!("chronos-tui: {error}");
                return ExitCode::from(5);
            }
        }
    }
    let (spawned, nodes) = match args.spawn {
        Some(0) => {
            eprintln!("chronos-tui: --spawn needs at least one node");
            return ExitCode::from(2);
        }
        Some(count) => match spawn::Spawned::start(count, args.data_dir.clone()).await {
            Ok(spawned) => {
                let nodes = spawned.addresses();
                (Some(Arc::new(tokio::sync::Mutex::new(spawned))), nodes)
            }
            Err(error) => {
                eprintln!("chronos-tui: {error}");
                return ExitCode::from(1);
            }
        },
        None if !args.peers.is_empty() => (None, args.peers.clone()),
        None => match discover(&args.addr, &connector).await {
            Ok(nodes) => (None, nodes),
            Err(error) => {
                eprintln!("chronos-tui: {error}");
                return ExitCode::from(3);
            }
        },
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let mut app = App::new(&nodes, spawned.is_some(), now_ms());
    if let Some(spawned) = &spawned {
        let spawned = spawned.lock().await;
        app.update(Msg::Spawned(spawned.running()));
        let root = spawned.root().display().to_string();
        app.update(Msg::ActionDone(Ok(format!("spawned {} nodes, data in {root}", nodes.len()))));
    }
    let admin_token = match &spawned {
        Some(spawned) => Some(spawned.lock().await.admin_token()),
        None => std::env::var(chronos::grpc::wire::ADMIN_TOKEN_ENV).ok(),
    };
    if args.demo == Some(Demo::Iot) {
        let addresses = nodes.iter().map(|(_, address)| address.clone()).collect();
        match connector.client(addresses) {
            Ok(client) => {
                tokio::spawn(demo::run(client, tx.clone()));
            }
            Err(error) => {
                app.update(Msg::ActionDone(Err(format!("iot demo: {error}"))));
            }
        }
    }
    let mut effects = runtime::Runtime::new(tx.clone(), connector, spawned.clone(), admin_token);
    let result = console(&mut app, &mut effects, tx, rx).await;
    if let Some(spawned) = spawned {
        // Other holders (an action still running) do not keep the nodes alive.
        spawned.lock().await.shutdown().await;
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("chronos-tui: {error}");
            ExitCode::from(1)
        }
    }
}

/// Logs in as `user` at `address` (the password from CHRONOS_PASSWORD or a prompt); returns
/// the token.
async fn login(
    connector: &runtime::Connector,
    address: &str,
    user: &str,
) -> Result<String, String> {
    let password = match std::env::var(chronos::grpc::wire::PASSWORD_ENV) {
        Ok(password) => password,
        Err(_) => rpassword::prompt_password(format!("password for {user}: "))
            .map_err(|e| format!("cannot read the password: {e}"))?,
    };
    let mut client = connector.client(vec![address.to_string()]).map_err(|e| e.to_string())?;
    client.login(user, &password).await.map_err(|e| e.to_string())?;
    client.user_token().map(str::to_string).ok_or_else(|| "the login returned no token".into())
}

/// The members of the cluster `address` belongs to.
async fn discover(
    address: &str,
    connector: &runtime::Connector,
) -> Result<Vec<(NodeId, String)>, String> {
    let mut client = connector.client(vec![address.to_string()]).map_err(|e| e.to_string())?;
    let members = client.cluster_status().await.map_err(|e| e.to_string())?;
    Ok(members.into_iter().map(|m| (m.id, m.address)).collect())
}

/// Runs the console in the terminal until the operator quits.
async fn console(
    app: &mut App,
    effects: &mut runtime::Runtime,
    tx: runtime::Sender,
    mut rx: mpsc::UnboundedReceiver<Msg>,
) -> std::io::Result<()> {
    let mut terminal = ratatui::init();
    // ratatui's panic hook leaves raw mode and the alternate screen; this one, run first,
    // also gives the mouse back.
    let restore_terminal = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = execute!(std::io::stdout(), DisableMouseCapture);
        restore_terminal(info);
    }));
    // Without mouse capture the console still works (no wheel scrolling); never return early
    // here, or the terminal would stay raw.
    let _ = execute!(std::io::stdout(), EnableMouseCapture);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = std::thread::spawn({
        let (tx, stop) = (tx.clone(), stop.clone());
        move || read_terminal(tx, stop)
    });
    let mut ticker = tokio::time::interval(Duration::from_millis(1000 / TICKS_PER_SECOND));
    let mut pending = app.start();
    let result = loop {
        let mut quit = false;
        for effect in pending.drain(..) {
            match effect {
                Effect::Quit => quit = true,
                effect => effects.run(effect),
            }
        }
        if quit {
            break Ok(());
        }
        if let Err(error) = terminal.draw(|frame| frame.render_widget(&*app, frame.area())) {
            break Err(error);
        }
        let msg = tokio::select! {
            msg = rx.recv() => msg,
            _ = ticker.tick() => Some(Msg::Tick(now_ms())),
        };
        let Some(msg) = msg else { break Ok(()) };
        pending = app.update(msg);
        // Take in everything already waiting before drawing again.
        while let Ok(msg) = rx.try_recv() {
            pending.extend(app.update(msg));
        }
    };
    stop.store(true, Ordering::Relaxed);
    let _ = execute!(std::io::stdout(), DisableMouseCapture);
    ratatui::restore();
    let _ = reader.join();
    result
}

/// Forwards terminal input as messages until told to stop.
fn read_terminal(tx: runtime::Sender, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        match event::poll(Duration::from_millis(50)) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(_) => return,
        }
        let msg = match event::read() {
            Ok(Event::Key(key)) => Msg::Key(key),
            Ok(Event::Mouse(mouse)) => match App::scroll_lines(mouse.kind) {
                Some(lines) => Msg::Scroll(lines),
                None => continue,
            },
            Ok(Event::Resize(..)) => Msg::Resize,
            Ok(_) => continue,
            Err(_) => return,
        };
        if tx.send(msg).is_err() {
            return;
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
