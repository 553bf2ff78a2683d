//! Host side: a whole boot's serial output, line by line, with line numbers.
//!
//! Bytes can arrive in any chunks (a pipe from QEMU), lines may end in CRLF,
//! the last line may be cut off by a crash, and invalid UTF-8 is replaced, not
//! refused. Every line becomes one [`Record`], in order, so a report can show
//! the log lines around a failing event.

use super::decode::{LineKind, OwnedEvent, parse_line};
use std::borrow::ToOwned;
use std::string::String;
use std::vec::Vec;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// 1-based line number in the boot's output.
    pub line: usize,
    pub kind: RecordKind,
}

// Results carry many optional counters; events are short-lived and never
// stored in bulk, so the size is not worth an indirection (and the kernel has
// no heap to box into).
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordKind {
    Log(String),
    Event(OwnedEvent),
    Error(StreamError),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamError {
    Malformed {
        reason: String,
    },
    NewerVersion {
        seen: u64,
    },
    /// The output ended without a `done` event: the kernel crashed, hung, or
    /// was killed. Numbered one past the last line.
    MissingDone,
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Malformed { reason } => write!(f, "malformed event: {reason}"),
            Self::NewerVersion { seen } => write!(
                f,
                "kernel speaks protocol version {seen}, this host only {}: rebuild xtask",
                super::PROTOCOL_VERSION
            ),
            Self::MissingDone => f.write_str("output ended without a done event"),
        }
    }
}

/// Feeds on bytes or lines as they come; [`finish`](Self::finish) gives the
/// whole [`Transcript`].
#[derive(Debug, Default)]
pub struct StreamParser {
    records: Vec<Record>,
    /// Bytes of a line whose newline has not arrived yet.
    pending: Vec<u8>,
    lines: usize,
    done: bool,
}

impl StreamParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next chunk of raw output; returns the records of the lines
    /// it completed, so a live display can show progress.
    pub fn feed(&mut self, bytes: &[u8]) -> &[Record] {
        let first_new = self.records.len();
        let mut rest = bytes;
        while let Some(newline) = rest.iter().position(|&b| b == b'\n') {
            self.pending.extend_from_slice(&rest[..newline]);
            rest = &rest[newline + 1..];
            let line = std::mem::take(&mut self.pending);
            self.push_line(&String::from_utf8_lossy(&line));
        }
        self.pending.extend_from_slice(rest);
        &self.records[first_new..]
    }

    /// Takes one complete line (its line ending is optional).
    pub fn push_line(&mut self, line: &str) -> &Record {
        self.lines += 1;
        let kind = match parse_line(line) {
            LineKind::Log(text) => RecordKind::Log(text.to_owned()),
            LineKind::Event(event) => {
                self.done |= matches!(event, OwnedEvent::Done { .. });
                RecordKind::Event(event)
            }
            LineKind::Malformed { reason } => RecordKind::Error(StreamError::Malformed { reason }),
            LineKind::NewerVersion { seen } => {
                RecordKind::Error(StreamError::NewerVersion { seen })
            }
        };
        self.records.push(Record {
            line: self.lines,
            kind,
        });
        &self.records[self.records.len() - 1]
    }

    /// Ends the stream: a final line without a newline still counts (a crash
    /// often cuts one off), and a missing `done` is reported.
    pub fn finish(mut self) -> Transcript {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.push_line(&String::from_utf8_lossy(&line));
        }
        if !self.done {
            let line = self.lines + 1;
            self.records.push(Record {
                line,
                kind: RecordKind::Error(StreamError::MissingDone),
            });
        }
        Transcript {
            records: self.records,
        }
    }
}

/// Parses a whole boot's output at once.
pub fn parse_stream(bytes: &[u8]) -> Transcript {
    let mut parser = StreamParser::new();
    parser.feed(bytes);
    parser.finish()
}

/// Everything a boot printed, classified, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Transcript {
    pub records: Vec<Record>,
}

impl Transcript {
    pub fn events(&self) -> impl Iterator<Item = (usize, &OwnedEvent)> {
        self.records.iter().filter_map(|r| match &r.kind {
            RecordKind::Event(e) => Some((r.line, e)),
            _ => None,
        })
    }

    pub fn logs(&self) -> impl Iterator<Item = (usize, &str)> {
        self.records.iter().filter_map(|r| match &r.kind {
            RecordKind::Log(text) => Some((r.line, text.as_str())),
            _ => None,
        })
    }

    pub fn errors(&self) -> impl Iterator<Item = (usize, &StreamError)> {
        self.records.iter().filter_map(|r| match &r.kind {
            RecordKind::Error(e) => Some((r.line, e)),
            _ => None,
        })
    }

    /// Whether the run reached its `done` event.
    pub fn is_complete(&self) -> bool {
        self.done().is_some()
    }

    /// The counts of the run's `done` event: (passed, failed, skipped).
    pub fn done(&self) -> Option<(u32, u32, u32)> {
        self.events().find_map(|(_, e)| match e {
            OwnedEvent::Done {
                passed,
                failed,
                skipped,
                ..
            } => Some((*passed, *failed, *skipped)),
            _ => None,
        })
    }

    /// The `not-reproduced` count of the run's `done` event (counted apart
    /// from `skipped`).
    pub fn not_reproduced(&self) -> Option<u32> {
        self.events().find_map(|(_, e)| match e {
            OwnedEvent::Done { not_reproduced, .. } => Some(*not_reproduced),
            _ => None,
        })
    }
}
