//! The SQL view of an MVCC transaction: the catalog, rows and index entries, as keys.
//!
//! Key layout (inside MVCC, so every key is versioned and transactional):
//! - `Table(name)` → the table's [`Table`] schema.
//! - `Row(table, key)` → the row's values. `key` is the primary key value, or the hidden row
//!   id for tables without one.
//! - `Index(table, index, values...)` → the row key, for values of a unique index without
//!   NULL. Two rows writing the same values write the same key, so concurrent duplicates
//!   conflict.
//! - `Index(table, index, values..., key)` → the row key, for non-unique indexes and NULLs.
//! - `RowId(table)` (unversioned) → the next hidden row id.
//! - `RowCount(table)` (unversioned) → about how many rows the table holds: each write
//!   statement adds what it inserted less what it deleted, and ANALYZE sets it to the count
//!   it made. Not transactional (a rolled-back statement's rows may stay counted), but the same
//!   on every replica, and cheap: one write per table per statement.
//!
//! Every value is encoded with [`Value::encode_key`], so rows scan in key order and an index
//! lookup is a prefix scan.

use super::schema::{Index, Table, View};
use crate::encoding::keycode::{self, KeyReader};
use crate::encoding::value as codec;
use crate::sql::budget::Budget;
use crate::sql::error::{Error, Result};
use crate::sql::types::{Row, Value};
use crate::storage::mvcc;
use std::ops::Bound;

const TABLE: u8 = 0x01;
const ROW: u8 = 0x02;
const INDEX: u8 = 0x03;
const ROW_ID: u8 = 0x04;
const VIEW: u8 = 0x05;
const ROW_COUNT: u8 = 0x06;

fn view_key(name: &str) -> Vec<u8> {
    let mut out = vec![VIEW];
    keycode::put_str(&mut out, name);
    out
}

pub(super) fn table_key(name: &str) -> Vec<u8> {
    let mut out = vec![TABLE];
    keycode::put_str(&mut out, name);
    out
}

fn row_prefix(table: &str) -> Vec<u8> {
    let mut out = vec![ROW];
    keycode::put_str(&mut out, table);
    out
}

fn row_key(table: &str, key: &Value) -> Vec<u8> {
    let mut out = row_prefix(table);
    key.encode_key(&mut out);
    out
}

/// The key range of a table's rows whose keys fall in `range`.
fn row_range(
    table: &Table,
    range: (Bound<Value>, Bound<Value>),
) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let prefix = row_prefix(&table.name);
    let start = match range.0 {
        Bound::Included(value) => Bound::Included(row_key(&table.name, &value)),
        Bound::Excluded(value) => Bound::Excluded(row_key(&table.name, &value)),
        Bound::Unbounded => Bound::Included(prefix.clone()),
    };
    let end = match range.1 {
        Bound::Included(value) => Bound::Included(row_key(&table.name, &value)),
        Bound::Excluded(value) => Bound::Excluded(row_key(&table.name, &value)),
        Bound::Unbounded => keycode::prefix_end(&prefix).map_or(Bound::Unbounded, Bound::Excluded),
    };
    (start, end)
}

fn index_prefix(table: &str, index: &str) -> Vec<u8> {
    let mut out = vec![INDEX];
    keycode::put_str(&mut out, table);
    keycode::put_str(&mut out, index);
    out
}

/// The prefix of an index's entries whose first values are `values` (encoded one after the
/// other: each encoding delimits itself, so a shorter list is a prefix of a longer one).
fn index_value_prefix(table: &str, index: &str, values: &[Value]) -> Vec<u8> {
    let mut out = index_prefix(table, index);
    for value in values {
        value.encode_key(&mut out);
    }
    out
}

/// Whether a row with these index values has the index to itself (unique, no NULL).
fn owns_entry(index: &Index, values: &[Value]) -> bool {
    index.unique && !values.iter().any(Value::is_null)
}

/// The key of a row's entry in an index.
fn index_entry_key(table: &str, index: &Index, values: &[Value], key: &Value) -> Vec<u8> {
    let mut out = index_value_prefix(table, &index.name, values);
    if !owns_entry(index, values) {
        key.encode_key(&mut out);
    }
    out
}

pub(super) fn row_count_key(table: &str) -> Vec<u8> {
    let mut out = vec![ROW_COUNT];
    keycode::put_str(&mut out, table);
    out
}

