//! What a node records of the statements it serves: per-fingerprint statistics (count,
//! errors, rows, latency percentiles, last seen), for the Admin call behind `chronos top`, and
//! the slow-statement log (`--slow-statement-ms`), which logs a slow statement with its plan.
//!
//! The statistics are bounded: at most [`MAX_FINGERPRINTS`] fingerprints, each with a
//! fixed-size latency histogram; a new fingerprint beyond that replaces the one seen least
//! recently (the evictions are counted).

use super::metrics::Metrics;
use crate::replica::{SeenStatement, SharedDatabase, StatementObserver, read_database};
use crate::sql::fingerprint::fingerprint;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The most fingerprints a node keeps statistics for.
pub const MAX_FINGERPRINTS: usize = 1000;

/// The most bytes of a slow statement's text that are logged.
const MAX_LOGGED_TEXT: usize = 4096;

/// The longest latency the histograms tell apart (longer ones count as this), in microseconds.
const MAX_TRACKED_MICROS: u64 = 3_600_000_000;

/// One fingerprint's statistics.
#[derive(Clone, Debug, PartialEq)]
pub struct StatementStatistic {
    /// The statement with its literals replaced by `?`.
    pub fingerprint: String,
    /// Its kind (`select`, `insert`, ...; of the last one seen).
    pub kind: &'static str,
    /// Times it was served.
    pub count: u64,
    /// Times it failed.
    pub errors: u64,
    /// Rows returned, in all.
    pub rows_returned: u64,
    /// Rows written, in all.
    pub rows_written: u64,
    /// Time spent serving it, in all.
    pub total: Duration,
    /// Median latency (one significant digit's precision: within 10%).
    pub p50: Duration,
    /// 99th percentile latency (within 10%).
    pub p99: Duration,
    /// The longest it took.
    pub max: Duration,
    /// When it was last served.
    pub last_seen: SystemTime,
}

/// A fingerprint's running statistics.
struct Entry {
    statistic: StatementStatistic,
    latencies: hdrhistogram::Histogram<u32>,
    /// When it was last recorded, in records (for eviction).
    sequence: u64,
}

/// The statistics of every fingerprint seen (bounded).
#[derive(Default)]
struct Table {
    entries: BTreeMap<String, Entry>,
    sequence: u64,
    evicted: u64,
}

/// Per-fingerprint statement statistics.
#[derive(Default)]
pub struct StatementStatistics {
    table: Mutex<Table>,
}

impl StatementStatistics {
    /// Records one statement served.
    pub fn record(&self, fingerprint: String, seen: &SeenStatement<'_>, at: SystemTime) {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        table.sequence += 1;
        let sequence = table.sequence;
        if !table.entries.contains_key(&fingerprint) && table.entries.len() >= MAX_FINGERPRINTS {
            let oldest =
                table.entries.iter().min_by_key(|(_, e)| e.sequence).map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                table.entries.remove(&oldest);
                table.evicted += 1;
            }
        }
        let entry = table.entries.entry(fingerprint.clone()).or_insert_with(|| Entry {
            statistic: StatementStatistic {
                fingerprint,
                kind: seen.kind,
                count: 0,
                errors: 0,
                rows_returned: 0,
                rows_written: 0,
                total: Duration::ZERO,
                p50: Duration::ZERO,
                p99: Duration::ZERO,
                max: Duration::ZERO,
                last_seen: at,
            },
            // One significant digit keeps a histogram under 2 KiB.
            latencies: hdrhistogram::Histogram::new_with_bounds(1, MAX_TRACKED_MICROS, 1)
                .expect("valid histogram bounds"),
            sequence,
        });
        let statistic = &mut entry.statistic;
        statistic.kind = seen.kind;
        statistic.count += 1;
        statistic.errors += u64::from(seen.error.is_some());
        statistic.rows_returned += seen.rows_returned;
        statistic.rows_written += seen.rows_written;
        statistic.total += seen.latency;
        statistic.max = statistic.max.max(seen.latency);
        statistic.last_seen = at;
        entry.sequence = sequence;
        let micros = u64::try_from(seen.latency.as_micros()).unwrap_or(u64::MAX);
        entry.latencies.saturating_record(micros.clamp(1, MAX_TRACKED_MICROS));
    }

    /// Every fingerprint's statistics, by total time (most first), and how many fingerprints
    /// were evicted to keep the table bounded.
    pub fn snapshot(&self) -> (Vec<StatementStatistic>, u64) {
        let table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<StatementStatistic> = table
            .entries
            .values()
            .map(|entry| {
                let mut statistic = entry.statistic.clone();
                let quantile = |q| Duration::from_micros(entry.latencies.value_at_quantile(q));
                statistic.p50 = quantile(0.5).min(statistic.max);
                statistic.p99 = quantile(0.99).min(statistic.max);
                statistic
            })
            .collect();
        all.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.fingerprint.cmp(&b.fingerprint)));
        (all, table.evicted)
    }
}

