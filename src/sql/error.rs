//! The SQL layer's error type.

use crate::storage;

/// Errors from parsing, planning and executing SQL. Each variant is a kind a user can act on;
/// [`Error::kind`] names it in machine-readable form.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Error {
    /// Planning would run a subquery, and the planner was asked not to (it plans a read that
    /// should then run off the request's task; never seen by clients).
    #[error("the query runs a subquery as it is planned")]
    Deferred,
    /// An error about a name, with where the statement text names it.
    #[error("{error} (line {line}, column {column})")]
    At {
        /// The error.
        error: Box<Error>,
        /// 1-based line in the script.
        line: usize,
        /// 1-based column in the script.
        column: usize,
    },
    /// The text is not valid SQL.
    #[error("syntax error at line {line}, column {column}: {message}")]
    Parse {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What was expected and what was found.
        message: String,
    },
    /// A table named in the statement does not exist.
    #[error("table \"{0}\" does not exist")]
    UnknownTable(String),
    /// CREATE TABLE of a name that exists.
    #[error("table \"{0}\" already exists")]
    TableExists(String),
    /// A column named in the statement does not exist.
    #[error("column \"{0}\" does not exist")]
    UnknownColumn(String),
    /// An unqualified column name matches columns of several tables.
    #[error("column reference \"{0}\" is ambiguous")]
    AmbiguousColumn(String),
    /// An index named in the statement does not exist.
    #[error("index \"{0}\" does not exist")]
    UnknownIndex(String),
    /// CREATE INDEX of a name that exists.
    #[error("index \"{0}\" already exists")]
    IndexExists(String),
    /// A value or expression has the wrong type for where it is used.
    #[error("type mismatch: {0}")]
    TypeMismatch(String),
    /// A NULL was written to a NOT NULL column.
    #[error("null value in column \"{column}\" of table \"{table}\" violates not-null constraint")]
    NotNull {
        /// The table.
        table: String,
        /// The column.
        column: String,
    },
    /// A write would duplicate a value of a UNIQUE column or unique index.
    #[error("duplicate value {value} violates unique constraint \"{index}\" on {table}.{column}")]
    Unique {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// The index enforcing the constraint.
        index: String,
        /// The duplicated value, as SQL text.
        value: String,
    },
    /// A write would duplicate a primary key.
    #[error("duplicate primary key {key} in table \"{table}\"")]
    PrimaryKey {
        /// The table.
        table: String,
        /// The duplicated key, as SQL text.
        key: String,
    },
    /// Division or modulo by zero.
    #[error("division by zero")]
    DivisionByZero,
    /// A number does not fit its type (integer overflow, an out-of-range cast).
    #[error("value out of range: {0}")]
    OutOfRange(String),
    /// The statement is well-formed but not valid (wrong number of values, an aggregate
    /// in WHERE, an unsupported feature, ...).
    #[error("{0}")]
    Invalid(String),
    /// Transaction control used in the wrong state (COMMIT without BEGIN, ...).
    #[error("{0}")]
    Transaction(String),
    /// A conflict with a concurrent transaction; retrying the transaction may succeed.
    #[error("could not serialize access: {0}")]
    Serialization(String),
    /// A write in a read-only transaction.
    #[error("cannot write in a read-only transaction")]
    ReadOnly,
    /// The statement would write or hold more than its budget allows (see `sql::budget`):
    /// every replica fails it the same way.
    #[error("{0}")]
    ResourceLimit(String),
    /// A query was stopped: its time ran out or its client went away (local queries only).
    #[error("query canceled: {0}")]
    Canceled(String),
    /// A storage failure other than the above (I/O, corruption, ...).
    #[error(transparent)]
    Storage(storage::Error),
}

impl Error {
    /// A stable machine-readable name for the kind of error (used by clients and tests).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::At { error, .. } => error.kind(),
            Error::Parse { .. } => "syntax_error",
            Error::Deferred => "internal",
            Error::UnknownTable(_) => "unknown_table",
            Error::TableExists(_) => "table_exists",
            Error::UnknownColumn(_) => "unknown_column",
            Error::AmbiguousColumn(_) => "ambiguous_column",
            Error::UnknownIndex(_) => "unknown_index",
            Error::IndexExists(_) => "index_exists",
            Error::TypeMismatch(_) => "type_mismatch",
            Error::NotNull { .. } => "not_null_violation",
            Error::Unique { .. } => "unique_violation",
            Error::PrimaryKey { .. } => "primary_key_violation",
            Error::DivisionByZero => "division_by_zero",
            Error::OutOfRange(_) => "out_of_range",
            Error::Invalid(_) => "invalid_statement",
            Error::Transaction(_) => "transaction_state",
            Error::Serialization(_) => "serialization_failure",
            Error::ReadOnly => "read_only",
            Error::ResourceLimit(_) => "resource_limit",
            Error::Canceled(_) => "query_canceled",
            Error::Storage(storage::Error::SnapshotTooOld { .. }) => "snapshot_too_old",
            Error::Storage(_) => "storage_error",
        }
    }

    /// True when every replica executing the same statement on the same state gets the same
    /// error, so it may be returned as the statement's result. Otherwise (I/O, corruption) a
    /// replica must stop rather than diverge.
    pub fn is_deterministic(&self) -> bool {
        match self {
            Error::At { error, .. } => error.is_deterministic(),
            Error::Storage(error) => error.is_deterministic(),
            // Clocks and clients differ between replicas (and apply has neither).
            Error::Canceled(_) => false,
            _ => true,
        }
    }
}

impl Error {
    /// The error, if it is about a name that `statement` (starting at byte `start` of
    /// `script`) names, with the line and column of that name in the script.
    pub fn located(self, script: &str, start: usize, statement: &str) -> Error {
        let message = self.to_string();
        let Some(at) =
            crate::sql::parser::locate::locate_name_error(self.kind(), &message, statement)
        else {
            return self;
        };
        let (line, column) = crate::sql::parser::locate::line_column(script, start + at.offset);
        Error::At { error: Box::new(self), line, column }
    }
}

impl From<storage::Error> for Error {
    fn from(error: storage::Error) -> Self {
        match error {
            storage::Error::Serialization(message) => Error::Serialization(message),
            storage::Error::ReadOnly => Error::ReadOnly,
            other => Error::Storage(other),
        }
    }
}

impl From<crate::encoding::DecodeError> for Error {
    fn from(error: crate::encoding::DecodeError) -> Self {
        Error::Storage(error.into())
    }
}

/// The result type of the SQL layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;
