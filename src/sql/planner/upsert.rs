//! What an INSERT does with a row that clashes with stored ones on its primary key or a
//! unique index: fail (the default), replace the rows it clashes with (`INSERT OR REPLACE`,
//! `REPLACE INTO`), skip the new one (`INSERT OR IGNORE`, `ON CONFLICT DO NOTHING`), or update
//! the old one (`ON CONFLICT DO UPDATE SET .. [WHERE ..]`, whose expressions read the old row
//! by the table's name and the new one as `excluded`). A conflict target `(cols)` names the
//! primary key or the columns of a unique index (in any order), and only clashes there are
//! resolved; without one, every constraint's are.

use super::expression::{Scope, ScopeColumn, ScopeContext, build};
use super::plan::{Conflict, ConflictTarget};
use super::planner::{Planner, assignments};
use crate::sql::engine::Table;
use crate::sql::error::{Error, Result};
use crate::sql::parser::ast::OnConflict;

impl Planner<'_> {
    /// Plans an INSERT's conflict clause against its table.
    pub(super) fn plan_conflict(
        &self,
        table: &Table,
        conflict: Option<&OnConflict>,
    ) -> Result<Conflict> {
        let Some(conflict) = conflict else { return Ok(Conflict::Error) };
        let target = match conflict {
            OnConflict::Replace => &[][..],
            OnConflict::Ignore { target } | OnConflict::Update { target, .. } => target,
        };
        let target = conflict_target(table, target)?;
        Ok(match conflict {
            OnConflict::Replace => Conflict::Replace,
            OnConflict::Ignore { .. } => Conflict::Ignore { target },
            OnConflict::Update { set, filter, .. } => {
                if table.primary_key.is_none() && !table.indexes.iter().any(|i| i.unique) {
                    return Err(Error::Invalid(format!(
                        "ON CONFLICT DO UPDATE needs a primary key or a unique index, and {} has neither",
                        table.name
                    )));
                }
                let mut columns = Vec::new();
                for qualifier in [table.name.as_str(), "excluded"] {
                    columns.extend(table.columns.iter().map(|c| ScopeColumn {
                        table: Some(qualifier.to_string()),
                        name: Some(c.name.clone()),
                        datatype: Some(c.datatype),
                        // Unqualified names read the old row, as in SQLite.
                        qualified_only: qualifier == "excluded",
                    }));
                }
                let scope = Scope { columns };
                let ctx = ScopeContext::new(&scope, "ON CONFLICT DO UPDATE");
                let assignments = assignments(table, set, &ctx)?;
                let filter = filter.as_ref().map(|f| build(f, &ctx)).transpose()?;
                Conflict::Update { target, set: assignments, filter }
            }
        })
    }
}

/// The constraint a conflict target's columns name (none: every one).
fn conflict_target(table: &Table, target: &[String]) -> Result<ConflictTarget> {
    if target.is_empty() {
        return Ok(ConflictTarget::Any);
    }
    let mut columns =
        target.iter().map(|name| table.column_index(name)).collect::<Result<Vec<_>>>()?;
    if table.primary_key.is_some_and(|key| columns == [key]) {
        return Ok(ConflictTarget::PrimaryKey);
    }
    columns.sort_unstable();
    let index = table.indexes.iter().find(|index| {
        let mut indexed = index.columns.clone();
        indexed.sort_unstable();
        index.unique && indexed == columns
    });
    match index {
        Some(index) => Ok(ConflictTarget::Index(index.name.clone())),
        None => Err(Error::Invalid(format!(
            "ON CONFLICT ({}) names neither the primary key nor a unique index of {}",
            target.join(", "),
            table.name
        ))),
    }
}