/// The node's observer of statements: metrics, statistics and the slow-statement log.
pub struct NodeObserver {
    /// The node's metrics.
    pub metrics: Arc<Metrics>,
    /// Per-fingerprint statistics.
    pub statistics: Arc<StatementStatistics>,
    /// Statements at least this slow are logged with their plan (none: no log).
    pub slow: Option<Duration>,
    /// The database, to explain slow statements.
    pub database: SharedDatabase,
    /// Set while a slow statement's plan is being made: one at a time, so a burst of slow
    /// statements does not become a burst of planning.
    explaining: Arc<AtomicBool>,
}

impl NodeObserver {
    /// An observer feeding `metrics` and `statistics`, logging statements slower than `slow`.
    pub fn new(
        metrics: Arc<Metrics>,
        statistics: Arc<StatementStatistics>,
        slow: Option<Duration>,
        database: SharedDatabase,
    ) -> Self {
        Self { metrics, statistics, slow, database, explaining: Arc::new(AtomicBool::new(false)) }
    }

    /// Logs a slow statement; its plan is made on the blocking pool, if no other is being
    /// made. Statements on users, and text that did not parse, are logged by fingerprint
    /// only: their text may hold a password.
    fn log_slow(&self, seen: &SeenStatement<'_>) {
        let (latency, kind) = (seen.latency, seen.kind);
        let error = seen.error.unwrap_or("").to_string();
        if matches!(kind, "users" | "unparsed") {
            let print = fingerprint(seen.text);
            tracing::warn!(?latency, kind, error, "slow statement (by fingerprint): {print}");
            return;
        }
        let shown = clip(seen.text, MAX_LOGGED_TEXT).to_string();
        let runtime = tokio::runtime::Handle::try_current();
        let claimed = ExplainClaim::take(&self.explaining);
        let (Ok(runtime), Some(claim)) = (runtime, claimed) else {
            tracing::warn!(
                ?latency,
                kind,
                error,
                plan = "(not made: another is being made)",
                "slow statement: {shown}"
            );
            return;
        };
        let (database, text) = (self.database.clone(), seen.text.to_string());
        runtime.spawn_blocking(move || {
            let _claim = claim;
            let plan = explain(&read_database(&database), &text);
            tracing::warn!(?latency, kind, error, "slow statement: {shown}\n{plan}");
        });
    }
}

/// The right to make the one slow-statement plan at a time; given back when dropped (also
/// if planning panics).
struct ExplainClaim(Arc<AtomicBool>);

impl ExplainClaim {
    fn take(flag: &Arc<AtomicBool>) -> Option<Self> {
        let free = flag.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire);
        free.is_ok().then(|| Self(flag.clone()))
    }
}

