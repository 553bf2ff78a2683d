//! The crash-recovery state machine against canned transcripts: each boot is
//! the serial text a kernel would print, parsed by testkit's stream parser.

use std::time::Duration;

use testkit::protocol::{RecordKind, parse_stream};

use super::*;
use crate::qemu::exit::{Ending, Exit};

#[path = "recovery_crash_tests.rs"]
mod expected_crash;

const HELLO: &str = r#"@istorm {"type":"hello","version":2,"door":"pvh","machine":"tcg","cpus":4,"lapic":"x2apic","strategy":"linux","seed":1,"build":"t"}"#;

fn plan(tests: &[&str]) -> String {
    let mut text = format!(
        "{HELLO}\n@istorm {{\"type\":\"plan\",\"count\":{}}}\n",
        tests.len()
    );
    for test in tests {
        let line = match test.split_once('!') {
            Some((name, kind)) => {
                format!(r#"@istorm {{"type":"planned","test":"{name}","expect_crash":"{kind}"}}"#)
            }
            None => format!(r#"@istorm {{"type":"planned","test":"{test}"}}"#),
        };
        text.push_str(&line);
        text.push('\n');
    }
    text
}

fn start(test: &str) -> String {
    format!(
        r#"@istorm {{"type":"start","test":"{test}","strategy":"linux","iterations":1,"cpu":0,"timeout_ms":2000}}"#
    ) + "\n"
}

fn result(test: &str, outcome: &str, details: &str) -> String {
    result_expecting(test, outcome, "survive", details)
}

fn result_expecting(test: &str, outcome: &str, expected: &str, details: &str) -> String {
    start(test)
        + &format!(
            r#"@istorm {{"type":"result","test":"{test}","strategy":"linux","outcome":"{outcome}","expected":"{expected}","iterations":1,"cycles":10,"cycles_per_iteration":10,"details":"{details}"}}"#
        )
        + "\ntest done\n"
}

fn panic(vector: Option<u8>) -> String {
    let vector = vector
        .map(|v| format!(r#","vector":{v}"#))
        .unwrap_or_default();
    format!(
        r#"@istorm {{"type":"panic","cpu":0,"message":"oops","rip":"0xffffffff80201000"{vector}}}"#
    ) + "\n"
}

const HANG: &str = "@istorm {\"type\":\"hang\",\"cpu\":0,\"rip\":\"0x42\"}\n";
const DONE: &str = "@istorm {\"type\":\"done\",\"passed\":0,\"failed\":0,\"skipped\":0}\n";

fn exited(exit: Exit) -> BootEnd {
    BootEnd::Exited(exit)
}

fn triple() -> BootEnd {
    exited(Exit::NeverExited(Ending::Status(0)))
}

fn timeout() -> BootEnd {
    BootEnd::Killed {
        after: Duration::from_secs(12),
        why: "test timeout 2000 ms + 10 s slack".into(),
    }
}

/// Feeds one boot; returns its steps.
fn boot(seq: &mut Sequence, serial: &str, end: BootEnd) -> Vec<Step> {
    seq.begin_boot();
    let mut steps = Vec::new();
    for record in parse_stream(serial.as_bytes()).records {
        match &record.kind {
            RecordKind::Event(e) => steps.extend(seq.event(record.line, e)),
            RecordKind::Error(e) => steps.extend(seq.stream_error(record.line, e)),
            RecordKind::Log(_) => {}
        }
    }
    steps.extend(seq.end_boot(&end));
    steps
}

/// `(test, verdict word, reason or note)` of every record.
fn records(steps: &[Step]) -> Vec<(String, &'static str, String)> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::Record(r) => Some(match &r.verdict {
                Verdict::Pass => (r.test.clone(), "ok", r.note.clone()),
                Verdict::Fail(why) => (r.test.clone(), "FAILED", why.clone()),
                Verdict::Skip(why) => (r.test.clone(), "skipped", why.clone()),
                Verdict::NotReproduced(why) => (r.test.clone(), "not-reproduced", why.clone()),
            }),
            _ => None,
        })
        .collect()
}

