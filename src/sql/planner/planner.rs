//! The planner: turns AST statements into plans, resolving names against the catalog.

use super::expression::{
    Context, Scope, ScopeColumn, ScopeContext, build, contains_aggregate, has_subquery, infer_type,
};
use super::optimizer;
use super::plan::{Access, Expression, Node, OutputColumn, Plan, SortKey};
use super::writes::key_last;
use crate::sql::engine::{Index, Table, Txn, View};
use crate::sql::error::{Error, Result};
use crate::sql::execution::evaluate_constant;
use crate::sql::parser::ast::{self, FromItem, JoinKind, SelectItem, Statement};
use crate::sql::types::Value;
use std::collections::BTreeSet;

/// How deep queries may nest in a statement.
const MAX_QUERY_DEPTH: usize = 64;
/// How many queries one statement may plan (each read of a view or common table counts).
const MAX_QUERIES_PLANNED: usize = 4096;

/// Plans statements against the catalog as the transaction sees it.
pub struct Planner<'a> {
    txn: &'a Txn,
    /// The common tables (WITH) in scope, innermost last.
    pub(super) common: std::cell::RefCell<Vec<ast::CommonTable>>,
    /// The views being planned, outermost first (a view that reads itself is an error).
    pub(super) views: std::cell::RefCell<Vec<String>>,
    /// How deep the query being planned sits, and how many queries the statement planned:
    /// bounded, since views and common tables are planned wherever they are read.
    depth: std::cell::Cell<usize>,
    planned: std::cell::Cell<usize>,
    /// Fail with [`Error::Deferred`] rather than run a subquery (see [`Planner::deferring`]).
    pub(super) defer_subqueries: bool,
    /// The queries enclosing the subquery being planned, outermost first (`correlated.rs`).
    pub(super) outer: std::cell::RefCell<Vec<super::correlated::OuterLevel>>,
    /// The recursive common tables whose step is being planned (`recursive.rs`), and how many
    /// the statement planned (their ids).
    pub(super) working: std::cell::RefCell<Vec<super::recursive::Working>>,
    pub(super) recursions: std::cell::Cell<usize>,
    /// How many correlated subqueries the statement applies per row (their columns' names).
    pub(super) applied: std::cell::Cell<usize>,
    /// The FROM clause being planned joins tables: read their row counts for join ordering.
    counting: std::cell::Cell<bool>,
}

impl<'a> Planner<'a> {
    /// The transaction the planner reads through.
    pub(super) fn txn(&self) -> &Txn {
        self.txn
    }

    /// A planner reading the catalog through `txn`.
    pub fn new(txn: &'a Txn) -> Self {
        Self {
            txn,
            common: Default::default(),
            views: Default::default(),
            depth: Default::default(),
            planned: Default::default(),
            defer_subqueries: false,
            outer: Default::default(),
            working: Default::default(),
            recursions: Default::default(),
            applied: Default::default(),
            counting: Default::default(),
        }
    }

