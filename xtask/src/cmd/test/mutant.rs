//! `checker::mutant_blind_is_caught`: under a blind checker (it repairs and
//! records nothing), every test that expects the naive strategy's corruption
//! to be detected must fail with "expected corruption, none detected": else
//! that test's `detect` verdict did not rest on the checker.

use crate::report::verdict::{Report, Verdict};

pub(super) const MUTANT: &str = "checker::mutant_blind_is_caught";
/// The kernel tests whose naive expectation is `detect`.
pub(super) const DETECT_TESTS: [&str; 7] = [
    "scenarios::db_kernel_nmi_db",
    "scenarios::db_user_nmi_db",
    "scenarios::nmi_from_user_latch",
    "scenarios::nmi_nested_off_stack",
    "scenarios::nmi_nested_windows",
    "scenarios::nmi_nesting",
    "scenarios::trace_irq_recursion",
];
const REASON: &str = "expected corruption, none detected";

/// Caught when every `detect` test failed for that reason.
pub(super) fn judge_mutant(seen: &[Report]) -> Report {
    let mut missed = Vec::new();
    for test in DETECT_TESTS {
        match seen.iter().find(|r| r.name == test).map(|r| &r.verdict) {
            Some(Verdict::Fail(why)) if why.contains(REASON) => {}
            Some(Verdict::Fail(why)) => missed.push(format!("{test} failed otherwise: {why}")),
            Some(Verdict::Pass) => missed.push(format!("{test} passed")),
            Some(Verdict::Skip(why) | Verdict::NotReproduced(why)) => {
                missed.push(format!("{test} was skipped: {why}"))
            }
            None => missed.push(format!("{test} never ran")),
        }
    }
    let verdict = if missed.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Fail(format!("under checker=blind: {}", missed.join("; ")))
    };
    Report {
        note: format!(
            "{} detect tests fail with \"{REASON}\" under checker=blind",
            DETECT_TESTS.len()
        ),
        ..Report::new(MUTANT, verdict)
    }
}
