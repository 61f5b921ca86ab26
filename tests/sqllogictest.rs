//! SQL behaviour tests: sqllogictest files run with the `sqllogictest` crate.
//!
//! - `tests/sql/*.slt` (ours) must pass completely, on the memory and the sled backend.
//! - `../shared/slt/` (SQLite's corpus, if present) is an outside measure: each file's counts
//!   are printed, and the total must not fall below a recorded floor.
//! - `SLT_PATH=file-or-dir` runs those files instead and prints their counts:
//!   `SLT_PATH=../shared/slt cargo test --release --test sqllogictest -- --nocapture`
//!
//! Each file prints `FILE: P passed, F failed, S skipped`, counting `statement` and `query`
//! records. The corpus needs four adjustments (see ../shared/slt/PROVENANCE.md): hash
//! threshold 8, results compared one value per line, conditions before `halt` evaluated here,
//! and values formatted by the column types each query declares.

use chronos::sql::types::Value;
use chronos::sql::{Database, Error, StatementResult};
use sqllogictest::{Condition, DBOutput, DefaultColumnType, QueryExpect, Record, Runner};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The engine name records are run as (`onlyif`/`skipif` labels).
const ENGINE: &str = "chronos";

/// Records of the shared corpus that must keep passing (the count measured when this floor was
/// last raised; see the README's conformance table).
const SHARED_CORPUS_FLOOR: usize = 17_129;

/// One sqllogictest connection: a session on a shared database, formatting values by the
/// types the current query declares.
struct ChronosDb {
    session: chronos::sql::Session,
    declared: Arc<Mutex<Vec<DefaultColumnType>>>,
    /// Format as SQLite's runner does (non-ASCII text shown as `@`), for the corpus.
    corpus: bool,
    /// The virtual clock: the time every statement is given (what a leader puts in the log),
    /// shared by the file's connections. It starts at [`CLOCK_START`] and moves only when the
    /// file says `SET CLOCK TO '<timestamp>'` or `SET CLOCK + '<interval>'`.
    clock: Arc<Mutex<i64>>,
}

/// Where each file's virtual clock starts.
const CLOCK_START: &str = "2026-01-01 00:00:00";

/// Runs the harness's own `SET CLOCK` statement, if `sql` is one.
fn set_clock(clock: &Mutex<i64>, sql: &str) -> Option<Result<(), Error>> {
    let rest = sql.trim().trim_end_matches(';').strip_prefix("SET CLOCK ")?.trim();
    let quoted = |s: &str| s.trim().trim_matches('\'').to_string();
    let mut clock = clock.lock().unwrap_or_else(|p| p.into_inner());
    let moved = match rest.strip_prefix("TO ") {
        Some(to) => Value::String(quoted(to)).cast(chronos::sql::types::DataType::Timestamp),
        None => Value::Timestamp(*clock).arithmetic(
            chronos::sql::types::ArithmeticOp::Add,
            &Value::String(quoted(rest.strip_prefix('+').unwrap_or(rest))),
        ),
    };
    Some(moved.and_then(|moved| match moved {
        Value::Timestamp(t) => {
            *clock = t;
            Ok(())
        }
        other => Err(Error::Invalid(format!("SET CLOCK gave {other}"))),
    }))
}

impl sqllogictest::DB for ChronosDb {
    type Error = Error;
    type ColumnType = DefaultColumnType;

    fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, Error> {
        if let Some(done) = set_clock(&self.clock, sql) {
            return done.map(|()| DBOutput::StatementComplete(0));
        }
        self.session.set_clock(*self.clock.lock().unwrap_or_else(|p| p.into_inner()));
        let results = self.session.execute(sql)?;
        Ok(match results.into_iter().last() {
            Some(StatementResult::Query { columns, rows }) => {
                let declared = self.declared.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let types: Vec<DefaultColumnType> = (0..columns.len())
                    .map(|i| declared.get(i).cloned().unwrap_or(DefaultColumnType::Any))
                    .collect();
                let rows = rows
                    .iter()
                    .map(|row| {
                        row.iter()
                            .zip(&types)
                            .map(|(value, t)| format_value(value, t, self.corpus))
                            .collect()
                    })
                    .collect();
                DBOutput::Rows { types, rows }
            }
            Some(result) => DBOutput::StatementComplete(result.rows_affected()),
            None => DBOutput::StatementComplete(0),
        })
    }

    fn engine_name(&self) -> &str {
        ENGINE
    }
}

