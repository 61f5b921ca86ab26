//! Planning rollups (continuous downsampling; the catalog side is `engine/rollup.rs`).
//!
//! A definition is one `SELECT` over one table or rollup, with `GROUP BY` naming exactly its
//! non-aggregate items, and aggregates among `count(*)`, `count`, `sum`, `min`, `max` and
//! `avg`: what can be kept up to date row by row. A rollup of a rollup is rewritten in terms of
//! the first one's source table (its groups' expressions substituted, `avg` of an `avg`,
//! `min` of a `min`, `max` of a `max`, `sum` of a `sum` or a `count`), so every rollup is fed
//! straight from inserted rows and equals a fresh GROUP BY over them, whatever the chain.

use super::expression::{Scope, ScopeColumn, ScopeContext, build, infer_type, is_aggregate};
use super::plan::{Expression, Plan};
use super::planner::Planner;
use crate::sql::engine::{Rollup, RollupAggregate, RollupFunction, Table, View};
use crate::sql::error::{Error, Result};
use crate::sql::parser::ast::{self, ColumnDef, FromItem, SelectItem, TableOption};
use crate::sql::types::{DataType, Value};

/// A rollup's definition built against its source's columns, ready to evaluate on rows.
pub struct CompiledRollup {
    /// Which rows count.
    pub filter: Option<Expression>,
    /// The group values of a row.
    pub groups: Vec<Expression>,
    /// Each aggregate, its argument (`None`: a row counts) and FIRST's or LAST's time.
    pub aggregates: Vec<(RollupFunction, Option<Expression>, Option<Expression>)>,
}

/// The scope of a table's columns, for building expressions over its rows.
fn table_scope(table: &Table) -> Scope {
    Scope {
        columns: table
            .columns
            .iter()
            .map(|c| ScopeColumn {
                table: Some(table.name.clone()),
                name: Some(c.name.clone()),
                datatype: Some(c.datatype),
                qualified_only: false,
            })
            .collect(),
    }
}

/// Builds `rollup`'s expressions over the rows of `source`.
pub fn compile(source: &Table, rollup: &Rollup) -> Result<CompiledRollup> {
    let scope = table_scope(source);
    let context = ScopeContext::new(&scope, "a rollup");
    let filter = rollup.filter.as_ref().map(|f| build(f, &context)).transpose()?;
    let groups = rollup.groups.iter().map(|g| build(g, &context)).collect::<Result<_>>()?;
    let aggregates = rollup
        .aggregates
        .iter()
        .map(|a| {
            let arg = a.arg.as_ref().map(|arg| build(arg, &context)).transpose()?;
            let by = a.by.as_ref().map(|by| build(by, &context)).transpose()?;
            Ok((a.function, arg, by))
        })
        .collect::<Result<_>>()?;
    Ok(CompiledRollup { filter, groups, aggregates })
}

/// Refuses a statement writing `table` other than a plain INSERT when rollups depend on it: a
/// rollup's state is written by the rollup alone, and a rollup's source takes only plain
/// INSERTs (an UPDATE, DELETE or upsert would leave its rollups wrong); a forwarded table
/// is append-only (see `engine/outbox.rs`). `what` names the
/// statement; `insert` is true for a plain INSERT.
pub fn check_write(table: &Table, what: &str, insert: bool) -> Result<()> {
    if let Some(rollup) = &table.rollup_of {
        return Err(Error::Invalid(format!(
            "\"{}\" holds the state of rollup \"{rollup}\": only the rollup writes it ({what} refused)",
            table.name
        )));
    }
    if !insert && table.forwarded {
        return Err(Error::Invalid(format!(
            "\"{}\" is forwarded upstream (chronosd --forward), so it is append-only: {what} refused",
            table.name
        )));
    }
    if !insert && !table.rollups.is_empty() {
        let names: Vec<&str> = table.rollups.iter().map(|r| r.name.as_str()).collect();
        return Err(Error::Invalid(format!(
            "\"{}\" feeds rollups ({}), so it takes plain INSERTs only: {what} would leave them wrong (drop the rollups first)",
            table.name,
            names.join(", ")
        )));
    }
    Ok(())
}

fn refuse(why: impl Into<String>) -> Error {
    Error::Invalid(format!("CREATE ROLLUP: {}", why.into()))
}

/// The rollup named `name` and the table that feeds it, if there is one.
pub fn find_rollup(txn: &crate::sql::engine::Txn, name: &str) -> Result<Option<(Table, Rollup)>> {
    for table in txn.list_tables()? {
        if let Some(rollup) = table.rollups.iter().find(|r| r.name == name) {
            let rollup = rollup.clone();
            return Ok(Some((table, rollup)));
        }
    }
    Ok(None)
}

