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
    /// The source is exhausted.
    done: bool,
}

impl Source {
    pub(super) fn new(script: Script) -> Self {
        match script {
            Script::Text(text) => {
                Self { reader: None, kept: text.into_bytes().into(), kept_from: 0, done: true }
            }
            Script::Reader(reader) => {
                Self { reader: Some(reader), kept: VecDeque::new(), kept_from: 0, done: false }
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
        self.kept.drain(..drop as usize);
        self.kept_from += drop;
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
