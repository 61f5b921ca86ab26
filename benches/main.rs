//! Criterion benchmarks, one module per layer: the SQL engine, storage and encoding, the Raft
//! core, and a 3-node cluster end to end. Run all with `cargo bench`, one area with
//! `cargo bench --bench main -- sql/`, and a quick pass with `cargo bench -- --quick`.

use criterion::{Criterion, criterion_main};
use std::time::Duration;

mod cluster;
mod raft;
mod sql;
mod storage;

/// Shorter warm-up and measurement than criterion's defaults, so the whole run takes minutes.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_main!(sql::benches, storage::benches, raft::benches, cluster::benches);
