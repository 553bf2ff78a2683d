//! Host side: one serial line to a log line, an event, or a reported error.
//! Never panics, whatever the bytes.

use super::{Event, PREFIX, PROTOCOL_VERSION};
use serde::Deserialize;
use std::string::{String, ToString};

/// An event as the host holds it: owns its strings.
pub type OwnedEvent = Event<String>;

// Results carry many optional counters; events are short-lived and never
// stored in bulk, so the size is not worth an indirection (and the kernel has
// no heap to box into).
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineKind<'a> {
    /// No prefix at the start: an ordinary log line (without its `\r`).
    Log(&'a str),
    Event(OwnedEvent),
    /// The prefix is there but what follows is not a known event: bad or
    /// truncated JSON, noise on the line, an unknown event type.
    Malformed {
        reason: String,
    },
    /// A `hello` from a kernel that speaks a newer protocol than this host.
    NewerVersion {
        seen: u64,
    },
}

/// Classifies one line (with or without its line ending).
///
/// The prefix counts only at the start of the line, after any `\r` a terminal
/// or a previous CRLF left there; elsewhere it is just text in a log line.
pub fn parse_line(line: &str) -> LineKind<'_> {
    let line = line.trim_end_matches(['\n', '\r']).trim_start_matches('\r');
    match line.strip_prefix(PREFIX) {
        None => LineKind::Log(line),
        Some(json) => parse_event(json),
    }
}

/// Just enough of an event to check the version before trusting the rest: a
/// newer kernel's `hello` may not decode as ours, and "upgrade the host" is a
/// better message than "missing field".
#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "type")]
    kind: Option<String>,
    version: Option<serde_json::Value>,
}

fn parse_event(json: &str) -> LineKind<'_> {
    let probe = match serde_json::from_str::<Probe>(json) {
        Ok(probe) => probe,
        Err(e) => return malformed(&e),
    };
    if probe.kind.as_deref() == Some("hello")
        && let Some(seen) = probe.version.as_ref().and_then(serde_json::Value::as_u64)
        && seen > u64::from(PROTOCOL_VERSION)
    {
        return LineKind::NewerVersion { seen };
    }
    match serde_json::from_str::<OwnedEvent>(json) {
        Ok(event) => LineKind::Event(event),
        Err(e) => malformed(&e),
    }
}

fn malformed(e: &serde_json::Error) -> LineKind<'static> {
    LineKind::Malformed {
        reason: e.to_string(),
    }
}
