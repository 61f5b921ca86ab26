//! Storage benchmarks: MVCC transactions on sled (each commit fsyncs, as the embedded engine
//! does) and on a replica's store (redb), and the order-preserving key encoding and value
//! encoding every row goes through.

use chronos::encoding::keycode::{self, KeyReader};
use chronos::encoding::value;
use chronos::sql::types::Value;
use chronos::storage::mvcc::Mvcc;
use chronos::storage::{Engine, RedbEngine, SledEngine, WriteBatch};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use std::hint::black_box;
use std::sync::Arc;

/// A transaction that writes N keys, then commits (one fsync).
fn mvcc_commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("storage/mvcc_commit");
    let dir = tempfile::tempdir().expect("temp dir");
    let engine: Arc<dyn Engine> = Arc::new(SledEngine::open(dir.path()).expect("open sled"));
    let mvcc = Mvcc::open(engine).expect("open mvcc");
    let mut next = 0u64;
    for keys in [1u64, 100] {
        group.throughput(Throughput::Elements(keys));
        group.bench_function(BenchmarkId::new("keys", keys), |b| {
            b.iter(|| {
                let mut txn = mvcc.begin().expect("begin");
                for _ in 0..keys {
                    next += 1;
                    txn.set(&next.to_be_bytes(), vec![7; 64]).expect("set");
                }
                txn.commit().expect("commit")
            })
        });
    }
    group.bench_function("read_only_get", |b| {
        b.iter(|| {
            let txn = mvcc.begin_read_only().expect("begin");
            black_box(txn.get(&1u64.to_be_bytes()).expect("get"))
        })
    });
    group.finish();
}

/// A replica's state machine: a one-key transaction committed on the replica store (redb,
/// its writes gathered in memory and committed to the file every 1 MiB, as the applier does),
/// and, for comparison, on redb directly (one unsynced redb transaction per commit).
fn replica_commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("storage/replica_commit");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(RedbEngine::replica_store(dir.path().join("store")).expect("open"));
    let direct = tempfile::tempdir().expect("temp dir");
    let db = RedbEngine::open_db(direct.path()).expect("open redb");
    let engines: [(&str, Arc<dyn Engine>); 2] = [
        ("replica_store", store.clone()),
        ("redb_transaction", Arc::new(RedbEngine::open_table(&db, "data"))),
    ];
    for (name, engine) in engines {
        let mvcc = Mvcc::open(engine).expect("open mvcc");
        let mut next = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut txn = mvcc.begin().expect("begin");
                next += 1;
                txn.set(&next.to_be_bytes(), vec![7; 64]).expect("set");
                txn.commit().expect("commit");
                if store.uncommitted_bytes() >= 1 << 20 {
                    store.commit(WriteBatch::new()).expect("store commit");
                }
            })
        });
    }
    group.finish();
}

/// A row key (table name, integer primary key) encoded and decoded, and a row encoded and
/// decoded as stored.
fn encoding(c: &mut Criterion) {
    let mut group = c.benchmark_group("storage/encoding");
    group.bench_function("row_key_encode", |b| {
        b.iter(|| {
            let mut key = Vec::with_capacity(32);
            key.push(2);
            keycode::put_str(&mut key, black_box("users"));
            keycode::put_i64(&mut key, black_box(123_456));
            key
        })
    });
    let mut key = vec![2];
    keycode::put_str(&mut key, "users");
    keycode::put_i64(&mut key, 123_456);
    group.bench_function("row_key_decode", |b| {
        b.iter(|| {
            let mut reader = KeyReader::new(black_box(&key[1..]));
            let table = reader.get_string().expect("table");
            let id = reader.get_i64().expect("id");
            (table, id)
        })
    });
    let row = vec![
        Value::Integer(123_456),
        Value::String("user 123456".into()),
        Value::String("user123456@example.com".into()),
        Value::Float(456.5),
    ];
    group.bench_function("row_encode", |b| b.iter(|| value::encode(black_box(&row))));
    let stored = value::encode(&row);
    group.bench_function("row_decode", |b| {
        b.iter(|| value::decode::<Vec<Value>>(black_box(&stored)).expect("decode"))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = super::config();
    targets = mvcc_commit, replica_commit, encoding
}
