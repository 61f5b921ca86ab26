//! Sending a script: the text is kept from the last acknowledged offset on, so a request cut
//! off can resume on another node, and it goes in pieces of at most [`PIECE_BYTES`] as it is
//! read (a script in memory that fits one piece goes as one message, with no task).

use super::Script;
use crate::grpc::pb;
use std::collections::VecDeque;
use std::io::Read;
use std::sync::{Arc, Mutex};

/// How much of a script one message carries.
pub(super) const PIECE_BYTES: usize = 1 << 20;

/// A script being sent: the text read but not yet acknowledged by a result is kept, so an
/// attempt can resume from any acknowledged offset.
pub(super) struct Source {
    reader: Option<Box<dyn Read + Send>>,
    /// Bytes from `kept_from` on, read and not yet acknowledged.
    kept: VecDeque<u8>,
    kept_from: u64,
    /// How many lines end before `kept_from`, and the column there (in bytes, 0-based), so
    /// a position in the kept text is a position in the whole script.
    lines_before: u64,
    column_at_kept: u64,
    /// The source is exhausted.
    done: bool,
}

impl Source {
    pub(super) fn new(script: Script) -> Self {
        match script {
            Script::Text(text) => {
                let kept = text.into_bytes().into();
                Self {
                    reader: None,
                    kept,
                    kept_from: 0,
                    lines_before: 0,
                    column_at_kept: 0,
                    done: true,
                }
            }
            Script::Reader(reader) => {
                let kept = VecDeque::new();
                Self {
                    reader: Some(reader),
                    kept,
                    kept_from: 0,
                    lines_before: 0,
                    column_at_kept: 0,
                    done: false,
                }
            }
        }
    }

    /// The piece starting at `offset` (at or after the last acknowledged offset), reading more
    /// of the source if needed; `None` at the end.
    fn piece(&mut self, offset: u64) -> Result<Option<Vec<u8>>, String> {
        let kept_end = self.kept_from + self.kept.len() as u64;
        if offset < kept_end {
            let start = (offset - self.kept_from) as usize;
            let end = (start + PIECE_BYTES).min(self.kept.len());
            return Ok(Some(self.kept.range(start..end).copied().collect()));
        }
        if self.done {
            return Ok(None);
        }
        let Some(reader) = self.reader.as_mut() else { return Ok(None) };
        let mut piece = vec![0u8; PIECE_BYTES];
        let read = reader.read(&mut piece).map_err(|e| format!("cannot read the script: {e}"))?;
        if read == 0 {
            self.done = true;
            return Ok(None);
        }
        piece.truncate(read);
        self.kept.extend(&piece);
        Ok(Some(piece))
    }

    /// Whether the piece at `offset` needs no read from the source.
    /// The rest of a script held wholly in memory, from `offset`, if it fits one piece.
    pub(super) fn whole(&self, offset: u64) -> Option<Vec<u8>> {
        let end = self.kept_from + self.kept.len() as u64;
        let start = offset.checked_sub(self.kept_from)?;
        (self.done && offset <= end && end - offset <= PIECE_BYTES as u64)
            .then(|| self.kept.range(start as usize..).copied().collect())
    }

    fn in_memory(&self, offset: u64) -> bool {
        self.done || offset < self.kept_from + self.kept.len() as u64
    }

    /// Forgets the text before `offset` (its results arrived).
    pub(super) fn acknowledge(&mut self, offset: u64) {
        let drop = offset.saturating_sub(self.kept_from).min(self.kept.len() as u64);
        for byte in self.kept.drain(..drop as usize) {
            if byte == b'\n' {
                self.lines_before += 1;
                self.column_at_kept = 0;
            } else if byte & 0xc0 != 0x80 {
                self.column_at_kept += 1; // a character starts here
            }
        }
        self.kept_from += drop;
    }

    /// The kept text from `start` to `end` (absolute offsets), if it is all kept.
    pub(super) fn text(&self, start: u64, end: u64) -> Option<String> {
        let from = start.checked_sub(self.kept_from)? as usize;
        let to = (end.checked_sub(self.kept_from)? as usize).min(self.kept.len());
        let bytes: Vec<u8> = self.kept.range(from.min(to)..to).copied().collect();
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The 1-based line and column in the whole script of `offset` in `text`, a piece of the
    /// kept text starting at absolute offset `start`.
    pub(super) fn position(&self, start: u64, text: &str, offset: usize) -> (u64, u64) {
        let lead = self.text(self.kept_from, start).unwrap_or_default() + &text[..offset];
        let (line, column) = crate::sql::parser::locate::line_column(&lead, lead.len());
        let column = if line == 1 { column as u64 + self.column_at_kept } else { column as u64 };
        (self.lines_before + line as u64, column)
    }
}

/// The task sending a script's pieces, if it needed one.
pub(super) struct Feeder(pub(super) Option<tokio::task::JoinHandle<Result<(), String>>>);

impl Feeder {
    pub(super) fn abort(&self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }

    /// Waits for the task: the script could not be read, or all of it was sent (or the call
    /// ended first).
    pub(super) async fn finish(self) -> Result<(), String> {
        match self.0 {
            Some(task) => task.await.unwrap_or(Ok(())),
            None => Ok(()),
        }
    }
}

/// Sends the script from `offset` on, the settings first.
pub(super) async fn feed(
    source: Arc<Mutex<Source>>,
    mut offset: u64,
    settings: pb::RunSettings,
    pieces: tokio::sync::mpsc::Sender<pb::RunRequest>,
) -> Result<(), String> {
    let mut settings = Some(settings);
    loop {
        // Text already in memory is cut at once; only reading the source may block.
        let in_memory = {
            let mut source = source.lock().unwrap_or_else(|p| p.into_inner());
            source.in_memory(offset).then(|| source.piece(offset))
        };
        let piece = match in_memory {
            Some(piece) => piece?,
            None => {
                let source = source.clone();
                tokio::task::spawn_blocking(move || {
                    source.lock().unwrap_or_else(|p| p.into_inner()).piece(offset)
                })
                .await
                .map_err(|e| format!("cannot read the script: {e}"))??
            }
        };
        let Some(piece) = piece else {
            // The end, said explicitly: a stream that ends without it (this task failed to
            // read the script) leaves its unterminated last statement unrun.
            let end = pb::RunRequest { settings: settings.take(), sql: Vec::new(), end: true };
            let _ = pieces.send(end).await;
            return Ok(());
        };
        offset += piece.len() as u64;
        let request = pb::RunRequest { settings: settings.take(), sql: piece, end: false };
        if pieces.send(request).await.is_err() {
            return Ok(()); // the call ended
        }
    }
}
