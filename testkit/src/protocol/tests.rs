//! The protocol as both ends use it: encoded by serde-json-core into a stack
//! buffer as the kernel does, decoded by serde_json as the host does.

use super::*;
use crate::Rng;
use std::string::{String, ToString};
use std::vec::Vec;
use std::{format, vec};

/// One of every event, with strings that need escaping where strings go.
fn every_event() -> Vec<Event<&'static str>> {
    vec![
        Event::Hello {
            version: PROTOCOL_VERSION,
            door: Door::Pvh,
            machine: Machine::Tcg,
            cpus: 4,
            lapic: LapicMode::X2apic,
            strategy: Strategy::ShiftIst,
            seed: u64::MAX,
            build: "v0.1.0-3-gabc \"dirty\"",
        },
        Event::Plan { count: 2 },
        Event::Planned {
            test: "boot::nmi_all_to_all",
        },
        Event::Start {
            test: "boot::nmi_all_to_all",
            strategy: Strategy::Dr7Guard,
            iterations: 1000,
            cpu: 0,
            timeout_ms: 30_000,
        },
        Event::Progress {
            test: "boot::nmi_all_to_all",
            done: 500,
        },
        Event::Result {
            test: "scenarios::db_kernel_nmi_db",
            strategy: Strategy::Naive,
            outcome: Outcome::Pass,
            expected: Expected::Detect,
            iterations: 1000,
            cycles: 123_456_789,
            cycles_per_iteration: 123_456,
            details: "corruption detected as expected",
            counters: Counters {
                corruptions: Some(3),
                nmis: Some(1000),
                dbs: None,
                max_depth: Some(2),
            },
        },
        Event::Result {
            test: "scenarios::x",
            strategy: Strategy::Linux,
            outcome: Outcome::Skip,
            expected: Expected::Skip,
            iterations: 0,
            cycles: 0,
            cycles_per_iteration: 0,
            details: "hw-only: QEMU TCG does not model this timing",
            counters: Counters::default(),
        },
        Event::Corruption {
            test: "scenarios::db_kernel_nmi_db",
            cpu: 1,
            iteration: 17,
            vector: 1,
            field: "rip",
            expected: Hex(0xffff_ffff_8001_2345),
            seen: Hex(0xffff_ffff_8000_0000),
        },
        Event::Panic {
            test: Some("scenarios::x"),
            cpu: 2,
            message: "page fault at 0x0\n\tin \\handler\u{1}",
            rip: Some(Hex(0xffff_ffff_8000_1000)),
            vector: Some(14),
        },
        Event::Panic {
            test: None,
            cpu: 0,
            message: "no ACPI tables",
            rip: None,
            vector: None,
        },
        Event::Hang {
            test: Some("scenarios::x"),
            cpu: 3,
            rip: Hex(0x1234),
        },
        Event::Hang {
            test: None,
            cpu: 0,
            rip: Hex(0),
        },
        Event::Done {
            passed: 5,
            failed: 1,
            skipped: 2,
        },
    ]
}

fn encode(event: &Event<&str>) -> String {
    let mut buf = [0u8; LINE_MAX];
    let n = encode_line(event, &mut buf).expect("fits a LINE_MAX buffer");
    String::from_utf8(buf[..n].to_vec()).expect("encoder writes UTF-8")
}

fn owned(event: &Event<&str>) -> OwnedEvent {
    event.clone().map_str(str::to_string)
}

#[test]
fn every_event_round_trips() {
    let events = every_event();
    let mut kinds: Vec<String> = Vec::new();
    for event in &events {
        let line = encode(event);
        assert!(line.starts_with(PREFIX) && line.ends_with('\n'), "{line}");
        assert_eq!(parse_line(&line), LineKind::Event(owned(event)), "{line}");
        // serde_json's own encoding must read back the same, so both ends agree.
        let json = serde_json::to_string(&owned(event)).unwrap();
        assert_eq!(&line[PREFIX.len()..line.len() - 1], json);
        let probe: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(probe["type"].as_str(), Some(event.kind()));
        kinds.push(event.kind().to_string());
    }
    kinds.sort_unstable();
    kinds.dedup();
    let all = [
        "corruption",
        "done",
        "hang",
        "hello",
        "panic",
        "plan",
        "planned",
        "progress",
        "result",
        "start",
    ];
    assert_eq!(kinds, all, "every event type is covered");
}

