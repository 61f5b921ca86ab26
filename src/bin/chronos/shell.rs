//! `chronos shell`: an interactive prompt with history and multi-line statements.
//!
//! A statement runs once its line ends with `;`. Meta-commands start with a backslash:
//! `\status`, `\help`, `\q`.

use chronos::client::Client;
use chronos::sql::{StatementResult, format};
use rustyline::error::ReadlineError;
use std::process::ExitCode;
use std::time::Instant;

const HELP: &str = "\
Statements end with a semicolon and may span lines. Meta-commands:
  \\status   the cluster's nodes (as `chronos status`)
  \\help     this help
  \\q        quit (also Ctrl-D)
Transactions span statements: BEGIN; ...; COMMIT;";

/// Runs the prompt until the user quits.
pub fn run(runtime: &tokio::runtime::Runtime, mut client: Client) -> ExitCode {
    let mut editor = match rustyline::DefaultEditor::new() {
        Ok(editor) => editor,
        Err(error) => {
            eprintln!("chronos: cannot start the prompt: {error}");
            return ExitCode::from(1);
        }
    };
    let history =
        std::env::var_os("HOME").map(|home| std::path::Path::new(&home).join(".chronos_history"));
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    println!("Connected to {} (type \\help for help).", client.address());
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() { "chronos> " } else { "      -> " };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                buffer.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(error) => {
                eprintln!("chronos: {error}");
                break;
            }
        };
        let trimmed = line.trim();
        if buffer.is_empty() && trimmed.starts_with('\\') {
            let _ = editor.add_history_entry(trimmed);
            match trimmed {
                "\\q" | "\\quit" => break,
                "\\help" | "\\?" => println!("{HELP}"),
                "\\status" => {
                    runtime.block_on(super::status::print(
                        &mut client,
                        super::status::StatusFormat::Table,
                    ));
                }
                other => println!("unknown command {other}; \\help lists them"),
            }
            continue;
        }
        if buffer.is_empty()
            && matches!(trimmed.to_ascii_lowercase().as_str(), "quit" | "exit" | "help")
        {
            if trimmed.eq_ignore_ascii_case("help") {
                println!("{HELP}");
                continue;
            }
            break;
        }
        if trimmed.is_empty() && buffer.is_empty() {
            continue;
        }
        buffer.push_str(&line);
        buffer.push('\n');
        if !trimmed.ends_with(';') {
            continue;
        }
        let script = std::mem::take(&mut buffer);
        // A statement that sets a password stays out of the history file.
        if !script.to_ascii_lowercase().contains("password") {
            let _ = editor.add_history_entry(script.trim());
        }
        let started = Instant::now();
        let response = runtime.block_on(client.execute(&script, false));
        let elapsed = started.elapsed().as_secs_f64();
        match response {
            Ok(response) => {
                let count = response.results.len();
                for (position, (_, outcome)) in response.results.iter().enumerate() {
                    let timing = if position + 1 == count {
                        format!(" ({elapsed:.3} sec)")
                    } else {
                        String::new()
                    };
                    match outcome {
                        Ok(StatementResult::Query { columns, rows }) => {
                            let names: Vec<String> =
                                columns.iter().map(|c| c.name.clone()).collect();
                            print!("{}", format::render_table(&names, rows));
                            let plural = if rows.len() == 1 { "row" } else { "rows" };
                            println!("{} {plural}{timing}", rows.len());
                        }
                        Ok(result) => println!("{}{timing}", format::summary(result)),
                        Err(error) => {
                            println!("{}", super::output::error_line(&error.kind, &error.message))
                        }
                    }
                }
            }
            Err(error) => println!("chronos: {error}"),
        }
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    if client.transaction().is_some() {
        let _ = runtime.block_on(client.execute("ROLLBACK", false));
    }
    ExitCode::SUCCESS
}
