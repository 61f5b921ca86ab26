//! Replica store tests: the engine suite through the overlay, merged scans against a model,
//! atomic commits, and views that stay at their moment while commits go on.

use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

crate::storage::test_suite::engine_tests!(ReplicaStore::memory());

/// The same suite when every write is committed at once (the base serves the reads).
mod committed {
    use super::*;

    /// A store that commits after every write, seen as an engine.
    struct Committing(ReplicaStore);

    impl Engine for Committing {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
            self.0.get(key)
        }
        fn set(&self, key: &[u8], value: Vec<u8>) -> Result<()> {
            self.0.set(key, value)?;
            self.0.commit(WriteBatch::new())
        }
        fn delete(&self, key: &[u8]) -> Result<()> {
            self.0.delete(key)?;
            self.0.commit(WriteBatch::new())
        }
        fn scan(&self, range: (Bound<Vec<u8>>, Bound<Vec<u8>>)) -> ScanIterator<'_> {
            self.0.scan(range)
        }
        fn last(&self, range: (Bound<Vec<u8>>, Bound<Vec<u8>>)) -> Result<Option<KeyValue>> {
            self.0.last(range)
        }
        fn write(&self, batch: WriteBatch) -> Result<()> {
            self.0.write(batch)?;
            self.0.commit(WriteBatch::new())
        }
        fn flush(&self) -> Result<()> {
            self.0.flush()
        }
        fn status(&self) -> Result<Status> {
            self.0.status()
        }
    }

    crate::storage::test_suite::engine_tests!(Committing(ReplicaStore::memory()));
}

/// A store on disk as a node opens it (redb, undo tables in the same database).
fn disk_store() -> (ReplicaStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (crate::storage::RedbEngine::replica_store(dir.path()).unwrap(), dir)
}

fn key(i: u8) -> Vec<u8> {
    vec![b'k', i]
}

#[derive(Clone, Debug)]
enum Op {
    Set(u8, u8),
    Delete(u8),
    Commit,
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            3 => (0u8..24, any::<u8>()).prop_map(|(k, v)| Op::Set(k, v)),
            2 => (0u8..24).prop_map(Op::Delete),
            1 => Just(Op::Commit),
        ],
        0..60,
    )
}

fn apply(store: &ReplicaStore, model: &mut BTreeMap<Vec<u8>, Vec<u8>>, op: &Op) {
    match op {
        Op::Set(k, v) => {
            store.set(&key(*k), vec![*v; (*v % 5) as usize]).unwrap();
            model.insert(key(*k), vec![*v; (*v % 5) as usize]);
        }
        Op::Delete(k) => {
            store.delete(&key(*k)).unwrap();
            model.remove(&key(*k));
        }
        Op::Commit => store.commit(WriteBatch::new()).unwrap(),
    }
}

proptest! {
    /// Reads through the overlay match a model, from either end and both ends at once.
    #[test]
    fn merged_scans_match_a_model(ops in ops(), pattern in prop::collection::vec(any::<bool>(), 0..40)) {
        let store = ReplicaStore::memory();
        let mut model = BTreeMap::new();
        for op in &ops {
            apply(&store, &mut model, op);
        }
        let expected: Vec<KeyValue> = model.clone().into_iter().collect();
        let all = || store.scan((Bound::Unbounded, Bound::Unbounded));
        prop_assert_eq!(all().collect::<Result<Vec<_>>>().unwrap(), expected.clone());
        let mut reversed: Vec<KeyValue> = all().rev().collect::<Result<_>>().unwrap();
        reversed.reverse();
        prop_assert_eq!(reversed, expected.clone());
        // Alternate ends as the pattern says: every pair once, nothing else.
        let mut iter = all();
        let (mut front, mut back) = (Vec::new(), Vec::new());
        for from_front in pattern.iter().chain(std::iter::repeat_n(&true, expected.len() + 1)) {
            let item = if *from_front { iter.next() } else { iter.next_back() };
            match item {
                Some(pair) if *from_front => front.push(pair.unwrap()),
                Some(pair) => back.push(pair.unwrap()),
                None => break,
            }
        }
        back.reverse();
        front.extend(back);
        prop_assert_eq!(front, expected.clone());
        for (k, v) in &model {
            prop_assert_eq!(store.get(k).unwrap(), Some(v.clone()));
        }
        // The newest key at or below each key, through overlay deletions and commits.
        for i in 0..25 {
            let upto = (Bound::Unbounded, Bound::Included(key(i)));
            let expected = model.range(upto.clone()).next_back().map(|(k, v)| (k.clone(), v.clone()));
            prop_assert_eq!(store.last(upto).unwrap(), expected);
        }
    }

    /// A view reads the state of its moment, in chunks of any size, while commits change
    /// (overwrite, delete, create) the keys it has and has not read yet.
    #[test]
    fn a_view_keeps_its_moment_while_commits_go_on(
        before in ops(),
        after in prop::collection::vec(ops(), 1..6),
        chunk in 1usize..12,
    ) {
        let store = ReplicaStore::memory();
        let mut model = BTreeMap::new();
        for op in &before {
            apply(&store, &mut model, op);
        }
        store.commit(WriteBatch::new()).unwrap();
        let expected: Vec<KeyValue> = model.clone().into_iter().collect();
        let view = store.snapshot().unwrap();
        let mut read = Vec::new();
        let mut rounds = after.into_iter();
        loop {
            if let Some(round) = rounds.next() {
                for op in &round {
                    apply(&store, &mut model, op);
                }
                store.commit(WriteBatch::new()).unwrap();
            }
            let last = read.last().map(|(k, _): &KeyValue| k.clone());
            let pairs = view.read(last.as_deref(), chunk).unwrap();
            if pairs.is_empty() {
                break;
            }
            read.extend(pairs);
        }
        prop_assert_eq!(read, expected);
        // The store itself moved on.
        let now: Vec<KeyValue> = store.scan((Bound::Unbounded, Bound::Unbounded)).collect::<Result<_>>().unwrap();
        prop_assert_eq!(now, model.into_iter().collect::<Vec<_>>());
    }
}

