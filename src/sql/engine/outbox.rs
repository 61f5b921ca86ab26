//! The outbox of an edge node (`chronosd --upstream --forward`): copies of the rows inserted
//! into forwarded tables, numbered in commit order and kept until the upstream cluster has
//! acknowledged them.
//!
//! Key layout (inside MVCC, beside `store.rs`'s):
//! - `Forward` → the [`ForwardSettings`]: which tables are forwarded, and the edge's id.
//! - `Outbox(seq)` → an [`OutboxEntry`]; sequence numbers count from 1.
//! - `Pending(version, n)` → the `n`th row that the open transaction `version` inserted into a
//!   forwarded table, written only if the transaction is flushed while still open (it spans
//!   log entries); an autocommit statement keeps its rows in memory until it commits.
//! - `PendingNext(version)` (unversioned) → the next `n` of an open transaction, and the bytes
//!   of its pending rows.
//! - `OutboxNext` (unversioned) → the next sequence number.
//! - `OutboxForwarded` (unversioned) → the highest sequence number the upstream acknowledged.
//! - `OutboxLast(table)` (unversioned) → the highest sequence number given to a row of the
//!   table: rows of it wait exactly while that is past `OutboxForwarded`.
//!
//! Invariants:
//! - A row enters the outbox exactly when its transaction commits: a rolled-back
//!   transaction's or a failed statement's rows never do.
//! - Sequence numbers are given at commit, under the database's write lock (and by the one
//!   applier thread on a replica), so they follow commit order with no gaps. A snapshot sees
//!   the transactions committed before it began, so it sees a gap-free prefix of the outbox.
//! - An insert into a forwarded table fails if the transaction's forwarded rows (counted as
//!   budgets count rows) would pass the statement's write limit: they move into the outbox in
//!   one step at commit, so that bounds the commit's memory.
//! - Forwarded tables are append-only (UPDATE, DELETE and upserts are refused by the
//!   planner), so the upstream's copy is exactly the rows the edge acknowledged.

use super::store::Txn;
use crate::encoding::keycode::{self, KeyReader};
use crate::encoding::value as codec;
use crate::sql::budget::row_size;
use crate::sql::error::{Error, Result};
use crate::sql::types::Row;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::ops::Bound;

const FORWARD: u8 = 0x08;
const OUTBOX: u8 = 0x09;
const PENDING: u8 = 0x0a;
const OUTBOX_NEXT: u8 = 0x0b;
const OUTBOX_FORWARDED: u8 = 0x0c;
const PENDING_NEXT: u8 = 0x0e;
const OUTBOX_LAST: u8 = 0x0f;

/// Which tables an edge forwards upstream, and the id the upstream knows it by.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardSettings {
    /// The edge's id: the upstream deduplicates by it and the outbox's sequence numbers.
    pub edge: String,
    /// This life of the edge's numbering, random: it changes with the id and when a backup
    /// is restored, so the upstream knows the numbers start over.
    pub incarnation: u64,
    /// The forwarded tables, by name (they need not exist yet).
    pub tables: BTreeSet<String>,
}

/// A row waiting in the outbox.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// The table it was inserted into.
    pub table: String,
    /// Its values, in the table's column order.
    pub row: Row,
    /// The log clock when its transaction committed (microseconds since 1970, UTC).
    pub time: i64,
}

/// How far forwarding has come.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxStatus {
    /// The rows committed but not yet acknowledged by the upstream.
    pub backlog: u64,
    /// The highest sequence number the upstream acknowledged.
    pub forwarded: u64,
    /// When the oldest row of the backlog committed, if there is a backlog.
    pub oldest: Option<i64>,
}

fn outbox_key(seq: u64) -> Vec<u8> {
    let mut out = vec![OUTBOX];
    keycode::put_u64(&mut out, seq);
    out
}

fn pending_prefix(version: u64) -> Vec<u8> {
    let mut out = vec![PENDING];
    keycode::put_u64(&mut out, version);
    out
}

/// A row queued by a transaction for the outbox, not yet written anywhere.
struct Queued {
    table: String,
    row: Row,
}

/// A transaction's rows of forwarded tables that are not in the outbox yet.
#[derive(Default)]
pub(super) struct Forwarded {
    /// Rows inserted since the last flush, in insertion order.
    queued: Vec<Queued>,
    /// Their size, as budgets count rows.
    queued_bytes: u64,
    /// Whether earlier rows may wait as pending keys (the transaction was flushed or resumed).
    spilled: bool,
    /// The size of those pending rows; `None` until read from the store.
    spilled_bytes: Option<u64>,
}