pub(super) fn row_id_key(table: &str) -> Vec<u8> {
    let mut out = vec![ROW_ID];
    keycode::put_str(&mut out, table);
    out
}

fn encode_key_value(key: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(10);
    key.encode_key(&mut out);
    out
}

fn decode_key_value(bytes: &[u8]) -> Result<Value> {
    let mut reader = KeyReader::new(bytes);
    let value = Value::decode_key(&mut reader)?;
    reader.finish()?;
    Ok(value)
}

/// A transaction seen as tables, rows and indexes, with the budget of the statement running
/// in it.
pub struct Txn {
    pub(super) inner: mvcc::Transaction,
    pub(super) budget: Budget,
    /// Rows inserted less rows deleted per table since the last [`Txn::flush_row_counts`].
    pub(super) row_deltas: Vec<(String, i64)>,
    /// Rows of forwarded tables not yet in the outbox (`outbox.rs`).
    pub(super) forwarded: super::outbox::Forwarded,
}

impl Txn {
    /// Wraps an MVCC transaction (with no limits until [`Txn::set_budget`]).
    pub fn new(inner: mvcc::Transaction) -> Self {
        Self {
            inner,
            budget: Budget::default(),
            row_deltas: Vec::new(),
            forwarded: super::outbox::Forwarded::default(),
        }
    }

    /// Wraps an open transaction resumed from the store (it may have rows for the outbox).
    pub fn resumed(inner: mvcc::Transaction) -> Self {
        let mut txn = Self::new(inner);
        txn.forwarded.resumed();
        txn
    }

    /// Commits, moving the rows inserted into forwarded tables into the outbox first.
    pub fn commit(mut self) -> Result<()> {
        if !self.inner.read_only() {
            self.fill_outbox()?;
        }
        Ok(self.inner.commit()?)
    }

    /// Rolls back every write of the transaction, and its count of rows for the outbox.
    pub fn rollback(mut self) -> Result<()> {
        self.forget_pending_outbox()?;
        Ok(self.inner.rollback()?)
    }

    /// Writes the transaction's buffered writes, so it can be resumed (see
    /// [`mvcc::Transaction::flush`]).
    pub fn flush(&mut self) -> Result<()> {
        self.spill_outbox()?;
        Ok(self.inner.flush()?)
    }

    /// Discards what the failed statement wrote since the last flush.
    pub fn discard_pending(&mut self) {
        self.forwarded.discard_queued();
        self.inner.discard_pending();
    }

    /// Sets the budget of the statements that follow (see [`Budget`]).
    pub fn set_budget(&mut self, budget: Budget) {
        self.budget = budget;
    }

    /// The budget of the running statement.
    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// The underlying MVCC transaction.
    pub fn mvcc(&self) -> &mvcc::Transaction {
        &self.inner
    }

    /// The underlying MVCC transaction, mutably.
    pub fn mvcc_mut(&mut self) -> &mut mvcc::Transaction {
        &mut self.inner
    }

    /// Unwraps the MVCC transaction.
    pub fn into_inner(self) -> mvcc::Transaction {
        self.inner
    }

    /// Reads a table's schema.
    pub fn get_table(&self, name: &str) -> Result<Option<Table>> {
        self.inner.get(&table_key(name))?.map(|bytes| Ok(codec::decode(&bytes)?)).transpose()
    }

    /// Reads a table's schema, failing if it does not exist.
    pub fn must_get_table(&self, name: &str) -> Result<Table> {
        self.get_table(name)?.ok_or_else(|| Error::UnknownTable(name.to_string()))
    }

    /// Every table, ordered by name.
    pub fn list_tables(&self) -> Result<Vec<Table>> {
        self.inner.scan_prefix(&[TABLE]).map(|item| Ok(codec::decode(&item?.1)?)).collect()
    }

    /// Finds the table that has the index `name`.
    /// Whether an index of this name exists (on any table).
    pub fn index_exists(&self, name: &str) -> Result<bool> {
        Ok(self.find_index(name)?.is_some())
    }

    fn find_index(&self, name: &str) -> Result<Option<Table>> {
        Ok(self.list_tables()?.into_iter().find(|t| t.indexes.iter().any(|i| i.name == name)))
    }