#[test]
fn a_clean_boot_records_every_result_and_ends() {
    let mut seq = Sequence::new(true);
    assert_eq!(seq.next_skip(), Some(vec![]));
    let serial = plan(&["a", "b", "c"])
        + &result("a", "pass", "coverage 100%")
        + &result("b", "fail", "rip differs")
        + &result("c", "skip", "hw-only")
        + DONE;
    let steps = boot(&mut seq, &serial, exited(Exit::Failure));
    let got = records(&steps);
    assert_eq!(got.len(), 3);
    assert_eq!(got[0], ("a".into(), "ok", "coverage 100%".into()));
    assert_eq!(got[1], ("b".into(), "FAILED", "rip differs".into()));
    assert_eq!(got[2], ("c".into(), "skipped", "hw-only".into()));
    assert_eq!(seq.next_skip(), None);
}

#[test]
fn a_crash_under_survive_fails_even_when_the_retry_passes() {
    let mut seq = Sequence::new(true);
    let first = plan(&["a", "b", "c"]) + &result("a", "pass", "") + &start("b") + &panic(None);
    let steps = boot(&mut seq, &first, exited(Exit::Failure));
    assert_eq!(records(&steps).len(), 1);
    assert!(matches!(&steps[1], Step::Retry { test, reason }
        if test == "b" && reason.contains("panic on cpu 0 at rip 0xffffffff80201000: oops")));
    assert_eq!(seq.running(), None);
    // The retry: `a` is skipped, `b` runs again and passes.
    assert_eq!(seq.next_skip(), Some(vec!["a".to_string()]));
    let second = plan(&["b", "c"]) + &result("b", "pass", "n=1") + &result("c", "pass", "") + DONE;
    let got = records(&boot(&mut seq, &second, exited(Exit::Success)));
    // The crash is the finding: FAILED, with the crash named; the retry
    // only let the suite go on (`c` ran and passed).
    assert_eq!(got[0].1, "FAILED");
    assert_eq!(
        got[0].2,
        "crashed under survive: panic on cpu 0 at rip 0xffffffff80201000: oops \
         (the retry said: ok (n=1))"
    );
    assert_eq!(got[1], ("c".into(), "ok", String::new()));
    assert_eq!(seq.next_skip(), None);
    // ... and so the run fails.
    let mut tally = crate::report::tally::Tally::default();
    for step in steps_of(&got) {
        tally.record(step);
    }
    assert_eq!(tally.counts().1, 1);
}

