//! MVCC tests, each run on the memory engine and (where it matters) on sled.

use super::*;
use crate::storage::{MemoryEngine, SledEngine};

fn memory() -> (Mvcc, MemoryEngine) {
    let engine = MemoryEngine::new();
    (Mvcc::open(Arc::new(engine.clone())).unwrap(), engine)
}

fn scan_all(txn: &Transaction) -> Vec<(Vec<u8>, Vec<u8>)> {
    txn.scan((Bound::Unbounded, Bound::Unbounded)).collect::<Result<_>>().unwrap()
}

fn kv(key: &[u8], value: &[u8]) -> (Vec<u8>, Vec<u8>) {
    (key.to_vec(), value.to_vec())
}

/// Commits `pairs` in one transaction and returns its version.
fn seed(mvcc: &Mvcc, pairs: &[(&[u8], &[u8])]) -> Version {
    let mut txn = mvcc.begin().unwrap();
    let version = txn.version();
    for (key, value) in pairs {
        txn.set(key, value.to_vec()).unwrap();
    }
    txn.commit().unwrap();
    version
}

#[test]
fn read_your_own_writes_before_and_after_flush() {
    let (mvcc, _) = memory();
    seed(&mvcc, &[(b"a", b"1"), (b"c", b"3")]);
    let mut txn = mvcc.begin().unwrap();
    txn.set(b"b", b"2".to_vec()).unwrap();
    txn.delete(b"c").unwrap();
    txn.set(b"a", b"10".to_vec()).unwrap();
    assert_eq!(txn.get(b"a").unwrap(), Some(b"10".to_vec()));
    assert_eq!(txn.get(b"c").unwrap(), None);
    assert_eq!(scan_all(&txn), vec![kv(b"a", b"10"), kv(b"b", b"2")]);
    txn.flush().unwrap();
    assert_eq!(scan_all(&txn), vec![kv(b"a", b"10"), kv(b"b", b"2")]);
    // Writing again after a flush overrides the flushed version.
    txn.set(b"b", b"20".to_vec()).unwrap();
    assert_eq!(scan_all(&txn), vec![kv(b"a", b"10"), kv(b"b", b"20")]);
    txn.commit().unwrap();
    let reader = mvcc.begin_read_only().unwrap();
    assert_eq!(scan_all(&reader), vec![kv(b"a", b"10"), kv(b"b", b"20")]);
}