    /// Reads a view.
    pub fn get_view(&self, name: &str) -> Result<Option<View>> {
        self.inner.get(&view_key(name))?.map(|bytes| Ok(codec::decode(&bytes)?)).transpose()
    }

    /// Creates a view; no table or view may have its name.
    pub fn create_view(&mut self, view: View) -> Result<()> {
        if self.get_table(&view.name)?.is_some() || self.get_view(&view.name)?.is_some() {
            return Err(Error::TableExists(view.name));
        }
        self.inner.set(&view_key(&view.name), codec::encode(&view))?;
        Ok(())
    }

    /// Drops a view. Returns false if it did not exist.
    pub fn drop_view(&mut self, name: &str) -> Result<bool> {
        if self.get_view(name)?.is_none() {
            return Ok(false);
        }
        self.inner.delete(&view_key(name))?;
        Ok(true)
    }

    /// Creates a table (with the indexes its schema lists, all empty).
    pub fn create_table(&mut self, mut table: Table) -> Result<()> {
        table.validate()?;
        // A rollup's state is written by its rollup alone, never forwarded.
        table.forwarded = table.rollup_of.is_none() && self.forwards(&table.name)?;
        if self.get_table(&table.name)?.is_some() || self.get_view(&table.name)?.is_some() {
            return Err(Error::TableExists(table.name));
        }
        for index in &table.indexes {
            if self.find_index(&index.name)?.is_some() {
                return Err(Error::IndexExists(index.name.clone()));
            }
        }
        self.inner.set(&table_key(&table.name), codec::encode(&table))?;
        self.inner.set_unversioned(&row_count_key(&table.name), 0u64.to_be_bytes().to_vec())?;
        Ok(())
    }

    /// Drops a table with its rows and index entries. Returns false if it did not exist.
    pub fn drop_table(&mut self, name: &str) -> Result<bool> {
        let Some(table) = self.get_table(name)? else {
            return Ok(false);
        };
        // Waiting rows are sent under the table's columns as they are when sent (also after
        // the table stopped being forwarded).
        if self.queues_forwarded(&table.name)? {
            return Err(Error::Invalid(format!(
                "\"{name}\" has rows this transaction inserted, still to be forwarded upstream once it commits: drop it in a later transaction, after they are sent"
            )));
        }
        if self.outbox_holds(&table.name)? {
            return Err(Error::Invalid(format!(
                "\"{name}\" has rows in the outbox still to be forwarded upstream: drop it once they are sent (chronos status shows the backlog)"
            )));
        }
        self.forget_outbox_table(&table.name)?;
        self.delete_prefix(&row_prefix(name))?;
        let mut index_space = vec![INDEX];
        keycode::put_str(&mut index_space, name);
        self.delete_prefix(&index_space)?;
        self.inner.delete(&table_key(name))?;
        self.inner.set_unversioned(&row_count_key(name), 0u64.to_be_bytes().to_vec())?;
        self.row_deltas.retain(|(table, _)| table != name);
        Ok(true)
    }

    fn delete_prefix(&mut self, prefix: &[u8]) -> Result<()> {
        let keys: Vec<Vec<u8>> = self
            .inner
            .scan_prefix(prefix)
            .map(|item| item.map(|(key, _)| key))
            .collect::<Result<_, _>>()?;
        for key in keys {
            self.inner.delete(&key)?;
        }
        Ok(())
    }

    /// Adds an index to a table and fills it from the existing rows.
    pub fn create_index(&mut self, table: &str, index: Index) -> Result<()> {
        let mut schema = self.must_get_table(table)?;
        if self.find_index(&index.name)?.is_some() {
            return Err(Error::IndexExists(index.name));
        }
        let rows: Vec<(Value, Row)> =
            self.scan(&schema, (Bound::Unbounded, Bound::Unbounded)).collect::<Result<_>>()?;
        for (key, row) in &rows {
            self.insert_index_entry(&schema, &index, &index.values(row), key)?;
        }
        schema.indexes.push(index);
        schema.validate()?;
        self.inner.set(&table_key(table), codec::encode(&schema))?;
        Ok(())
    }