/// Records as reports, for a tally.
fn steps_of(got: &[(String, &'static str, String)]) -> Vec<crate::report::verdict::Report> {
    got.iter()
        .map(|(test, word, why)| {
            let verdict = match *word {
                "ok" => Verdict::Pass,
                "FAILED" => Verdict::Fail(why.clone()),
                _ => Verdict::Skip(why.clone()),
            };
            crate::report::verdict::Report::new(test.clone(), verdict)
        })
        .collect()
}

#[test]
fn a_crash_that_the_expectation_allows_passes_on_retry_with_the_crash_said() {
    let mut seq = Sequence::new(true);
    let first = plan(&["d"]) + &start("d") + &panic(Some(6));
    boot(&mut seq, &first, exited(Exit::Failure));
    let second = plan(&["d"]) + &result_expecting("d", "pass", "detect", "caught") + DONE;
    let got = records(&boot(&mut seq, &second, exited(Exit::Success)));
    assert_eq!(got[0].1, "ok");
    assert!(
        got[0]
            .2
            .starts_with("caught; the first run crashed (exception #UD"),
        "{}",
        got[0].2
    );
    assert!(got[0].2.ends_with("detect allows a crash"), "{}", got[0].2);
}

#[test]
fn an_emulator_killed_by_a_signal_is_a_host_error_beside_the_retrys_verdict() {
    let mut seq = Sequence::new(true);
    let first = plan(&["a", "b"]) + &start("a");
    let steps = boot(
        &mut seq,
        &first,
        exited(Exit::NeverExited(Ending::Signal(9))),
    );
    assert!(records(&steps).is_empty(), "never the test's verdict");
    assert!(matches!(&steps[0], Step::HostError { test, reason }
        if test == "a" && reason == "boot 1: host failure: the emulator was killed by signal 9, no kernel event"));
    // The retry decides the test, as if the host had not failed.
    assert_eq!(seq.next_skip(), Some(vec![]));
    let second = plan(&["a", "b"]) + &result("a", "pass", "") + &result("b", "pass", "") + DONE;
    let got = records(&boot(&mut seq, &second, exited(Exit::Success)));
    assert_eq!(got[0], ("a".into(), "ok", String::new()));
    // Twice in a row: not judged, and both errors stand.
    let mut seq = Sequence::new(true);
    for _ in 0..2 {
        let steps = boot(
            &mut seq,
            &(plan(&["a"]) + &start("a")),
            exited(Exit::NeverExited(Ending::Signal(6))),
        );
        assert!(matches!(&steps[0], Step::HostError { .. }));
    }
    assert_eq!(seq.next_skip(), None);
}

#[test]
fn a_double_crash_fails_the_test_and_is_never_tried_a_third_time() {
    let mut seq = Sequence::new(true);
    let crash_b = |prefix: &[&str]| plan(prefix) + &start("b") + &panic(Some(13));
    boot(&mut seq, &crash_b(&["a", "b", "c"]), exited(Exit::Failure));
    let steps = boot(&mut seq, &crash_b(&["b", "c"]), exited(Exit::Failure));
    let got = records(&steps);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, "FAILED");
    assert!(
        got[0]
            .2
            .starts_with("crashed twice in a row, not tried again: exception #GP (vector 13)"),
        "{}",
        got[0].2
    );
    // The next boot skips it: no third try.
    assert_eq!(seq.next_skip(), Some(vec!["b".to_string()]));
    let third = plan(&["c"]) + &result("c", "pass", "") + DONE;
    assert_eq!(
        records(&boot(&mut seq, &third, exited(Exit::Success)))[0].0,
        "c"
    );
    assert_eq!(seq.next_skip(), None);
    assert_eq!(seq.boots(), 3);
}

#[test]
fn the_first_boot_skips_nothing_and_a_retried_test_is_not_skipped() {
    let mut seq = Sequence::new(true);
    boot(&mut seq, &(plan(&["a"]) + &start("a")), triple());
    assert_eq!(seq.next_skip(), Some(vec![]));
}

#[test]
fn a_triple_fault_a_hang_event_and_a_host_timeout_have_their_kinds() {
    for (tail, end, want) in [
        ("", triple(), "triple fault: QEMU exited with status 0"),
        (
            HANG,
            exited(Exit::Failure),
            "hang: the kernel's watchdog found cpu 0 stuck at rip 0x42",
        ),
        (
            "",
            timeout(),
            "hang: host timeout after 12 s (test timeout 2000 ms + 10 s slack), no event",
        ),
    ] {
        let mut seq = Sequence::new(false);
        let serial = plan(&["a", "b"]) + &start("a") + tail;
        let got = records(&boot(&mut seq, &serial, end));
        assert_eq!(got[0].1, "FAILED");
        assert!(got[0].2.starts_with("crashed: "), "{}", got[0].2);
        assert!(got[0].2.contains(want), "{} lacks {want}", got[0].2);
        assert_eq!(seq.next_skip(), Some(vec!["a".to_string()]));
    }
}

#[test]
fn a_crash_before_the_plan_fails_the_boot_and_stops() {
    let mut seq = Sequence::new(true);
    let steps = boot(
        &mut seq,
        &(HELLO.to_string() + "\n" + &panic(None)),
        exited(Exit::Failure),
    );
    assert!(matches!(&steps[..], [Step::Stopped(why)]
        if why == "boot 1 crashed before the plan: panic on cpu 0 at rip 0xffffffff80201000: oops"));
    assert_eq!(seq.next_skip(), None);
}

#[test]
fn a_crash_between_tests_stops_and_reports_the_rest_skipped() {
    let mut seq = Sequence::new(true);
    let serial = plan(&["a", "b", "c"]) + &result("a", "pass", "") + &panic(None);
    let steps = boot(&mut seq, &serial, exited(Exit::Failure));
    assert!(matches!(&steps[1], Step::Stopped(why) if why.contains("between tests, after a")));
    let got = records(&steps);
    assert_eq!(got.len(), 3);
    assert_eq!((got[1].1, got[2].1), ("skipped", "skipped"));
    assert!(
        got[1]
            .2
            .starts_with("not run: the sequence stopped at boot 1")
    );
    assert_eq!(seq.next_skip(), None);
}

#[test]
fn garbage_warns_and_a_newer_protocol_fails_the_boot() {
    let mut seq = Sequence::new(true);
    let serial = plan(&["a"]) + "@istorm {\"type\":\"result\",\n" + &result("a", "pass", "") + DONE;
    let steps = boot(&mut seq, &serial, exited(Exit::Success));
    assert!(matches!(&steps[0], Step::Warning(w) if w.starts_with("line 4: malformed event")));
    assert_eq!(records(&steps)[0].1, "ok");

    let mut seq = Sequence::new(true);
    let newer = HELLO.replace("\"version\":2", "\"version\":99") + "\n" + DONE;
    let steps = boot(&mut seq, &newer, exited(Exit::Success));
    assert!(matches!(&steps[..], [Step::Stopped(why)]
        if why.starts_with("line 1: kernel speaks protocol version 99")));
}

#[test]
fn a_done_boot_never_loses_a_planned_test() {
    let mut seq = Sequence::new(true);
    let serial = plan(&["a", "b"]) + &result("a", "pass", "") + DONE;
    let got = records(&boot(&mut seq, &serial, exited(Exit::Success)));
    assert_eq!(got[1].0, "b");
    assert!(
        got[1].2.contains("reached done without a result"),
        "{}",
        got[1].2
    );
    assert_eq!(seq.next_skip(), None);
}

#[test]
fn an_empty_plan_ends_after_one_boot_and_a_kernel_ignoring_skip_stops() {
    let mut seq = Sequence::new(true);
    boot(&mut seq, &(plan(&[]) + DONE), exited(Exit::Success));
    assert_eq!(seq.next_skip(), None);

    let mut seq = Sequence::new(false);
    boot(&mut seq, &(plan(&["a"]) + &start("a")), triple());
    let steps = boot(&mut seq, &(plan(&["a"]) + &start("a")), triple());
    assert!(matches!(&steps[0], Step::Stopped(why) if why.contains("ignore skip=")));
}

#[test]
fn a_panic_after_done_is_said() {
    let mut seq = Sequence::new(true);
    let serial = plan(&["a"])
        + &result("a", "pass", "")
        + DONE
        + "@istorm {\"type\":\"panic\",\"cpu\":0,\"message\":\"in the summary\"}\n";
    let steps = boot(&mut seq, &serial, exited(Exit::Failure));
    assert!(
        steps.iter().any(|s| matches!(s, Step::Warning(w)
            if w.starts_with("the kernel reported done, then:") && w.contains("in the summary"))),
        "{steps:?}"
    );
    let mut seq = Sequence::new(true);
    let clean = plan(&["a"]) + &result("a", "pass", "") + DONE;
    let steps = boot(&mut seq, &clean, exited(Exit::Success));
    assert!(
        !steps.iter().any(|s| matches!(s, Step::Warning(_))),
        "{steps:?}"
    );
}
