//! INSERT with a conflict clause (see `planner/upsert.rs`): each row in order, so a row sees
//! the rows the statement wrote before it (two rows with one key in one statement conflict
//! too). A row counts as changed when it is inserted, replaces rows, or updates one.

use crate::sql::engine::{Table, Txn};
use crate::sql::error::Result;
use crate::sql::planner::{Conflict, ConflictTarget};
use crate::sql::types::{Row, Value};

/// Inserts prepared rows, resolving clashes on the primary key and unique indexes by
/// `conflict`; returns how many rows changed, and adds the rows it leaves in the table to
/// `written` (if given).
pub fn insert(
    txn: &mut Txn,
    table: &Table,
    rows: Vec<Row>,
    conflict: &Conflict,
    mut written: Option<&mut Vec<Row>>,
) -> Result<u64> {
    let mut changed = 0;
    for row in rows {
        let kept = written.is_some().then(|| row.clone());
        match conflict {
            Conflict::Error => txn.insert(table, row)?,
            Conflict::Replace => {
                for (key, old) in clashes(txn, table, &row, &ConflictTarget::Any)? {
                    txn.delete(table, &key, &old)?;
                }
                txn.insert(table, row)?;
            }
            Conflict::Ignore { target } => {
                if !clashes(txn, table, &row, target)?.is_empty() {
                    continue;
                }
                txn.insert(table, row)?; // a clash on another constraint is an error
            }
            Conflict::Update { target, set, filter } => {
                let Some((key, old)) = clashes(txn, table, &row, target)?.into_iter().next() else {
                    txn.insert(table, row)?;
                    changed += 1;
                    if let (Some(written), Some(kept)) = (written.as_mut(), kept) {
                        written.push(kept);
                    }
                    continue;
                };
                let both: Row = old.iter().cloned().chain(row).collect();
                if let Some(filter) = filter
                    && !filter.evaluate(&both)?.is_true()?
                {
                    continue;
                }
                let mut new = old.clone();
                for (column, expr) in set {
                    new[*column] = expr.evaluate(&both)?;
                }
                let new = table.prepare_row(new)?;
                if let Some(written) = written.as_mut() {
                    written.push(new.clone());
                }
                txn.update(table, &key, &old, new)?;
                changed += 1;
                continue;
            }
        }
        changed += 1;
        if let (Some(written), Some(kept)) = (written.as_mut(), kept) {
            written.push(kept);
        }
    }
    Ok(changed)
}

/// The stored rows (key and values) `row` clashes with on the constraints of `target`: on
/// the primary key first, then on each unique index, the last declared first (as SQLite
/// checks them); each row once.
fn clashes(
    txn: &Txn,
    table: &Table,
    row: &Row,
    target: &ConflictTarget,
) -> Result<Vec<(Value, Row)>> {
    let mut found: Vec<(Value, Row)> = Vec::new();
    if matches!(target, ConflictTarget::Any | ConflictTarget::PrimaryKey)
        && let Some(key) = table.row_key(row)
        && let Some(old) = txn.get(table, &key)?
    {
        found.push((key, old));
    }
    for index in table.indexes.iter().rev().filter(|index| index.unique) {
        let wanted = match target {
            ConflictTarget::Any => true,
            ConflictTarget::PrimaryKey => false,
            ConflictTarget::Index(name) => *name == index.name,
        };
        let values = index.values(row);
        if !wanted || values.iter().any(Value::is_null) {
            continue;
        }
        for key in txn.lookup_index(table, index, &values)? {
            if found.iter().any(|(k, _)| *k == key) {
                continue;
            }
            if let Some(old) = txn.get(table, &key)? {
                found.push((key, old));
            }
        }
    }
    Ok(found)
}