/// Formats a value as SQLite's sqllogictest runner does for the declared column type.
fn format_value(value: &Value, declared: &DefaultColumnType, corpus: bool) -> String {
    match (value, declared) {
        (Value::Null, _) => "NULL".into(),
        (value, DefaultColumnType::Integer) => match value {
            Value::Integer(i) => i.to_string(),
            Value::Float(f) => (f.trunc() as i64).to_string(),
            Value::Boolean(b) => (*b as i64).to_string(),
            Value::String(s) => leading_number(s).map_or(0, |n| n.trunc() as i64).to_string(),
            Value::Null | Value::Timestamp(_) | Value::Interval(_) => value.to_string(),
        },
        (value, DefaultColumnType::FloatingPoint) => match value {
            Value::Integer(i) => format!("{:.3}", *i as f64),
            Value::Float(f) => format!("{f:.3}"),
            Value::Boolean(b) => format!("{:.3}", *b as i64 as f64),
            Value::String(s) => format!("{:.3}", leading_number(s).unwrap_or(0.0)),
            Value::Null | Value::Timestamp(_) | Value::Interval(_) => value.to_string(),
        },
        (Value::String(s), _) if s.is_empty() => "(empty)".into(),
        (Value::String(s), _) if corpus => {
            s.chars().map(|c| if (' '..='~').contains(&c) { c } else { '@' }).collect()
        }
        (value, _) => value.to_string(),
    }
}

/// The numeric prefix of a string, as SQLite converts text to numbers.
fn leading_number(s: &str) -> Option<f64> {
    let s = s.trim_start();
    (1..=s.len())
        .rev()
        .filter(|end| s.is_char_boundary(*end))
        .find_map(|end| s[..end].parse::<f64>().ok())
}

/// Compares results one value per line (the corpus's layout), or one row per line (ours).
fn validate(
    normalizer: sqllogictest::Normalizer,
    actual: &[Vec<String>],
    expected: &[String],
) -> bool {
    let expected: Vec<String> = expected.iter().map(normalizer).collect();
    let by_value: Vec<String> = actual.iter().flatten().map(normalizer).collect();
    let by_row: Vec<String> =
        actual.iter().map(|row| row.iter().map(normalizer).collect::<Vec<_>>().join(" ")).collect();
    by_value == expected || by_row == expected
}

/// Whether a record with these conditions is skipped for this engine.
fn skipped(conditions: &[Condition]) -> bool {
    conditions.iter().any(|condition| match condition {
        Condition::OnlyIf { label } => label != ENGINE,
        Condition::SkipIf { label } => label == ENGINE,
    })
}

/// Drops trailing comments after `onlyif`/`skipif` and resolves conditional `halt`s: returns
/// the script to run and the script after a halt that applies (whose records are skipped).
fn preprocess(script: &str) -> (String, String) {
    let lines: Vec<String> = script
        .lines()
        .map(|line| {
            let tokens: Vec<&str> = line.split_whitespace().collect();
            match tokens.as_slice() {
                [kind @ ("onlyif" | "skipif"), label, ..] => format!("{kind} {label}"),
                _ => line.to_string(),
            }
        })
        .collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        // A run of conditions directly followed by `halt`.
        let mut j = i;
        let mut conditions = Vec::new();
        while let [kind @ ("onlyif" | "skipif"), label] =
            lines[j].split_whitespace().collect::<Vec<_>>().as_slice()
        {
            let label = label.to_string();
            conditions.push(if *kind == "onlyif" {
                Condition::OnlyIf { label }
            } else {
                Condition::SkipIf { label }
            });
            j += 1;
            if j >= lines.len() {
                break;
            }
        }
        if j < lines.len() && lines[j].trim() == "halt" {
            if skipped(&conditions) {
                i = j + 1;
                continue;
            }
            return (out.join("\n") + "\n", lines[j + 1..].join("\n") + "\n");
        }
        out.push(lines[i].clone());
        i += 1;
    }
    (out.join("\n") + "\n", String::new())
}

/// The records of a file that were run and how they ended.
#[derive(Default)]
struct Counts {
    passed: usize,
    failed: usize,
    skipped: usize,
    /// The first failures, for the report.
    failures: Vec<String>,
}

