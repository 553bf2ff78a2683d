//! Lines the host must not misread: cut short, from a newer kernel, binary
//! noise, the prefix anywhere but at the start, and escapes a borrowed string
//! cannot hold.

use super::tests::{encode, every_event};
use super::*;
use std::format;
use std::string::String;

#[test]
fn borrowed_strings_cannot_hold_escapes() {
    // Why the host decodes `Event<String>`: a `&str` borrowed from the line
    // cannot represent a JSON string with an escape, so the most interesting
    // panic messages would not decode.
    let line = encode(&every_event()[8]);
    let json = &line[PREFIX.len()..];
    assert!(serde_json::from_str::<Event<&str>>(json).is_err());
    assert!(serde_json::from_str::<Event<String>>(json).is_ok());
}

#[test]
fn truncated_lines_are_malformed_at_every_cut() {
    for event in every_event() {
        let line = encode(&event);
        let line = line.trim_end();
        // Every cut inside the JSON, on a character boundary.
        for cut in (PREFIX.len()..line.len()).filter(|&i| line.is_char_boundary(i)) {
            match parse_line(&line[..cut]) {
                LineKind::Malformed { .. } => {}
                other => panic!("{:?} decoded as {other:?}", &line[..cut]),
            }
        }
    }
}

#[test]
fn newer_protocol_version_is_reported_not_misread() {
    let line = format!(
        "@istorm {{\"type\":\"hello\",\"version\":{},\"door\":\"warp\",\"new_field\":true}}",
        PROTOCOL_VERSION + 1
    );
    assert_eq!(
        parse_line(&line),
        LineKind::NewerVersion {
            seen: u64::from(PROTOCOL_VERSION) + 1
        }
    );
    // A hello from our own version with a bad field is just malformed.
    let ours = "@istorm {\"type\":\"hello\",\"version\":1,\"door\":\"warp\"}";
    assert!(matches!(parse_line(ours), LineKind::Malformed { .. }));
}

#[test]
fn binary_noise_after_the_prefix_is_malformed() {
    let noise = String::from_utf8_lossy(b"@istorm \x00\xff\xfe{\"type\x80\":\x1b[0m");
    assert!(matches!(parse_line(&noise), LineKind::Malformed { .. }));
    let unknown = "@istorm {\"type\":\"reboot\"}";
    let LineKind::Malformed { reason } = parse_line(unknown) else {
        panic!()
    };
    assert!(reason.contains("reboot"), "{reason}");
    assert!(matches!(parse_line("@istorm "), LineKind::Malformed { .. }));
    assert!(matches!(
        parse_line("@istorm 42"),
        LineKind::Malformed { .. }
    ));
}

#[test]
fn prefix_counts_only_at_line_start() {
    let done = encode(&Event::Done {
        passed: 1,
        failed: 0,
        skipped: 0,
        not_reproduced: 0,
    });
    let inside = format!("cpu1: {done}");
    assert_eq!(parse_line(&inside), LineKind::Log(inside.trim_end()));
    let indented = format!(" {done}");
    assert!(matches!(parse_line(&indented), LineKind::Log(_)));
    // A CR before the prefix (terminals, CRLF leftovers) and CRLF endings are fine.
    let crlf = format!("\r{}\r\n", done.trim_end());
    assert!(matches!(
        parse_line(&crlf),
        LineKind::Event(Event::Done { .. })
    ));
    assert_eq!(
        parse_line("istorm booting\r\n"),
        LineKind::Log("istorm booting")
    );
    assert_eq!(
        parse_line("@istorm"),
        LineKind::Log("@istorm"),
        "prefix without its space"
    );
}