#[test]
fn snapshots_do_not_see_concurrent_or_later_commits() {
    let (mvcc, _) = memory();
    seed(&mvcc, &[(b"a", b"1")]);
    let reader = mvcc.begin_read_only().unwrap();
    let mut writer = mvcc.begin().unwrap();
    let early_rw = mvcc.begin().unwrap();
    writer.set(b"a", b"2".to_vec()).unwrap();
    writer.set(b"b", b"2".to_vec()).unwrap();
    writer.flush().unwrap();
    // In flight: invisible to everyone else, even once flushed.
    assert_eq!(reader.get(b"a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(early_rw.get(b"b").unwrap(), None);
    writer.commit().unwrap();
    // Committed after they began: still invisible to them.
    assert_eq!(scan_all(&reader), vec![kv(b"a", b"1")]);
    assert_eq!(early_rw.get(b"a").unwrap(), Some(b"1".to_vec()));
    // A new snapshot sees it.
    let later = mvcc.begin_read_only().unwrap();
    assert_eq!(scan_all(&later), vec![kv(b"a", b"2"), kv(b"b", b"2")]);
}

#[test]
fn write_write_conflicts_are_serialization_errors() {
    let (mvcc, _) = memory();
    seed(&mvcc, &[(b"a", b"0")]);
    let mut t1 = mvcc.begin().unwrap();
    let mut t2 = mvcc.begin().unwrap();
    t1.set(b"a", b"1".to_vec()).unwrap();
    t1.flush().unwrap();
    // t2 writes a key t1 has written and not committed.
    assert!(matches!(t2.set(b"a", b"2".to_vec()), Err(Error::Serialization(_))));
    t1.commit().unwrap();
    // Still a conflict after t1 committed: t1 is newer than t2's snapshot.
    assert!(matches!(t2.delete(b"a"), Err(Error::Serialization(_))));
    // Other keys are fine.
    t2.set(b"b", b"2".to_vec()).unwrap();
    t2.commit().unwrap();
    // A transaction beginning after t1's commit may write the key.
    let mut t3 = mvcc.begin().unwrap();
    t3.set(b"a", b"3".to_vec()).unwrap();
    t3.commit().unwrap();
}

#[test]
fn later_transaction_conflicts_with_earlier_flushed_write() {
    let (mvcc, _) = memory();
    let mut t1 = mvcc.begin().unwrap();
    let mut t2 = mvcc.begin().unwrap();
    t2.set(b"k", b"2".to_vec()).unwrap();
    t2.flush().unwrap();
    // t1 is older, but t2's in-flight version is newer than t1's snapshot.
    assert!(matches!(t1.set(b"k", b"1".to_vec()), Err(Error::Serialization(_))));
}

#[test]
fn rollback_removes_flushed_and_buffered_writes() {
    let (mvcc, engine) = memory();
    seed(&mvcc, &[(b"a", b"1")]);
    let before = engine.dump();
    let mut txn = mvcc.begin().unwrap();
    txn.set(b"a", b"2".to_vec()).unwrap();
    txn.set(b"b", b"2".to_vec()).unwrap();
    txn.flush().unwrap();
    txn.delete(b"a").unwrap();
    txn.rollback().unwrap();
    let reader = mvcc.begin_read_only().unwrap();
    assert_eq!(scan_all(&reader), vec![kv(b"a", b"1")]);
    // Nothing of the transaction is left but the version counter.
    let after: Vec<_> =
        engine.dump().into_iter().filter(|(k, _)| k[0] != tag::NEXT_VERSION).collect();
    let before: Vec<_> = before.into_iter().filter(|(k, _)| k[0] != tag::NEXT_VERSION).collect();
    assert_eq!(after, before);
    // The key is writable again by a new transaction.
    let mut again = mvcc.begin().unwrap();
    again.set(b"a", b"3".to_vec()).unwrap();
    again.commit().unwrap();
}

#[test]
fn dropping_a_transaction_rolls_it_back() {
    let (mvcc, _) = memory();
    {
        let mut txn = mvcc.begin().unwrap();
        txn.set(b"a", b"1".to_vec()).unwrap();
        txn.flush().unwrap();
    }
    assert!(mvcc.active_versions().is_empty());
    assert_eq!(mvcc.begin_read_only().unwrap().get(b"a").unwrap(), None);
}

#[test]
fn read_only_transactions_cannot_write() {
    let (mvcc, _) = memory();
    let mut txn = mvcc.begin_read_only().unwrap();
    assert_eq!(txn.set(b"a", vec![]), Err(Error::ReadOnly));
    assert_eq!(txn.delete(b"a"), Err(Error::ReadOnly));
    assert_eq!(txn.set_unversioned(b"a", vec![]), Err(Error::ReadOnly));
}

#[test]
fn in_flight_transactions_survive_reopen_and_can_be_rolled_back() {
    let engine = MemoryEngine::new();
    let mvcc = Mvcc::open(Arc::new(engine.clone())).unwrap();
    seed(&mvcc, &[(b"committed", b"1")]);
    let mut txn = mvcc.begin().unwrap();
    let version = txn.version();
    txn.set(b"in-flight", b"1".to_vec()).unwrap();
    txn.flush().unwrap();
    // Simulate a crash: the transaction is neither committed nor rolled back.
    std::mem::forget(txn);

    let mvcc = Mvcc::open(Arc::new(engine)).unwrap();
    assert_eq!(mvcc.active_versions(), BTreeSet::from([version]));
    // Resuming gives back the transaction with its writes.
    let state = mvcc.load_state(version).unwrap();
    let resumed = mvcc.resume(state).unwrap();
    assert_eq!(resumed.get(b"in-flight").unwrap(), Some(b"1".to_vec()));
    std::mem::forget(resumed);
    assert_eq!(mvcc.rollback_in_flight().unwrap(), vec![version]);
    assert!(mvcc.active_versions().is_empty());
    let reader = mvcc.begin_read_only().unwrap();
    assert_eq!(scan_all(&reader), vec![kv(b"committed", b"1")]);
    // New versions continue above the old ones.
    assert!(mvcc.begin().unwrap().version() > version);
}

#[test]
fn sled_store_reopens_with_its_data_and_counter() {
    let dir = tempfile::tempdir().unwrap();
    let version = {
        let mvcc = Mvcc::open(Arc::new(SledEngine::open(dir.path()).unwrap())).unwrap();
        let version = seed(&mvcc, &[(b"a", b"1")]);
        mvcc.engine().flush().unwrap();
        version
    };
    let mvcc = Mvcc::open(Arc::new(SledEngine::open(dir.path()).unwrap())).unwrap();
    assert_eq!(mvcc.begin_read_only().unwrap().get(b"a").unwrap(), Some(b"1".to_vec()));
    assert!(mvcc.begin().unwrap().version() > version);
}

#[test]
fn unflushed_work_leaves_nothing_behind_after_a_crash() {
    let (mvcc, engine) = memory();
    let mut txn = mvcc.begin().unwrap();
    txn.set(b"a", b"1".to_vec()).unwrap();
    std::mem::forget(txn);
    let reopened = Mvcc::open(Arc::new(engine.clone())).unwrap();
    assert!(reopened.active_versions().is_empty());
    assert!(engine.dump().is_empty());
}

#[test]
fn as_of_reads_see_what_that_version_saw_when_it_began() {
    let (mvcc, _) = memory();
    let v1 = seed(&mvcc, &[(b"a", b"1")]);
    let mut slow = mvcc.begin().unwrap(); // in flight while v3 begins and commits
    let v3 = seed(&mvcc, &[(b"a", b"2")]);
    slow.set(b"s", b"1".to_vec()).unwrap();
    slow.commit().unwrap();
    let v4 = seed(&mvcc, &[(b"a", b"3")]);

    assert_eq!(scan_all(&mvcc.begin_as_of(v1).unwrap()), vec![]);
    assert_eq!(scan_all(&mvcc.begin_as_of(v1 + 1).unwrap()), vec![kv(b"a", b"1")]);
    // When v3 began the slow transaction (v2) was in flight: its write is not in that view,
    // although its version is lower.
    assert_eq!(scan_all(&mvcc.begin_as_of(v3).unwrap()), vec![kv(b"a", b"1")]);
    assert_eq!(scan_all(&mvcc.begin_as_of(v4).unwrap()), vec![kv(b"a", b"2"), kv(b"s", b"1")]);
    assert_eq!(scan_all(&mvcc.begin_as_of(v4 + 1).unwrap()), vec![kv(b"a", b"3"), kv(b"s", b"1")]);
    assert!(matches!(mvcc.begin_as_of(1_000), Err(Error::InvalidTransaction(_))));
    let in_flight = mvcc.begin().unwrap();
    assert!(matches!(mvcc.begin_as_of(in_flight.version()), Err(Error::InvalidTransaction(_))));
}

#[test]
fn scans_respect_ranges_and_prefixes() {
    let (mvcc, _) = memory();
    seed(&mvcc, &[(b"a", b"1"), (b"b", b"2"), (b"ba", b"3"), (b"c", b"4")]);
    let mut txn = mvcc.begin().unwrap();
    txn.set(b"bb", b"5".to_vec()).unwrap();
    txn.delete(b"b").unwrap();
    let prefix: Vec<_> = txn.scan_prefix(b"b").collect::<Result<_>>().unwrap();
    assert_eq!(prefix, vec![kv(b"ba", b"3"), kv(b"bb", b"5")]);
    let range: Vec<_> = txn
        .scan((Bound::Excluded(b"a".to_vec()), Bound::Included(b"bb".to_vec())))
        .collect::<Result<_>>()
        .unwrap();
    assert_eq!(range, vec![kv(b"ba", b"3"), kv(b"bb", b"5")]);
    let upto_c: Vec<_> = txn
        .scan((Bound::Unbounded, Bound::Excluded(b"c".to_vec())))
        .collect::<Result<_>>()
        .unwrap();
    assert_eq!(upto_c.len(), 3);
}

#[test]
fn keys_with_zero_bytes_and_prefixes_of_each_other_stay_apart() {
    let (mvcc, _) = memory();
    let keys: [&[u8]; 5] = [b"", b"\x00", b"\x00\x00", b"\x00\xff", b"\x01"];
    for (i, key) in keys.iter().enumerate() {
        seed(&mvcc, &[(key, &[i as u8])]);
    }
    let txn = mvcc.begin_read_only().unwrap();
    let got: Vec<_> = scan_all(&txn).into_iter().map(|(k, _)| k).collect();
    assert_eq!(got, keys.iter().map(|k| k.to_vec()).collect::<Vec<_>>());
    assert_eq!(txn.get(b"\x00").unwrap(), Some(vec![1]));
}

#[test]
fn write_latch_rejects_interleaved_unflushed_writes() {
    let (mvcc, _) = memory();
    let mut t1 = mvcc.begin().unwrap();
    let mut t2 = mvcc.begin().unwrap();
    t1.set(b"a", vec![]).unwrap();
    assert!(matches!(t2.set(b"b", vec![]), Err(Error::InvalidTransaction(_))));
    t1.flush().unwrap();
    t2.set(b"b", vec![]).unwrap();
    t2.commit().unwrap();
    t1.commit().unwrap();
}

#[test]
fn a_claimed_span_has_no_version_and_keeps_other_writers_out() {
    let (mvcc, _) = memory();
    seed(&mvcc, &[(b"b", b"1"), (b"d", b"2")]);
    let mut gone = mvcc.begin().unwrap();
    gone.delete(b"d").unwrap();
    gone.commit().unwrap();
    let mut txn = mvcc.begin().unwrap();
    assert!(!txn.claim_unwritten(b"a", b"c").unwrap(), "b has a version");
    assert!(!txn.claim_unwritten(b"c", b"e").unwrap(), "d's tombstone is a version");
    assert!(!txn.claim_unwritten(b"c", b"a").unwrap(), "a backwards span claims nothing");
    assert!(txn.claim_unwritten(b"e", b"g").unwrap());
    // Until the claim's writes are flushed, no one else writes.
    let mut other = mvcc.begin().unwrap();
    assert!(matches!(other.set(b"f", vec![]), Err(Error::InvalidTransaction(_))));
    txn.write_fresh(b"e", b"3".to_vec()).unwrap();
    assert!(!txn.claim_unwritten(b"e", b"f").unwrap(), "its own unflushed write counts");
    txn.flush().unwrap();
    other.set(b"f", vec![]).unwrap();
    other.commit().unwrap();
    // A claim that writes nothing lets go of the latch at the flush.
    let mut idle = mvcc.begin().unwrap();
    assert!(idle.claim_unwritten(b"x", b"z").unwrap());
    idle.flush().unwrap();
    let mut next = mvcc.begin().unwrap();
    next.set(b"y", vec![]).unwrap();
    next.commit().unwrap();
    txn.commit().unwrap();
}

#[test]
fn exclusive_lock_excludes_other_writers() {
    let (mvcc, engine) = memory();
    let other = mvcc.begin().unwrap();
    let mut ddl = mvcc.begin().unwrap();
    assert!(matches!(ddl.lock_exclusive(), Err(Error::Serialization(_))));
    other.commit().unwrap();
    ddl.lock_exclusive().unwrap();
    ddl.flush().unwrap();
    assert!(matches!(mvcc.begin(), Err(Error::Serialization(_))));
    // Read-only transactions are unaffected.
    mvcc.begin_read_only().unwrap();
    // The lock is persisted with the transaction and restored on reopen.
    let reopened = Mvcc::open(Arc::new(engine.clone())).unwrap();
    assert!(matches!(reopened.begin(), Err(Error::Serialization(_))));
    ddl.commit().unwrap();
    mvcc.begin().unwrap();
}

#[test]
fn unversioned_values_follow_the_transaction_batches() {
    let (mvcc, _) = memory();
    let mut txn = mvcc.begin().unwrap();
    txn.set_unversioned(b"counter", vec![7]).unwrap();
    assert_eq!(txn.get_unversioned(b"counter").unwrap(), Some(vec![7]));
    txn.rollback().unwrap();
    let mut txn = mvcc.begin().unwrap();
    assert_eq!(txn.get_unversioned(b"counter").unwrap(), None);
    txn.set_unversioned(b"counter", vec![8]).unwrap();
    txn.commit().unwrap();
    assert_eq!(mvcc.begin_read_only().unwrap().get_unversioned(b"counter").unwrap(), Some(vec![8]));
}

/// Runs the same history on an engine and garbage-collects at the end.
fn gc_history(engine: MemoryEngine) -> (Mvcc, Version) {
    let mvcc = Mvcc::open(Arc::new(engine)).unwrap();
    for round in 0..5u8 {
        seed(&mvcc, &[(b"a", &[round]), (b"b", &[round])]);
    }
    let mut txn = mvcc.begin().unwrap();
    txn.delete(b"b").unwrap();
    txn.set(b"c", vec![1]).unwrap();
    txn.commit().unwrap();
    let horizon = mvcc.begin_read_only().unwrap().version();
    seed(&mvcc, &[(b"a", b"new")]);
    (mvcc, horizon)
}

#[test]
fn gc_removes_invisible_versions_only() {
    let engine = MemoryEngine::new();
    let (mvcc, horizon) = gc_history(engine.clone());
    let old_reader = mvcc.begin_as_of(2).unwrap();
    let at_horizon_before = scan_all(&mvcc.begin_as_of(horizon).unwrap());
    let now_before = scan_all(&mvcc.begin_read_only().unwrap());
    let versions_before = engine.dump().iter().filter(|(k, _)| k[0] == tag::VERSION).count();

    let stats = mvcc.gc(horizon).unwrap();
    assert_eq!(stats.horizon, horizon);
    let versions_after = engine.dump().iter().filter(|(k, _)| k[0] == tag::VERSION).count();
    // a: 5 rounds + 1 newer → newest below horizon and the newer one remain; b: 5 rounds and a
    // tombstone → all gone; c: one version remains.
    assert_eq!(versions_before, 13);
    assert_eq!(versions_after, 3);
    assert_eq!(stats.deleted, 10);
    // Snapshots at or above the horizon read exactly what they read before.
    assert_eq!(scan_all(&mvcc.begin_as_of(horizon).unwrap()), at_horizon_before);
    assert_eq!(scan_all(&mvcc.begin_read_only().unwrap()), now_before);
    // Older snapshots now fail instead of reading a partial past.
    assert!(matches!(old_reader.get(b"a"), Err(Error::SnapshotTooOld { .. })));
    assert!(matches!(mvcc.begin_as_of(2), Err(Error::SnapshotTooOld { .. })));
    // The horizon is persisted.
    let reopened = Mvcc::open(Arc::new(engine)).unwrap();
    assert_eq!(reopened.status().gc_horizon, horizon);
}

#[test]
fn gc_is_deterministic_and_clamped_by_in_flight_transactions() {
    let (one, two) = (MemoryEngine::new(), MemoryEngine::new());
    let (mvcc_one, horizon) = gc_history(one.clone());
    let (mvcc_two, _) = gc_history(two.clone());
    // A local reader on one replica does not change what gc deletes.
    let _reader = mvcc_one.begin_read_only().unwrap();
    mvcc_one.gc(horizon).unwrap();
    mvcc_two.gc(horizon).unwrap();
    assert_eq!(one.dump(), two.dump());

    // An in-flight read-write transaction clamps the horizon to its version.
    let (mvcc, _) = memory();
    seed(&mvcc, &[(b"a", b"1")]);
    let mut pinned = mvcc.begin().unwrap();
    seed(&mvcc, &[(b"a", b"2")]);
    let stats = mvcc.gc(Version::MAX).unwrap();
    assert_eq!(stats.horizon, pinned.version());
    assert_eq!(pinned.get(b"a").unwrap(), Some(b"1".to_vec()));
    pinned.set(b"z", vec![]).unwrap();
    pinned.commit().unwrap();
}

#[test]
fn oldest_visible_version_tracks_readers() {
    let (mvcc, _) = memory();
    seed(&mvcc, &[(b"a", b"1")]);
    let reader = mvcc.begin_read_only().unwrap();
    seed(&mvcc, &[(b"a", b"2")]);
    assert_eq!(mvcc.oldest_visible_version(), reader.version());
    mvcc.gc(mvcc.oldest_visible_version()).unwrap();
    assert_eq!(reader.get(b"a").unwrap(), Some(b"1".to_vec()));
    drop(reader);
    assert!(mvcc.oldest_visible_version() > 2);
    assert_eq!(mvcc.status().readers, 0);
}

#[test]
fn a_read_checks_conflicts_for_the_next_write_only_until_someone_else_writes() {
    let (mvcc, _) = memory();
    seed(&mvcc, &[(b"k", b"0")]);
    // Read, then write in the same "statement": the write relies on the read's check.
    let mut t1 = mvcc.begin().unwrap();
    assert_eq!(t1.get(b"k").unwrap(), Some(b"0".to_vec()));
    t1.set(b"k", b"1".to_vec()).unwrap();
    t1.commit().unwrap();

    // Read, then another transaction commits the key, then write: the check is stale and the
    // write must still conflict.
    let mut t2 = mvcc.begin().unwrap();
    assert_eq!(t2.get(b"k").unwrap(), Some(b"1".to_vec()));
    let mut t3 = mvcc.begin().unwrap();
    t3.set(b"k", b"3".to_vec()).unwrap();
    t3.commit().unwrap();
    assert!(matches!(t2.set(b"k", b"2".to_vec()), Err(Error::Serialization(_))));

    // A key the read found absent, written by another transaction meanwhile: conflict too.
    let mut t4 = mvcc.begin().unwrap();
    assert_eq!(t4.get(b"new").unwrap(), None);
    seed(&mvcc, &[(b"new", b"x")]);
    assert!(matches!(t4.set(b"new", b"y".to_vec()), Err(Error::Serialization(_))));
}

#[test]
fn a_conflicting_write_does_not_keep_other_writers_out() {
    let (mvcc, _) = memory();
    seed(&mvcc, &[(b"k", b"0")]);
    let mut loser = mvcc.begin().unwrap();
    seed(&mvcc, &[(b"k", b"1")]);
    assert!(matches!(loser.set(b"k", b"2".to_vec()), Err(Error::Serialization(_))));
    // The loser is still open but has nothing buffered: others can write.
    seed(&mvcc, &[(b"other", b"x")]);
    drop(loser);
}

#[test]
fn a_view_reads_like_its_transaction_and_changes_nothing() {
    let (mvcc, engine) = memory();
    seed(&mvcc, &[(b"a", b"1")]);
    let mut txn = mvcc.begin().unwrap();
    txn.set(b"a", b"2".to_vec()).unwrap();
    txn.set(b"b", b"2".to_vec()).unwrap();
    txn.flush().unwrap();
    // A later commit by someone else is invisible to the transaction, and so to its view.
    seed(&mvcc, &[(b"c", b"3")]);
    let before = engine.dump();
    let mut view = mvcc.view(txn.version()).unwrap();
    assert_eq!(scan_all(&view), vec![kv(b"a", b"2"), kv(b"b", b"2")]);
    assert_eq!(view.set(b"x", vec![]), Err(Error::ReadOnly));
    assert!(view.lock_exclusive().is_err());
    assert!(view.commit().is_err());
    let view = mvcc.view(txn.version()).unwrap();
    drop(view);
    assert_eq!(engine.dump(), before, "a view never writes, not even when dropped");
    assert!(mvcc.active_versions().contains(&txn.version()));
    txn.commit().unwrap();
    assert!(mvcc.view(1).is_err(), "only in-flight transactions have views");
}

#[test]
fn a_read_only_snapshot_reopens_from_its_state_on_a_replica() {
    let (mvcc, engine) = memory();
    seed(&mvcc, &[(b"a", b"1")]);
    let mut in_flight = mvcc.begin().unwrap();
    in_flight.set(b"b", b"2".to_vec()).unwrap();
    in_flight.flush().unwrap();
    let reader = mvcc.begin_read_only().unwrap();
    let state = reader.state().clone();
    in_flight.commit().unwrap();
    seed(&mvcc, &[(b"c", b"3")]);
    // A replica with the same data reopens the snapshot from its state alone.
    let replica = Mvcc::open(Arc::new(MemoryEngine::from_dump(engine.dump()))).unwrap();
    let reopened = replica.begin_read_only_at(state.clone()).unwrap();
    assert_eq!(scan_all(&reopened), vec![kv(b"a", b"1")]);
    assert_eq!(scan_all(&reopened), scan_all(&reader));
    assert!(replica.begin_read_only_at(TransactionState { read_only: false, ..state }).is_err());
    let future = TransactionState { version: 1_000, read_only: true, active: BTreeSet::new() };
    assert!(replica.begin_read_only_at(future).is_err());
}

#[test]
fn the_counter_is_persisted_even_when_no_batch_carried_it() {
    let (mvcc, engine) = memory();
    mvcc.begin().unwrap().rollback().unwrap();
    mvcc.begin().unwrap().commit().unwrap();
    assert_eq!(Mvcc::open(Arc::new(engine.clone())).unwrap().status().next_version, 1);
    mvcc.persist_counter().unwrap();
    let reopened = Mvcc::open(Arc::new(engine)).unwrap();
    assert_eq!(reopened.status().next_version, 3);
}

/// Issue 12, item 1: a transaction's snapshot needs the versions its in-flight set hides, so
/// garbage collection must keep the newest version below the oldest of them.
#[test]
fn gc_keeps_what_an_in_flight_set_hides() {
    let (mvcc, _) = memory();
    seed(&mvcc, &[(b"row", b"old")]);
    // A updates the row and stays open; B begins with A in its in-flight set; A commits.
    let mut a = mvcc.begin().unwrap();
    a.set(b"row", b"new".to_vec()).unwrap();
    a.flush().unwrap();
    let mut b = mvcc.begin().unwrap();
    assert!(b.state().active.contains(&a.version()));
    a.commit().unwrap();
    // The leader's horizon may be anything; apply clamps it.
    let stats = mvcc.gc(Version::MAX).unwrap();
    assert!(stats.horizon <= b.state().active.first().copied().unwrap());
    // B still reads its snapshot's value, and writing the row conflicts with A.
    assert_eq!(b.get(b"row").unwrap(), Some(b"old".to_vec()));
    assert!(matches!(b.set(b"row", b"mine".to_vec()), Err(Error::Serialization(_))));
    b.rollback().unwrap();

    // The same holds for a read-only snapshot that began while A' was in flight.
    let mut a2 = mvcc.begin().unwrap();
    a2.set(b"row", b"newer".to_vec()).unwrap();
    a2.flush().unwrap();
    let reader = mvcc.begin_read_only().unwrap();
    a2.commit().unwrap();
    let state = reader.state().clone();
    let horizon = mvcc.begin_read_only().unwrap().version();
    mvcc.gc(horizon).unwrap();
    // Either the reader still sees its value, or it is told its snapshot is gone: never a
    // partial past.
    match reader.get(b"row") {
        Ok(value) => assert_eq!(value, Some(b"new".to_vec())),
        Err(error) => assert!(matches!(error, Error::SnapshotTooOld { .. }), "{error}"),
    }
    assert!(matches!(mvcc.begin_read_only_at(state), Err(Error::SnapshotTooOld { .. })));
}

#[test]
fn gc_reads_what_was_written_since_not_the_whole_data() {
    let (mvcc, engine) = memory();
    let mut load = mvcc.begin().unwrap();
    for i in 0..1000u16 {
        load.set(&i.to_be_bytes(), vec![1]).unwrap();
    }
    load.commit().unwrap();
    let mut change = mvcc.begin().unwrap();
    for i in 0..10u16 {
        change.set(&i.to_be_bytes(), vec![2]).unwrap();
    }
    for i in 10..15u16 {
        change.delete(&i.to_be_bytes()).unwrap();
    }
    change.commit().unwrap();
    let stats = mvcc.gc(Version::MAX).unwrap();
    // One record per changed row, not one read per stored version.
    assert_eq!(stats.scanned, 15);
    // The ten replaced versions, and the five deleted rows' versions and tombstones.
    assert_eq!(stats.deleted, 20);
    let count = |t: u8| engine.dump().iter().filter(|(k, _)| k[0] == t).count();
    assert_eq!(count(tag::VERSION), 995);
    assert_eq!(count(tag::SUPERSEDED), 0, "records below the horizon go with what they mark");
    assert_eq!(mvcc.gc(Version::MAX).unwrap().scanned, 0, "a second pass has nothing to read");
}

/// What a full scan of the versions keeps at `horizon`: every version at or above it, and for
/// each key the newest below it unless that is a tombstone.
fn kept_by_full_scan(dump: &[(Vec<u8>, Vec<u8>)], horizon: Version) -> Vec<Vec<u8>> {
    let versions: Vec<_> = dump.iter().filter(|(k, _)| k[0] == tag::VERSION).collect();
    let mut kept = Vec::new();
    for (i, (key, stored)) in versions.iter().enumerate() {
        let (prefix, version) = split_version_key(key).unwrap();
        let next_below = versions.get(i + 1).map(|(next, _)| split_version_key(next).unwrap());
        let newest_below = !matches!(next_below, Some((p, v)) if p == prefix && v < horizon);
        if version >= horizon || (newest_below && !keys::is_tombstone(stored)) {
            kept.push(key.clone());
        }
    }
    kept
}

/// Random interleavings of transactions that write, flush, commit and roll back: a pass at
/// any horizon deletes exactly what a full scan would, and reads stay the same.
#[test]
fn gc_by_records_deletes_exactly_what_a_full_scan_would() {
    for seed in 1..60u64 {
        let (mvcc, engine) = memory();
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut random = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let mut open: Vec<Transaction> = Vec::new();
        for step in 0..300u32 {
            match random(8) {
                0 | 1 if open.len() < 3 => open.push(mvcc.begin().unwrap()),
                2..=4 if !open.is_empty() => {
                    let i = random(open.len() as u64) as usize;
                    let key = [b'k', random(4) as u8];
                    if random(2) == 0 {
                        open[i].get(&key).unwrap(); // a read first, as UPDATE does
                    }
                    let value = step.to_be_bytes().to_vec();
                    let written = match random(6) {
                        0 => open[i].delete(&key),
                        1 => open[i].write_covered(&key, Some(value)),
                        2 => open[i].write_covered(&key, None),
                        3 => open[i].write_fresh(&[b'f', step as u8, (step >> 8) as u8], value),
                        _ => open[i].set(&key, value),
                    };
                    if written.is_err() {
                        open.swap_remove(i).rollback().unwrap();
                    } else {
                        match random(4) {
                            0 | 1 => open[i].flush().unwrap(),
                            2 => open[i].discard_pending(), // a failed statement
                            _ => {}
                        }
                    }
                }
                5 if !open.is_empty() => {
                    let i = random(open.len() as u64) as usize;
                    match random(3) {
                        0 => open.swap_remove(i).rollback().unwrap(),
                        _ => open.swap_remove(i).commit().unwrap(),
                    }
                }
                6 => {
                    let next = mvcc.status().next_version;
                    let before = engine.dump();
                    let reads_before = scan_all(&mvcc.begin_read_only().unwrap());
                    let stats = mvcc.gc(1 + random(next)).unwrap();
                    let after = engine.dump();
                    let versions_after: Vec<_> = after
                        .iter()
                        .filter(|(k, _)| k[0] == tag::VERSION)
                        .map(|(k, _)| k.clone())
                        .collect();
                    assert_eq!(
                        versions_after,
                        kept_by_full_scan(&before, stats.horizon),
                        "seed {seed} step {step}"
                    );
                    assert_eq!(scan_all(&mvcc.begin_read_only().unwrap()), reads_before);
                    let stale = versioned_tag_key(tag::SUPERSEDED, stats.horizon);
                    assert!(
                        !after.iter().any(|(k, _)| k[0] == tag::SUPERSEDED && *k < stale),
                        "seed {seed} step {step}: a record below the horizon survived"
                    );
                }
                _ => {}
            }
        }
    }
}

/// An engine that remembers the largest batch written to it.
struct LargestBatch(MemoryEngine, std::sync::atomic::AtomicUsize);

impl Engine for LargestBatch {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.0.get(key)
    }
    fn set(&self, key: &[u8], value: Vec<u8>) -> Result<()> {
        self.0.set(key, value)
    }
    fn delete(&self, key: &[u8]) -> Result<()> {
        self.0.delete(key)
    }
    fn scan(&self, range: (Bound<Vec<u8>>, Bound<Vec<u8>>)) -> crate::storage::ScanIterator<'_> {
        self.0.scan(range)
    }
    fn write(&self, batch: WriteBatch) -> Result<()> {
        self.1.fetch_max(batch.len(), Ordering::Relaxed);
        self.0.write(batch)
    }
    fn flush(&self) -> Result<()> {
        self.0.flush()
    }
    fn status(&self) -> Result<crate::storage::Status> {
        self.0.status()
    }
}

