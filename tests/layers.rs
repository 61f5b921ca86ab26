//! The layering the architecture promises, checked on the source: clients (the client library,
//! the CLI, the console) and the gRPC surface use the replica's public types and the client,
//! never the node's code; the replica layer does not reach up into the node; the Raft layer
//! knows nothing of SQL or of the node.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read a source directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The files among `paths` (files or directories, from the workspace root) whose code names
/// one of `forbidden`, with the offending line; files named in `allowed` are skipped.
fn offenders(paths: &[&str], forbidden: &[&str], allowed: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for path in paths {
        let path = root.join(path);
        let files = if path.is_dir() { sources(&path) } else { vec![path] };
        for file in files {
            let name = file.strip_prefix(root).unwrap_or(&file).display().to_string();
            if allowed.contains(&name.as_str()) {
                continue;
            }
            let text = std::fs::read_to_string(&file).expect("read a source file");
            for (number, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                if forbidden.iter().any(|f| code.contains(f)) {
                    found.push(format!("{name}:{}: {}", number + 1, line.trim()));
                }
            }
        }
    }
    found
}

#[test]
fn clients_and_the_grpc_surface_never_use_the_nodes_code() {
    let found = offenders(
        &["src/client", "src/grpc", "src/bin/chronos", "src/replica", "tui/src"],
        &["crate::server", "chronos::server", "super::server"],
        // The console's --spawn hosts nodes in its own process, as chronosd does, and so do
        // the tests of its runtime and of its demo.
        &["tui/src/spawn.rs", "tui/src/runtime_tests.rs", "tui/src/demo_tests.rs"],
    );
    assert!(found.is_empty(), "these use the node's code:\n{}", found.join("\n"));
}

#[test]
fn the_raft_layer_knows_nothing_of_sql_or_the_node() {
    let found = offenders(
        &["src/raft"],
        &["crate::sql", "crate::server", "crate::replica", "crate::grpc", "tokio::"],
        &[],
    );
    assert!(found.is_empty(), "the Raft layer reaches up:\n{}", found.join("\n"));
}

#[test]
fn the_replica_layer_knows_neither_grpc_nor_the_node() {
    let found = offenders(
        &["src/replica"],
        &["crate::server", "crate::grpc", "crate::client", "tonic::", "prost::"],
        &[],
    );
    assert!(found.is_empty(), "the replica layer reaches up:\n{}", found.join("\n"));
}
