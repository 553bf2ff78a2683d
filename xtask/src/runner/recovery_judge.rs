//! How the sequence judges: a test's result against what happened before it
//! (a crash in an earlier boot), and a crash against the test's expectation.

use testkit::protocol::{Expected, Outcome};

use super::{Sequence, Step};
use crate::qemu::crash::{Crash, CrashKind};
use crate::report::verdict::{CRASHED_AS_EXPECTED, Verdict};

impl Sequence {
    pub(super) fn judge_result(
        &mut self,
        test: &str,
        outcome: Outcome,
        expected: Expected,
        details: &str,
    ) -> Step {
        let said = if details.is_empty() {
            outcome.word().to_string()
        } else {
            format!("{} ({details})", outcome.word())
        };
        if let Some(kind) = self.expectation(test) {
            let verdict = match outcome {
                // The platform cannot produce the crash (no MCA, too few
                // CPUs): it says so, and that is neither a pass nor a fail.
                Outcome::Skip => Verdict::Skip(details.to_string()),
                Outcome::NotReproduced => Verdict::NotReproduced(details.to_string()),
                Outcome::Pass | Outcome::Fail => Verdict::Fail(format!(
                    "expected a {kind} crash, but the test returned a result: {said}"
                )),
            };
            return self.record(test, verdict, String::new(), false);
        }
        if let (Some(crash), Expected::Survive) = (self.crashes.get(test), expected) {
            let why = format!(
                "crashed under survive: {} (the retry said: {said})",
                crash.reason
            );
            return self.record(test, Verdict::Fail(why), String::new(), false);
        }
        let crashed = self.crashes.get(test).map(|c| {
            format!(
                "the first run crashed ({}), the retry passed: {} allows a crash",
                c.reason,
                expected_name(expected)
            )
        });
        let (verdict, note) = match outcome {
            Outcome::Pass => (
                Verdict::Pass,
                match crashed {
                    Some(crashed) if details.is_empty() => crashed,
                    Some(crashed) => format!("{details}; {crashed}"),
                    None => details.to_string(),
                },
            ),
            Outcome::Fail if details.is_empty() => (Verdict::Fail("failed".into()), String::new()),
            Outcome::Fail => (Verdict::Fail(details.to_string()), String::new()),
            Outcome::Skip => (Verdict::Skip(details.to_string()), String::new()),
            Outcome::NotReproduced => (Verdict::NotReproduced(details.to_string()), String::new()),
        };
        self.record(test, verdict, note, false)
    }

    pub(super) fn crashed_in(&mut self, test: &str, crash: Crash, steps: &mut Vec<Step>) {
        if self.decided.contains(test) {
            let why = format!(
                "boot {} crashed in {test}, which already has a result \
                 (did the kernel ignore skip=?): {}",
                self.boots, crash.reason
            );
            self.stop(why, steps);
            return;
        }
        if let Some(kind) = self.expectation(test).map(str::to_string) {
            let step = if kind == crash.kind.name() {
                let note = format!("{CRASHED_AS_EXPECTED}{}", crash.reason);
                self.record(test, Verdict::Pass, note, true)
            } else {
                let why = format!(
                    "expected a {kind} crash, saw {}: {}",
                    crash.kind, crash.reason
                );
                self.record(test, Verdict::Fail(why), String::new(), true)
            };
            steps.push(step);
            return;
        }
        if crash.kind == CrashKind::Host {
            steps.push(Step::HostError {
                test: test.to_string(),
                reason: format!("boot {}: {}", self.boots, crash.reason),
            });
            let errors = self.host_errors.entry(test.to_string()).or_default();
            *errors += 1;
            if *errors >= 2 || !self.retry {
                let why = format!(
                    "not judged: the host failed twice while it ran ({})",
                    crash.reason
                );
                steps.push(self.record(test, Verdict::Skip(why), String::new(), true));
            }
            return;
        }
        match self.crashes.get(test) {
            None if self.retry => {
                steps.push(Step::Retry {
                    test: test.to_string(),
                    reason: crash.reason.clone(),
                });
                self.crashes.insert(test.to_string(), crash);
            }
            None => {
                let why = format!("crashed: {}", crash.reason);
                steps.push(self.record(test, Verdict::Fail(why), String::new(), true));
                self.crashes.insert(test.to_string(), crash);
            }
            Some(first) => {
                let why = format!(
                    "crashed twice in a row, not tried again: {} (first run: {})",
                    crash.reason, first.reason
                );
                steps.push(self.record(test, Verdict::Fail(why), String::new(), true));
            }
        }
    }
}

/// How a result's expectation is written on the wire.
fn expected_name(expected: Expected) -> &'static str {
    match expected {
        Expected::Survive => "survive",
        Expected::Detect => "detect",
        Expected::Timing => "timing",
        Expected::Skip => "skip",
    }
}