    /// Replaces a table's schema (its columns, key and indexes unchanged: its retention or
    /// rollups changed).
    pub fn replace_table(&mut self, schema: &Table) -> Result<()> {
        self.must_get_table(&schema.name)?;
        schema.validate()?;
        self.inner.set(&table_key(&schema.name), codec::encode(schema))?;
        Ok(())
    }

    /// Sets (or with `None` removes) a table's retention.
    pub fn set_ttl(&mut self, table: &str, ttl: Option<super::Ttl>) -> Result<()> {
        let mut schema = self.must_get_table(table)?;
        schema.ttl = ttl;
        schema.validate()?;
        self.inner.set(&table_key(table), codec::encode(&schema))?;
        Ok(())
    }

    /// Drops an index by name. Returns false if it did not exist.
    pub fn drop_index(&mut self, name: &str) -> Result<bool> {
        let Some(mut schema) = self.find_index(name)? else {
            return Ok(false);
        };
        if schema.indexes.iter().any(|index| index.name == name && index.constraint) {
            return Err(Error::Invalid(format!(
                "index \"{name}\" enforces a PRIMARY KEY or UNIQUE constraint of {} and cannot be dropped",
                schema.name
            )));
        }
        self.delete_prefix(&index_prefix(&schema.name, name))?;
        schema.indexes.retain(|index| index.name != name);
        self.inner.set(&table_key(&schema.name), codec::encode(&schema))?;
        Ok(true)
    }

    /// Inserts a prepared row (see [`Table::prepare_row`]).
    pub fn insert(&mut self, table: &Table, row: Row) -> Result<()> {
        self.insert_row(table, row, false)
    }

    /// Inserts prepared rows in order. When no row of the table has a key in the span of the
    /// new rows' primary keys (a bulk load past the table's end, say) and the new keys are
    /// distinct, one seek proves every key new, instead of one per row.
    pub fn insert_rows(&mut self, table: &Table, rows: Vec<Row>) -> Result<()> {
        let claimed = rows.len() > 1 && self.claim_keys(table, &rows)?;
        for row in rows {
            self.insert_row(table, row, claimed)?;
        }
        Ok(())
    }

    /// Whether the primary keys of `rows` are distinct and no version of any key in their
    /// span exists (see [`crate::storage::mvcc::Transaction::claim_unwritten`]).
    fn claim_keys(&mut self, table: &Table, rows: &[Row]) -> Result<bool> {
        let mut keys = Vec::with_capacity(rows.len());
        for row in rows {
            match table.row_key(row) {
                Some(key) => keys.push(row_key(&table.name, &key)),
                None => return Ok(false), // hidden row ids are fresh anyway
            }
        }
        keys.sort_unstable();
        if keys.windows(2).any(|pair| pair[0] == pair[1]) {
            return Ok(false); // the duplicate fails on its own row, as usual
        }
        match (keys.first(), keys.last()) {
            (Some(first), Some(last)) => Ok(self.inner.claim_unwritten(first, last)?),
            _ => Ok(false),
        }
    }

    /// Inserts a prepared row; `claimed`: its primary key is known to be new.
    fn insert_row(&mut self, table: &Table, row: Row, claimed: bool) -> Result<()> {
        self.budget.write(&row)?;
        let (key, fresh) = match table.row_key(&row) {
            Some(key) if claimed => (key, true),
            Some(key) => {
                // The read also checks the key for conflicts, so the write below need not.
                if self.inner.get(&row_key(&table.name, &key))?.is_some() {
                    return Err(Error::PrimaryKey { table: table.name.clone(), key: key.to_sql() });
                }
                (key, false)
            }
            None => (self.next_row_id(&table.name)?, true),
        };
        for index in &table.indexes {
            self.insert_index_entry(table, index, &index.values(&row), &key)?;
        }
        self.count_row(&table.name, 1);
        if table.forwarded {
            self.queue_forwarded(&table.name, &row)?;
        }
        let row_key = row_key(&table.name, &key);
        match fresh {
            // A new row id or a claimed key: no other transaction can write this key.
            true => self.inner.write_fresh(&row_key, codec::encode(&row))?,
            false => self.inner.set(&row_key, codec::encode(&row))?,
        }
        Ok(())
    }

