//! The test runner: named checks, each a boot configuration plus a checker over
//! the captured serial output and the way QEMU ended, run side by side and
//! reported the way `cargo test` reports (`test NAME ... ok`), ending with one
//! line `N passed, N failed, N skipped`.
//!
//! Kernel suites (`sequence.rs`) report into the same [`Tally`], one report
//! per test, strategy and LAPIC mode.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;

use crate::qemu::machine::Outcome;
use crate::qemu::serial;
use crate::report::console::Console;
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

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail(String),
    Skip(String),
}

/// A verdict with its name and, for failures, the lines worth reading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub name: String,
    /// Where it ran (strategy, LAPIC mode): printed after the name in
    /// brackets, and the JUnit class name.
    pub labels: Vec<String>,
    pub verdict: Verdict,
    /// What a passing test has to say (the kernel's `details`), printed after
    /// `ok`; a failure or a skip says it in its verdict.
    pub note: String,
    /// Lines worth reading after a failure (the serial tail).
    pub detail: Vec<String>,
    /// Host time from the test's start to its result.
    pub duration: Option<Duration>,
}

impl Report {
    pub fn new(name: impl Into<String>, verdict: Verdict) -> Report {
        Report {
            name: name.into(),
            labels: Vec::new(),
            verdict,
            note: String::new(),
            detail: Vec::new(),
            duration: None,
        }
    }

    /// `NAME [label, label]`, or the bare name.
    pub fn title(&self) -> String {
        if self.labels.is_empty() {
            self.name.clone()
        } else {
            format!("{} [{}]", self.name, self.labels.join(", "))
        }
    }

    /// The line a human reads: `test NAME [labels] ... ok (note)`.
    pub fn line(&self) -> String {
        let title = self.title();
        match &self.verdict {
            Verdict::Pass if self.note.is_empty() => format!("test {title} ... ok"),
            Verdict::Pass => format!("test {title} ... ok ({})", self.note),
            Verdict::Fail(why) => format!("test {title} ... FAILED ({why})"),
            Verdict::Skip(why) => format!("test {title} ... skipped ({why})"),
        }
    }
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

/// Collects reports, printing each as it arrives.
pub struct Tally {
    reports: Vec<Report>,
    console: Console,
    expected: usize,
}

impl Default for Tally {
    fn default() -> Tally {
        Tally::new(Console::plain())
    }
}

impl Tally {
    pub fn new(console: Console) -> Tally {
        Tally {
            reports: Vec::new(),
            console,
            expected: 0,
        }
    }

    pub fn console(&self) -> &Console {
        &self.console
    }

    /// `n` more results are on their way (for the progress bar).
    pub fn expect(&mut self, n: usize) {
        self.expected += n;
        self.show_counts();
    }

    pub fn record(&mut self, report: Report) {
        self.console.line(&report.line());
        self.reports.push(report);
        self.show_counts();
    }

    /// A line that is not a result (a retry, a warning), above the bars.
    pub fn say(&self, text: &str) {
        self.console.line(text);
    }

    fn show_counts(&self) {
        let (passed, failed, skipped) = self.counts();
        let summary = format!("{passed} passed, {failed} failed, {skipped} skipped");
        self.console
            .counts(self.reports.len(), self.expected, &summary);
    }

    pub fn reports(&self) -> &[Report] {
        &self.reports
    }

    /// `(passed, failed, skipped)`.
    pub fn counts(&self) -> (usize, usize, usize) {
        let count = |f: fn(&Verdict) -> bool| self.reports.iter().filter(|r| f(&r.verdict)).count();
        (
            count(|v| *v == Verdict::Pass),
            count(|v| matches!(v, Verdict::Fail(_))),
            count(|v| matches!(v, Verdict::Skip(_))),
        )
    }

    /// Prints the failures' details and the closing line; non-zero on any failure.
    pub fn finish(self) -> ExitCode {
        self.console.finish();
        for report in &self.reports {
            if let (Verdict::Fail(why), false) = (&report.verdict, report.detail.is_empty()) {
                println!("\n---- {} ----\n{why}", report.title());
                for line in &report.detail {
                    println!("    {line}");
                }
            }
        }
        let (passed, failed, skipped) = self.counts();
        println!("\n{passed} passed, {failed} failed, {skipped} skipped");
        if failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
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
            config: BootConfig {
                door: Door::Pvh,
                smp: 1,
                cpu: "max".into(),
                args: vec![],
                single_step: false,
            },
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

    #[test]
    fn the_tally_counts_each_kind() {
        let mut tally = Tally::default();
        for verdict in [
            Verdict::Pass,
            Verdict::Pass,
            Verdict::Fail("x".into()),
            Verdict::Skip("y".into()),
        ] {
            tally.record(Report::new("t", verdict));
        }
        assert_eq!(tally.counts(), (2, 1, 1));
    }

    #[test]
    fn lines_read_like_cargo_test_with_labels_and_notes() {
        let mut r = Report::new("scenarios::db_kernel_nmi_db", Verdict::Pass);
        assert_eq!(r.line(), "test scenarios::db_kernel_nmi_db ... ok");
        r.labels = vec!["naive".into(), "x2apic".into()];
        r.note = "window_coverage=57/57 (100%)".into();
        assert_eq!(
            r.line(),
            "test scenarios::db_kernel_nmi_db [naive, x2apic] ... ok (window_coverage=57/57 (100%))"
        );
        r.verdict = Verdict::Skip("hw-only".into());
        assert!(r.line().ends_with("... skipped (hw-only)"));
        r.verdict = Verdict::Fail("rip differs".into());
        assert!(r.line().ends_with("... FAILED (rip differs)"));
    }
}
