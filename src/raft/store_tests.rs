//! Tests of the durable log: recovery, overwrites, torn tails, corruption and checkpoints.

use super::*;
use crate::raft::message::{Configuration, Payload};
use crate::raft::node::Ready;

fn entry(index: Index, term: u64) -> Entry {
    Entry { index, term, payload: Payload::Command(vec![index as u8; 10]) }
}

fn ready(entries: Vec<Entry>, hard_state: Option<HardState>) -> Ready {
    Ready { entries, hard_state, ..Ready::default() }
}

fn indexes(recovered: &Recovered) -> Vec<(Index, u64)> {
    recovered.entries.iter().map(|e| (e.index, e.term)).collect()
}

#[test]
fn recovers_entries_and_hard_state() {
    let disk = MemoryDisk::new();
    let (mut store, recovered) = LogStore::open(disk.clone()).unwrap();
    assert!(recovered.entries.is_empty());
    let hard_state = HardState { term: 3, vote: Some(2), commit: 2 };
    store.persist(&ready(vec![entry(1, 1), entry(2, 1), entry(3, 3)], Some(hard_state))).unwrap();
    let (_, recovered) = LogStore::open(disk).unwrap();
    assert_eq!(indexes(&recovered), vec![(1, 1), (2, 1), (3, 3)]);
    assert_eq!(recovered.hard_state, hard_state);
}

#[test]
fn an_entry_at_a_stored_index_replaces_the_suffix() {
    let disk = MemoryDisk::new();
    let (mut store, _) = LogStore::open(disk.clone()).unwrap();
    store.persist(&ready(vec![entry(1, 1), entry(2, 1), entry(3, 1), entry(4, 1)], None)).unwrap();
    store.persist(&ready(vec![entry(3, 2)], None)).unwrap();
    let (_, recovered) = LogStore::open(disk).unwrap();
    assert_eq!(indexes(&recovered), vec![(1, 1), (2, 1), (3, 2)]);
}

#[test]
fn unsynced_writes_are_lost_and_torn_tails_cut_at_every_length() {
    let base = MemoryDisk::new();
    let (mut store, _) = LogStore::open(base.clone()).unwrap();
    store
        .persist(&ready(
            vec![entry(1, 1), entry(2, 1)],
            Some(HardState { term: 1, vote: None, commit: 1 }),
        ))
        .unwrap();
    store
        .write(&ready(
            vec![entry(3, 1), entry(4, 1)],
            Some(HardState { term: 2, vote: Some(1), commit: 2 }),
        ))
        .unwrap();
    let unsynced = base.read(&base.list().unwrap()[0]).unwrap().len();
    drop(store);
    // Keep every possible prefix of the unsynced bytes: recovery must never fail and must give
    // back exactly the records that are whole.
    let mut seen = std::collections::BTreeSet::new();
    for keep in 0..=unsynced {
        let disk = MemoryDisk::new();
        {
            let (mut copy, _) = LogStore::open(disk.clone()).unwrap();
            copy.persist(&ready(
                vec![entry(1, 1), entry(2, 1)],
                Some(HardState { term: 1, vote: None, commit: 1 }),
            ))
            .unwrap();
            copy.write(&ready(
                vec![entry(3, 1), entry(4, 1)],
                Some(HardState { term: 2, vote: Some(1), commit: 2 }),
            ))
            .unwrap();
        }
        disk.crash(|_| keep);
        let (mut store, recovered) = LogStore::open(disk.clone()).unwrap();
        let got = indexes(&recovered);
        assert!(got.len() >= 2 && got.len() <= 4, "keep {keep}: {got:?}");
        assert_eq!(got[..2], [(1, 1), (2, 1)]);
        seen.insert(got.len());
        // The log stays appendable after the cut.
        let next = got.len() as Index + 1;
        store.persist(&ready(vec![entry(next, 5)], None)).unwrap();
        let (_, again) = LogStore::open(disk).unwrap();
        assert_eq!(again.entries.last().map(|e| (e.index, e.term)), Some((next, 5)));
    }
    assert_eq!(seen.len(), 3, "lost none, one or both of the unsynced entries");
}