    /// Allocates the next hidden row id of a table. Ids are never reused, also after a
    /// rolled-back statement (like a PostgreSQL sequence), so concurrent inserts don't conflict.
    fn next_row_id(&mut self, table: &str) -> Result<Value> {
        let key = row_id_key(table);
        let next = match self.inner.get_unversioned(&key)? {
            Some(bytes) => KeyReader::new(&bytes).get_u64()?,
            None => 1,
        };
        self.inner.set_unversioned(&key, (next + 1).to_be_bytes().to_vec())?;
        i64::try_from(next)
            .map(Value::Integer)
            .map_err(|_| Error::OutOfRange("row ids exhausted".into()))
    }

    fn insert_index_entry(
        &mut self,
        table: &Table,
        index: &Index,
        values: &[Value],
        key: &Value,
    ) -> Result<()> {
        let entry = index_entry_key(&table.name, index, values, key);
        if owns_entry(index, values)
            && let Some(existing) = self.inner.get(&entry)?
            && decode_key_value(&existing)? != *key
        {
            let shown: Vec<String> = values.iter().map(Value::to_sql).collect();
            return Err(Error::Unique {
                table: table.name.clone(),
                column: index.column_names(table),
                index: index.name.clone(),
                value: match shown.as_slice() {
                    [one] => one.clone(),
                    many => format!("({})", many.join(", ")),
                },
            });
        }
        match owns_entry(index, values) {
            true => self.inner.set(&entry, encode_key_value(key))?,
            // The entry includes the row key, and the row is written by the same transaction:
            // a conflict on the entry is a conflict on the row.
            false => self.inner.write_covered(&entry, Some(encode_key_value(key)))?,
        }
        Ok(())
    }

    /// Deletes the row with key `key` (whose current values are `row`).
    pub fn delete(&mut self, table: &Table, key: &Value, row: &Row) -> Result<()> {
        self.budget.write(std::slice::from_ref(key))?;
        for index in &table.indexes {
            self.delete_index_entry(table, index, &index.values(row), key)?;
        }
        self.inner.delete(&row_key(&table.name, key))?;
        self.count_row(&table.name, -1);
        Ok(())
    }

    /// Deletes a row's index entry. Entries that include the row key are covered by the row's
    /// own write (see `insert_index_entry`).
    fn delete_index_entry(
        &mut self,
        table: &Table,
        index: &Index,
        values: &[Value],
        key: &Value,
    ) -> Result<()> {
        let entry = index_entry_key(&table.name, index, values, key);
        match owns_entry(index, values) {
            true => self.inner.delete(&entry)?,
            false => self.inner.write_covered(&entry, None)?,
        }
        Ok(())
    }

    /// Replaces the row with key `key` (whose current values are `old`) by the prepared row
    /// `new`. A changed primary key moves the row.
    pub fn update(&mut self, table: &Table, key: &Value, old: &Row, new: Row) -> Result<()> {
        self.budget.write(&new)?;
        if let Some(new_key) = table.row_key(&new)
            && new_key != *key
        {
            self.delete(table, key, old)?;
            return self.insert(table, new);
        }
        for index in &table.indexes {
            let (before, after) = (index.values(old), index.values(&new));
            // Same values (NULLs included) of the same types: the entry is unchanged.
            let same =
                before.iter().zip(&after).all(|(b, a)| b == a && b.datatype() == a.datatype());
            if same {
                continue;
            }
            self.delete_index_entry(table, index, &before, key)?;
            self.insert_index_entry(table, index, &after, key)?;
        }
        self.inner.set(&row_key(&table.name, key), codec::encode(&new))?;
        Ok(())
    }

    /// Reads the row with key `key`.
    pub fn get(&self, table: &Table, key: &Value) -> Result<Option<Row>> {
        self.inner
            .get(&row_key(&table.name, key))?
            .map(|bytes| Ok(codec::decode(&bytes)?))
            .transpose()
    }

