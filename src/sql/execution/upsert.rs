//! INSERT with a conflict clause (see `planner/upsert.rs`): each row in order, so a row sees
//! the rows the statement wrote before it (two rows with one key in one statement conflict
//! too). A row counts as changed when it is inserted, replaces a row, or updates one.

use crate::sql::engine::{Table, Txn};
use crate::sql::error::Result;
use crate::sql::planner::Conflict;
use crate::sql::types::Row;

/// Inserts prepared rows, resolving primary-key conflicts by `conflict`; returns how many
/// rows changed, and adds the rows it leaves in the table to `written` (if given).
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
        let existing = match table.row_key(&row) {
            Some(key) => txn.get(table, &key)?.map(|old| (key, old)),
            None => None, // a hidden row id is always new
        };
        let Some((key, old)) = existing else {
            txn.insert(table, row)?;
            changed += 1;
            if let (Some(written), Some(kept)) = (written.as_mut(), kept) {
                written.push(kept);
            }
            continue;
        };
        match conflict {
            Conflict::Error => txn.insert(table, row)?, // reports the duplicate key
            Conflict::Ignore => continue,
            Conflict::Replace => {
                txn.update(table, &key, &old, row)?;
                if let (Some(written), Some(kept)) = (written.as_mut(), kept) {
                    written.push(kept);
                }
            }
            Conflict::Update { set, filter } => {
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
            }
        }
        changed += 1;
    }
    Ok(changed)
}
