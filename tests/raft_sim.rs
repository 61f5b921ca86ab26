//! Deterministic simulation of Raft clusters: the main test of the consensus layer.
//!
//! Each seed runs a 3- or 5-node cluster through random faults (delays, reordering, drops,
//! duplicates, symmetric and one-way partitions, pauses, crashes that tear unsynced writes,
//! restarts, leadership transfers) with clients proposing and reading, checking Raft's safety
//! properties after every event; then heals everything and requires progress within a bound
//! (see `chronos::raft::sim`).
//!
//! - `cargo test --test raft_sim` runs `RAFT_SEEDS` seeds (default 1,000) for each cluster size
//!   and fault profile.
//! - A failure prints its seed; replay it with a trace:
//!   `RAFT_SEED=<seed> RAFT_NODES=<n> RAFT_PROFILE=<profile> RAFT_TRACE=1 cargo test --test raft_sim replay -- --nocapture`
//! - A longer soak: `RAFT_SEEDS=20000 cargo test --release --test raft_sim -- --ignored`.

use chronos::raft::sim::chaos::{self, ChaosOptions};

/// How a run is shaped.
#[derive(Clone, Copy, Debug)]
enum Profile {
    /// Faults every ~150 ms, millisecond delays.
    Default,
    /// Faults every ~40 ms, delays up to 30 ms, slow fsyncs, snapshots every 5 entries.
    Harsh,
    /// The default faults, and hostile messages: terms past the ceiling, misrouted copies,
    /// malformed appends, elections from outside the configuration (`raft::sim::hostile`).
    Hostile,
}

impl Profile {
    fn options(self, nodes: usize, seed: u64) -> ChaosOptions {
        let mut opts = ChaosOptions::new(nodes, seed);
        match self {
            Profile::Default => {}
            Profile::Harsh => {
                opts.fault_every = 40_000;
                opts.sim.delay = (100, 30_000);
                opts.sim.snapshot_every = 5;
                opts.sim.fsync = (50, 8_000);
                opts.liveness = 8_000_000;
            }
            Profile::Hostile => opts.hostile_percent = 5,
        }
        opts
    }

    fn parse(name: &str) -> Self {
        match name {
            "harsh" => Profile::Harsh,
            "hostile" => Profile::Hostile,
            _ => Profile::Default,
        }
    }
}

fn seeds() -> u64 {
    std::env::var("RAFT_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000)
}

/// Runs the seeds `part`, `part + parts`, ... below `seeds()`.
fn run_part(nodes: usize, profile: Profile, part: u64, parts: u64) {
    let mut seed = part;
    let mut hostile = (0, 0);
    while seed < seeds() {
        match chaos::run(profile.options(nodes, seed)) {
            Ok(report) => hostile = (hostile.0 + report.hostile.0, hostile.1 + report.hostile.1),
            Err(violation) => panic!(
                "{violation}\nreplay: RAFT_SEED={seed} RAFT_NODES={nodes} RAFT_PROFILE={} RAFT_TRACE=1 cargo test --test raft_sim replay -- --nocapture",
                format!("{profile:?}").to_lowercase()
            ),
        }
        seed += parts;
    }
    if let Profile::Hostile = profile {
        // The profile did its job: hostile messages arrived, and the refusable ones were refused.
        assert!(hostile.0 > 0 && hostile.1 > 0, "hostile messages delivered, refused: {hostile:?}");
    }
}

macro_rules! parts {
    ($($name:ident: $nodes:expr, $profile:expr, $part:expr;)*) => {
        $(
            #[test]
            fn $name() {
                run_part($nodes, $profile, $part, 2);
            }
        )*
    };
}

parts! {
    three_nodes_a: 3, Profile::Default, 0;
    three_nodes_b: 3, Profile::Default, 1;
    five_nodes_a: 5, Profile::Default, 0;
    five_nodes_b: 5, Profile::Default, 1;
    three_nodes_harsh_a: 3, Profile::Harsh, 0;
    three_nodes_harsh_b: 3, Profile::Harsh, 1;
    five_nodes_harsh_a: 5, Profile::Harsh, 0;
    five_nodes_harsh_b: 5, Profile::Harsh, 1;
    three_nodes_hostile_a: 3, Profile::Hostile, 0;
    three_nodes_hostile_b: 3, Profile::Hostile, 1;
}

/// Replays one seed (with `RAFT_TRACE=1` for a trace).
#[test]
fn replay() {
    let Some(seed) = std::env::var("RAFT_SEED").ok().and_then(|v| v.parse().ok()) else {
        println!("set RAFT_SEED (and RAFT_NODES, RAFT_PROFILE) to replay a run");
        return;
    };
    let nodes = std::env::var("RAFT_NODES").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let profile = Profile::parse(&std::env::var("RAFT_PROFILE").unwrap_or_default());
    match chaos::run(profile.options(nodes, seed)) {
        Ok(report) => println!("seed {seed}: {report:?}"),
        Err(violation) => panic!("seed {seed}: {violation}"),
    }
}

/// A longer soak over many more seeds (run with `--ignored`, ideally `--release`).
#[test]
#[ignore = "long soak"]
fn soak() {
    for profile in [Profile::Default, Profile::Harsh, Profile::Hostile] {
        for nodes in [3, 5] {
            run_part(nodes, profile, 0, 1);
        }
    }
}
