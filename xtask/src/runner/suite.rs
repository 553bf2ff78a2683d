//! Named checks: each a boot configuration plus a checker over the captured
//! serial output and the way QEMU ended, judged into a [`Report`]. The reports
//! go to a `Tally` (`report/tally.rs`), as the kernel suites' do
//! (`sequence.rs`), one per test, strategy and LAPIC mode.

use std::time::Duration;

use anyhow::Result;

use crate::qemu::machine::Outcome;
use crate::qemu::serial;
use crate::report::verdict::{Report, Verdict};
use crate::runner::boot::BootConfig;

/// Judges one finished run: `Err` holds the one-line reason of a failure.
pub type Checker = Box<dyn Fn(&Outcome) -> Result<(), String> + Send + Sync>;

/// One named boot and what it must show.
pub struct Check {
    pub name: String,
    pub config: BootConfig,
    pub timeout: Duration,
    pub checker: Checker,
}

const TAIL_LINES: usize = 20;

/// Turns a run (or the error that prevented it) into a report.
pub fn judge(check: &Check, run: Result<Outcome>) -> Report {
    // The boot's wall time: `--json`'s `seconds` and JUnit's `time`.
    let duration = run.as_ref().ok().map(|out| out.elapsed);
    let (verdict, detail) = match run {
        Err(e) => (Verdict::Fail(format!("{e:#}")), Vec::new()),
        Ok(out) => match (check.checker)(&out) {
            Ok(()) => (Verdict::Pass, Vec::new()),
            Err(why) => (Verdict::Fail(why), failure_detail(&out.serial, &out.stderr)),
        },
    };
    Report {
        detail,
        duration,
        ..Report::new(check.name.clone(), verdict)
    }
}

/// The serial tail and QEMU's complaints, for a failure report.
pub fn failure_detail(serial: &str, stderr: &str) -> Vec<String> {
    let mut detail = serial::tail(serial, TAIL_LINES);
    detail.extend(stderr.lines().map(|l| format!("qemu: {l}")));
    detail
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qemu::exit::Exit;
    use crate::qemu::machine::End;
    use crate::runner::boot::Door;

    fn check(checker: Checker) -> Check {
        Check {
            name: "boot::probe".into(),
            config: BootConfig::new(Door::Pvh, 1, "max", vec![]),
            timeout: Duration::from_secs(1),
            checker,
        }
    }

    fn outcome(serial: &str) -> Outcome {
        Outcome {
            end: End::Exited(Exit::Success),
            serial: serial.into(),
            stderr: "warning: x".into(),
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn checkers_decide_and_failures_keep_the_serial_tail() {
        let pass = judge(&check(Box::new(|_| Ok(()))), Ok(outcome("a\n")));
        assert_eq!(pass.verdict, Verdict::Pass);
        assert!(pass.detail.is_empty());
        let fail = judge(
            &check(Box::new(|_| Err("no".into()))),
            Ok(outcome("a\nb\n")),
        );
        assert_eq!(fail.verdict, Verdict::Fail("no".into()));
        assert_eq!(fail.detail, ["a", "b", "qemu: warning: x"]);
        let broke = judge(
            &check(Box::new(|_| Ok(()))),
            Err(anyhow::anyhow!("cannot start")),
        );
        assert_eq!(broke.verdict, Verdict::Fail("cannot start".into()));
        // A boot's time is the report's duration; no boot, no time.
        assert_eq!(pass.duration, Some(Duration::ZERO));
        assert_eq!(broke.duration, None);
    }
}