/// An aggregate item: its function, argument and (FIRST, LAST) time.
type AggregateItem = (RollupFunction, Option<ast::Expression>, Option<ast::Expression>);

/// The aggregate `expr` is, if it is one.
fn aggregate_of(expr: &ast::Expression) -> Result<Option<AggregateItem>> {
    if !is_aggregate(expr) {
        return Ok(None);
    }
    let (name, args, distinct) = match expr {
        ast::Expression::CountStar => return Ok(Some((RollupFunction::Count, None, None))),
        ast::Expression::Function { name, args, distinct } => (name, args, *distinct),
        _ => return Err(refuse("an aggregate must be the whole item, as in avg(v)")),
    };
    let function = match name.as_str() {
        "count" => RollupFunction::Count,
        "sum" => RollupFunction::Sum,
        "min" => RollupFunction::Min,
        "max" => RollupFunction::Max,
        "avg" => RollupFunction::Avg,
        "first" => RollupFunction::First,
        "last" => RollupFunction::Last,
        other => return Err(refuse(format!("{other}() cannot be kept up to date row by row"))),
    };
    if distinct {
        return Err(refuse(format!("{name}() cannot be DISTINCT")));
    }
    match (function, args.as_slice()) {
        (RollupFunction::First | RollupFunction::Last, [arg, by]) => {
            Ok(Some((function, Some(arg.clone()), Some(by.clone()))))
        }
        (RollupFunction::First | RollupFunction::Last, _) => {
            Err(refuse(format!("{name}() takes a value and its time")))
        }
        (_, [arg]) => Ok(Some((function, Some(arg.clone()), None))),
        _ => Err(refuse(format!("{name}() takes one argument"))),
    }
}

/// Replaces each column reference in `expr` by `substitute(name)`.
fn substitute(
    expr: &ast::Expression,
    substitute: &dyn Fn(&str) -> Result<ast::Expression>,
) -> Result<ast::Expression> {
    let mut failure = None;
    let mut out = expr.clone();
    super::expression::transform_ast(&mut out, &mut |node| {
        if let ast::Expression::Column { name, .. } = node {
            match substitute(name) {
                Ok(replacement) => *node = replacement,
                Err(error) => failure = failure.take().or(Some(error)),
            }
        }
    });
    failure.map_or(Ok(out), Err)
}

