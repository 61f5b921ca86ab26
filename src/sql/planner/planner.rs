//! The planner: turns AST statements into plans, resolving names against the catalog.

use super::expression::{
    ConstantContext, Context, Scope, ScopeColumn, ScopeContext, build, children,
    contains_aggregate, infer_type, is_aggregate,
};
use super::optimizer;
use super::plan::{
    Access, Aggregate, AggregateFunction, Expression, Node, OutputColumn, Plan, SortKey,
};
use crate::sql::engine::{Column, Index, Table, Txn, View};
use crate::sql::error::{Error, Result};
use crate::sql::execution::evaluate_constant;
use crate::sql::parser::ast::{self, FromItem, InsertSource, JoinKind, SelectItem, Statement};
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
        }
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
            Statement::CreateTable { name, columns, primary_key, unique, if_not_exists } => {
                Plan::CreateTable {
                    schema: self.plan_table(name, columns, primary_key.as_deref(), unique)?,
                    if_not_exists: *if_not_exists,
                }
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
                let [column] = columns.as_slice() else {
                    return Err(Error::Invalid(
                        "indexes on several columns are not supported".into(),
                    ));
                };
                let index = Index {
                    name: name.clone(),
                    column: schema.column_index(column)?,
                    unique: *unique,
                };
                Plan::CreateIndex { table: table.clone(), index, if_not_exists: *if_not_exists }
            }
            Statement::DropIndex { name, if_exists } => {
                Plan::DropIndex { name: name.clone(), if_exists: *if_exists }
            }
            Statement::Insert { table, columns, source, conflict } => {
                self.plan_insert(table, columns.as_deref(), source, conflict.as_ref())?
            }
            Statement::Update { table, set, filter } => {
                let (table, scope) = self.table_scope(table)?;
                let ctx = ScopeContext { scope: &scope, clause: "UPDATE" };
                let assignments = assignments(&table, set, &ctx)?;
                let source = self.dml_source(&table, &scope, filter.as_ref())?;
                Plan::Update { table, source, set: assignments }
            }
            Statement::Delete { table, filter } => {
                let (table, scope) = self.table_scope(table)?;
                let source = self.dml_source(&table, &scope, filter.as_ref())?;
                Plan::Delete { table, source }
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

    fn plan_table(
        &self,
        name: &str,
        defs: &[ast::ColumnDef],
        table_key: Option<&[String]>,
        table_unique: &[Vec<String>],
    ) -> Result<Table> {
        let mut primary_key = None;
        let mut columns = Vec::new();
        let mut unique_columns = Vec::new();
        for (i, def) in defs.iter().enumerate() {
            if def.primary_key && primary_key.replace(i).is_some() {
                return Err(Error::Invalid("multiple primary keys are not allowed".into()));
            }
            let default = match &def.default {
                Some(expr) => Some(evaluate_constant(expr, "DEFAULT")?.coerce_to(def.datatype)?),
                None => None,
            };
            if def.primary_key && def.nullable == Some(true) {
                return Err(Error::Invalid(format!(
                    "primary key column \"{}\" cannot be NULL",
                    def.name
                )));
            }
            columns.push(Column {
                name: def.name.clone(),
                datatype: def.datatype,
                max_length: def.max_length,
                nullable: def.nullable.unwrap_or(!def.primary_key),
                default,
            });
            if def.unique && !def.primary_key {
                unique_columns.push(i);
            }
        }
        let position = |columns: &[Column], column: &String| {
            columns
                .iter()
                .position(|c| &c.name == column)
                .ok_or_else(|| Error::UnknownColumn(column.clone()))
        };
        if let Some(key) = table_key {
            let [column] = key else {
                return Err(Error::Invalid(
                    "primary keys on several columns are not supported".into(),
                ));
            };
            if primary_key.replace(position(&columns, column)?).is_some() {
                return Err(Error::Invalid("multiple primary keys are not allowed".into()));
            }
        }
        if let Some(key) = primary_key {
            columns[key].nullable = false;
        }
        for list in table_unique {
            let [column] = list.as_slice() else {
                return Err(Error::Invalid(
                    "UNIQUE constraints on several columns are not supported".into(),
                ));
            };
            let index = position(&columns, column)?;
            if Some(index) != primary_key && !unique_columns.contains(&index) {
                unique_columns.push(index);
            }
        }
        let indexes = unique_columns
            .into_iter()
            .map(|column| Index {
                name: format!("{name}_{}_key", columns[column].name),
                column,
                unique: true,
            })
            .collect();
        let table = Table { name: name.to_string(), columns, primary_key, indexes };
        table.validate()?;
        Ok(table)
    }

    fn plan_insert(
        &self,
        table: &str,
        columns: Option<&[String]>,
        source: &InsertSource,
        conflict: Option<&ast::OnConflict>,
    ) -> Result<Plan> {
        let table = self.txn.must_get_table(table)?;
        let conflict = self.plan_conflict(&table, conflict)?;
        let (source, width) = match source {
            InsertSource::Values(rows) => {
                let width = rows.first().map_or(0, |row| row.len());
                if rows.iter().any(|row| row.len() != width) {
                    return Err(Error::Invalid("VALUES lists must all be the same length".into()));
                }
                let ctx = ConstantContext("VALUES");
                let rows = rows
                    .iter()
                    .map(|row| row.iter().map(|expr| build(expr, &ctx)).collect::<Result<Vec<_>>>())
                    .collect::<Result<_>>()?;
                (Node::Values { rows }, width)
            }
            InsertSource::Select(select) => {
                let (node, columns) = self.plan_select(select)?;
                (node, columns.len())
            }
            InsertSource::DefaultValues => (Node::Values { rows: vec![vec![]] }, 0),
        };
        let targets: Vec<usize> = match columns {
            Some(names) => {
                let mut targets = Vec::new();
                for name in names {
                    let index = table.column_index(name)?;
                    if targets.contains(&index) {
                        return Err(Error::Invalid(format!(
                            "column \"{name}\" specified more than once"
                        )));
                    }
                    targets.push(index);
                }
                targets
            }
            None => (0..width.min(table.columns.len())).collect(),
        };
        if width != targets.len() {
            return Err(Error::Invalid(format!(
                "INSERT has {width} values per row but {} target columns",
                targets.len()
            )));
        }
        Ok(Plan::Insert { table, columns: targets, source, conflict })
    }

    /// A table and the scope of its columns, qualified by its name.
    fn table_scope(&self, name: &str) -> Result<(Table, Scope)> {
        let table = self.txn.must_get_table(name)?;
        let scope = Scope {
            columns: table
                .columns
                .iter()
                .map(|c| ScopeColumn {
                    table: Some(name.to_string()),
                    name: Some(c.name.clone()),
                    datatype: Some(c.datatype),
                    qualified_only: false,
                })
                .collect(),
        };
        Ok((table, scope))
    }

    /// The rows an UPDATE or DELETE changes: a keyed scan with the WHERE filter.
    fn dml_source(
        &self,
        table: &Table,
        scope: &Scope,
        filter: Option<&ast::Expression>,
    ) -> Result<Node> {
        let filter =
            filter.map(|f| build(f, &ScopeContext { scope, clause: "WHERE" })).transpose()?;
        Ok(Node::Scan {
            table: table.clone(),
            alias: None,
            access: Access::Full,
            filter,
            with_key: true,
        })
    }

    fn plan_from(&self, item: &FromItem, names: &mut BTreeSet<String>) -> Result<(Node, Scope)> {
        match item {
            FromItem::Query { query, alias } => {
                self.plan_derived(query, alias.as_deref(), &[], names)
            }
            FromItem::Table { name, alias } => {
                if let Some(planned) = self.plan_common(name, alias.as_deref(), names) {
                    return planned;
                }
                let Some(table) = self.txn.get_table(name)? else {
                    return self.plan_view(name, alias.as_deref(), names);
                };
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
                    table,
                    alias: alias.clone(),
                    access: Access::Full,
                    filter: None,
                    with_key: false,
                };
                Ok((node, scope))
            }
            FromItem::Join { left, right, kind, on } => {
                let (left, mut scope) = self.plan_from(left, names)?;
                let (right, right_scope) = self.plan_from(right, names)?;
                let right_width = right_scope.len();
                scope.extend(right_scope);
                let predicate = on
                    .as_ref()
                    .map(|on| build(on, &ScopeContext { scope: &scope, clause: "JOIN conditions" }))
                    .transpose()?;
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
        if let Some(resolved) = self.resolve_select(select)? {
            return self.plan_select(&resolved);
        }
        // FROM: joins, with comma-separated items cross-joined.
        let mut names = BTreeSet::new();
        let (mut node, scope) = match select.from.split_first() {
            None => (Node::Values { rows: vec![vec![]] }, Scope::default()),
            Some((first, rest)) => {
                let (mut node, mut scope) = self.plan_from(first, &mut names)?;
                for item in rest {
                    let (right, right_scope) = self.plan_from(item, &mut names)?;
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
        };

        if let Some(filter) = &select.filter {
            let predicate = build(filter, &ScopeContext { scope: &scope, clause: "WHERE" })?;
            node = Node::Filter { source: Box::new(node), predicate };
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
                        if table.is_some_and(|t| column.table.as_ref() != Some(t)) {
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
                    items.push((expr.clone(), output_name, String::new()));
                }
            }
        }

        // Aggregation: GROUP BY, or aggregates anywhere in SELECT, HAVING or ORDER BY.
        let aggregating = !select.group_by.is_empty()
            || select.having.is_some()
            || items.iter().any(|(expr, ..)| contains_aggregate(expr))
            || select.order_by.iter().any(|o| contains_aggregate(&o.expr));
        let post_scope;
        let grouped;
        let plain_ctx = ScopeContext { scope: &scope, clause: "SELECT" };
        let ctx: &dyn Context = if aggregating {
            let (aggregate_node, context) = self.plan_aggregation(node, &scope, select, &items)?;
            node = aggregate_node;
            grouped = context;
            if let Some(having) = &select.having {
                let predicate = build(having, &grouped)?;
                node = Node::Filter { source: Box::new(node), predicate };
            }
            post_scope = grouped.post_scope.clone();
            &grouped
        } else {
            post_scope = scope.clone();
            &plain_ctx
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
        for item in &select.order_by {
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

    /// Plans the aggregation of a SELECT: the Aggregate node and the context in which
    /// expressions after it are built.
    fn plan_aggregation(
        &self,
        source: Node,
        scope: &Scope,
        select: &ast::Select,
        items: &[(ast::Expression, Option<String>, String)],
    ) -> Result<(Node, Grouped)> {
        let input = ScopeContext { scope, clause: "GROUP BY" };
        let mut group_asts = Vec::new();
        for expr in &select.group_by {
            // A position or an output alias refers to the select list (input columns win).
            let expr = match expr {
                ast::Expression::Literal(Value::Integer(n)) => {
                    let item = usize::try_from(*n)
                        .ok()
                        .and_then(|n| n.checked_sub(1))
                        .and_then(|n| items.get(n));
                    item.ok_or_else(|| {
                        Error::Invalid(format!("GROUP BY position {n} is not in select list"))
                    })?
                    .0
                    .clone()
                }
                ast::Expression::Column { table: None, name }
                    if scope.resolve(None, name).is_err() =>
                {
                    items
                        .iter()
                        .find(|(_, output, _)| output.as_deref() == Some(name.as_str()))
                        .map_or_else(|| expr.clone(), |(e, ..)| e.clone())
                }
                other => other.clone(),
            };
            if contains_aggregate(&expr) {
                return Err(Error::Invalid(
                    "aggregate functions are not allowed in GROUP BY".into(),
                ));
            }
            group_asts.push(expr);
        }
        let groups = group_asts.iter().map(|g| build(g, &input)).collect::<Result<Vec<_>>>()?;

        let mut aggregate_asts = Vec::new();
        for expr in items
            .iter()
            .map(|(e, ..)| e)
            .chain(&select.having)
            .chain(select.order_by.iter().map(|o| &o.expr))
        {
            collect_aggregates(expr, &mut aggregate_asts)?;
        }
        let arguments = ScopeContext { scope, clause: "aggregate function arguments" };
        let mut aggregates = Vec::new();
        for ast in &aggregate_asts {
            aggregates.push(match ast {
                ast::Expression::CountStar => Aggregate {
                    function: AggregateFunction::Count,
                    arg: None,
                    distinct: false,
                    separator: None,
                },
                ast::Expression::Function { name, args, distinct } => {
                    let function = match name.as_str() {
                        "count" => AggregateFunction::Count,
                        "sum" => AggregateFunction::Sum,
                        "avg" => AggregateFunction::Avg,
                        "min" => AggregateFunction::Min,
                        "max" => AggregateFunction::Max,
                        _ => AggregateFunction::GroupConcat,
                    };
                    let (arg, separator) = match (name.as_str(), args.as_slice()) {
                        ("string_agg", [arg, separator]) | ("group_concat", [arg, separator]) => {
                            (arg, Some(build(separator, &arguments)?))
                        }
                        ("string_agg", _) => {
                            return Err(Error::Invalid(
                                "string_agg() takes two arguments: a value and a separator".into(),
                            ));
                        }
                        ("group_concat", [arg]) => (arg, None),
                        ("group_concat", _) => {
                            return Err(Error::Invalid(
                                "group_concat() takes one or two arguments".into(),
                            ));
                        }
                        (_, [arg]) => (arg, None),
                        _ => {
                            return Err(Error::Invalid(format!(
                                "{name}() takes exactly one argument"
                            )));
                        }
                    };
                    let arg = Some(build(arg, &arguments)?);
                    Aggregate { function, arg, distinct: *distinct, separator }
                }
                _ => return Err(Error::Invalid("not an aggregate".into())),
            });
        }

        let input_type = |i: usize| scope.columns.get(i).and_then(|c| c.datatype);
        let mut post_scope = Scope::default();
        for (ast, group) in group_asts.iter().zip(&groups) {
            post_scope.columns.push(match (ast, group) {
                (ast::Expression::Column { .. }, Expression::Column(i, _)) => {
                    scope.columns[*i].clone()
                }
                _ => ScopeColumn {
                    table: None,
                    name: None,
                    datatype: infer_type(group, &input_type),
                    qualified_only: false,
                },
            });
        }
        for aggregate in &aggregates {
            let datatype = match aggregate.function {
                AggregateFunction::Count => Some(crate::sql::types::DataType::Integer),
                AggregateFunction::Avg => Some(crate::sql::types::DataType::Float),
                AggregateFunction::GroupConcat => Some(crate::sql::types::DataType::String),
                _ => aggregate.arg.as_ref().and_then(|a| infer_type(a, &input_type)),
            };
            post_scope.columns.push(ScopeColumn {
                table: None,
                name: None,
                datatype,
                qualified_only: false,
            });
        }
        let labels = groups
            .iter()
            .map(|g| g.to_string())
            .chain(aggregates.iter().map(|a| a.to_string()))
            .collect();
        let node =
            Node::Aggregate { source: Box::new(source), group_by: groups.clone(), aggregates };
        let context = Grouped {
            input: scope.clone(),
            groups,
            aggregates: aggregate_asts,
            post_scope,
            labels,
        };
        Ok((node, context))
    }
}

/// Builds expressions over an Aggregate node's output: grouped expressions and aggregate calls
/// become its columns; any other column reference is an error.
struct Grouped {
    /// The scope before aggregation.
    input: Scope,
    /// The GROUP BY expressions, built in the input scope.
    groups: Vec<Expression>,
    /// The aggregate calls, in output order after the groups.
    aggregates: Vec<ast::Expression>,
    /// The scope of the Aggregate node's output.
    post_scope: Scope,
    /// Display labels of the output columns.
    labels: Vec<String>,
}

impl Grouped {
    fn output(&self, index: usize) -> Expression {
        let label = match self.post_scope.columns[index].name {
            Some(_) => self.post_scope.label(index),
            None => self.labels[index].clone(),
        };
        Expression::Column(index, label)
    }
}

impl Context for Grouped {
    fn column(&self, table: Option<&str>, name: &str) -> Result<Expression> {
        self.input.resolve(table, name)?;
        Err(Error::Invalid(format!(
            "column \"{name}\" must appear in the GROUP BY clause or be used in an aggregate function"
        )))
    }

    fn intercept(&self, ast: &ast::Expression) -> Result<Option<Expression>> {
        if is_aggregate(ast) {
            let index = self
                .aggregates
                .iter()
                .position(|a| a == ast)
                .ok_or_else(|| Error::Invalid("unknown aggregate".into()))?;
            return Ok(Some(self.output(self.groups.len() + index)));
        }
        if self.groups.is_empty() || contains_aggregate(ast) {
            return Ok(None);
        }
        let input = ScopeContext { scope: &self.input, clause: "SELECT" };
        match build(ast, &input) {
            Ok(built) => Ok(self.groups.iter().position(|g| *g == built).map(|i| self.output(i))),
            // Not buildable on its own (an unknown column): report it when building normally.
            Err(_) => Ok(None),
        }
    }
}

/// Collects the distinct aggregate calls in an expression, rejecting nested aggregates.
fn collect_aggregates(expr: &ast::Expression, out: &mut Vec<ast::Expression>) -> Result<()> {
    crate::sql::with_stack(|| {
        if is_aggregate(expr) {
            if children(expr).into_iter().any(contains_aggregate) {
                return Err(Error::Invalid("aggregate function calls cannot be nested".into()));
            }
            if !out.contains(expr) {
                out.push(expr.clone());
            }
            return Ok(());
        }
        children(expr).into_iter().try_for_each(|child| collect_aggregates(child, out))
    })
}

/// Evaluates a LIMIT or OFFSET: a non-negative integer, or NULL for none.
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