/// Runs one file on a fresh database from `open`. `corpus` applies the corpus's hash threshold
/// (our files list every value).
fn run_file(path: &Path, open: &dyn Fn() -> Database, corpus: bool) -> Counts {
    let mut counts = Counts::default();
    let script = match std::fs::read_to_string(path) {
        Ok(script) => script,
        Err(error) => {
            counts.failed += 1;
            counts.failures.push(format!("cannot read: {error}"));
            return counts;
        }
    };
    let (script, halted) = preprocess(&script);
    let name = path.display().to_string();
    let records = match sqllogictest::parse_with_name::<DefaultColumnType>(&script, name.clone()) {
        Ok(records) => records,
        Err(error) => {
            counts.failed += 1;
            counts.failures.push(format!("cannot parse: {error}"));
            return counts;
        }
    };
    if let Ok(rest) = sqllogictest::parse_with_name::<DefaultColumnType>(&halted, name) {
        counts.skipped += rest
            .iter()
            .filter(|r| matches!(r, Record::Statement { .. } | Record::Query { .. }))
            .count();
    }

    let db = Arc::new(open());
    let declared = Arc::new(Mutex::new(Vec::new()));
    let start = chronos::sql::types::time::parse(CLOCK_START).unwrap_or_default();
    let clock = Arc::new(Mutex::new(start));
    let (make_db, make_declared) = (db.clone(), declared.clone());
    let mut runner = Runner::new(move || {
        let (db, declared, clock) = (make_db.clone(), make_declared.clone(), clock.clone());
        async move { Ok::<_, Error>(ChronosDb { session: db.session(), declared, corpus, clock }) }
    });
    if corpus {
        runner.with_hash_threshold(8);
    }
    runner.with_validator(validate);
    for record in records {
        let conditions = match &record {
            Record::Statement { conditions, .. } | Record::Query { conditions, .. } => {
                conditions.clone()
            }
            Record::Halt { .. } => break,
            _ => {
                let _ = runner.run(record);
                continue;
            }
        };
        if skipped(&conditions) {
            counts.skipped += 1;
            continue;
        }
        if let Record::Query { expected: QueryExpect::Results { types, .. }, .. } = &record {
            *declared.lock().unwrap_or_else(|p| p.into_inner()) = types.clone();
        }
        // The engine must never panic, whatever a file sends.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runner.run(record)));
        match outcome {
            Ok(Ok(_)) => counts.passed += 1,
            Ok(Err(error)) => {
                counts.failed += 1;
                if counts.failures.len() < 5 {
                    counts.failures.push(error.display(false).to_string());
                }
            }
            Err(_) => {
                counts.failed += 1;
                counts.failures.push("PANIC".into());
            }
        }
    }
    counts
}

/// The `.slt`/`.test` files at a path (a file, or a directory searched recursively), sorted.
fn files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(path) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(files(&path));
            } else if path.extension().is_some_and(|e| e == "slt" || e == "test") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Runs files, prints a line per file, and returns the totals.
fn run_all(
    paths: &[PathBuf],
    open: &dyn Fn() -> Database,
    corpus: bool,
    show_failures: bool,
) -> Counts {
    let mut total = Counts::default();
    for path in paths {
        let counts = run_file(path, open, corpus);
        println!(
            "{}: {} passed, {} failed, {} skipped",
            path.display(),
            counts.passed,
            counts.failed,
            counts.skipped
        );
        if show_failures {
            for failure in &counts.failures {
                println!("  {failure}");
            }
        }
        total.passed += counts.passed;
        total.failed += counts.failed;
        total.skipped += counts.skipped;
        total
            .failures
            .extend(counts.failures.into_iter().map(|f| format!("{}: {f}", path.display())));
    }
    total
}

fn our_files() -> Vec<PathBuf> {
    files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sql"))
}

#[test]
fn our_files_pass_on_memory() {
    let total = run_all(&our_files(), &Database::memory, false, true);
    assert!(total.passed > 0, "no records ran");
    assert_eq!(total.failed, 0, "failures:\n{}", total.failures.join("\n"));
}

#[test]
fn our_files_pass_on_sled() {
    let dirs = Mutex::new(Vec::new());
    let open = || {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Database::open_sled(dir.path()).expect("open sled");
        dirs.lock().unwrap_or_else(|p| p.into_inner()).push(dir);
        db
    };
    let total = run_all(&our_files(), &open, false, true);
    assert!(total.passed > 0, "no records ran");
    assert_eq!(total.failed, 0, "failures:\n{}", total.failures.join("\n"));
}

#[test]
fn shared_corpus_conformance() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/slt");
    if !shared.is_dir() {
        println!("skipped: {} is absent", shared.display());
        return;
    }
    let total = run_all(&files(&shared), &Database::memory, true, false);
    println!("TOTAL: {} passed, {} failed, {} skipped", total.passed, total.failed, total.skipped);
    assert!(
        total.passed >= SHARED_CORPUS_FLOOR,
        "conformance fell: {} records pass, the floor is {SHARED_CORPUS_FLOOR}",
        total.passed
    );
}

#[test]
fn files_from_slt_path() {
    let Some(path) = std::env::var_os("SLT_PATH") else {
        println!("skipped: set SLT_PATH to a file or directory to run it");
        return;
    };
    let total = run_all(
        &files(Path::new(&path)),
        &Database::memory,
        true,
        std::env::var_os("SLT_VERBOSE").is_some(),
    );
    println!("TOTAL: {} passed, {} failed, {} skipped", total.passed, total.failed, total.skipped);
}