    /// A context resolving names in `scope`, then in the enclosing queries.
    pub(super) fn scope_context<'s>(
        &'s self,
        scope: &'s Scope,
        clause: &'s str,
    ) -> ScopeContext<'s> {
        ScopeContext { scope, clause, outer: Some(self) }
    }

    /// A planner that fails with [`Error::Deferred`] where planning would run a subquery
    /// (anywhere, views included): for a read that should then run elsewhere.
    pub fn deferring(txn: &'a Txn) -> Self {
        Self { defer_subqueries: true, ..Self::new(txn) }
    }

    /// Plans a statement. Transaction control and EXPLAIN are handled by the session.
    pub fn plan(&self, statement: &Statement) -> Result<Plan> {
        if let Some(resolved) = self.resolve_statement(statement)? {
            return self.plan(&resolved);
        }
        let plan = match statement {
            Statement::CreateTable {
                name,
                columns,
                primary_key,
                unique,
                if_not_exists,
                options,
            } => {
                let mut schema = self.plan_table(name, columns, primary_key.as_deref(), unique)?;
                schema.ttl = super::retention::ttl_from_options(&schema, None, options)?;
                Plan::CreateTable { schema, if_not_exists: *if_not_exists }
            }
            Statement::CreateRollup { name, query, options, if_not_exists } => {
                self.plan_create_rollup(name, query, options, *if_not_exists)?
            }
            Statement::DropRollup { name, if_exists } => {
                Plan::DropRollup { name: name.clone(), if_exists: *if_exists }
            }
            Statement::AlterTable { name, change } => {
                let table = self.txn.must_get_table(name)?;
                let ttl = super::retention::change_ttl(&table, change)?;
                Plan::AlterTable { name: name.clone(), ttl }
            }
            Statement::CreateView { name, columns, query, if_not_exists } => {
                // Planned now, so a view that cannot be read is not created.
                let mut names = BTreeSet::new();
                self.plan_derived(query, Some(name), columns, &mut names)?;
                let view =
                    View { name: name.clone(), columns: columns.clone(), query: *query.clone() };
                Plan::CreateView { view, if_not_exists: *if_not_exists }
            }
            Statement::DropView { name, if_exists } => {
                Plan::DropView { name: name.clone(), if_exists: *if_exists }
            }
            Statement::DropTable { name, if_exists } => {
                Plan::DropTable { name: name.clone(), if_exists: *if_exists }
            }
            Statement::CreateIndex { name, table, columns, unique, if_not_exists } => {
                let schema = self.txn.must_get_table(table)?;
                let columns = index_columns(&schema, columns)?;
                let index =
                    Index { name: name.clone(), columns, unique: *unique, constraint: false };
                Plan::CreateIndex { table: table.clone(), index, if_not_exists: *if_not_exists }
            }
            Statement::DropIndex { name, if_exists } => {
                Plan::DropIndex { name: name.clone(), if_exists: *if_exists }
            }
            Statement::Analyze { table } => {
                let tables = match table {
                    Some(name) => vec![self.txn().must_get_table(name)?.name],
                    None => self.txn().list_tables()?.into_iter().map(|t| t.name).collect(),
                };
                Plan::Analyze { tables }
            }
            Statement::Users(statement) => Plan::Users(statement.clone()),
            Statement::Reindex { name } => {
                if let Some(name) = name
                    && self.txn().get_table(name)?.is_none()
                    && !self
                        .txn()
                        .list_tables()?
                        .iter()
                        .any(|t| t.indexes.iter().any(|i| &i.name == name))
                {
                    return Err(Error::Invalid(format!(
                        "no index or table named \"{name}\" to reindex"
                    )));
                }
                Plan::Reindex { name: name.clone().unwrap_or_default() }
            }
            Statement::Insert { table, columns, source, conflict, returning } => {
                let plan =
                    self.plan_insert(table, columns.as_deref(), source, conflict.as_ref())?;
                match plan {
                    Plan::Insert { table, columns, source, conflict, .. } => {
                        let returning = self.plan_returning(&table, returning)?;
                        Plan::Insert { table, columns, source, conflict, returning }
                    }
                    other => other,
                }
            }
            Statement::Update { table, set, filter, returning } => {
                let (table, mut scope) = self.table_scope(table)?;
                super::rollup::check_write(&table, "UPDATE", false)?;
                let (mut source, key) = self.dml_source(&table, &mut scope, filter.as_ref())?;
                let mut set = set.clone();
                for (_, expr) in &mut set {
                    source = self.attach_subqueries(source, &mut scope, expr, false)?;
                }
                let source = key_last(source, key, scope.len());
                // The assignments read the row the executor is left with once it took the key.
                scope.columns.remove(key);
                let ctx = self.scope_context(&scope, "UPDATE");
                let assignments = assignments(&table, &set, &ctx)?;
                let returning = self.plan_returning(&table, returning)?;
                Plan::Update { table, source, set: assignments, returning }
            }
            Statement::Delete { table, filter, returning } => {
                let (table, mut scope) = self.table_scope(table)?;
                super::rollup::check_write(&table, "DELETE", false)?;
                let (source, width) = self.dml_source(&table, &mut scope, filter.as_ref())?;
                let source = key_last(source, width, scope.len());
                let returning = self.plan_returning(&table, returning)?;
                Plan::Delete { table, source, returning }
            }
            Statement::Select(select) => {
                let (root, columns) = self.plan_select(select)?;
                Plan::Select { root, columns }
            }
            Statement::Begin { .. }
            | Statement::Commit
            | Statement::Rollback
            | Statement::Explain(_) => {
                return Err(Error::Invalid(
                    "transaction control and EXPLAIN are not planned".into(),
                ));
            }
        };
        Ok(optimizer::optimize(plan))
    }

    fn plan_from(&self, item: &FromItem, names: &mut BTreeSet<String>) -> Result<(Node, Scope)> {
        match item {
            FromItem::Query { query, alias } => {
                self.plan_derived(query, alias.as_deref(), &[], names)
            }
            FromItem::Series { args, alias, column } => {
                let qualifier = alias.clone().unwrap_or_else(|| "generate_series".to_string());
                if !names.insert(qualifier.clone()) {
                    return Err(Error::Invalid(format!(
                        "table name \"{qualifier}\" specified more than once"
                    )));
                }
                let node = super::series::plan(args)?;
                let datatype = match &node {
                    Node::Series { start, .. } => start.datatype(),
                    _ => None,
                };
                let name = column.clone().unwrap_or_else(|| "generate_series".to_string());
                let scope = Scope {
                    columns: vec![ScopeColumn {
                        table: Some(qualifier),
                        name: Some(name),
                        datatype,
                        qualified_only: false,
                    }],
                };
                Ok((node, scope))
            }
            FromItem::Table { name, alias } => {
                if let Some(planned) = self.plan_common(name, alias.as_deref(), names) {
                    return planned;
                }
                let Some(mut table) = self.txn.get_table(name)? else {
                    return self.plan_view(name, alias.as_deref(), names);
                };
                if self.counting.get() {
                    table.live_rows = Some(Box::new(self.txn.live_rows(name)?));
                }
                let qualifier = alias.clone().unwrap_or_else(|| name.clone());
                if !names.insert(qualifier.clone()) {
                    return Err(Error::Invalid(format!(
                        "table name \"{qualifier}\" specified more than once"
                    )));
                }
                let scope = Scope {
                    columns: table
                        .columns
                        .iter()
                        .map(|c| ScopeColumn {
                            table: Some(qualifier.clone()),
                            name: Some(c.name.clone()),
                            datatype: Some(c.datatype),
                            qualified_only: false,
                        })
                        .collect(),
                };
                let node = Node::Scan {
                    filter: super::retention::live_rows_filter(&table, &qualifier)?,
                    table: Box::new(table),
                    alias: alias.clone(),
                    access: Access::Full,
                    with_key: false,
                };
                Ok((node, scope))
            }
            FromItem::Join { left, right, kind, on } => {
                let (left, mut scope) = self.plan_from(left, names)?;
                let (right, right_scope) = self.plan_from(right, names)?;
                let right_width = right_scope.len();
                scope.extend(right_scope);
                let predicate = match on {
                    Some(on) => Some(self.join_condition(on, &scope)?),
                    None => None,
                };
                let outer = *kind == JoinKind::Left;
                let node = Node::NestedLoopJoin {
                    left: Box::new(left),
                    right: Box::new(right),
                    right_width,
                    predicate,
                    outer,
                };
                Ok((node, scope))
            }
        }
    }

    /// Plans a FROM clause: its items joined (comma-separated ones cross-joined).
    fn plan_from_clause(
        &self,
        from: &[FromItem],
        names: &mut BTreeSet<String>,
    ) -> Result<(Node, Scope)> {
        Ok(match from.split_first() {
            None => (Node::Values { rows: vec![vec![]] }, Scope::default()),
            Some((first, rest)) => {
                let (mut node, mut scope) = self.plan_from(first, names)?;
                for item in rest {
                    let (right, right_scope) = self.plan_from(item, names)?;
                    let right_width = right_scope.len();
                    scope.extend(right_scope);
                    node = Node::NestedLoopJoin {
                        left: Box::new(node),
                        right: Box::new(right),
                        right_width,
                        predicate: None,
                        outer: false,
                    };
                }
                (node, scope)
            }
        })
    }

    /// Plans a SELECT: returns its root node and output columns.
    pub fn plan_select(&self, select: &ast::Select) -> Result<(Node, Vec<OutputColumn>)> {
        let depth = self.depth.get() + 1;
        if depth > MAX_QUERY_DEPTH {
            return Err(Error::Invalid(format!(
                "the statement nests queries more than {MAX_QUERY_DEPTH} deep (subqueries, derived tables, views and common tables)"
            )));
        }
        let planned = self.planned.get() + 1;
        if planned > MAX_QUERIES_PLANNED {
            return Err(Error::Invalid(format!(
                "the statement plans more than {MAX_QUERIES_PLANNED} queries (a view or common table is planned each time it is read)"
            )));
        }
        self.depth.set(depth);
        self.planned.set(planned);
        let result = crate::sql::with_stack(|| self.plan_query(select));
        self.depth.set(depth - 1);
        result
    }

    fn plan_query(&self, select: &ast::Select) -> Result<(Node, Vec<OutputColumn>)> {
        if !select.with.is_empty() {
            return self.plan_with(select);
        }
        if !select.compound.is_empty() {
            return self.plan_compound(select);
        }
        // FROM: joins, with comma-separated items cross-joined.
        let mut names = BTreeSet::new();
        let joining =
            select.from.len() > 1 || matches!(select.from.first(), Some(FromItem::Join { .. }));
        let counting = self.counting.replace(joining);
        let from = self.plan_from_clause(&select.from, &mut names);
        self.counting.set(counting);
        let (mut node, mut scope) = from?;

        if let Some(filter) = &select.filter {
            let mut filter = filter.clone();
            let width = scope.len();
            node = self.attach_subqueries(node, &mut scope, &mut filter, true)?;
            if !is_true(&filter) {
                let predicate = build(&filter, &self.scope_context(&scope, "WHERE"))?;
                node = super::correlated::filter_below_subqueries(node, predicate, width);
            }
        }

        // The select list, with * expanded: (expression, output name, label).
        let mut items: Vec<(ast::Expression, Option<String>, String)> = Vec::new();
        for item in &select.select {
            match item {
                SelectItem::Wildcard | SelectItem::TableWildcard(_) => {
                    let table = match item {
                        SelectItem::TableWildcard(table) if !scope.has_table(table) => {
                            return Err(Error::UnknownTable(table.clone()));
                        }
                        SelectItem::TableWildcard(table) => Some(table),
                        _ if scope.is_empty() => {
                            return Err(Error::Invalid(
                                "SELECT * with no tables specified is not valid".into(),
                            ));
                        }
                        _ => None,
                    };
                    for column in &scope.columns {
                        if column.qualified_only
                            || table.is_some_and(|t| column.table.as_ref() != Some(t))
                        {
                            continue;
                        }
                        let name = column.name.clone().unwrap_or_default();
                        let expr = ast::Expression::Column {
                            table: column.table.clone(),
                            name: name.clone(),
                        };
                        items.push((expr, Some(name.clone()), name));
                    }
                }
                SelectItem::Expression(expr, alias) => {
                    let output_name = alias.clone().or_else(|| match expr {
                        ast::Expression::Column { name, .. } => Some(name.clone()),
                        _ => None,
                    });
                    // Labelled now: its subqueries are replaced before it is built.
                    let label = match has_subquery(expr) {
                        true => expression_label(expr),
                        false => String::new(),
                    };
                    items.push((expr.clone(), output_name, label));
                }
            }
        }

        // Aggregation: GROUP BY, or aggregates anywhere in SELECT, HAVING or ORDER BY.
        let aggregating = !select.group_by.is_empty()
            || select.having.is_some()
            || items.iter().any(|(expr, ..)| contains_aggregate(expr))
            || select.order_by.iter().any(|o| contains_aggregate(&o.expr));
        let mut order_by = select.order_by.clone();
        let post_scope;
        let grouped;
        let plain_ctx;
        let ctx: &dyn Context = if aggregating {
            let with_subqueries;
            let mut query = select;
            if select.group_by.iter().chain(&select.having).any(has_subquery)
                || items
                    .iter()
                    .map(|(e, ..)| e)
                    .chain(order_by.iter().map(|o| &o.expr))
                    .any(has_subquery)
            {
                // GROUP BY's subqueries and those in aggregates' arguments are computed per
                // input row, below the aggregation.
                let mut owned = select.clone();
                for expr in &mut owned.group_by {
                    // A position or alias naming a select item with a subquery groups by that
                    // subquery's column, which the item then reads too (the position or alias
                    // then names the rewritten item).
                    let item = match &*expr {
                        ast::Expression::Literal(Value::Integer(n)) => usize::try_from(*n)
                            .ok()
                            .and_then(|n| n.checked_sub(1))
                            .filter(|i| *i < items.len()),
                        ast::Expression::Column { table: None, name }
                            if scope.resolve(None, name).is_err() =>
                        {
                            items.iter().position(|(_, output, _)| output.as_deref() == Some(name))
                        }
                        _ => None,
                    };
                    match item.filter(|i| has_subquery(&items[*i].0)) {
                        Some(i) => {
                            node =
                                self.attach_subqueries(node, &mut scope, &mut items[i].0, false)?;
                        }
                        None => node = self.attach_subqueries(node, &mut scope, expr, false)?,
                    }
                }
                let arguments = items
                    .iter_mut()
                    .map(|(e, ..)| e)
                    .chain(owned.having.iter_mut())
                    .chain(order_by.iter_mut().map(|o| &mut o.expr));
                for expr in arguments {
                    node = self.attach_in_aggregates(node, &mut scope, expr)?;
                }
                owned.order_by = order_by.clone();
                with_subqueries = owned;
                query = &with_subqueries;
            }
            let (aggregate_node, mut context) =
                self.plan_aggregation(node, &scope, query, &items)?;
            node = aggregate_node;
            // Subqueries over the groups: HAVING, the select list, ORDER BY.
            if let Some(having) = &query.having {
                let mut having = having.clone();
                node = self.attach_subqueries(node, &mut context.post_scope, &mut having, true)?;
                if !is_true(&having) {
                    let predicate = build(&having, &context)?;
                    node = Node::Filter { source: Box::new(node), predicate };
                }
            }
            for expr in
                items.iter_mut().map(|(e, ..)| e).chain(order_by.iter_mut().map(|o| &mut o.expr))
            {
                node = self.attach_subqueries(node, &mut context.post_scope, expr, false)?;
            }
            grouped = context;
            post_scope = grouped.post_scope.clone();
            &grouped
        } else {
            for expr in
                items.iter_mut().map(|(e, ..)| e).chain(order_by.iter_mut().map(|o| &mut o.expr))
            {
                node = self.attach_subqueries(node, &mut scope, expr, false)?;
            }
            post_scope = scope.clone();
            plain_ctx = self.scope_context(&post_scope, "SELECT");
            &plain_ctx
        };

        // Window functions: computed over the rows so far, read by the select list and ORDER BY.
        let calls = super::window::collect(
            items.iter().map(|(e, ..)| e).chain(order_by.iter().map(|o| &o.expr)),
        )?;
        let windowed;
        let window_scope;
        let (ctx, post_scope): (&dyn Context, &Scope) = if calls.is_empty() {
            (ctx, &post_scope)
        } else {
            let (window_node, scope) = super::window::plan(node, &post_scope, ctx, &calls)?;
            node = window_node;
            window_scope = scope;
            windowed = super::window::Windowed { inner: ctx, calls, width: post_scope.len() };
            (&windowed, &window_scope)
        };

        // The projection; ORDER BY may add hidden columns after the visible ones.
        let mut expressions =
            items.iter().map(|(expr, ..)| build(expr, ctx)).collect::<Result<Vec<_>>>()?;
        let visible = expressions.len();
        let mut columns = Vec::with_capacity(visible);
        for ((expr, output_name, label), built) in items.iter().zip(&expressions) {
            let name = match (output_name, label.is_empty()) {
                (Some(name), _) => name.clone(),
                (None, false) => label.clone(),
                (None, true) => expression_label(expr),
            };
            let datatype =
                infer_type(built, &|i| post_scope.columns.get(i).and_then(|c| c.datatype));
            columns.push(OutputColumn { name, datatype });
        }

        let mut keys = Vec::new();
        for item in &order_by {
            let position = match &item.expr {
                ast::Expression::Literal(Value::Integer(n)) => {
                    let n = usize::try_from(*n).ok().filter(|n| (1..=visible).contains(n));
                    Some(
                        n.ok_or_else(|| {
                            Error::Invalid(format!(
                                "ORDER BY position {} is not in select list",
                                item_text(&item.expr)
                            ))
                        })? - 1,
                    )
                }
                ast::Expression::Column { table: None, name } => {
                    items.iter().position(|(_, output, _)| output.as_deref() == Some(name.as_str()))
                }
                _ => None,
            };
            let position = match position {
                Some(position) => position,
                None => {
                    let built = build(&item.expr, ctx)?;
                    match expressions[..visible].iter().position(|e| *e == built) {
                        Some(position) => position,
                        None if select.distinct => {
                            return Err(Error::Invalid(
                                "for SELECT DISTINCT, ORDER BY expressions must appear in select list".into(),
                            ));
                        }
                        None => {
                            expressions.push(built);
                            expressions.len() - 1
                        }
                    }
                }
            };
            let label =
                columns.get(position).map_or_else(|| format!("#{position}"), |c| c.name.clone());
            keys.push(SortKey {
                expr: Expression::Column(position, label),
                descending: item.descending,
                nulls_first: item.nulls_first.unwrap_or(!item.descending),
            });
        }

        let width = expressions.len();
        node = Node::Projection { source: Box::new(node), expressions };
        if select.distinct {
            node = Node::Distinct { source: Box::new(node) };
        }
        if !keys.is_empty() {
            node = Node::Order { source: Box::new(node), keys };
        }
        node = offset_and_limit(node, select)?;
        if width > visible {
            let expressions = columns
                .iter()
                .enumerate()
                .map(|(i, c)| Expression::Column(i, c.name.clone()))
                .collect();
            node = Node::Projection { source: Box::new(node), expressions };
        }
        Ok((node, columns))
    }
}

