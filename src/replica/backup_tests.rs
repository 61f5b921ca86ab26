//! Backups round-trip through a file into a new store, and a damaged or cut file is refused.

use super::*;
use crate::sql::StatementResult;

fn database() -> (Arc<ReplicaStore>, Arc<Database>) {
    let store = Arc::new(ReplicaStore::memory());
    let db = Arc::new(Database::open_replicated(store.clone()).unwrap());
    (store, db)
}

fn rows(db: &Arc<Database>, sql: &str) -> Vec<String> {
    match db.session().execute(sql).unwrap().pop().unwrap() {
        StatementResult::Query { rows, .. } => rows.iter().map(|row| format!("{row:?}")).collect(),
        other => panic!("not a query: {other:?}"),
    }
}

fn backup_of(db: &Arc<Database>, as_of: Option<Version>) -> (Vec<u8>, Summary) {
    let mut file = Vec::new();
    let summary = dump(db, as_of, 7, &mut |bytes| {
        file.extend_from_slice(&bytes);
        Ok(())
    })
    .unwrap();
    (file, summary)
}

#[test]
fn a_backup_restores_the_data_as_of_its_version() {
    let (_, source) = database();
    let mut session = source.session();
    session
        .execute("CREATE TABLE t (id INT PRIMARY KEY, v STRING); CREATE INDEX t_v ON t (v)")
        .unwrap();
    session.execute("CREATE TABLE h (v STRING)").unwrap(); // a hidden row id
    // Rows of more than a frame in all, so the backup has several.
    for i in 0..40 {
        let big = "x".repeat(64 << 10);
        session
            .execute(&format!(
                "INSERT INTO t VALUES ({i}, '{big}{i}'); INSERT INTO h VALUES ('{i}')"
            ))
            .unwrap();
    }
    session.execute("CREATE VIEW odd AS SELECT id FROM t WHERE id % 2 = 1").unwrap();
    let (file, summary) = backup_of(&source, None);
    // Writes after the backup's snapshot are not in it.
    session.execute("INSERT INTO t VALUES (1000, 'later')").unwrap();
    assert!(summary.bytes as usize == file.len() && summary.records > 80);

    let (store, _) = database();
    let config = Configuration::voters([1, 2, 3]);
    let restored = restore(&file[..], &store, (1, 1, config.clone())).unwrap();
    assert_eq!((restored.version, restored.records), (summary.version, summary.records));
    let db = Arc::new(Database::open_replicated(store.clone()).unwrap());
    let as_of = format!("BEGIN READ ONLY AS OF SYSTEM TIME {}; ", summary.version);
    for query in [
        "SELECT * FROM t ORDER BY id",
        "SELECT * FROM h ORDER BY v",
        "SELECT * FROM odd ORDER BY id",
        "SELECT id FROM t WHERE v = 'later'",
    ] {
        let expected = rows(&source, &format!("{as_of}{query}"));
        assert_eq!(rows(&db, query), expected, "{query}");
    }
    // Indexes and hidden row ids carry on.
    let mut session = db.session();
    session.execute("INSERT INTO h VALUES ('new')").unwrap();
    assert_eq!(rows(&db, "SELECT count(*) FROM h"), vec!["[Integer(41)]".to_string()]);
    let by_index = format!("SELECT id FROM t WHERE v = '{}5'", "x".repeat(64 << 10));
    assert!(rows(&db, &format!("EXPLAIN {by_index}")).iter().any(|l| l.contains("IndexLookup")));
    assert_eq!(rows(&db, &by_index), vec!["[Integer(5)]".to_string()]);
    // A backup as of that version, taken after the later write, holds the same rows.
    let (again, summary_again) = backup_of(&source, Some(summary.version));
    assert_eq!(summary_again.version, summary.version);
    let (store_again, _) = database();
    restore(&again[..], &store_again, (1, 1, config.clone())).unwrap();
    let db_again = Arc::new(Database::open_replicated(store_again).unwrap());
    let query = "SELECT id FROM t ORDER BY id";
    assert_eq!(rows(&db_again, query), rows(&source, &format!("{as_of}{query}")));
    assert_ne!(rows(&db_again, query), rows(&source, query), "the later write is not in it");
    let meta = Meta::load(store.as_ref()).unwrap().unwrap();
    assert_eq!((meta.applied, meta.term, meta.config), (1, 1, config));
}

#[test]
fn a_damaged_truncated_or_foreign_file_is_refused() {
    let (_, source) = database();
    source
        .session()
        .execute("CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1), (2)")
        .unwrap();
    let (file, _) = backup_of(&source, None);
    let target = || (1, 1, Configuration::voters([1]));
    let fresh = || Arc::new(ReplicaStore::memory());
    assert!(restore(&file[..], &fresh(), target()).is_ok());
    // A flipped byte anywhere past the magic, a cut, a foreign file: each refused.
    for at in [MAGIC.len() + 2, MAGIC.len() + 12, file.len() / 2, file.len() - 3] {
        let mut damaged = file.clone();
        damaged[at] ^= 0x40;
        let error = restore(&damaged[..], &fresh(), target()).unwrap_err();
        assert!(
            error.contains("damaged") || error.contains("not a Chronos backup"),
            "{at}: {error}"
        );
    }
    for cut in [MAGIC.len(), file.len() / 2, file.len() - 1] {
        let error = restore(&file[..cut], &fresh(), target()).unwrap_err();
        assert!(error.contains("damaged or incomplete"), "{cut}: {error}");
    }
    assert!(restore(&b"SQLite format 3\0"[..], &fresh(), target()).is_err());
    let mut longer = file.clone();
    longer.push(0);
    let error = restore(&longer[..], &fresh(), target()).unwrap_err();
    assert!(error.contains("bytes follow its end"), "{error}");
}