#[test]
fn gc_of_a_key_written_many_times_goes_in_bounded_batches() {
    let engine = Arc::new(LargestBatch(MemoryEngine::new(), Default::default()));
    let mvcc = Mvcc::open(engine.clone()).unwrap();
    let writes = 3 * GC_BATCH;
    for i in 0..writes {
        seed(&mvcc, &[(b"hot", &i.to_be_bytes())]);
    }
    engine.1.store(0, Ordering::Relaxed);
    let stats = mvcc.gc(Version::MAX).unwrap();
    assert_eq!(stats.deleted, writes as u64 - 1);
    assert!(engine.1.load(Ordering::Relaxed) <= GC_BATCH, "one batch held every version");
    let txn = mvcc.begin_read_only().unwrap();
    assert_eq!(txn.get(b"hot").unwrap(), Some((writes - 1).to_be_bytes().to_vec()));
}

#[test]
fn an_inverted_range_holds_nothing_also_over_pending_writes() {
    let (mvcc, _) = memory();
    let mut txn = mvcc.begin().unwrap();
    txn.set(b"b", vec![1]).unwrap();
    let range =
        (std::ops::Bound::Excluded(b"c".to_vec()), std::ops::Bound::Excluded(b"a".to_vec()));
    assert_eq!(txn.scan(range).count(), 0);
    let range =
        (std::ops::Bound::Excluded(b"b".to_vec()), std::ops::Bound::Excluded(b"b".to_vec()));
    assert_eq!(txn.scan(range).count(), 0);
}

