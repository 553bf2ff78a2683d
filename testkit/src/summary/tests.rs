use std::string::{String, ToString};
use std::vec::Vec;
use std::{format, vec};

use super::*;

fn header(passed: u32, failed: u32, skipped: u32) -> Header<&'static str> {
    Header {
        cpu: "Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz",
        ucode: Some(0xf4),
        setting: Setting {
            door: Door::Limine,
            machine: Machine::NoHypervisor,
            cpus: 8,
            lapic: LapicMode::X2apic,
            strategy: Strategy::Naive,
            seed: 1,
        },
        passed,
        failed,
        skipped,
    }
}

fn entry(test: &'static str, outcome: Outcome, counters: Counters) -> Entry<&'static str> {
    Entry {
        test,
        strategy: Strategy::Naive,
        outcome,
        counters,
    }
}

fn sample() -> (Header<&'static str>, Vec<Entry<&'static str>>) {
    let entries = vec![
        entry(
            "boot::nmi_all_to_all",
            Outcome::Pass,
            Counters {
                nmis: Some(64),
                ..Counters::default()
            },
        ),
        entry(
            "scenarios::db_kernel_nmi_db",
            Outcome::Fail,
            Counters {
                corruptions: Some(3),
                nmis: Some(200),
                dbs: Some(200),
                ..Counters::default()
            },
        ),
        entry(
            "scenarios::movss_entry_db::tf",
            Outcome::Skip,
            Counters::default(),
        ),
    ];
    (header(1, 1, 1), entries)
}

fn encode_to_string(h: &Header<&str>, entries: &[Entry<&str>], capacity: usize) -> String {
    let mut buf = vec![0u8; capacity];
    let len = encode(h, entries, &mut buf).expect("encodes");
    String::from_utf8(buf[..len].to_vec()).expect("ASCII")
}

fn owned(e: &Entry<&str>) -> Entry<String> {
    Entry {
        test: e.test.to_string(),
        strategy: e.strategy,
        outcome: e.outcome,
        counters: e.counters,
    }
}

#[test]
fn the_documented_example() {
    let (h, entries) = sample();
    assert_eq!(
        encode_to_string(&h, &entries, 512),
        "IST1|cpu=Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz|ucode=0xf4|door=limine|lapic=x2apic\
         |vm=no-hypervisor|cpus=8|seed=1|strategy=naive|pass=1|fail=1|skip=1\
         |scenarios::db_kernel_nmi_db=F,c3,n200,d200|boot::nmi_all_to_all=P,n64\
         |scenarios::movss_entry_db::tf=S"
    );
}

#[test]
fn round_trip_keeps_everything_failed_first() {
    let (h, entries) = sample();
    let decoded = decode(&encode_to_string(&h, &entries, 512)).expect("decodes");
    assert_eq!(decoded.omitted, 0);
    assert_eq!(decoded.header.cpu, h.cpu);
    assert_eq!(decoded.header.ucode, Some(0xf4));
    assert_eq!((decoded.header.passed, decoded.header.failed), (1, 1));
    let expected: Vec<_> = [&entries[1], &entries[0], &entries[2]]
        .into_iter()
        .map(owned)
        .collect();
    assert_eq!(decoded.entries, expected);
}

#[test]
fn another_strategy_switches_and_switches_back() {
    let (mut h, mut entries) = sample();
    entries[2].strategy = Strategy::Linux;
    entries.push(entry("z::last", Outcome::Pass, Counters::default()));
    h.passed = 2;
    h.ucode = None;
    let text = encode_to_string(&h, &entries, 512);
    assert!(text.contains("|ucode=na|"), "{text}");
    assert!(
        text.ends_with("|strategy=linux|scenarios::movss_entry_db::tf=S|strategy=naive|z::last=P"),
        "{text}"
    );
    let decoded = decode(&text).expect("decodes");
    assert_eq!(decoded.header.ucode, None);
    let strategies: Vec<_> = decoded.entries.iter().map(|e| e.strategy).collect();
    use Strategy::{Linux, Naive};
    assert_eq!(strategies, [Naive, Naive, Linux, Naive]);
}

#[test]
fn what_does_not_fit_is_counted_and_failures_stay() {
    let mut entries: Vec<Entry<&str>> = (0..40)
        .map(|i| {
            let name: &'static str = format!("scenarios::passing_test_{i:02}").leak();
            entry(name, Outcome::Pass, Counters::default())
        })
        .collect();
    entries.push(entry(
        "scenarios::the_failure",
        Outcome::Fail,
        Counters::default(),
    ));
    let h = header(40, 1, 0);
    let full = encode_to_string(&h, &entries, 4096);
    assert!(!full.contains("..."));
    for capacity in [200, 333, 500, full.len() - 1] {
        let text = encode_to_string(&h, &entries, capacity);
        assert!(text.len() <= capacity, "{capacity}: {text}");
        let decoded = decode(&text).unwrap_or_else(|e| panic!("{capacity}: {e}: {text}"));
        assert_eq!(decoded.entries[0].test, "scenarios::the_failure");
        assert_eq!(decoded.entries.len() as u32 + decoded.omitted, 41);
        assert!(decoded.omitted > 0);
        assert!(
            text.ends_with(&format!("|...{}", decoded.omitted)),
            "{text}"
        );
        assert_eq!(decoded.header.passed, 40);
    }
}

#[test]
fn a_header_that_does_not_fit_is_an_error() {
    let (h, entries) = sample();
    let mut buf = [0u8; 64];
    assert_eq!(
        encode(&h, &entries, &mut buf),
        Err(EncodeError::TooSmall { capacity: 64 })
    );
    // No results at all needs no `...`.
    let mut buf = vec![0u8; 512];
    let none: &[Entry<&str>] = &[];
    let len = encode(&header(0, 0, 0), none, &mut buf).expect("encodes");
    assert!(decode(std::str::from_utf8(&buf[..len]).unwrap()).is_ok());
}

#[test]
fn odd_characters_are_replaced_not_smuggled() {
    let mut h = header(1, 0, 0);
    h.cpu = "  Weird|CPU     name\u{7f}é  ";
    let entries = [entry("a|b=c,d e", Outcome::Pass, Counters::default())];
    let text = encode_to_string(&h, &entries, 512);
    let decoded = decode(&text).expect("decodes");
    assert_eq!(decoded.header.cpu, "Weird/CPU name??");
    assert_eq!(decoded.entries[0].test, "a_b_c_d_e");
    let text = encode_to_string(
        &h,
        &[entry("strategy", Outcome::Pass, Counters::default())],
        512,
    );
    assert_eq!(decode(&text).expect("decodes").entries[0].test, "_strategy");
}

#[test]
fn garbage_is_an_error_never_a_panic() {
    let (h, entries) = sample();
    let good = encode_to_string(&h, &entries, 512);
    assert!(matches!(decode("hello"), Err(DecodeError::NotASummary)));
    assert!(matches!(decode(""), Err(DecodeError::NotASummary)));
    assert!(matches!(decode("IST2|x"), Err(DecodeError::Version(v)) if v == "IST2"));
    assert!(matches!(decode("IST1"), Err(DecodeError::Missing("cpu"))));
    for (from, to) in [
        ("ucode=0xf4", "ucode=f4"),
        ("door=limine", "door=uefi"),
        ("cpus=8", "cpus=-8"),
        ("seed=1", "seed=+1"),
        ("strategy=naive", "strategy=best"),
        ("=F,c3", "=X,c3"),
        (",n200", ",q200"),
        (",n200", ",c200"),
        (",d200", ",d"),
        ("pass=1", "pass=2"),
        ("|boot::", "|...1|boot::"),
        ("|boot::nmi_all_to_all", "|=P|x"),
        ("|vm=", "|machine="),
    ] {
        let text = good.replacen(from, to, 1);
        assert_ne!(text, good, "{from}");
        let err = decode(&text).expect_err(&text);
        assert!(!err.to_string().is_empty());
    }
    // Every prefix of a good summary, and some byte noise, fail cleanly.
    for end in 0..good.len() {
        let _ = decode(&good[..end]);
    }
    let noise: String = (0u32..600)
        .filter_map(|i| char::from_u32(i * 7919 % 0x3000))
        .collect();
    let _ = decode(&noise);
    let _ = decode(&format!("IST1|{noise}"));
    // A trailing newline (as a QR reader may add) is fine.
    assert!(decode(&format!("{good}\n")).is_ok());
}

#[test]
fn a_payload_from_a_kernel_boot_decodes() {
    // The summary (then a `qr:` line) of `hold=1 entry=naive iterations=1` under QEMU TCG, which
    // a QR reader also read off the screenshot.
    let text = "IST1|cpu=QEMU TCG CPU version 2.5+|ucode=na|door=limine|lapic=x2apic|vm=tcg\
                |cpus=2|seed=1|strategy=naive|pass=10|fail=1|skip=2\
                |scenarios::db_user_nmi_db=F,c0,n1,d2|boot::nmi_all_to_all=P,n2\
                |scenarios::db_kernel_nmi_db=P,c4,n1,d2|scenarios::gd_detect=P,d1\
                |scenarios::icebp_dr6=P,d3|scenarios::int3_forms=P,d1|scenarios::ist_overflow_df=P\
                |scenarios::kernel_text_breakpoints=P,c0,d1|scenarios::movss_entry_db::tf=S\
                |scenarios::movss_entry_db::watchpoint=S|scenarios::nmi_nesting=P,c4,n2,d0\
                |scenarios::trace_irq_recursion=P,c5,d3|scenarios::watchpoints=P,d40";
    let decoded = decode(text).expect("decodes");
    assert_eq!(decoded.header.setting.machine, Machine::Tcg);
    assert_eq!(decoded.header.setting.strategy, Strategy::Naive);
    assert_eq!(decoded.entries.len(), 13);
    assert_eq!(decoded.entries[0].test, "scenarios::db_user_nmi_db");
    assert_eq!(decoded.entries[0].outcome, Outcome::Fail);
    assert_eq!(decoded.entries[0].counters.dbs, Some(2));
    assert_eq!(decoded.entries[0].counters.max_depth, None);
}
