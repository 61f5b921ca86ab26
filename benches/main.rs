//! Criterion benchmarks, one module per area. Run all with `cargo bench`, or one group with
//! `cargo bench --bench main -- sql/insert`.

use criterion::criterion_main;

mod raft;
mod sql;

criterion_main!(raft::benches, sql::benches);
