//! `chronosd` on a read-only and on a full disk: a clear error and a clean exit, never a panic,
//! and nothing acknowledged is lost. The disks are small tmpfs mounts; where mounting is not
//! permitted (not root, or no mount privilege in the container) the tests say so and skip.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Instant;
use support::{DEADLINE, eventually, free_ports, serial};

/// A tmpfs mounted for the test and unmounted when dropped.
struct Tmpfs {
    _parent: tempfile::TempDir,
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it) with extra options, or `None`
    /// when this machine does not allow it.
    fn mount(size: &str, extra: &str) -> Option<Self> {
        let parent = tempfile::tempdir().ok()?;
        let path = parent.path().join("disk");
        std::fs::create_dir(&path).ok()?;
        let options = format!("size={size}{extra}");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &options, "tmpfs"])
            .arg(&path)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("skipped: cannot mount a tmpfs here (needs root)");
            return None;
        }
        Some(Self { _parent: parent, path })
    }

    fn remount(&self, options: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.path)
            .status()
            .expect("run mount");
        assert!(status.success(), "remount {options}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

fn chronosd(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chronosd"));
    command.args(args).env("RUST_LOG", "warn");
    command
}

fn chronos(address: &str, sql: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chronos"))
        .args(["--addr", address, "--timeout-ms", "3000", "exec", "--format", "json", sql])
        .output()
        .expect("run chronos")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A `chronosd` process, killed when dropped (so a failing test leaves none behind).
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a one-node cluster on `data` and waits until it serves.
fn start(data: &Path, address: &str) -> Node {
    let data = data.to_str().expect("utf-8 path");
    let child = chronosd(&["--listen", address, "--data-dir", data])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chronosd");
    let node = Node(child);
    eventually("the node to serve", || chronos(address, "SELECT 1").status.success().then_some(()));
    node
}

#[test]
fn a_read_only_or_unusable_data_directory_is_refused_with_a_clear_message() {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    let under_file = file.path().join("data");
    let output = chronosd(&["--data-dir", under_file.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .output()
        .expect("run chronosd");
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("Not a directory"), "{}", stderr(&output));

    let Some(disk) = Tmpfs::mount("1m", ",ro") else { return };
    let data = disk.path.join("data");
    let output = chronosd(&["--data-dir", data.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .output()
        .expect("run chronosd");
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("Read-only file system"), "{}", stderr(&output));
    assert!(!stderr(&output).contains("panicked"), "{}", stderr(&output));
}

#[test]
fn a_full_disk_halts_the_node_cleanly_and_acknowledged_writes_survive() {
    let _serial = serial();
    let Some(disk) = Tmpfs::mount("2m", "") else { return };
    let data = disk.path.join("data");
    let address = format!("127.0.0.1:{}", free_ports(1)[0]);
    let mut node = start(&data, &address);
    assert!(chronos(&address, "CREATE TABLE t (id INT PRIMARY KEY, s STRING)").status.success());

    // Rows of 60 kB fill 2 MB quickly. Every acknowledged insert is counted.
    let payload = "x".repeat(60_000);
    let mut acknowledged = 0;
    let failure = loop {
        let output =
            chronos(&address, &format!("INSERT INTO t VALUES ({acknowledged}, '{payload}')"));
        if !output.status.success() {
            break output;
        }
        acknowledged += 1;
        assert!(acknowledged < 100, "the 2 MB disk never filled");
    };
    // The failed write is refused (3) or cut off as the node halts (4); the reason is in the
    // node's log below. (The store also syncs in the background, so the disk may fill between
    // two writes, and the next one finds the node gone.)
    let code = failure.status.code();
    assert!(matches!(code, Some(3) | Some(4)), "{code:?}: {}", stderr(&failure));

    // The node stops with a clear message instead of serving on or panicking.
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = node.0.try_wait().expect("wait for chronosd") {
            break status;
        }
        assert!(Instant::now() < deadline, "chronosd did not stop on a full disk");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let log = {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut node.0.stderr.take().expect("stderr"), &mut text)
            .expect("read the log");
        text
    };
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("No space left on device"), "{log}");
    assert!(!log.contains("panicked"), "{log}");

    // With room again, the node restarts and every acknowledged row is there, exactly once.
    disk.remount("size=64m");
    let _node = start(&data, &address);
    let count = chronos(&address, "SELECT COUNT(*), COUNT(DISTINCT id) FROM t");
    assert!(count.status.success(), "{}", stderr(&count));
    let text = String::from_utf8_lossy(&count.stdout).into_owned();
    let rows: serde_json::Value = serde_json::from_str(text.trim()).expect("json");
    let counted = &rows["rows"][0];
    assert!(
        counted[0].as_i64() >= Some(acknowledged) && counted[0] == counted[1],
        "{acknowledged} acknowledged, found {counted}"
    );
}

/// Writes rows `ids` into a one-node store through `chronosd` (syncing often; the first call
/// creates the table), then stops the node cleanly.
fn fill(data: &Path, address: &str, ids: std::ops::Range<u32>) {
    let data = data.to_str().expect("utf-8 path");
    let child = chronosd(&["--listen", address, "--data-dir", data, "--snapshot-entries", "5"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chronosd");
    let mut node = Node(child);
    eventually("the node to serve", || chronos(address, "SELECT 1").status.success().then_some(()));
    if ids.start == 0 {
        assert!(chronos(address, "CREATE TABLE t (id INT PRIMARY KEY, s STRING)").status.success());
    }
    for id in ids {
        let sql = format!("INSERT INTO t VALUES ({id}, '{}')", "s".repeat(200));
        assert!(chronos(address, &sql).status.success());
    }
    let stopped = Command::new("kill").arg("-TERM").arg(node.0.id().to_string()).status();
    assert!(stopped.is_ok_and(|s| s.success()));
    eventually("the node to stop", || node.0.try_wait().ok().flatten());
}

/// The database file of each generation of the SQL store in `data`.
fn store_files(data: &Path) -> Vec<PathBuf> {
    let files: Vec<PathBuf> = std::fs::read_dir(data.join("sql"))
        .expect("sql dir")
        .flatten()
        .map(|generation| generation.path().join("data.redb"))
        .filter(|file| file.exists())
        .collect();
    assert!(!files.is_empty(), "no store in {}", data.display());
    files
}

/// Applies `damage` to the database file of every generation of the SQL store in `data`.
fn damage_store(data: &Path, damage: impl Fn(&mut Vec<u8>)) {
    for file in store_files(data) {
        let mut bytes = std::fs::read(&file).expect("read the store");
        assert!(file.with_file_name("SYNCED").exists(), "the store was synced");
        damage(&mut bytes);
        std::fs::write(&file, bytes).expect("damage the store");
    }
}

/// Issue 12, item 4: what a node reads back from disk is checked. A SQL store damaged on disk
/// is refused at start with a clear message, never served: one that cannot be opened (cut
/// short, bytes flipped), and one that opens but holds less than the log needs (an older copy
/// of its file: the log can no longer replay the difference).
#[test]
fn a_damaged_sql_store_is_refused_with_a_clear_message() {
    let _serial = serial();
    type Damage = Box<dyn Fn(&Path, &str)>;
    let cases: [(&str, Damage, &str); 3] = [
        (
            "cut short",
            Box::new(|data, address| {
                fill(data, address, 0..200);
                damage_store(data, |bytes| bytes.truncate(bytes.len() / 8));
            }),
            "damaged",
        ),
        (
            "bytes flipped",
            Box::new(|data, address| {
                fill(data, address, 0..200);
                damage_store(data, |bytes| bytes.iter_mut().step_by(512).for_each(|b| *b ^= 0x5a));
            }),
            "damaged",
        ),
        (
            "an older copy",
            Box::new(|data, address| {
                fill(data, address, 0..100);
                let older: Vec<(PathBuf, Vec<u8>)> = store_files(data)
                    .into_iter()
                    .map(|file| (file.clone(), std::fs::read(&file).expect("copy")))
                    .collect();
                fill(data, address, 100..200);
                for (file, bytes) in older {
                    std::fs::write(file, bytes).expect("put the older copy back");
                }
            }),
            "cannot be replayed",
        ),
    ];
    for (name, damage, expected) in cases {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let address = format!("127.0.0.1:{}", free_ports(1)[0]);
        damage(&data, &address);
        let path = data.to_str().expect("utf-8 path");
        let output = chronosd(&["--listen", &address, "--data-dir", path]).output().expect("run");
        let log = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{name}: {log}");
        assert!(log.contains("damaged") && log.contains(expected), "{name}: {log}");
        assert!(!log.contains("panicked"), "{name}: {log}");
    }
}

/// Issue 12, item 4: a stored row damaged on disk (in a store that still opens) is refused
/// when read, with a clear message, never served as data.
#[test]
fn a_damaged_row_is_refused_when_read() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let address = format!("127.0.0.1:{}", free_ports(1)[0]);
    fill(&data, &address, 0..20);
    // Flip one byte in the middle of every copy of the rows' text (the live one among them).
    let text = "s".repeat(200);
    damage_store(&data, |bytes| {
        let mut at = 0;
        while let Some(found) = bytes[at..].windows(text.len()).position(|w| w == text.as_bytes()) {
            bytes[at + found + 100] ^= 0x01;
            at += found + text.len();
        }
    });
    let _node = start(&data, &address);
    let read = chronos(&address, "SELECT id, s FROM t");
    let message = format!("{}{}", String::from_utf8_lossy(&read.stdout), stderr(&read));
    assert!(!read.status.success(), "a damaged row was served: {message}");
    assert!(message.contains("checksum") && message.contains("damaged"), "{message}");
}
