//! Where a node's store spends its bytes: redb's page statistics, then the stored keys and
//! values grouped by what they are (a table's rows, an index's entries, old versions kept for
//! garbage collection...), and what lz4 would save on them: each value compressed alone (what
//! compressed row values could save) and the file in 128 KiB blocks, as ZFS with
//! `compression=lz4` stores it. It writes nothing of its own, but redb repairs a store that was
//! not closed cleanly when it opens it: run it on a stopped node's store (or a copy):
//!
//! ```sh
//! STORE=DATA_DIR/sql/00000000000000000001/data.redb cargo test --bench store_layout
//! ```
//!
//! (`cargo test` builds it without optimisation, with what the test run already built.)
//! Without `STORE` it says how to use it and does nothing, so `cargo bench` runs unharmed.

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use std::collections::BTreeMap;

/// The one redb table of a replica store (`storage::redb`).
const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("data");

/// Count, key bytes, value bytes and lz4-compressed value bytes of one group.
#[derive(Default)]
struct Sizes {
    count: u64,
    key_bytes: u64,
    value_bytes: u64,
    lz4_value_bytes: u64,
}

/// The block a compressing filesystem compresses at a time (ZFS's default record size).
const FILE_BLOCK: usize = 128 << 10;
/// The unit a compressed block is rounded up to on disk (a 4 KiB sector).
const SECTOR: usize = 4 << 10;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(path) = std::env::var_os("STORE") else {
        println!("store_layout: set STORE to a stopped node's data.redb to see where its bytes go");
        return Ok(());
    };
    // `open`, not `create`: a wrong path is an error, not a new empty store.
    let db = redb::Database::open(&path)?;
    let file_bytes = std::fs::metadata(&path)?.len();
    let stats = db.begin_write()?.stats()?;
    let page = stats.page_size() as u64;
    let leaf_bytes = stats.leaf_pages() * page;
    println!("file {} MiB; {} pages allocated", file_bytes >> 20, stats.allocated_pages());
    println!(
        "leaf pages {} MiB holding {} MiB ({:.0}% full); branch pages {} MiB; free space {} MiB",
        leaf_bytes >> 20,
        stats.stored_bytes() >> 20,
        100.0 * stats.stored_bytes() as f64 / leaf_bytes.max(1) as f64,
        (stats.branch_pages() * page) >> 20,
        stats.fragmented_bytes() >> 20,
    );
    let mut groups: BTreeMap<String, Sizes> = BTreeMap::new();
    let read = db.begin_read()?;
    for item in read.open_table(DATA)?.iter()? {
        let (key, value) = item?;
        let sizes = groups.entry(group(key.value())).or_default();
        sizes.count += 1;
        sizes.key_bytes += key.value().len() as u64;
        sizes.value_bytes += value.value().len() as u64;
        sizes.lz4_value_bytes += stored_lz4_len(value.value()) as u64;
    }
    println!(
        "{:<48} {:>12} {:>9} {:>9} {:>9} {:>10}",
        "group", "pairs", "key B", "value B", "lz4 B", "MiB"
    );
    for (name, sizes) in &groups {
        let n = sizes.count.max(1);
        println!(
            "{name:<48} {:>12} {:>9} {:>9} {:>9} {:>10}",
            sizes.count,
            sizes.key_bytes / n,
            sizes.value_bytes / n,
            sizes.lz4_value_bytes / n,
            (sizes.key_bytes + sizes.value_bytes) >> 20
        );
    }
    drop(read);
    drop(db);
    let (written, compressed) = file_lz4_bytes(std::path::Path::new(&path))?;
    println!(
        "the file in {} KiB blocks as ZFS with lz4 stores it: {} MiB written, {} MiB on disk",
        FILE_BLOCK >> 10,
        written >> 20,
        compressed >> 20
    );
    Ok(())
}

/// What a value takes compressed with lz4 where that saves anything (else stored as it is).
fn stored_lz4_len(value: &[u8]) -> usize {
    lz4_flex::block::compress(value).len().min(value.len())
}

/// The bytes of the file outside all-zero blocks (holes to the filesystem), and what ZFS would
/// store for them: each block compressed with lz4 and rounded up to whole sectors, or as it is
/// when that saves less than an eighth.
fn file_lz4_bytes(path: &std::path::Path) -> std::io::Result<(u64, u64)> {
    use std::io::{ErrorKind, Read};
    let mut file = std::fs::File::open(path)?;
    let mut block = vec![0u8; FILE_BLOCK];
    let (mut written, mut stored) = (0u64, 0u64);
    loop {
        let mut filled = 0;
        while filled < block.len() {
            match file.read(&mut block[filled..]) {
                Ok(0) => break,
                Ok(read) => filled += read,
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        if filled == 0 {
            return Ok((written, stored));
        }
        let bytes = &block[..filled];
        if bytes.iter().any(|&byte| byte != 0) {
            written += filled as u64;
            let compressed = lz4_flex::block::compress(bytes).len().div_ceil(SECTOR) * SECTOR;
            let kept = if compressed <= filled - filled / 8 { compressed } else { filled };
            stored += kept as u64;
        }
    }
}

/// What a stored key is, from the MVCC tag and, for versioned SQL keys, the SQL key's kind and
/// the table it belongs to (the layouts of `storage::mvcc::keys` and `sql::engine::store`).
fn group(key: &[u8]) -> String {
    match key.first() {
        Some(0x05) => {
            let sql = unescape(&key[1..]);
            let kind = match sql.first() {
                Some(0x01) => "table definition",
                Some(0x02) => "rows of",
                Some(0x03) => "index entries of",
                Some(0x04) => "row id counter",
                Some(0x05) => "view or rollup definition",
                Some(0x06) => "row count",
                _ => "other versioned key",
            };
            let name = sql.get(1..).map(unescape).unwrap_or_default();
            format!("{kind} {}", String::from_utf8_lossy(&name))
        }
        Some(0x08) => "superseded-version records (for GC)".into(),
        Some(0x06) => "unversioned keys".into(),
        Some(0x01..=0x04) => "transaction bookkeeping".into(),
        _ => "other".into(),
    }
}

/// The bytes of a key-encoded byte string (`0x00 0xff` is a zero byte, `0x00 0x00` ends it).
fn unescape(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut iter = bytes.iter();
    while let Some(&byte) = iter.next() {
        if byte != 0 {
            out.push(byte);
            continue;
        }
        match iter.next() {
            Some(0xff) => out.push(0),
            _ => break,
        }
    }
    out
}