impl Forwarded {
    /// Marks a transaction resumed from the store: it may have pending rows.
    pub(super) fn resumed(&mut self) {
        self.spilled = true;
        self.spilled_bytes = None;
    }

    /// Forgets the rows a failed statement queued.
    pub(super) fn discard_queued(&mut self) {
        self.queued.clear();
        self.queued_bytes = 0;
    }
}

/// The value of a `PendingNext` key: the next row number, then the pending rows' bytes (a
/// value written before the bytes were kept has only the number: its rows count as 0).
fn pending_counter(value: Option<Vec<u8>>) -> Result<(u64, u64)> {
    let Some(bytes) = value else { return Ok((0, 0)) };
    let mut reader = KeyReader::new(&bytes);
    let next = reader.get_u64()?;
    let size = if reader.is_empty() { 0 } else { reader.get_u64()? };
    reader.finish()?;
    Ok((next, size))
}

fn outbox_last_key(table: &str) -> Vec<u8> {
    let mut out = vec![OUTBOX_LAST];
    keycode::put_str(&mut out, table);
    out
}

/// Notes `seq` as the latest row of `table` among `last`.
fn note_last(last: &mut Vec<(String, u64)>, table: &str, seq: u64) {
    match last.iter_mut().find(|(name, _)| name == table) {
        Some((_, highest)) => *highest = seq,
        None => last.push((table.to_string(), seq)),
    }
}

fn pending_next_key(version: u64) -> Vec<u8> {
    let mut out = vec![PENDING_NEXT];
    keycode::put_u64(&mut out, version);
    out
}