/// The positions of an index's columns, each named once.
pub(super) fn index_columns(table: &Table, names: &[String]) -> Result<Vec<usize>> {
    let mut columns = Vec::with_capacity(names.len());
    for name in names {
        let column = table.column_index(name)?;
        if columns.contains(&column) {
            return Err(Error::Invalid(format!("column \"{name}\" is named twice in the index")));
        }
        columns.push(column);
    }
    Ok(columns)
}

/// Whether a clause is the literal TRUE (what is left of a WHERE all of whose conjuncts became
/// semi-joins).
pub(super) fn is_true(expr: &ast::Expression) -> bool {
    matches!(expr, ast::Expression::Literal(Value::Boolean(true)))
}

/// `node` with a query's OFFSET and LIMIT applied.
pub(super) fn offset_and_limit(mut node: Node, query: &ast::Select) -> Result<Node> {
    if let Some(offset) = &query.offset
        && let Some(offset) = row_count(offset, "OFFSET")?
    {
        node = Node::Offset { source: Box::new(node), offset };
    }
    if let Some(limit) = &query.limit
        && let Some(limit) = row_count(limit, "LIMIT")?
    {
        node = Node::Limit { source: Box::new(node), limit };
    }
    Ok(node)
}

/// The assignments of an UPDATE (or ON CONFLICT DO UPDATE) as (column, value); a column
/// assigned twice takes the last value, as in SQLite and MySQL.
pub(super) fn assignments(
    table: &Table,
    set: &[(String, ast::Expression)],
    ctx: &dyn super::expression::Context,
) -> Result<Vec<(usize, Expression)>> {
    let mut assignments: Vec<(usize, Expression)> = Vec::new();
    for (column, expr) in set {
        let index = table.column_index(column)?;
        assignments.retain(|(i, _)| *i != index);
        assignments.push((index, build(expr, ctx)?));
    }
    Ok(assignments)
}

fn row_count(expr: &ast::Expression, clause: &str) -> Result<Option<u64>> {
    match evaluate_constant(expr, clause)? {
        Value::Null => Ok(None),
        Value::Integer(n) if n >= 0 => Ok(Some(n as u64)),
        other => Err(Error::Invalid(format!(
            "{clause} must be a non-negative integer, got {}",
            other.to_sql()
        ))),
    }
}

/// The label of an unnamed select-list expression: a function's name (as PostgreSQL names
/// it), or the expression's SQL text.
fn expression_label(ast: &ast::Expression) -> String {
    match ast {
        ast::Expression::CountStar => "count".to_string(),
        ast::Expression::Function { name, .. } => name.clone(),
        other => other.to_string(),
    }
}

fn item_text(expr: &ast::Expression) -> String {
    match expr {
        ast::Expression::Literal(value) => value.to_string(),
        other => format!("{other:?}"),
    }
}
