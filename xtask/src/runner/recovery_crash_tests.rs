//! Tests that plan a crash (`expect_crash`): the crash of that kind passes,
//! another kind or a result fails, and a platform that cannot produce the
//! crash says so. The helpers are the parent's.

use super::*;

#[test]
fn an_expected_crash_of_the_right_kind_passes_and_the_runner_goes_on() {
    let mut seq = Sequence::new(true);
    let first = plan(&["selftest::panic!panic", "selftest::panic_then_ok"])
        + &start("selftest::panic")
        + &panic(None);
    let steps = boot(&mut seq, &first, exited(Exit::Failure));
    let got = records(&steps);
    assert_eq!(got[0].1, "ok");
    assert!(
        got[0].2.starts_with("crashed as expected: panic on cpu 0"),
        "{}",
        got[0].2
    );
    assert!(matches!(&steps[0], Step::Record(r) if r.crashed));
    assert_eq!(seq.next_skip(), Some(vec!["selftest::panic".to_string()]));
    let second =
        plan(&["selftest::panic_then_ok"]) + &result("selftest::panic_then_ok", "pass", "") + DONE;
    assert_eq!(
        records(&boot(&mut seq, &second, exited(Exit::Success)))[0].1,
        "ok"
    );
    assert_eq!(seq.next_skip(), None);
}

#[test]
fn an_expected_crash_of_the_wrong_kind_or_none_fails_without_a_retry() {
    let mut seq = Sequence::new(true);
    let serial =
        plan(&["t::hang!hang", "t::tf!triple-fault"]) + &start("t::hang") + &panic(Some(6));
    let got = records(&boot(&mut seq, &serial, exited(Exit::Failure)));
    assert_eq!(got[0].1, "FAILED");
    assert!(
        got[0]
            .2
            .starts_with("expected a hang crash, saw exception: exception #UD"),
        "{}",
        got[0].2
    );
    // The triple-fault test returns instead of crashing: a failure naming what was seen.
    let serial = plan(&["t::tf!triple-fault"]) + &result("t::tf", "pass", "fine") + DONE;
    let got = records(&boot(&mut seq, &serial, exited(Exit::Success)));
    assert_eq!(
        got[0],
        (
            "t::tf".into(),
            "FAILED",
            "expected a triple-fault crash, but the test returned a result: ok (fine)".into()
        )
    );
    assert_eq!(seq.next_skip(), None);
    assert_eq!(seq.boots(), 2);
}

#[test]
fn an_expected_crash_the_platform_cannot_produce_is_said_as_such() {
    let mut seq = Sequence::new(true);
    let serial = plan(&["t::mc!triple-fault", "t::two!hang"])
        + &result("t::mc", "not-reproduced", "machine checks unavailable")
        + &result("t::two", "skip", "needs 2 CPUs")
        + DONE;
    let got = records(&boot(&mut seq, &serial, exited(Exit::Success)));
    assert_eq!(
        got,
        [
            (
                "t::mc".into(),
                "not-reproduced",
                "machine checks unavailable".into()
            ),
            ("t::two".into(), "skipped", "needs 2 CPUs".into()),
        ]
    );
    assert_eq!((seq.next_skip(), seq.boots()), (None, 1));
}