impl Txn {
    /// The forwarding settings, if the edge has any.
    pub fn forward_settings(&self) -> Result<Option<ForwardSettings>> {
        match self.inner.get(&[FORWARD])? {
            Some(bytes) => Ok(Some(codec::decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Sets which tables are forwarded, marking the existing tables to match; rows inserted
    /// from then on enter the outbox. With `keep_id`, an edge id and incarnation already set
    /// stay (the proposed ones were only a candidate); an id that stays keeps its incarnation.
    pub fn set_forward_settings(
        &mut self,
        proposed: &ForwardSettings,
        keep_id: bool,
    ) -> Result<()> {
        let mut settings = proposed.clone();
        if let Some(current) = self.forward_settings()?
            && (keep_id || current.edge == settings.edge)
        {
            settings.edge = current.edge;
            settings.incarnation = current.incarnation;
        }
        for mut table in self.list_tables()? {
            let forwarded = settings.tables.contains(&table.name);
            // A rollup's state is written by its rollup alone: never forwarded.
            let forwarded = forwarded && table.rollup_of.is_none();
            if table.forwarded != forwarded {
                table.forwarded = forwarded;
                self.replace_table(&table)?;
            }
        }
        self.inner.set(&[FORWARD], codec::encode(&settings))?;
        Ok(())
    }

    /// Whether a new table named `name` is forwarded.
    pub(super) fn forwards(&self, name: &str) -> Result<bool> {
        Ok(self.forward_settings()?.is_some_and(|settings| settings.tables.contains(name)))
    }

    /// Queues an inserted row of a forwarded table for the outbox. Fails once the
    /// transaction's forwarded rows would pass the statement's write limit: they all move
    /// into the outbox in one step at commit.
    pub(super) fn queue_forwarded(&mut self, table: &str, row: &Row) -> Result<()> {
        let spilled_bytes = match self.forwarded.spilled_bytes {
            Some(bytes) => bytes,
            None if !self.forwarded.spilled => 0,
            None => {
                let counter =
                    self.inner.get_unversioned(&pending_next_key(self.inner.version()))?;
                pending_counter(counter)?.1
            }
        };
        self.forwarded.spilled_bytes = Some(spilled_bytes);
        let size = row_size(row);
        let total = spilled_bytes.saturating_add(self.forwarded.queued_bytes).saturating_add(size);
        let limit = self.budget.write_limit();
        if total > limit {
            return Err(Error::ResourceLimit(format!(
                "the transaction inserts more than {limit} bytes into forwarded tables (the limit of one statement): an edge moves them into its outbox in one step when the transaction commits, so commit in smaller transactions"
            )));
        }
        self.forwarded.queued_bytes += size;
        self.forwarded.queued.push(Queued { table: table.to_string(), row: row.clone() });
        Ok(())
    }

    /// Writes the queued rows as pending keys of this transaction, before it is flushed while
    /// open (so a resumed transaction still has them).
    pub(super) fn spill_outbox(&mut self) -> Result<()> {
        if self.forwarded.queued.is_empty() {
            return Ok(());
        }
        let version = self.inner.version();
        let counter = pending_next_key(version);
        let (mut next, spilled_bytes) = pending_counter(self.inner.get_unversioned(&counter)?)?;
        let spilled_bytes = spilled_bytes.saturating_add(self.forwarded.queued_bytes);
        self.forwarded.queued_bytes = 0;
        for queued in std::mem::take(&mut self.forwarded.queued) {
            // Numbered in insertion order, so the outbox gets them in that order.
            let mut key = pending_prefix(version);
            keycode::put_u64(&mut key, next);
            next += 1;
            let entry = OutboxEntry { table: queued.table, row: queued.row, time: 0 };
            self.inner.write_fresh(&key, codec::encode(&entry))?;
        }
        let mut value = Vec::with_capacity(16);
        keycode::put_u64(&mut value, next);
        keycode::put_u64(&mut value, spilled_bytes);
        self.inner.set_unversioned(&counter, value)?;
        self.forwarded.spilled = true;
        self.forwarded.spilled_bytes = Some(spilled_bytes);
        Ok(())
    }

    /// Before a rollback: deletes the count of the pending rows, which is unversioned (the
    /// rows themselves are versioned writes, which the rollback removes).
    pub(super) fn forget_pending_outbox(&mut self) -> Result<()> {
        if !self.forwarded.spilled || self.inner.read_only() {
            return Ok(());
        }
        self.inner.discard_pending();
        self.inner.delete_unversioned(&pending_next_key(self.inner.version()))?;
        Ok(self.inner.flush()?)
    }

    /// Moves this transaction's forwarded rows into the outbox, numbered after the last
    /// entry; called just before it commits.
    pub(super) fn fill_outbox(&mut self) -> Result<()> {
        let mut rows = Vec::new();
        if self.forwarded.spilled {
            let prefix = pending_prefix(self.inner.version());
            let pending: Vec<(Vec<u8>, Vec<u8>)> =
                self.inner.scan_prefix(&prefix).collect::<std::result::Result<_, _>>()?;
            for (key, value) in pending {
                self.inner.delete(&key)?;
                let entry: OutboxEntry = codec::decode(&value)?;
                rows.push((entry.table, entry.row));
            }
            self.inner.delete_unversioned(&pending_next_key(self.inner.version()))?;
        }
        self.forwarded.queued_bytes = 0;
        rows.extend(
            std::mem::take(&mut self.forwarded.queued).into_iter().map(|q| (q.table, q.row)),
        );
        if rows.is_empty() {
            return Ok(());
        }
        // The statement's time (every replicated commit has one). Without one, as in an
        // embedded database that forwards nothing, 0: never a clock read during apply.
        let time = crate::sql::clock::now().unwrap_or(0);
        let mut next = self.outbox_counter(OUTBOX_NEXT)?.max(1);
        let mut last = Vec::new();
        for (table, row) in rows {
            note_last(&mut last, &table, next);
            let entry = OutboxEntry { table, row, time };
            self.inner.write_fresh(&outbox_key(next), codec::encode(&entry))?;
            next += 1;
        }
        self.inner.set_unversioned(&[OUTBOX_NEXT], next.to_be_bytes().to_vec())?;
        for (table, seq) in last {
            self.inner.set_unversioned(&outbox_last_key(&table), seq.to_be_bytes().to_vec())?;
        }
        Ok(())
    }

    fn outbox_counter(&self, key: u8) -> Result<u64> {
        Ok(match self.inner.get_unversioned(&[key])? {
            Some(bytes) => KeyReader::new(&bytes).get_u64()?,
            None => 0,
        })
    }

    /// The outbox's entries after the acknowledged ones, in order, until `max_rows` or until
    /// they hold `max_bytes` of values (at least one is returned if there is one).
    pub fn outbox_batch(
        &self,
        max_rows: usize,
        max_bytes: usize,
    ) -> Result<Vec<(u64, OutboxEntry)>> {
        let first = self.outbox_counter(OUTBOX_FORWARDED)? + 1;
        let end = Bound::Excluded(vec![OUTBOX + 1]);
        let mut batch = Vec::new();
        let mut bytes = 0;
        for item in self.inner.scan((Bound::Included(outbox_key(first)), end)) {
            let (key, value) = item?;
            // The batch ends before a row that would take it past `max_bytes` (a large row
            // goes alone).
            if !batch.is_empty() && (batch.len() >= max_rows || bytes + value.len() > max_bytes) {
                break;
            }
            let seq = KeyReader::new(&key[1..]).get_u64()?;
            bytes += value.len();
            batch.push((seq, codec::decode(&value)?));
        }
        Ok(batch)
    }

    /// Whether this transaction inserted rows into `table` that are to enter the outbox at
    /// its commit (a scan of its own rows only, bounded by the write limit).
    pub(super) fn queues_forwarded(&self, table: &str) -> Result<bool> {
        if self.forwarded.queued.iter().any(|queued| queued.table == table) {
            return Ok(true);
        }
        if !self.forwarded.spilled {
            return Ok(false);
        }
        for item in self.inner.scan_prefix(&pending_prefix(self.inner.version())) {
            let (_, value) = item?;
            let entry: OutboxEntry = codec::decode(&value)?;
            if entry.table == table {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether rows of `table` wait in the outbox (two reads, whatever the backlog).
    pub fn outbox_holds(&self, table: &str) -> Result<bool> {
        let last = match self.inner.get_unversioned(&outbox_last_key(table))? {
            Some(bytes) => KeyReader::new(&bytes).get_u64()?,
            None => return Ok(false),
        };
        Ok(last > self.outbox_counter(OUTBOX_FORWARDED)?)
    }

    /// Forgets where `table`'s rows were in the outbox, once none wait (the table is dropped).
    pub(super) fn forget_outbox_table(&mut self, table: &str) -> Result<()> {
        Ok(self.inner.delete_unversioned(&outbox_last_key(table))?)
    }

    /// Deletes the outbox's entries up to `through`, which the upstream acknowledged.
    pub fn trim_outbox(&mut self, through: u64) -> Result<()> {
        let forwarded = self.outbox_counter(OUTBOX_FORWARDED)?;
        // Never past what the outbox holds, whatever the upstream answered.
        let through = through.min(self.outbox_counter(OUTBOX_NEXT)?.saturating_sub(1));
        if through <= forwarded {
            return Ok(());
        }
        let range = (Bound::Excluded(outbox_key(forwarded)), Bound::Included(outbox_key(through)));
        let keys: Vec<Vec<u8>> = self
            .inner
            .scan(range)
            .map(|item| item.map(|(key, _)| key))
            .collect::<std::result::Result<_, _>>()?;
        for key in keys {
            self.inner.delete(&key)?;
        }
        self.inner.set_unversioned(&[OUTBOX_FORWARDED], through.to_be_bytes().to_vec())?;
        Ok(())
    }

    /// How far forwarding has come.
    pub fn outbox_status(&self) -> Result<OutboxStatus> {
        let forwarded = self.outbox_counter(OUTBOX_FORWARDED)?;
        let next = self.outbox_counter(OUTBOX_NEXT)?.max(1);
        let backlog = next.saturating_sub(forwarded + 1);
        let oldest = match backlog {
            0 => None,
            _ => match self.inner.get(&outbox_key(forwarded + 1))? {
                Some(bytes) => Some(codec::decode::<OutboxEntry>(&bytes)?.time),
                None => None,
            },
        };
        Ok(OutboxStatus { backlog, forwarded, oldest })
    }
}

/// A batch of the outbox for the upstream: the entries, and the columns of each table they
/// belong to (empty for a table dropped since).
pub type OutboxBatch = (Vec<(u64, OutboxEntry)>, Vec<(String, Vec<String>)>);

impl super::Database {
    /// Sets which tables are forwarded (applied from the log on every replica; see
    /// [`Txn::set_forward_settings`]).
    pub fn set_forward_settings(&self, settings: &ForwardSettings, keep_id: bool) -> Result<()> {
        self.write_outbox(|txn| txn.set_forward_settings(settings, keep_id))
    }

    /// After a restore: the edge's numbering starts a new life (`incarnation`) from 1. The
    /// restored entries are numbered 1, 2, 3, ... again in order, a chunk per transaction
    /// (each new number is at most the old one, so a chunk never meets one still to come),
    /// and the counters are set from them (the backup does not carry counters).
    pub fn restart_outbox(&self, incarnation: u64) -> Result<()> {
        let forwards = self.write_outbox(|txn| {
            let Some(mut settings) = txn.forward_settings()? else { return Ok(false) };
            settings.incarnation = incarnation;
            txn.inner.set(&[FORWARD], codec::encode(&settings))?;
            Ok(true)
        })?;
        if !forwards {
            return Ok(());
        }
        const CHUNK: usize = 1024;
        let (mut next, mut after) = (1u64, None);
        let mut last = Vec::new();
        loop {
            let done = self.write_outbox(|txn| {
                let start = after
                    .map_or(Bound::Included(vec![OUTBOX]), |seq| Bound::Excluded(outbox_key(seq)));
                let end = Bound::Excluded(vec![OUTBOX + 1]);
                let chunk: Vec<(Vec<u8>, Vec<u8>)> = txn
                    .inner
                    .scan((start, end))
                    .take(CHUNK)
                    .collect::<std::result::Result<_, _>>()?;
                for (key, value) in &chunk {
                    let seq = KeyReader::new(&key[1..]).get_u64()?;
                    let entry: OutboxEntry = codec::decode(value)?;
                    note_last(&mut last, &entry.table, next);
                    if seq != next {
                        txn.inner.delete(key)?;
                        txn.inner.set(&outbox_key(next), value.clone())?;
                    }
                    next += 1;
                    after = Some(seq);
                }
                Ok(chunk.len() < CHUNK)
            })?;
            if done {
                break;
            }
        }
        self.write_outbox(|txn| {
            txn.inner.set_unversioned(&[OUTBOX_FORWARDED], 0u64.to_be_bytes().to_vec())?;
            txn.inner.set_unversioned(&[OUTBOX_NEXT], next.to_be_bytes().to_vec())?;
            for (table, seq) in &last {
                txn.inner.set_unversioned(&outbox_last_key(table), seq.to_be_bytes().to_vec())?;
            }
            for table in txn.list_tables()? {
                if !last.iter().any(|(name, _)| *name == table.name) {
                    txn.forget_outbox_table(&table.name)?;
                }
            }
            Ok(())
        })
    }

    /// Whether rows of `table` wait in the outbox.
    pub fn outbox_holds(&self, table: &str) -> Result<bool> {
        self.read_outbox(|txn| txn.outbox_holds(table))
    }

    /// Deletes the outbox's entries up to `through` (applied from the log on every replica).
    pub fn trim_outbox(&self, through: u64) -> Result<()> {
        self.write_outbox(|txn| txn.trim_outbox(through))
    }

    fn write_outbox<T>(&self, write: impl FnOnce(&mut Txn) -> Result<T>) -> Result<T> {
        let _guard = self.lock_writes();
        let mut txn = Txn::new(self.mvcc().begin()?);
        match write(&mut txn) {
            Ok(value) => {
                txn.commit()?;
                Ok(value)
            }
            Err(error) => {
                txn.rollback()?;
                Err(error)
            }
        }
    }

    /// The forwarding settings, if any.
    pub fn forward_settings(&self) -> Result<Option<ForwardSettings>> {
        self.read_outbox(|txn| txn.forward_settings())
    }

    /// How far forwarding has come.
    pub fn outbox_status(&self) -> Result<OutboxStatus> {
        self.read_outbox(|txn| txn.outbox_status())
    }

    /// The next entries to forward (see [`Txn::outbox_batch`]), with their tables' columns.
    pub fn outbox_batch(&self, max_rows: usize, max_bytes: usize) -> Result<OutboxBatch> {
        self.read_outbox(|txn| {
            let entries = txn.outbox_batch(max_rows, max_bytes)?;
            let mut tables: Vec<(String, Vec<String>)> = Vec::new();
            for (_, entry) in &entries {
                if !tables.iter().any(|(name, _)| *name == entry.table) {
                    let columns = match txn.get_table(&entry.table)? {
                        Some(table) => table.columns.iter().map(|c| c.name.clone()).collect(),
                        None => Vec::new(),
                    };
                    tables.push((entry.table.clone(), columns));
                }
            }
            Ok((entries, tables))
        })
    }

    fn read_outbox<T>(&self, read: impl FnOnce(&Txn) -> Result<T>) -> Result<T> {
        let txn = Txn::new(self.mvcc().begin_read_only()?);
        let result = read(&txn);
        txn.commit()?;
        result
    }
}

#[cfg(test)]
#[path = "outbox_tests.rs"]
mod tests;