#[test]
fn a_commit_is_one_batch_with_its_extra_writes() {
    let store = ReplicaStore::memory();
    store.set(b"a", b"1".to_vec()).unwrap();
    store.delete(b"b").unwrap();
    assert_eq!(store.base().get(b"a").unwrap(), None, "nothing reaches the base before commit");
    assert!(store.has_uncommitted());
    let waiting = store.uncommitted_bytes();
    assert!(waiting >= 3, "the writes waiting are counted: {waiting}");
    assert!(store.snapshot().is_err(), "no view in the middle of an entry");
    let mut extra = WriteBatch::new();
    extra.set(b"applied".to_vec(), b"7".to_vec());
    store.commit(extra).unwrap();
    assert!(!store.has_uncommitted());
    assert_eq!(store.uncommitted_bytes(), 0);
    assert_eq!(store.base().get(b"a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(store.base().get(b"applied").unwrap(), Some(b"7".to_vec()));
    assert_eq!(store.get(b"applied").unwrap(), Some(b"7".to_vec()));
}

#[test]
fn views_on_disk_keep_their_moment_and_release_their_undo_table() {
    let (store, _dir) = disk_store();
    for i in 0..200u8 {
        store.set(&key(i), vec![i; 100]).unwrap();
    }
    store.commit(WriteBatch::new()).unwrap();
    let view = store.snapshot().unwrap();
    let second = store.snapshot().unwrap();
    let mut read = Vec::new();
    let mut round = 0u8;
    loop {
        // Every round rewrites, deletes and creates keys ahead of and behind the cursor.
        round = round.wrapping_add(1);
        store.set(&key(round.wrapping_mul(7)), vec![0xee]).unwrap();
        store.delete(&key(round.wrapping_mul(13))).unwrap();
        store.set(&[b'k', round, 0xff], vec![1]).unwrap();
        store.commit(WriteBatch::new()).unwrap();
        let last = read.last().map(|(k, _): &KeyValue| k.clone());
        let pairs = view.read(last.as_deref(), 1_000).unwrap();
        if pairs.is_empty() {
            break;
        }
        read.extend(pairs);
    }
    let expected: Vec<KeyValue> = (0..200u8).map(|i| (key(i), vec![i; 100])).collect();
    assert_eq!(read, expected);
    drop(view);
    // The second view, read in one go afterwards, saw the same moment.
    let all = second.read(None, usize::MAX).unwrap();
    assert_eq!(all, expected);
    drop(second);
    // Closed views keep nothing: commits no longer save pre-images.
    assert!(store.open_views().is_empty());
}

/// A reader that started before a commit finds every key it could see then, though the
/// commit moves the keys from the overlay to the base and the base's scans are snapshots
/// taken when they start (as redb's are).
#[test]
fn a_scan_across_a_commit_loses_no_key() {
    let (store, _dir) = disk_store();
    let pair = |i: u16| (i.to_be_bytes().to_vec(), vec![1]);
    for i in 0..100 {
        let (key, value) = pair(i);
        store.set(&key, value).unwrap();
    }
    store.commit(WriteBatch::new()).unwrap();
    // More keys than the overlay's scan cursor copies at once.
    for i in 100..2000 {
        let (key, value) = pair(i);
        store.set(&key, value).unwrap();
    }
    let mut scan = store.scan((Bound::Unbounded, Bound::Unbounded));
    let mut seen: Vec<KeyValue> = scan.by_ref().take(150).collect::<Result<_>>().unwrap();
    store.commit(WriteBatch::new()).unwrap();
    seen.extend(scan.collect::<Result<Vec<_>>>().unwrap());
    assert_eq!(seen, (0..2000).map(pair).collect::<Vec<_>>());
}
