//! Retention on the write path: expired rows (see `planner::retention`) that an INSERT's new
//! rows clash with are deleted first, so a hidden row never blocks or absorbs a write; and a
//! table with a TTL gets an index on its TTL column, so finding expired rows reads only them.

use crate::sql::engine::{Index, Table, Txn};
use crate::sql::error::Result;
use crate::sql::planner::retention::cutoff;
use crate::sql::types::{Row, Value};

/// Deletes the expired rows of `table` whose key or unique values `rows` would take (as of
/// the statement's time: the log's, so every replica deletes the same ones).
pub(super) fn clear_expired_clashes(txn: &mut Txn, table: &Table, rows: &[Row]) -> Result<()> {
    let Some(ttl) = &table.ttl else { return Ok(()) };
    let cutoff = cutoff(ttl, crate::sql::clock::now()?)?;
    let expired =
        |row: &Row| matches!(row.get(ttl.column), Some(Value::Timestamp(t)) if *t < cutoff);
    for row in rows {
        let mut keys = Vec::new();
        if let Some(key) = table.row_key(row) {
            keys.push(key);
        }
        for index in table.indexes.iter().filter(|index| index.unique) {
            keys.extend(txn.lookup_index(table, index, &index.values(row))?);
        }
        for key in keys {
            if let Some(old) = txn.get(table, &key)?
                && expired(&old)
            {
                txn.delete(table, &key, &old)?;
            }
        }
    }
    Ok(())
}

/// Gives `table` an index on its TTL column if it has a TTL and neither its key nor an index
/// starts with that column.
pub(super) fn ensure_ttl_index(txn: &mut Txn, table: &str) -> Result<()> {
    let schema = txn.must_get_table(table)?;
    let Some(ttl) = &schema.ttl else { return Ok(()) };
    let served = schema.primary_key == Some(ttl.column)
        || schema.indexes.iter().any(|index| index.columns.first() == Some(&ttl.column));
    if served {
        return Ok(());
    }
    let base = format!("{}_{}_ttl", schema.name, schema.columns[ttl.column].name);
    let mut name = base.clone();
    let mut number = 1;
    while txn.index_exists(&name)? {
        name = format!("{base}{number}");
        number += 1;
    }
    let index = Index { name, columns: vec![ttl.column], unique: false, constraint: false };
    txn.create_index(table, index)
}