#[test]
fn a_reversed_scan_yields_the_newest_visible_values_last_key_first() {
    let (mvcc, _) = memory();
    let mut txn = mvcc.begin().unwrap();
    for key in [b"a", b"b", b"c", b"d"] {
        txn.set(key, vec![1]).unwrap();
    }
    txn.commit().unwrap();
    let mut txn = mvcc.begin().unwrap();
    txn.set(b"b", vec![2]).unwrap();
    txn.delete(b"c").unwrap();
    txn.commit().unwrap();
    let reader = mvcc.begin_read_only().unwrap();
    let mut txn = mvcc.begin().unwrap();
    txn.set(b"a", vec![3]).unwrap(); // unflushed, merged in
    txn.set(b"e", vec![4]).unwrap();
    let all = (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded);
    let reversed: Vec<_> = txn.scan(all.clone()).rev().map(Result::unwrap).collect();
    let mut forward: Vec<_> = txn.scan(all.clone()).map(Result::unwrap).collect();
    forward.reverse();
    assert_eq!(reversed, forward);
    let keys: Vec<Vec<u8>> = reversed.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(keys, [b"e".to_vec(), b"d".to_vec(), b"b".to_vec(), b"a".to_vec()]);
    assert_eq!(reversed[2].1, vec![2], "b's newest version");
    // Another snapshot (before the unflushed writes) reversed too.
    let seen: Vec<(Vec<u8>, Vec<u8>)> = reader.scan(all).rev().map(Result::unwrap).collect();
    let expected = [(b"d".to_vec(), vec![1]), (b"b".to_vec(), vec![2]), (b"a".to_vec(), vec![1])];
    assert_eq!(seen, expected);
}
