//! End to end: `chronos-tui --spawn 3` in a real pseudo-terminal (tmux), checking that the
//! screen shows an elected leader and that `SELECT 1` typed into the SQL pane shows its result,
//! then that Ctrl-C leaves the console. Skipped (saying so) where tmux is not installed.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// How long the console may take to show what is expected.
const DEADLINE: Duration = Duration::from_secs(60);

/// A tmux server of its own (its own socket), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux").arg("-L").arg(&self.socket).args(args).output().expect("run tmux")
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "console"]).stdout)
            .into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "console"];
        args.extend_from_slice(keys);
        assert!(self.run(&args).status.success(), "send-keys {keys:?}");
    }

    /// Polls the screen until `check` accepts it.
    fn wait_for(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let screen = self.screen();
            if check(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

#[test]
fn the_console_shows_a_leader_and_runs_sql_from_the_pane() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("skipped: tmux is not installed");
        return;
    }
    let data = tempfile::tempdir().expect("temp dir");
    let tmux = Tmux { socket: format!("chronos-tui-test-{}", std::process::id()) };
    let command = format!(
        "{} --spawn 3 --data-dir {}; echo console-exited-$?; sleep 60",
        env!("CARGO_BIN_EXE_chronos-tui"),
        data.path().join("cluster").display()
    );
    let started =
        tmux.run(&["new-session", "-d", "-s", "console", "-x", "100", "-y", "30", &command]);
    assert!(started.status.success(), "{}", String::from_utf8_lossy(&started.stderr));

    let screen = tmux.wait_for("a leader", |s| s.contains("leader: node") && s.contains("3/3 up"));
    assert!(screen.contains("Nodes"), "{screen}");

    tmux.keys(&["5"]);
    tmux.wait_for("the SQL editor", |s| s.contains("F5 runs"));
    tmux.keys(&["-l", "SELECT 1 AS one"]);
    tmux.keys(&["F5"]);
    let screen =
        tmux.wait_for("the result", |s| s.contains("log index") && s.contains("Rows: 1 x 1"));
    let row = screen.lines().position(|l| l.contains("│one"));
    let value = row.and_then(|at| screen.lines().nth(at + 1)).unwrap_or_default();
    assert!(value.starts_with("│1 "), "the row under the header should be 1:\n{screen}");

    tmux.keys(&["C-c"]);
    tmux.wait_for("the console to exit cleanly", |s| s.contains("console-exited-0"));
}