#[test]
fn every_enum_value_round_trips() {
    let template = every_event()[5].clone();
    let Event::Result {
        test,
        details,
        counters,
        cycles,
        ..
    } = template
    else {
        panic!()
    };
    for strategy in Strategy::ALL {
        for outcome in [Outcome::Pass, Outcome::Fail, Outcome::Skip] {
            for expected in [
                Expected::Survive,
                Expected::Detect,
                Expected::Timing,
                Expected::Skip,
            ] {
                let event = Event::Result {
                    test,
                    strategy,
                    outcome,
                    expected,
                    iterations: 1,
                    cycles,
                    cycles_per_iteration: cycles,
                    details,
                    counters,
                };
                assert_eq!(parse_line(&encode(&event)), LineKind::Event(owned(&event)));
            }
        }
    }
    for door in [Door::Limine, Door::Pvh] {
        for lapic in [LapicMode::X2apic, LapicMode::Xapic] {
            for machine in [
                Machine::Tcg,
                Machine::Kvm,
                Machine::OtherVm,
                Machine::NoHypervisor,
            ] {
                let event = Event::Hello {
                    version: PROTOCOL_VERSION,
                    door,
                    machine,
                    cpus: 1,
                    lapic,
                    strategy: Strategy::Linux,
                    seed: 0,
                    build: "",
                };
                assert_eq!(parse_line(&encode(&event)), LineKind::Event(owned(&event)));
            }
        }
    }
}

#[test]
fn worst_printable_result_fits_line_max() {
    // A 100-byte name and a full details line of quotes (each escaped to two
    // bytes), with every number at its widest.
    let name = "n".repeat(100);
    let details = "\"".repeat(crate::MESSAGE_LEN);
    let event = Event::Result {
        test: name.as_str(),
        strategy: Strategy::Dr7Guard,
        outcome: Outcome::Fail,
        expected: Expected::Survive,
        iterations: u32::MAX,
        cycles: u64::MAX,
        cycles_per_iteration: u64::MAX,
        details: details.as_str(),
        counters: Counters {
            corruptions: Some(u64::MAX),
            nmis: Some(u64::MAX),
            dbs: Some(u64::MAX),
            max_depth: Some(u64::MAX),
        },
    };
    let mut buf = [0u8; LINE_MAX];
    let n = encode_line(&event, &mut buf).unwrap();
    assert!(n < 900, "{n}");
}

#[test]
fn examples_for_the_docs() {
    // Pins the wire form of one event; a change here is a protocol change.
    let line = encode(&every_event()[7]);
    assert_eq!(
        line,
        "@istorm {\"type\":\"corruption\",\"test\":\"scenarios::db_kernel_nmi_db\",\"cpu\":1,\"iteration\":17,\
         \"vector\":1,\"field\":\"rip\",\"expected\":\"0xffffffff80012345\",\"seen\":\"0xffffffff80000000\"}\n"
    );
    for event in every_event() {
        std::println!("{}", encode(&event).trim_end());
    }
}

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
fn absent_optional_fields_decode() {
    let line = "@istorm {\"type\":\"result\",\"test\":\"t\",\"strategy\":\"linux\",\"outcome\":\"pass\",\
                \"expected\":\"survive\",\"iterations\":1,\"cycles\":5,\"cycles_per_iteration\":5,\"details\":\"\"}";
    let LineKind::Event(Event::Result { counters, .. }) = parse_line(line) else {
        panic!("{line}")
    };
    assert_eq!(counters, Counters::default());
    // Unknown fields are ignored: a newer kernel may add some within a version.
    let extra = "@istorm {\"type\":\"done\",\"passed\":1,\"failed\":0,\"skipped\":0,\"wall_ms\":9}";
    assert_eq!(
        parse_line(extra),
        LineKind::Event(Event::Done {
            passed: 1,
            failed: 0,
            skipped: 0
        })
    );
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

#[test]
fn stream_reports_events_logs_errors_and_missing_done() {
    let mut out = String::new();
    out += "SeaBIOS (version 1.16)\r\n";
    out += &encode(&every_event()[0]);
    out += "cpu0: log line\n";
    out += "@istorm {\"type\":\"plan\",\"cou\n"; // cut off by a racing writer
    out += &encode(&Event::Progress { test: "t", done: 1 });
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
