//! Conversions between the protobuf messages and the domain types.

use super::pb;
use crate::replica::{
    Consistency, Error, Response, Settings, StatementError, StatementOutcome, Transaction,
};
use crate::sql::StatementResult;
use crate::sql::planner::OutputColumn;
use crate::sql::types::{DataType, Interval, Value};
use crate::storage::mvcc::TransactionState;

impl From<&Value> for pb::Value {
    fn from(value: &Value) -> Self {
        use pb::value::Value as V;
        let value = match value {
            Value::Null => V::Null(true),
            Value::Boolean(b) => V::Boolean(*b),
            Value::Integer(i) => V::Integer(*i),
            Value::Float(f) => V::Float(*f),
            Value::String(s) => V::String(s.clone()),
            Value::Timestamp(t) => V::Timestamp(*t),
            Value::Interval(i) => {
                V::Interval(pb::Interval { months: i.months, days: i.days, micros: i.micros })
            }
        };
        pb::Value { value: Some(value) }
    }
}

impl From<pb::Value> for Value {
    fn from(value: pb::Value) -> Self {
        use pb::value::Value as V;
        match value.value {
            None | Some(V::Null(_)) => Value::Null,
            Some(V::Boolean(b)) => Value::Boolean(b),
            Some(V::Integer(i)) => Value::Integer(i),
            Some(V::Float(f)) => Value::Float(f),
            Some(V::String(s)) => Value::String(s),
            Some(V::Timestamp(t)) => Value::Timestamp(t),
            Some(V::Interval(i)) => {
                Value::Interval(Interval { months: i.months, days: i.days, micros: i.micros })
            }
        }
    }
}

/// The protobuf data type of a column.
pub fn data_type(datatype: Option<DataType>) -> pb::DataType {
    match datatype {
        None => pb::DataType::Unknown,
        Some(DataType::Boolean) => pb::DataType::Boolean,
        Some(DataType::Integer) => pb::DataType::Integer,
        Some(DataType::Float) => pb::DataType::Float,
        Some(DataType::String) => pb::DataType::String,
        Some(DataType::Timestamp) => pb::DataType::Timestamp,
        Some(DataType::Interval) => pb::DataType::Interval,
    }
}

fn from_data_type(datatype: i32) -> Option<DataType> {
    match pb::DataType::try_from(datatype).unwrap_or(pb::DataType::Unknown) {
        pb::DataType::Unknown => None,
        pb::DataType::Boolean => Some(DataType::Boolean),
        pb::DataType::Integer => Some(DataType::Integer),
        pb::DataType::Float => Some(DataType::Float),
        pb::DataType::String => Some(DataType::String),
        pb::DataType::Timestamp => Some(DataType::Timestamp),
        pb::DataType::Interval => Some(DataType::Interval),
    }
}

