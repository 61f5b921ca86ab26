//! What the planner estimates from: the row counts the engine keeps per table (see the key
//! layout in `store.rs`) and what ANALYZE measures (rows, and distinct values per column from
//! a bounded sketch).

use super::schema::Statistics;
use super::store::{Txn, row_count_key, row_id_key, table_key};
use crate::encoding::keycode::KeyReader;
use crate::encoding::value as codec;
use crate::sql::error::Result;
use std::ops::Bound;

/// How many of each column's smallest value hashes ANALYZE keeps to estimate its distinct
/// values (a k-minimum-values sketch: exact below this many, about 6% off above).
pub const DISTINCT_SKETCH: usize = 256;

/// A fixed hash (FNV-1a, then MurmurHash3's finalizer so similar values spread over the whole
/// range), so every replica's ANALYZE finds the same statistics.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    });
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

impl Txn {
    /// The unversioned counters of every table (the next hidden row id, the row count), as
    /// stored keys and values: what a backup carries beside the versioned data.
    pub fn counters(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        for table in self.list_tables()? {
            for key in [row_id_key(&table.name), row_count_key(&table.name)] {
                if let Some(value) = self.inner.get_unversioned(&key)? {
                    out.push((key, value));
                }
            }
        }
        Ok(out)
    }

    /// Sets an unversioned counter from a backup (see [`Txn::counters`]).
    pub fn restore_counter(&mut self, key: &[u8], value: Vec<u8>) -> Result<()> {
        Ok(self.inner.set_unversioned(key, value)?)
    }

    /// Notes a row inserted (`1`) or deleted (`-1`).
    pub(super) fn count_row(&mut self, table: &str, delta: i64) {
        match self.row_deltas.iter_mut().find(|(name, _)| name == table) {
            Some((_, total)) => *total += delta,
            None => self.row_deltas.push((table.to_string(), delta)),
        }
    }

    /// Adds the rows the statement inserted and deleted to the tables' row counts (after
    /// each write statement).
    pub fn flush_row_counts(&mut self) -> Result<()> {
        for (table, delta) in std::mem::take(&mut self.row_deltas) {
            if delta == 0 {
                continue;
            }
            let count = self.stored_row_count(&table)?.saturating_add_signed(delta);
            self.inner.set_unversioned(&row_count_key(&table), count.to_be_bytes().to_vec())?;
        }
        Ok(())
    }

    /// Drops the counts of a statement that failed (its writes are undone).
    pub fn forget_row_counts(&mut self) {
        self.row_deltas.clear();
    }

    fn stored_row_count(&self, table: &str) -> Result<u64> {
        Ok(match self.inner.get_unversioned(&row_count_key(table))? {
            Some(bytes) => KeyReader::new(&bytes).get_u64()?,
            None => 0,
        })
    }

    /// About how many rows a table holds, as the engine counts them: cheap (one read), but
    /// an estimate (see the module docs).
    pub fn live_rows(&self, table: &str) -> Result<u64> {
        let pending = self.row_deltas.iter().find(|(name, _)| name == table).map_or(0, |d| d.1);
        Ok(self.stored_row_count(table)?.saturating_add_signed(pending))
    }

    /// Measures a table's rows (their number, and about how many distinct values each column
    /// holds) and stores the result in its schema. Memory stays bounded: distinct values are
    /// estimated from the smallest hashes of each column's values ([`DISTINCT_SKETCH`]).
    pub fn analyze(&mut self, name: &str) -> Result<Statistics> {
        let mut schema = self.must_get_table(name)?;
        let mut sketches = vec![std::collections::BTreeSet::<u64>::new(); schema.columns.len()];
        let mut rows = 0u64;
        let mut encoded = Vec::new();
        for row in self.scan_rows(&schema, (Bound::Unbounded, Bound::Unbounded)) {
            let row = row?;
            rows += 1;
            for (value, sketch) in row.iter().zip(&mut sketches) {
                if value.is_null() {
                    continue;
                }
                encoded.clear();
                value.encode_key(&mut encoded);
                sketch.insert(fnv1a(&encoded));
                if sketch.len() > DISTINCT_SKETCH {
                    sketch.pop_last();
                }
            }
        }
        let distinct = sketches
            .iter()
            .map(|sketch| match sketch.last() {
                // The k-th smallest of uniform hashes sits near k / n of the hash space.
                Some(&kth) if sketch.len() == DISTINCT_SKETCH => {
                    let estimate = (DISTINCT_SKETCH as f64 - 1.0) * (u64::MAX as f64 / kth as f64);
                    (estimate as u64).min(rows)
                }
                _ => sketch.len() as u64,
            })
            .collect();
        let statistics = Statistics { rows, distinct };
        schema.statistics = Some(Box::new(statistics.clone()));
        self.inner.set(&table_key(name), codec::encode(&schema))?;
        self.row_deltas.retain(|(table, _)| table != name);
        self.inner.set_unversioned(&row_count_key(name), rows.to_be_bytes().to_vec())?;
        Ok(statistics)
    }
}
