//! What an INSERT does with a row whose primary key is taken: fail (the default), replace the
//! old row (`INSERT OR REPLACE`, `REPLACE INTO`), skip the new one (`INSERT OR IGNORE`,
//! `ON CONFLICT DO NOTHING`), or update the old one (`ON CONFLICT DO UPDATE SET .. [WHERE ..]`,
//! whose expressions read the old row by the table's name and the new one as `excluded`).
//! Conflicts are on the primary key only: a conflict target must name it, and a clash on a
//! UNIQUE index stays an error.

use super::expression::{Scope, ScopeColumn, ScopeContext, build};
use super::plan::Conflict;
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
        if !target.is_empty() {
            let columns =
                target.iter().map(|name| table.column_index(name)).collect::<Result<Vec<_>>>()?;
            if table.primary_key.is_none_or(|key| columns != [key]) {
                return Err(Error::Invalid(format!(
                    "ON CONFLICT must name the primary key of {} (conflicts on other columns are not supported yet)",
                    table.name
                )));
            }
        }
        Ok(match conflict {
            OnConflict::Replace => Conflict::Replace,
            OnConflict::Ignore { .. } => Conflict::Ignore,
            OnConflict::Update { set, filter, .. } => {
                if table.primary_key.is_none() {
                    return Err(Error::Invalid(format!(
                        "ON CONFLICT DO UPDATE needs a primary key, and {} has none",
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
                Conflict::Update { set: assignments, filter }
            }
        })
    }
}