#[test]
fn a_damaged_last_record_is_cut_but_damage_earlier_is_an_error() {
    let disk = MemoryDisk::new();
    let (mut store, _) = LogStore::open_with(disk.clone(), 200).unwrap();
    for i in 1..=20 {
        store.persist(&ready(vec![entry(i, 1)], None)).unwrap();
    }
    drop(store);
    let mut names = disk.list().unwrap();
    names.sort();
    assert!(names.len() > 2, "small segments roll");
    // Flip the last byte of the newest segment: its last record is cut.
    let last = names.last().unwrap().clone();
    let length = disk.read(&last).unwrap().len();
    disk.corrupt(&last, length - 1);
    let (_, recovered) = LogStore::open(disk.clone()).unwrap();
    assert_eq!(recovered.entries.last().map(|e| e.index), Some(19));
    // Damage in an older segment cannot be a torn write: refuse to start.
    disk.corrupt(&names[0], 30);
    assert!(matches!(LogStore::open(disk), Err(Error::Corrupt(_))));
}

#[test]
fn checkpoints_keep_the_tail_and_drop_old_segments() {
    let disk = MemoryDisk::new();
    let (mut store, _) = LogStore::open_with(disk.clone(), 300).unwrap();
    for i in 1..=30 {
        store
            .persist(&ready(
                vec![entry(i, 2)],
                Some(HardState { term: 2, vote: Some(1), commit: i }),
            ))
            .unwrap();
    }
    assert!(store.segment_count() > 3);
    let meta = SnapshotMeta { index: 25, term: 2, config: Configuration::voters([1, 2, 3]) };
    let kept: Vec<Entry> = (26..=30).map(|i| entry(i, 2)).collect();
    store
        .persist(&Ready { compact: Some(meta.clone()), entries: kept, ..Ready::default() })
        .unwrap();
    assert_eq!(store.segment_count(), 1);
    store.persist(&ready(vec![entry(31, 3)], None)).unwrap();
    let (_, recovered) = LogStore::open(disk).unwrap();
    assert_eq!(recovered.snapshot, meta);
    assert_eq!(recovered.hard_state.commit, 30);
    assert_eq!(recovered.entries.first().map(|e| e.index), Some(26));
    assert_eq!(recovered.entries.last().map(|e| (e.index, e.term)), Some((31, 3)));
}

#[test]
fn an_installed_snapshot_that_conflicts_discards_the_old_entries() {
    let disk = MemoryDisk::new();
    let (mut store, _) = LogStore::open(disk.clone()).unwrap();
    store.persist(&ready(vec![entry(1, 1), entry(2, 1), entry(3, 1)], None)).unwrap();
    let meta = SnapshotMeta { index: 10, term: 4, config: Configuration::voters([1]) };
    let snapshot =
        crate::raft::Snapshot { meta: meta.clone(), data: std::sync::Arc::new(vec![1, 2, 3]) };
    store.persist(&Ready { snapshot: Some(snapshot), ..Ready::default() }).unwrap();
    let (_, recovered) = LogStore::open(disk).unwrap();
    assert_eq!(recovered.snapshot, meta);
    assert!(recovered.entries.is_empty());
}

#[test]
fn file_disk_round_trip_and_torn_file() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut store, _) = LogStore::open(FileDisk::open(dir.path()).unwrap()).unwrap();
        store
            .persist(&ready(
                vec![entry(1, 1), entry(2, 1)],
                Some(HardState { term: 1, vote: Some(1), commit: 2 }),
            ))
            .unwrap();
    }
    // Tear the file's last record as a crash mid-write would.
    let file = std::fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().path();
    let length = std::fs::metadata(&file).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&file).unwrap().set_len(length - 3).unwrap();
    let (mut store, recovered) = LogStore::open(FileDisk::open(dir.path()).unwrap()).unwrap();
    assert_eq!(indexes(&recovered), vec![(1, 1)]);
    store.persist(&ready(vec![entry(2, 2)], None)).unwrap();
    let (_, recovered) = LogStore::open(FileDisk::open(dir.path()).unwrap()).unwrap();
    assert_eq!(indexes(&recovered), vec![(1, 1), (2, 2)]);
}