impl Planner<'_> {
    /// Plans CREATE ROLLUP (see the module docs).
    pub(super) fn plan_create_rollup(
        &self,
        name: &str,
        query: &ast::Select,
        options: &[TableOption],
        if_not_exists: bool,
    ) -> Result<Plan> {
        let plain = query.having.is_none()
            && query.order_by.is_empty()
            && query.limit.is_none()
            && query.offset.is_none()
            && query.with.is_empty()
            && query.compound.is_empty()
            && !query.distinct;
        if !plain {
            return Err(refuse(
                "the query may have WHERE and GROUP BY, but no DISTINCT, HAVING, ORDER BY, LIMIT, WITH or set operators",
            ));
        }
        let [FromItem::Table { name: from, .. }] = query.from.as_slice() else {
            return Err(refuse("the query reads one table or rollup"));
        };
        // The source's rows, and how a column of `from` reads from them.
        let chained = super::rollup::find_rollup(self.txn(), from)?;
        let (source, upstream) = match chained {
            Some((source, rollup)) => (source, Some(rollup)),
            None => (self.txn().must_get_table(from)?, None),
        };
        if source.rollup_of.is_some() {
            return Err(refuse(format!("\"{from}\" is a rollup's state: read the rollup")));
        }
        let group_column = |column: &str| -> Result<ast::Expression> {
            match &upstream {
                None => Ok(ast::Expression::Column { table: None, name: column.to_string() }),
                Some(up) => match up.columns.iter().position(|c| c == column) {
                    Some(i) if i < up.groups.len() => Ok(up.groups[i].clone()),
                    Some(_) => Err(refuse(format!(
                        "\"{column}\" is an aggregate of \"{from}\": only aggregate it"
                    ))),
                    None => Err(Error::UnknownColumn(column.to_string())),
                },
            }
        };
        let mut columns = Vec::new();
        let mut groups = Vec::new();
        let mut group_items = Vec::new();
        let mut aggregates = Vec::new();
        for (position, item) in query.select.iter().enumerate() {
            let SelectItem::Expression(expr, alias) = item else {
                return Err(refuse("name each column; * is not allowed"));
            };
            match aggregate_of(expr)? {
                None => {
                    if !aggregates.is_empty() {
                        return Err(refuse("list the groups before the aggregates"));
                    }
                    let name = match (alias, expr) {
                        (Some(alias), _) => alias.clone(),
                        (None, ast::Expression::Column { name, .. }) => name.clone(),
                        (None, _) => {
                            return Err(refuse("give each computed group a name (AS ...)"));
                        }
                    };
                    groups.push(substitute(expr, &group_column)?);
                    group_items.push((position + 1, expr, name.clone()));
                    columns.push(name);
                }
                Some((function, arg, by)) => {
                    let arg_name = match &arg {
                        Some(ast::Expression::Column { name, .. }) => Some(name.clone()),
                        _ => None,
                    };
                    let (function, arg, by) = match &upstream {
                        None => (function, arg, by),
                        Some(up) => self.chained_aggregate(up, function, arg_name.as_deref())?,
                    };
                    let name = match (alias, &arg_name) {
                        (Some(alias), _) => alias.clone(),
                        (None, Some(column)) => format!("{}_{column}", function.name()),
                        (None, None) => function.name().to_string(),
                    };
                    aggregates.push(RollupAggregate { function, arg, by });
                    columns.push(name);
                }
            }
        }
        if groups.is_empty() || aggregates.is_empty() {
            return Err(refuse("the query needs groups and aggregates"));
        }
        self.check_group_by(&query.group_by, &group_items)?;
        for (i, column) in columns.iter().enumerate() {
            if columns[..i].contains(column) {
                return Err(refuse(format!("two columns are named \"{column}\"")));
            }
        }
        // A rollup of a rollup counts only the rows the first one counts.
        let own = query.filter.as_ref().map(|f| substitute(f, &group_column)).transpose()?;
        let filter = match (upstream.as_ref().and_then(|up| up.filter.clone()), own) {
            (Some(up), Some(own)) => {
                Some(ast::Expression::Binary(ast::BinaryOp::And, Box::new(up), Box::new(own)))
            }
            (up, own) => up.or(own),
        };
        let rollup = Rollup {
            name: name.to_string(),
            state_table: format!("{name}$state"),
            columns,
            filter,
            groups,
            aggregates,
        };
        let state = self.rollup_state_table(&source, &rollup, options)?;
        let view = rollup_view(&rollup)?;
        Ok(Plan::CreateRollup {
            source: source.name.clone(),
            rollup: Box::new(rollup),
            state: Box::new(state),
            view: Box::new(view),
            if_not_exists,
        })
    }

    /// An aggregate over a column of rollup `up`, in terms of `up`'s source rows.
    fn chained_aggregate(
        &self,
        up: &Rollup,
        function: RollupFunction,
        column: Option<&str>,
    ) -> Result<AggregateItem> {
        use RollupFunction::*;
        let position = column.and_then(|c| up.columns.iter().position(|name| name == c));
        let Some(aggregate) = position
            .and_then(|p| p.checked_sub(up.groups.len()))
            .and_then(|i| up.aggregates.get(i))
        else {
            return Err(refuse(format!(
                "a rollup of the rollup \"{}\" aggregates its aggregate columns",
                up.name
            )));
        };
        match (function, aggregate.function) {
            (Avg, Avg) | (Min, Min) | (Max, Max) | (Sum, Sum) | (First, First) | (Last, Last) => {
                Ok((function, aggregate.arg.clone(), aggregate.by.clone()))
            }
            (Sum, Count) => Ok((Count, aggregate.arg.clone(), None)),
            (outer, inner) => Err(refuse(format!(
                "{}() of a {}() column cannot be computed from the rows (use avg of avg, min of min, max of max, first of first, last of last, sum of sum or of count)",
                outer.name(),
                inner.name()
            ))),
        }
    }

    /// Checks that GROUP BY names exactly the group items (by position, name or expression).
    fn check_group_by(
        &self,
        group_by: &[ast::Expression],
        items: &[(usize, &ast::Expression, String)],
    ) -> Result<()> {
        let mut named = vec![false; items.len()];
        for entry in group_by {
            let found = items.iter().position(|(position, expr, name)| match entry {
                ast::Expression::Literal(Value::Integer(p)) => *p == *position as i64,
                ast::Expression::Column { table: None, name: column } if column == name => true,
                other => other == *expr,
            });
            match found {
                Some(i) => named[i] = true,
                None => return Err(refuse("GROUP BY may name only the query's group columns")),
            }
        }
        if named.iter().any(|n| !n) {
            return Err(refuse("GROUP BY must name every column that is not an aggregate"));
        }
        Ok(())
    }

    /// The state table: the group columns (the key, NOT NULL), then each aggregate's state
    /// (an average's sum and count), with the rollup's own retention on its first TIMESTAMP
    /// group column.
    fn rollup_state_table(
        &self,
        source: &Table,
        rollup: &Rollup,
        options: &[TableOption],
    ) -> Result<Table> {
        let compiled = compile(source, rollup)?;
        let types: Vec<Option<DataType>> =
            source.columns.iter().map(|c| Some(c.datatype)).collect();
        let type_of = |e: &Expression| infer_type(e, &|i| types.get(i).copied().flatten());
        let mut defs = Vec::new();
        let column = |name: String, datatype: DataType, nullable: bool| ColumnDef {
            name,
            datatype,
            max_length: None,
            primary_key: false,
            nullable: Some(nullable),
            unique: false,
            default: None,
        };
        for (group, name) in compiled.groups.iter().zip(&rollup.columns) {
            let datatype = type_of(group).ok_or_else(|| {
                refuse(format!("the type of group \"{name}\" is not known; CAST it"))
            })?;
            defs.push(column(name.clone(), datatype, false));
        }
        let aggregate_names = &rollup.columns[rollup.groups.len()..];
        for ((function, arg, by), name) in compiled.aggregates.iter().zip(aggregate_names) {
            let arg_type = arg.as_ref().and_then(type_of);
            match function {
                RollupFunction::Count => defs.push(column(name.clone(), DataType::Integer, false)),
                RollupFunction::Avg | RollupFunction::Sum
                    if !matches!(arg_type, Some(DataType::Integer | DataType::Float)) =>
                {
                    return Err(refuse(format!(
                        "{}() of \"{name}\" needs a number (an INTEGER or FLOAT argument)",
                        function.name()
                    )));
                }
                RollupFunction::Avg => {
                    defs.push(column(format!("{name}$sum"), DataType::Float, true));
                    defs.push(column(format!("{name}$count"), DataType::Integer, false));
                }
                RollupFunction::First | RollupFunction::Last => {
                    let known = |t: Option<DataType>| {
                        t.ok_or_else(|| {
                            refuse(format!("the type of \"{name}\" is not known; CAST it"))
                        })
                    };
                    defs.push(column(name.clone(), known(arg_type)?, true));
                    let by_type = known(by.as_ref().and_then(type_of))?;
                    defs.push(column(format!("{name}$at"), by_type, true));
                }
                RollupFunction::Sum | RollupFunction::Min | RollupFunction::Max => {
                    let datatype = arg_type.ok_or_else(|| {
                        refuse(format!("the type of \"{name}\" is not known; CAST its argument"))
                    })?;
                    defs.push(column(name.clone(), datatype, true));
                }
            }
        }
        let key: Vec<String> = rollup.columns[..rollup.groups.len()].to_vec();
        if key.len() == 1 {
            defs[0].primary_key = true;
        }
        let table_key = (key.len() > 1).then_some(key.as_slice());
        let mut state = self.plan_table(&rollup.state_table, &defs, table_key, &[])?;
        state.rollup_of = Some(rollup.name.clone());
        // WITH (ttl = ...): on the first TIMESTAMP group unless ttl_column says otherwise.
        let mut options = options.to_vec();
        if options.iter().any(|o| o.name == "ttl")
            && !options.iter().any(|o| o.name == "ttl_column")
        {
            let time = defs.iter().take(key.len()).find(|d| d.datatype == DataType::Timestamp);
            let time = time.ok_or_else(|| refuse("a ttl needs a TIMESTAMP group column"))?;
            options.push(TableOption { name: "ttl_column".into(), value: time.name.clone() });
        }
        state.ttl = super::retention::ttl_from_options(&state, None, &options)?;
        Ok(state)
    }
}

/// The view a rollup is read through: its columns from the state (averages divided out).
fn rollup_view(rollup: &Rollup) -> Result<View> {
    let quote = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
    let mut items: Vec<String> =
        rollup.columns[..rollup.groups.len()].iter().map(|c| quote(c)).collect();
    for (aggregate, name) in rollup.aggregates.iter().zip(&rollup.columns[rollup.groups.len()..]) {
        items.push(match aggregate.function {
            RollupFunction::Avg => format!(
                "{} / NULLIF({}, 0) AS {}",
                quote(&format!("{name}$sum")),
                quote(&format!("{name}$count")),
                quote(name)
            ),
            _ => quote(name),
        });
    }
    let sql = format!("SELECT {} FROM {}", items.join(", "), quote(&rollup.state_table));
    match crate::sql::parser::parse_statement(&sql)? {
        ast::Statement::Select(query) => {
            Ok(View { name: rollup.name.clone(), columns: Vec::new(), query: *query })
        }
        _ => Err(Error::Invalid("a rollup's view did not parse as a query".into())),
    }
}