/// Protobuf columns of a result.
pub fn columns(columns: &[OutputColumn]) -> Vec<pb::Column> {
    columns
        .iter()
        .map(|c| pb::Column { name: c.name.clone(), r#type: data_type(c.datatype) as i32 })
        .collect()
}

/// Protobuf rows.
pub fn rows(rows: &[Vec<Value>]) -> Vec<pb::Row> {
    rows.iter().map(|row| pb::Row { values: row.iter().map(pb::Value::from).collect() }).collect()
}

/// Domain columns of protobuf columns.
pub fn from_columns(columns: Vec<pb::Column>) -> Vec<OutputColumn> {
    columns
        .into_iter()
        .map(|c| OutputColumn { name: c.name, datatype: from_data_type(c.r#type) })
        .collect()
}

/// Domain rows of protobuf rows.
pub fn from_rows(rows: Vec<pb::Row>) -> Vec<Vec<Value>> {
    rows.into_iter().map(|row| row.values.into_iter().map(Value::from).collect()).collect()
}

/// A statement's outcome as a protobuf result.
pub fn statement_result(index: u64, outcome: &StatementOutcome) -> pb::StatementResult {
    use pb::statement_result::Result as R;
    let result = match outcome {
        Err(error) => {
            R::Error(pb::Error { kind: error.kind.clone(), message: error.message.clone() })
        }
        Ok(result) => match result {
            StatementResult::Begin { version, read_only } => {
                R::Begin(pb::Begin { version: *version, read_only: *read_only })
            }
            StatementResult::Commit { version } => R::Commit(pb::Finished { version: *version }),
            StatementResult::Rollback { version } => {
                R::Rollback(pb::Finished { version: *version })
            }
            StatementResult::CreateTable { name } => {
                R::CreateTable(pb::Named { name: name.clone() })
            }
            StatementResult::DropTable { name, existed } => {
                R::DropTable(pb::Dropped { name: name.clone(), existed: *existed })
            }
            StatementResult::CreateView { name } => R::CreateView(pb::Named { name: name.clone() }),
            StatementResult::DropView { name, existed } => {
                R::DropView(pb::Dropped { name: name.clone(), existed: *existed })
            }
            StatementResult::CreateIndex { name } => {
                R::CreateIndex(pb::Named { name: name.clone() })
            }
            StatementResult::DropIndex { name, existed } => {
                R::DropIndex(pb::Dropped { name: name.clone(), existed: *existed })
            }
            StatementResult::Reindex { name } => R::Reindex(pb::Named { name: name.clone() }),
            StatementResult::AlterTable { name } => R::AlterTable(pb::Named { name: name.clone() }),
            StatementResult::Users { message } => R::Users(message.clone()),
            StatementResult::Insert { count } => R::Insert(*count),
            StatementResult::Update { count } => R::Update(*count),
            StatementResult::Delete { count } => R::Delete(*count),
            // A query's columns and rows are sent before its result.
            StatementResult::Query { rows, .. } => {
                R::Query(pb::QueryEnd { rows: rows.len() as u64 })
            }
        },
    };
    pb::StatementResult { index, result: Some(result), end_offset: 0, part: 0 }
}

/// A protobuf result as a statement outcome.
pub fn from_statement_result(result: pb::StatementResult) -> (u64, StatementOutcome) {
    use pb::statement_result::Result as R;
    let outcome = match result.result {
        None => Err(StatementError::new("internal", "empty result")),
        Some(R::Error(error)) => Err(StatementError { kind: error.kind, message: error.message }),
        Some(R::Begin(b)) => {
            Ok(StatementResult::Begin { version: b.version, read_only: b.read_only })
        }
        Some(R::Commit(f)) => Ok(StatementResult::Commit { version: f.version }),
        Some(R::Rollback(f)) => Ok(StatementResult::Rollback { version: f.version }),
        Some(R::CreateTable(n)) => Ok(StatementResult::CreateTable { name: n.name }),
        Some(R::CreateView(n)) => Ok(StatementResult::CreateView { name: n.name }),
        Some(R::DropView(d)) => Ok(StatementResult::DropView { name: d.name, existed: d.existed }),
        Some(R::DropTable(d)) => {
            Ok(StatementResult::DropTable { name: d.name, existed: d.existed })
        }
        Some(R::CreateIndex(n)) => Ok(StatementResult::CreateIndex { name: n.name }),
        Some(R::DropIndex(d)) => {
            Ok(StatementResult::DropIndex { name: d.name, existed: d.existed })
        }
        Some(R::Reindex(n)) => Ok(StatementResult::Reindex { name: n.name }),
        Some(R::AlterTable(n)) => Ok(StatementResult::AlterTable { name: n.name }),
        Some(R::Users(message)) => Ok(StatementResult::Users { message }),
        Some(R::Insert(count)) => Ok(StatementResult::Insert { count }),
        Some(R::Update(count)) => Ok(StatementResult::Update { count }),
        Some(R::Delete(count)) => Ok(StatementResult::Delete { count }),
        // The columns and rows came before; the caller puts them together.
        Some(R::Query(_)) => Ok(StatementResult::Query { columns: Vec::new(), rows: Vec::new() }),
    };
    (result.index, outcome)
}

/// The protobuf form of a session's transaction with its proof.
pub fn transaction(txn: &Transaction, proof: &[u8]) -> pb::Transaction {
    match txn {
        Transaction::ReadWrite { version, index } => pb::Transaction {
            version: *version,
            read_only: false,
            active: vec![],
            index: *index,
            proof: proof.to_vec(),
        },
        Transaction::ReadOnly { state, index } => pb::Transaction {
            version: state.version,
            read_only: true,
            active: state.active.iter().copied().collect(),
            index: *index,
            proof: proof.to_vec(),
        },
    }
}

impl From<pb::Transaction> for Transaction {
    fn from(txn: pb::Transaction) -> Self {
        match txn.read_only {
            false => Transaction::ReadWrite { version: txn.version, index: txn.index },
            true => Transaction::ReadOnly {
                state: TransactionState {
                    version: txn.version,
                    read_only: true,
                    active: txn.active.into_iter().collect(),
                },
                index: txn.index,
            },
        }
    }
}

/// The settings of a run from the first message of its request.
pub fn settings(settings: Option<pb::RunSettings>) -> Settings {
    let settings = settings.unwrap_or_default();
    let consistency = match pb::Consistency::try_from(settings.consistency) {
        Ok(pb::Consistency::Stale) => Consistency::Stale,
        _ => Consistency::Linearizable,
    };
    let transaction = settings.session.and_then(|s| s.transaction);
    let proof = transaction.as_ref().map(|t| t.proof.clone()).unwrap_or_default();
    Settings {
        consistency,
        transaction: transaction.map(Transaction::from),
        proof,
        continue_on_error: settings.continue_on_error,
        client: settings.client_id,
        sequence: settings.sequence,
        start_offset: settings.start_offset,
        first_part: settings.first_part,
        // The node sets it once it has authenticated the request.
        principal: Default::default(),
    }
}

/// The protobuf form of a consistency.
pub fn consistency(consistency: Consistency) -> pb::Consistency {
    match consistency {
        Consistency::Linearizable => pb::Consistency::Linearizable,
        Consistency::Stale => pb::Consistency::Stale,
    }
}

/// A replica's response as a message of `Sql.Run`'s stream (a refusal ends it with a status).
pub fn run_response(response: Response) -> Result<pb::RunResponse, tonic::Status> {
    use pb::run_response::Event;
    let event = match response {
        Response::Columns(list) => Event::Columns(pb::Columns { columns: columns(&list) }),
        Response::Rows(list) => Event::Rows(pb::Rows { rows: rows(&list) }),
        Response::QueryEnd { index, rows, end, part } => Event::Result(pb::StatementResult {
            index,
            result: Some(pb::statement_result::Result::Query(pb::QueryEnd { rows })),
            end_offset: end,
            part,
        }),
        Response::Result { index, outcome, end, part } => {
            let mut result = statement_result(index, &outcome);
            result.end_offset = end;
            result.part = part;
            Event::Result(result)
        }
        Response::Session(session) => Event::Session(pb::Session {
            transaction: session.map(|(txn, proof)| transaction(&txn, &proof)),
        }),
        Response::Refused(error) => return Err(error.into()),
    };
    Ok(pb::RunResponse { event: Some(event) })
}

impl From<Error> for tonic::Status {
    fn from(error: Error) -> Self {
        let message = error.to_string();
        let outcome = match error {
            Error::InvalidRequest(_) => return tonic::Status::invalid_argument(message),
            Error::Io(_) => return tonic::Status::internal(message),
            Error::Unauthenticated(_) => return tonic::Status::unauthenticated(message),
            Error::PermissionDenied(_) => return tonic::Status::permission_denied(message),
            // Refused before anything was applied: safe to retry anywhere.
            Error::Unavailable(_) => "not_applied",
            // Not safe to retry without a request id: the write may still be applied.
            Error::UnknownOutcome(_) => "unknown",
        };
        let mut status = tonic::Status::unavailable(message);
        status.metadata_mut().insert(
            super::wire::OUTCOME_HEADER,
            tonic::metadata::MetadataValue::from_static(outcome),
        );
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn sessions_settings_and_results_round_trip() {
        let session = Transaction::ReadOnly {
            state: TransactionState { version: 7, read_only: true, active: BTreeSet::from([3, 5]) },
            index: 42,
        };
        let wire = pb::RunSettings {
            consistency: pb::Consistency::Stale as i32,
            session: Some(pb::Session { transaction: Some(transaction(&session, &[1, 2, 3])) }),
            continue_on_error: true,
            client_id: 9,
            sequence: 4,
            start_offset: 100,
            first_part: 2,
        };
        let back = settings(Some(wire));
        assert_eq!(back.transaction, Some(session));
        assert_eq!(back.proof, vec![1, 2, 3]);
        assert_eq!((back.consistency, back.continue_on_error), (Consistency::Stale, true));
        assert_eq!(
            (back.client, back.sequence, back.start_offset, back.first_part),
            (9, 4, 100, 2)
        );
        let outcomes: Vec<(u64, StatementOutcome)> = vec![
            (1, Ok(StatementResult::Begin { version: 3, read_only: false })),
            (2, Ok(StatementResult::Insert { count: 2 })),
            (2, Ok(StatementResult::DropIndex { name: "i".into(), existed: false })),
            (4, Err(StatementError::new("unique_violation", "duplicate"))),
        ];
        for (index, outcome) in outcomes {
            let (back_index, back) = from_statement_result(statement_result(index, &outcome));
            assert_eq!((back_index, format!("{back:?}")), (index, format!("{outcome:?}")));
        }
        let rows = vec![vec![Value::Float(1.5)], vec![Value::Null]];
        let query = Ok(StatementResult::Query { columns: Vec::new(), rows: rows.clone() });
        let wire = statement_result(3, &query);
        assert_eq!(
            wire.result,
            Some(pb::statement_result::Result::Query(pb::QueryEnd { rows: 2 }))
        );
        assert_eq!(from_rows(super::rows(&rows)).len(), 2);
        let column = OutputColumn { name: "a".into(), datatype: Some(DataType::Float) };
        assert_eq!(from_columns(columns(std::slice::from_ref(&column))), vec![column]);
    }
}
