//! The stream parser over whole boots: line numbers, chunking, a cut-off last
//! line, a missing `done`, and random bytes that must never panic it.

use super::tests::{encode, every_event, owned};
use super::*;
use crate::Rng;
use std::string::{String, ToString};
use std::vec::Vec;

#[test]
fn stream_reports_events_logs_errors_and_missing_done() {
    let mut out = String::new();
    out += "SeaBIOS (version 1.16)\r\n";
    out += &encode(&every_event()[0]);
    out += "cpu0: log line\n";
    out += "@istorm {\"type\":\"plan\",\"cou\n"; // cut off by a racing writer
    out += &encode(&Event::Progress {
        test: "t",
        done: 1,
        nmis: None,
    });
    out += "@istorm {\"type\":\"hang\",\"cpu\":0"; // the crash cut the last line
    let transcript = parse_stream(out.as_bytes());

    let lines: Vec<usize> = transcript.events().map(|(line, _)| line).collect();
    assert_eq!(lines, [2, 5]);
    let logs: Vec<(usize, &str)> = transcript.logs().collect();
    assert_eq!(logs, [(1, "SeaBIOS (version 1.16)"), (3, "cpu0: log line")]);
    let errors: Vec<(usize, &StreamError)> = transcript.errors().collect();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(matches!(errors[0], (4, StreamError::Malformed { .. })));
    assert!(matches!(errors[1], (6, StreamError::Malformed { .. })));
    assert_eq!(errors[2], (7, &StreamError::MissingDone));
    assert!(!transcript.is_complete());
    assert!(errors[2].1.to_string().contains("without a done"));
}

#[test]
fn complete_stream_in_odd_chunks() {
    let text: String = every_event().iter().map(encode).collect();
    let mut parser = StreamParser::new();
    let mut seen = 0;
    for chunk in text.as_bytes().chunks(7) {
        seen += parser.feed(chunk).len();
    }
    let transcript = parser.finish();
    assert_eq!(seen, every_event().len());
    assert_eq!(transcript.errors().count(), 0);
    assert!(transcript.is_complete());
    let decoded: Vec<OwnedEvent> = transcript.events().map(|(_, e)| e.clone()).collect();
    let expected: Vec<OwnedEvent> = every_event().iter().map(owned).collect();
    assert_eq!(decoded, expected);
}

#[test]
fn random_bytes_never_panic() {
    let valid: String = every_event().iter().map(encode).collect();
    let mut rng = Rng::new(0x15_7042);
    for round in 0..2000 {
        let mut bytes: Vec<u8> = if round % 2 == 0 {
            (0..rng.below(300)).map(|_| rng.next_u32() as u8).collect()
        } else {
            valid.as_bytes().to_vec()
        };
        // Flip, drop and inject bytes, with the prefix and newlines likely.
        for _ in 0..rng.between(1, 20) {
            let at = rng.below(bytes.len() as u64 + 1) as usize;
            match rng.below(4) {
                0 if at < bytes.len() => bytes[at] = rng.next_u32() as u8,
                1 if at < bytes.len() => drop(bytes.remove(at)),
                2 => bytes.splice(at..at, PREFIX.bytes()).for_each(drop),
                _ => bytes.insert(at, b"\n{}\"\\\r"[rng.below(6) as usize]),
            }
        }
        let transcript = parse_stream(&bytes);
        for line in String::from_utf8_lossy(&bytes).lines() {
            let _ = parse_line(line);
        }
        let last = transcript.records.last().map(|r| r.line);
        assert!(last.is_some(), "at least the missing-done or a line");
    }
}