    /// Scans the rows whose keys fall in `range`, in key order, as `(key, row)` pairs.
    pub fn scan(
        &self,
        table: &Table,
        range: (Bound<Value>, Bound<Value>),
    ) -> impl Iterator<Item = Result<(Value, Row)>> + '_ {
        self.scan_ordered(table, range, false)
    }

    /// Like [`Txn::scan`], in key order or (`reverse`) last key first.
    pub fn scan_ordered(
        &self,
        table: &Table,
        range: (Bound<Value>, Bound<Value>),
        reverse: bool,
    ) -> impl Iterator<Item = Result<(Value, Row)>> + '_ {
        let prefix_len = row_prefix(&table.name).len();
        let scan = self.inner.scan(row_range(table, range));
        let scan = if reverse { scan.rev() } else { scan };
        scan.map(move |item| {
            self.budget.tick()?;
            let (key, value) = item?;
            let key = decode_key_value(&key[prefix_len..])?;
            Ok((key, codec::decode(&value)?))
        })
    }

    /// Scans the rows whose keys fall in `range`, in key order, without their keys (cheaper
    /// than [`Txn::scan`] when the key is not needed).
    pub fn scan_rows(
        &self,
        table: &Table,
        range: (Bound<Value>, Bound<Value>),
    ) -> impl Iterator<Item = Result<Row>> + '_ {
        self.inner.scan_values(row_range(table, range)).map(|value| {
            self.budget.tick()?;
            Ok(codec::decode(&value?)?)
        })
    }

    /// One item per row whose key falls in `range`, in key order, without reading the row's
    /// values: for queries that only count rows (`COUNT(*)`), which need not decode them.
    pub fn scan_undecoded(
        &self,
        table: &Table,
        range: (Bound<Value>, Bound<Value>),
    ) -> impl Iterator<Item = Result<()>> + '_ {
        self.inner.scan_values(row_range(table, range)).map(|value| {
            self.budget.tick()?;
            value.map(drop).map_err(Into::into)
        })
    }

    /// The keys of the rows whose first indexed columns equal `values` (a prefix of the
    /// index's columns; a NULL matches nothing), in index order.
    pub fn lookup_index(
        &self,
        table: &Table,
        index: &Index,
        values: &[Value],
    ) -> Result<Vec<Value>> {
        if values.iter().any(Value::is_null) {
            return Ok(Vec::new());
        }
        self.inner
            .scan_prefix(&index_value_prefix(&table.name, &index.name, values))
            .map(|item| decode_key_value(&item?.1))
            .collect()
    }

    /// The keys of the rows whose first indexed columns equal `prefix`, in index order (or,
    /// `reverse`, the reverse); with `range`, only those whose next indexed column falls in it
    /// (never NULL).
    pub fn scan_index<'a>(
        &'a self,
        table: &Table,
        index: &Index,
        prefix: &[Value],
        range: Option<(Bound<Value>, Bound<Value>)>,
        reverse: bool,
    ) -> impl Iterator<Item = Result<Value>> + use<'a> {
        let base = index_value_prefix(&table.name, &index.name, prefix);
        let with = |value: &Value| {
            let mut key = base.clone();
            value.encode_key(&mut key);
            key
        };
        let after =
            |key: Vec<u8>| keycode::prefix_end(&key).map_or(Bound::Unbounded, Bound::Included);
        let (start, end) = match range {
            None => (
                Bound::Included(base.clone()),
                keycode::prefix_end(&base).map_or(Bound::Unbounded, Bound::Excluded),
            ),
            Some((lower, upper)) => {
                let start = match lower {
                    Bound::Included(value) => Bound::Included(with(&value)),
                    Bound::Excluded(value) => after(with(&value)),
                    Bound::Unbounded => after(with(&Value::Null)), // NULLs sort first
                };
                let end = match upper {
                    Bound::Included(value) => {
                        keycode::prefix_end(&with(&value)).map_or(Bound::Unbounded, Bound::Excluded)
                    }
                    Bound::Excluded(value) => Bound::Excluded(with(&value)),
                    Bound::Unbounded => {
                        keycode::prefix_end(&base).map_or(Bound::Unbounded, Bound::Excluded)
                    }
                };
                (start, end)
            }
        };
        let skip = prefix.iter().any(Value::is_null);
        let scan = self.inner.scan((start, end));
        let scan = if reverse { scan.rev() } else { scan };
        scan.filter(move |_| !skip).map(move |item| {
            self.budget.tick()?;
            decode_key_value(&item?.1)
        })
    }

    /// The number of rows of a table.
    pub fn count_rows(&self, table: &Table) -> Result<u64> {
        let mut count = 0;
        for item in self.inner.scan_prefix_values(&row_prefix(&table.name)) {
            item?;
            count += 1;
        }
        Ok(count)
    }
}
