//! Users and roles: a fresh cluster is open as before; once users exist every request needs a
//! login. Each refusal has its own error kind and exit code, and leaves the cluster unharmed:
//! a wrong password, a readonly user's INSERT, a member removal by a readwrite user, reads
//! with the token of a user since dropped. Passwords are stored only as salted hashes.

mod support;

use std::process::{Command, Output};
use support::{Cluster, eventually, serial};

/// The passwords, distinctive enough to search the data directories for.
const ROOT_PASSWORD: &str = "pw-root-5be1c0ffee";
const READER_PASSWORD: &str = "pw-reader-77aa";

/// Runs `chronos` against `address` as `user` (with `password` in CHRONOS_PASSWORD).
fn chronos_as(address: &str, user: Option<(&str, &str)>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chronos"));
    command.args(["--addr", address]).env_remove("CHRONOS_PASSWORD");
    if let Some((user, password)) = user {
        command.args(["--user", user]).env("CHRONOS_PASSWORD", password);
    }
    command.args(args).output().expect("run chronos")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn users_roles_and_every_refusal_with_its_kind_and_exit_code() {
    let _serial = serial();
    // Every statement counts as slow, so the slow-statement log sees the passwords too.
    let mut cluster = Cluster::start(3, &["--slow-statement-ms", "0"]);
    let address = cluster.addresses[&1].clone();
    let root = Some(("root", ROOT_PASSWORD));
    let unharmed = |cluster: &Cluster, value: i64| {
        let ok = chronos_as(&address, root, &["exec", &format!("INSERT INTO t VALUES ({value})")]);
        assert!(ok.status.success(), "{}", stderr(&ok));
        cluster.converged("t");
    };

    // A fresh cluster without users behaves as before: no login.
    let open = chronos_as(&address, None, &["exec", "CREATE TABLE t (v INT PRIMARY KEY)"]);
    assert!(open.status.success(), "{}", stderr(&open));
    // One script makes the first users and their roles (the request began with no users).
    let script = format!(
        "CREATE USER root WITH PASSWORD '{ROOT_PASSWORD}'; GRANT admin TO root; \
         CREATE USER writer WITH PASSWORD 'pw-writer'; GRANT readwrite TO writer; \
         CREATE USER reader WITH PASSWORD '{READER_PASSWORD}'; GRANT readonly TO reader; \
         CREATE USER gone WITH PASSWORD 'pw-gone'; GRANT readonly TO gone"
    );
    let made = chronos_as(&address, None, &["exec", &script]);
    assert!(made.status.success(), "{}", stderr(&made));
    let token = cluster.block_on(async {
        let mut client = cluster.client(1);
        client.login("root", ROOT_PASSWORD).await.map(|()| client.user_token().map(String::from))
    });
    cluster.user_token = token.expect("root logs in");
    unharmed(&cluster, 1);

    // Now a request without a login is refused: unauthenticated, exit code 5.
    let anonymous = chronos_as(&address, None, &["exec", "SELECT * FROM t"]);
    assert_eq!(anonymous.status.code(), Some(5), "{}", stderr(&anonymous));
    assert!(stderr(&anonymous).contains("log in"), "{}", stderr(&anonymous));
    // A wrong password: unauthenticated, exit code 5, and the node logs it.
    let wrong = chronos_as(&address, Some(("reader", "not-it")), &["exec", "SELECT 1"]);
    assert_eq!(wrong.status.code(), Some(5), "{}", stderr(&wrong));
    assert!(stderr(&wrong).contains("wrong user name or password"), "{}", stderr(&wrong));
    eventually("the refused login in node 1's log", || {
        cluster.log(1).contains("refused a login").then_some(())
    });
    unharmed(&cluster, 2);

    // A readonly user reads, but its INSERT is refused: permission_denied, exit code 6.
    let reader = Some(("reader", READER_PASSWORD));
    let read = chronos_as(&address, reader, &["exec", "SELECT count(*) FROM t"]);
    assert!(read.status.success(), "{}", stderr(&read));
    let insert = chronos_as(&address, reader, &["exec", "INSERT INTO t VALUES (100)"]);
    assert_eq!(insert.status.code(), Some(6), "{}", stderr(&insert));
    assert!(stderr(&insert).contains("permission_denied"), "{}", stderr(&insert));
    unharmed(&cluster, 3);
    assert!(!cluster.converged("t").iter().any(|row| row[0].to_string() == "100"));

    // A readwrite user writes, but may not remove a member: permission denied, exit code 6.
    let writer = Some(("writer", "pw-writer"));
    let wrote = chronos_as(&address, writer, &["exec", "INSERT INTO t VALUES (4)"]);
    assert!(wrote.status.success(), "{}", stderr(&wrote));
    let removal = chronos_as(&address, writer, &["member", "remove", "3"]);
    assert_eq!(removal.status.code(), Some(6), "{}", stderr(&removal));
    assert!(stderr(&removal).contains("admin"), "{}", stderr(&removal));
    let members = cluster.status(1).expect("status").members.len();
    assert_eq!(members, 3);
    unharmed(&cluster, 5);

    // A user dropped after logging in can read no more with its token.
    let mut gone = cluster.client(2);
    cluster.block_on(gone.login("gone", "pw-gone")).expect("gone logs in");
    cluster.block_on(gone.execute("SELECT * FROM t", false)).expect("gone reads");
    let dropped = chronos_as(&address, root, &["exec", "DROP USER gone"]);
    assert!(dropped.status.success(), "{}", stderr(&dropped));
    let refused = eventually("the dropped user's reads to be refused on node 2", || match cluster
        .block_on(gone.execute("SELECT * FROM t", false))
    {
        Err(error @ chronos::client::Error::Unauthenticated(_)) => Some(error),
        _ => None,
    });
    assert!(refused.to_string().contains("no longer exists"), "{refused}");
    unharmed(&cluster, 6);

    // The holder of the admin token still manages users (a way back in if every admin is
    // locked out).
    let token_file = cluster.dir.path().join("admin.token");
    std::fs::write(&token_file, cluster.admin_token()).expect("token file");
    let token = token_file.display().to_string();
    let granted = chronos_as(
        &address,
        None,
        &["--admin-token-file", &token, "exec", "GRANT admin TO writer"],
    );
    assert!(granted.status.success(), "{}", stderr(&granted));

    // No password is stored or logged anywhere: the Raft logs and the stores hold only
    // salted hashes, and the nodes' own logs show statements on users by fingerprint.
    for id in 1..=3 {
        cluster.kill(id);
    }
    let mut files: Vec<std::path::PathBuf> = (1..=3).map(|id| cluster.data_dir(id)).collect();
    files.extend((1..=3).map(|id| cluster.dir.path().join(format!("n{id}.log"))));
    let mut found = Vec::new();
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).expect("dir").map(|e| e.expect("entry").path()));
        } else {
            let bytes = std::fs::read(&path).unwrap_or_default();
            for password in [ROOT_PASSWORD, READER_PASSWORD, "pw-writer", "pw-gone"] {
                if bytes.windows(password.len()).any(|w| w == password.as_bytes()) {
                    found.push(path.display().to_string());
                }
            }
        }
    }
    assert!(found.is_empty(), "passwords stored in {found:?}");
}
