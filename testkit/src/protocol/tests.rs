//! The protocol as both ends use it: encoded by serde-json-core into a stack
//! buffer as the kernel does, decoded by serde_json as the host does.

use super::*;
use std::string::{String, ToString};
use std::vec::Vec;
use std::{format, vec};

/// One of every event, with strings that need escaping where strings go.
pub(super) fn every_event() -> Vec<Event<&'static str>> {
    vec![
        Event::Hello {
            version: PROTOCOL_VERSION,
            door: Door::Pvh,
            machine: Machine::Tcg,
            cpus: 4,
            lapic: LapicMode::X2apic,
            strategy: Strategy::ShiftOnly,
            seed: u64::MAX,
            tsc_mhz: u64::MAX,
            build: "v0.1.0-3-gabc \"dirty\"",
        },
        Event::Plan { count: 2 },
        Event::Planned {
            test: "boot::nmi_all_to_all",
            expect_crash: None,
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
            nmis: Some(377),
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
                frame_mismatches: Some(2),
                overlaps: Some(1),
                corruptions: Some(3),
                nmis: Some(1000),
                nmis_sent: Some(1000),
                dbs: None,
                max_depth: Some(2),
                ..Counters::default()
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
            not_reproduced: 0,
        },
        Event::Inject {
            test: "scenarios::db_mce_db",
            seq: 3,
            cpu: 1,
            bank: 1,
            status: Hex(0xb200_0000_0000_0000),
            mcg_status: Hex(0x5),
            during: "db",
        },
        Event::Qr {
            part: 1,
            parts: 2,
            text: "IST1|cpu=QEMU \"Virtual\" CPU|ucode=na",
        },
        Event::Hold,
    ]
}

pub(super) fn encode(event: &Event<&str>) -> String {
    let mut buf = [0u8; LINE_MAX];
    let n = encode_line(event, &mut buf).expect("fits a LINE_MAX buffer");
    String::from_utf8(buf[..n].to_vec()).expect("encoder writes UTF-8")
}

pub(super) fn owned(event: &Event<&str>) -> OwnedEvent {
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
        "hold",
        "inject",
        "panic",
        "plan",
        "planned",
        "progress",
        "qr",
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
                    tsc_mhz: 2400,
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
            nmis_sent: Some(u64::MAX),
            dbs: Some(u64::MAX),
            max_depth: Some(u64::MAX),
            frame_mismatches: Some(u64::MAX),
            stack_clobbers: Some(u64::MAX),
            overlaps: Some(u64::MAX),
            db_stack_bytes: Some(u64::MAX),
            incidents: Some(u64::MAX),
            hazards: Some(u64::MAX),
            detected: Some(u64::MAX),
            lost_nmis: Some(u64::MAX),
            merged_nmis: Some(u64::MAX),
            mismatches: Some(u64::MAX),
            damaged_registers: Some(u64::MAX),
        },
    };
    let mut buf = [0u8; LINE_MAX];
    let n = encode_line(&event, &mut buf).unwrap();
    assert!(n < LINE_MAX - 200, "{n}");
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
            skipped: 0,
            not_reproduced: 0,
        })
    );
    // A hello from a kernel that did not calibrate its TSC says 0.
    let hello = format!(
        "@istorm {{\"type\":\"hello\",\"version\":{PROTOCOL_VERSION},\"door\":\"pvh\",\
         \"machine\":\"tcg\",\"cpus\":1,\"lapic\":\"xapic\",\"strategy\":\"linux\",\"seed\":1,\
         \"build\":\"b\"}}"
    );
    let LineKind::Event(Event::Hello { tsc_mhz, .. }) = parse_line(&hello) else {
        panic!("{hello}")
    };
    assert_eq!(tsc_mhz, 0);
}

#[test]
fn planned_crash_expectation_round_trips() {
    let event = Event::<&str>::Planned {
        test: "selftest::hang",
        expect_crash: Some("hang"),
    };
    let mut buf = [0u8; 256];
    let n = encode_line(&event, &mut buf).unwrap();
    let line = core::str::from_utf8(&buf[..n]).unwrap();
    assert!(line.contains("\"expect_crash\":\"hang\""), "{line}");
    match parse_line(line.trim_end()) {
        LineKind::Event(Event::Planned { test, expect_crash }) => {
            assert_eq!(test, "selftest::hang");
            assert_eq!(expect_crash.as_deref(), Some("hang"));
        }
        other => panic!("{other:?}"),
    }
}