impl Drop for ExplainClaim {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl StatementObserver for NodeObserver {
    fn statement(&self, seen: &SeenStatement<'_>) {
        self.metrics.statement(seen);
        self.statistics.record(fingerprint(seen.text), seen, SystemTime::now());
        if self.slow.is_some_and(|slow| seen.latency >= slow) {
            self.log_slow(seen);
        }
    }
}

/// The plan of each statement in `text` as EXPLAIN shows it now, or why there is none.
fn explain(db: &Arc<crate::sql::Database>, text: &str) -> String {
    use crate::sql::parser::ast::Statement;
    let statements = match crate::sql::parser::parse(text) {
        Ok(statements) => statements,
        Err(error) => return format!("(no plan: {error})"),
    };
    let mut plans = Vec::new();
    for statement in statements {
        if matches!(
            statement,
            Statement::Begin { .. }
                | Statement::Commit
                | Statement::Rollback
                | Statement::Explain(_)
        ) {
            continue;
        }
        let mut session = db.session();
        // A plan may read the statement time (now(), a table's TTL): the node's.
        session.set_clock(db.read_time());
        let explained = session.execute_statement(&Statement::Explain(Box::new(statement)));
        plans.push(match explained {
            Ok(crate::sql::StatementResult::Query { rows, .. }) => rows
                .iter()
                .filter_map(|row| row.first().map(ToString::to_string))
                .collect::<Vec<_>>()
                .join("\n"),
            Ok(_) => "(no plan)".into(),
            Err(error) => format!("(no plan: {error})"),
        });
    }
    plans.join("\n")
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn clip(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen<'a>(text: &'a str, error: Option<&'static str>, millis: u64) -> SeenStatement<'a> {
        SeenStatement {
            text,
            kind: "select",
            error,
            rows_returned: 2,
            rows_written: 0,
            latency: Duration::from_millis(millis),
        }
    }

    #[test]
    fn statements_count_by_fingerprint_with_their_errors_rows_and_latencies() {
        let statistics = StatementStatistics::default();
        let now = SystemTime::UNIX_EPOCH;
        for i in 1..=100u64 {
            let text = format!("SELECT * FROM t WHERE id = {i}");
            statistics.record(fingerprint(&text), &seen(&text, None, i), now);
        }
        let bad = "SELECT nope FROM t";
        statistics.record(fingerprint(bad), &seen(bad, Some("unknown_column"), 1), now);
        let (all, evicted) = statistics.snapshot();
        assert_eq!(evicted, 0);
        assert_eq!(all.len(), 2);
        let by_id = &all[0];
        assert_eq!(by_id.fingerprint, "select * from t where id = ?");
        assert_eq!((by_id.count, by_id.errors, by_id.rows_returned), (100, 0, 200));
        assert_eq!(by_id.total, Duration::from_millis(5050));
        assert_eq!(by_id.max, Duration::from_millis(100));
        let within = |d: Duration, ms: u64| {
            d.as_micros().abs_diff(u128::from(ms) * 1000) <= u128::from(ms) * 100
        };
        assert!(within(by_id.p50, 50), "{:?}", by_id.p50);
        assert!(within(by_id.p99, 99), "{:?}", by_id.p99);
        assert_eq!((all[1].count, all[1].errors), (1, 1));
    }

    #[test]
    fn the_table_stays_bounded_and_evicts_the_least_recently_seen() {
        let statistics = StatementStatistics::default();
        let now = SystemTime::UNIX_EPOCH;
        for i in 0..MAX_FINGERPRINTS + 10 {
            let text = format!("SELECT c{i} FROM t");
            statistics.record(fingerprint(&text), &seen(&text, None, 1), now);
            // The first one stays in use, so it is never the least recently seen.
            statistics.record(
                fingerprint("SELECT c0 FROM t"),
                &seen("SELECT c0 FROM t", None, 1),
                now,
            );
        }
        let (all, evicted) = statistics.snapshot();
        assert_eq!(all.len(), MAX_FINGERPRINTS);
        assert_eq!(evicted, 10);
        assert!(all.iter().any(|s| s.fingerprint == "select c0 from t"));
        assert!(!all.iter().any(|s| s.fingerprint == "select c1 from t"));
    }

    #[test]
    fn a_clip_never_cuts_a_character() {
        assert_eq!(clip("héllo", 2), "h");
        assert_eq!(clip("abc", 10), "abc");
    }
}
