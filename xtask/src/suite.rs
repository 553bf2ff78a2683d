//! The test runner: named checks, each a boot configuration plus a checker over
//! the captured serial output and the way QEMU ended, run side by side and
//! reported the way `cargo test` reports (`test NAME ... ok`), ending with one
//! line `N passed, N failed, N skipped`.
//!
//! Kernel suites speaking the JSON-lines protocol fit the same mould: their
//! checker decodes `Outcome::serial` instead of matching plain lines.

use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Result;

use crate::accel::Accel;
use crate::boot::{Artifacts, BootConfig};
use crate::process::Echo;
use crate::qemu::Outcome;
use crate::serial;

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
pub struct Report {
    pub name: String,
    pub verdict: Verdict,
    pub detail: Vec<String>,
}

const TAIL_LINES: usize = 20;

/// Turns a run (or the error that prevented it) into a report.
pub fn judge(check: &Check, run: Result<Outcome>) -> Report {
    let (verdict, detail) = match run {
        Err(e) => (Verdict::Fail(format!("{e:#}")), Vec::new()),
        Ok(out) => match (check.checker)(&out) {
            Ok(()) => (Verdict::Pass, Vec::new()),
            Err(why) => {
                let mut detail = serial::tail(&out.serial, TAIL_LINES);
                detail.extend(out.stderr.lines().map(|l| format!("qemu: {l}")));
                (Verdict::Fail(why), detail)
            }
        },
    };
    Report {
        name: check.name.clone(),
        verdict,
        detail,
    }
}

/// Collects reports, printing each as it arrives.
#[derive(Default)]
pub struct Tally {
    reports: Vec<Report>,
}

impl Tally {
    pub fn record(&mut self, report: Report) {
        match &report.verdict {
            Verdict::Pass => println!("test {} ... ok", report.name),
            Verdict::Fail(why) => println!("test {} ... FAILED ({why})", report.name),
            Verdict::Skip(why) => println!("test {} ... skipped ({why})", report.name),
        }
        self.reports.push(report);
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
        for report in &self.reports {
            if let (Verdict::Fail(why), false) = (&report.verdict, report.detail.is_empty()) {
                println!("\n---- {} ----\n{why}", report.name);
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

/// Runs the checks on `jobs` threads, each its own QEMU, recording each report
/// as soon as its run ends.
pub fn run_parallel(
    checks: &[Check],
    artifacts: &Artifacts,
    accel: Accel,
    jobs: usize,
    tally: &mut Tally,
) {
    let tally = Mutex::new(tally);
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, checks.len().max(1)) {
            scope.spawn(|| {
                while let Some(check) = checks.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let run = artifacts.boot(&check.config, accel, check.timeout, Echo::Quiet);
                    let report = judge(check, run);
                    tally
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .record(report);
                }
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::Door;
    use crate::exit::Exit;
    use crate::qemu::End;

    fn check(checker: Checker) -> Check {
        Check {
            name: "boot::probe".into(),
            config: BootConfig {
                door: Door::Pvh,
                smp: 1,
                cpu: "max".into(),
                args: vec![],
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
            tally.record(Report {
                name: "t".into(),
                verdict,
                detail: vec![],
            });
        }
        assert_eq!(tally.counts(), (2, 1, 1));
    }
}
