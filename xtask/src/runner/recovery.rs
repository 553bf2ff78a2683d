//! Crash recovery for one sequence of boots (one strategy on one machine): no
//! result is ever lost.
//!
//! The runner boots, feeds every event here, and tells how the boot ended.
//! A boot that ends without `done` crashed; the test running then (the last
//! `start` without a `result`) is the one the crash belongs to:
//!
//! - a test that expects a crash (`planned` with `expect_crash: K`) passes
//!   when the boot died in it with exactly kind K, and fails on anything
//!   else, a returned result included; it is never retried;
//! - any other test is retried once, so that the suite goes on; a second
//!   crash in a row records it failed, and it is skipped from then on. A test
//!   that expects to `survive` and crashed has failed, whatever its retry
//!   says: the crash is the finding, and it is named in the verdict;
//! - a boot whose emulator was killed by a signal (no kernel words) is a host
//!   failure, not the test's: an `error` report (`Step::HostError`) beside
//!   the test, which runs again and gets its own verdict;
//! - a crash while no test runs (before the plan, between tests) fails the
//!   boot as a whole and stops the sequence: the tests it kept from running
//!   are reported skipped, with the reason.
//!
//! Then [`Sequence::next_skip`] gives the `skip=` list of the next boot (every
//! test with a result), until every planned test has one. The state machine
//! knows no QEMU and no clock, so canned transcripts test it.

use std::collections::{BTreeMap, BTreeSet};

use testkit::protocol::{Outcome, OwnedEvent, StreamError};

use crate::qemu::crash::{self, BootEnd, Crash};
use crate::qemu::exit::Exit;
use crate::report::verdict::Verdict;

/// A final result for one test of the sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestRecord {
    pub test: String,
    pub verdict: Verdict,
    /// What the kernel (or the runner) has to say beyond the verdict; for a
    /// failure or a skip the verdict carries the reason instead.
    pub note: String,
    /// The boot (1-based, within the sequence) that decided it.
    pub boot: usize,
    /// The boot died in this test: its serial tail is worth reading.
    pub crashed: bool,
    pub cycles_per_iteration: Option<u64>,
}

/// What the runner should report, in order, after each input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Record(TestRecord),
    /// The test crashed the boot once and runs again in the next one.
    Retry {
        test: String,
        reason: String,
    },
    /// The host failed while `test` ran (the emulator was killed by a
    /// signal): reported as an error of its own, never as the test's verdict.
    HostError {
        test: String,
        reason: String,
    },
    /// Something on the wire worth a warning, with its line number.
    Warning(String),
    /// The boot failed as a whole; the sequence stops.
    Stopped(String),
}

#[derive(Clone, Debug)]
struct Planned {
    test: String,
    expect_crash: Option<String>,
}

/// What one boot has shown so far.
#[derive(Debug, Default)]
struct Boot {
    plan_seen: bool,
    running: Option<(String, u32)>,
    last_finished: Option<String>,
    last_words: Option<OwnedEvent>,
    done: bool,
    protocol_error: Option<String>,
}

#[derive(Debug)]
pub struct Sequence {
    retry: bool,
    plan: Vec<Planned>,
    plan_seen: bool,
    decided: BTreeSet<String>,
    /// The first crash of each test that crashed (retried, or recorded).
    crashes: BTreeMap<String, Crash>,
    /// Host failures while each test ran.
    host_errors: BTreeMap<String, usize>,
    boots: usize,
    stopped: bool,
    boot: Boot,
}

impl Sequence {
    /// `retry`: give a crashing test a second boot (off for checks where any
    /// crash already decides).
    pub fn new(retry: bool) -> Sequence {
        Sequence {
            retry,
            plan: Vec::new(),
            plan_seen: false,
            decided: BTreeSet::new(),
            crashes: BTreeMap::new(),
            host_errors: BTreeMap::new(),
            boots: 0,
            stopped: false,
            boot: Boot::default(),
        }
    }

    /// The `skip=` names for the next boot, or `None` when the sequence is over.
    pub fn next_skip(&self) -> Option<Vec<String>> {
        if self.finished() {
            return None;
        }
        Some(
            self.plan
                .iter()
                .filter(|p| self.decided.contains(&p.test))
                .map(|p| p.test.clone())
                .collect(),
        )
    }

    pub fn finished(&self) -> bool {
        self.stopped || (self.plan_seen && self.plan.iter().all(|p| self.decided.contains(&p.test)))
    }

    /// Planned tests, as far as known (for a progress bar's length).
    pub fn planned(&self) -> usize {
        self.plan.len()
    }

    /// The running test and its `timeout_ms`, for the host's per-test deadline.
    pub fn running(&self) -> Option<(&str, u32)> {
        self.boot.running.as_ref().map(|(t, ms)| (t.as_str(), *ms))
    }

    pub fn boots(&self) -> usize {
        self.boots
    }

    pub fn begin_boot(&mut self) {
        self.boots += 1;
        self.boot = Boot::default();
    }

    fn expectation(&self, test: &str) -> Option<&str> {
        self.plan
            .iter()
            .find(|p| p.test == test)
            .and_then(|p| p.expect_crash.as_deref())
    }

    fn record(&mut self, test: &str, verdict: Verdict, note: String, crashed: bool) -> Step {
        self.decided.insert(test.to_string());
        Step::Record(TestRecord {
            test: test.to_string(),
            verdict,
            note,
            boot: self.boots,
            crashed,
            cycles_per_iteration: None,
        })
    }

    pub fn stream_error(&mut self, line: usize, error: &StreamError) -> Vec<Step> {
        match error {
            StreamError::Malformed { .. } => {
                vec![Step::Warning(format!("line {line}: {error}"))]
            }
            StreamError::NewerVersion { .. } => {
                self.boot
                    .protocol_error
                    .get_or_insert(format!("line {line}: {error}"));
                Vec::new()
            }
            // The runner tells the end itself, through `end_boot`.
            StreamError::MissingDone => Vec::new(),
        }
    }

    pub fn event(&mut self, line: usize, event: &OwnedEvent) -> Vec<Step> {
        if self.boot.protocol_error.is_some() {
            return Vec::new();
        }
        match event {
            OwnedEvent::Plan { .. } => {
                self.boot.plan_seen = true;
                self.plan_seen = true;
            }
            OwnedEvent::Planned { test, expect_crash }
                if !self.plan.iter().any(|p| p.test == *test) =>
            {
                self.plan.push(Planned {
                    test: test.clone(),
                    expect_crash: expect_crash.clone(),
                });
            }
            OwnedEvent::Start {
                test, timeout_ms, ..
            } => self.boot.running = Some((test.clone(), *timeout_ms)),
            OwnedEvent::Result {
                test,
                outcome,
                expected,
                details,
                cycles_per_iteration,
                ..
            } => {
                self.boot.running = None;
                self.boot.last_finished = Some(test.clone());
                if self.decided.contains(test) {
                    return vec![Step::Warning(format!(
                        "line {line}: a second result for {test}, ignored"
                    ))];
                }
                if !self.plan.iter().any(|p| p.test == *test) {
                    self.plan.push(Planned {
                        test: test.clone(),
                        expect_crash: None,
                    });
                }
                let mut step = self.judge_result(test, *outcome, *expected, details);
                if let Step::Record(record) = &mut step
                    && *outcome != Outcome::Skip
                {
                    record.cycles_per_iteration = Some(*cycles_per_iteration);
                }
                return vec![step];
            }
            OwnedEvent::Panic { .. } | OwnedEvent::Hang { .. } => {
                self.boot.last_words.get_or_insert_with(|| event.clone());
            }
            OwnedEvent::Done { .. } => self.boot.done = true,
            _ => {}
        }
        Vec::new()
    }

    /// The boot is over: QEMU ended as `end`.
    pub fn end_boot(&mut self, end: &BootEnd) -> Vec<Step> {
        let mut steps = Vec::new();
        if let Some(error) = self.boot.protocol_error.take() {
            self.stop(error, &mut steps);
            return steps;
        }
        if self.boot.done {
            // After `done` the kernel only sends its results summary: a panic
            // there ends a QEMU boot with the failure code, which is not a
            // crash by the end alone, so its last words say it.
            if self.boot.last_words.is_some()
                || !matches!(end, BootEnd::Exited(Exit::Success | Exit::Failure))
            {
                let crash = crash::classify(self.boot.last_words.as_ref(), end);
                steps.push(Step::Warning(format!(
                    "the kernel reported done, then: {}",
                    crash.reason
                )));
            }
            let missing: Vec<String> = self
                .plan
                .iter()
                .filter(|p| !self.decided.contains(&p.test))
                .map(|p| p.test.clone())
                .collect();
            for test in missing {
                let why = format!(
                    "planned, but boot {} reached done without a result for it",
                    self.boots
                );
                steps.push(self.record(&test, Verdict::Fail(why), String::new(), false));
            }
            return steps;
        }
        let crash = crash::classify(self.boot.last_words.as_ref(), end);
        match self.boot.running.take() {
            Some((test, _)) => self.crashed_in(&test, crash, &mut steps),
            None => {
                let when = match (&self.boot.last_finished, self.boot.plan_seen) {
                    (_, false) => "before the plan".to_string(),
                    (Some(test), true) => format!("between tests, after {test}"),
                    (None, true) => "after the plan, before the first test".to_string(),
                };
                self.stop(
                    format!("boot {} crashed {when}: {}", self.boots, crash.reason),
                    &mut steps,
                );
            }
        }
        if !self.finished() && self.boots > 2 * self.plan.len() + 2 {
            let why = format!("no end in sight after {} boots", self.boots);
            self.stop(why, &mut steps);
        }
        steps
    }

    /// Stops the sequence before a boot it cannot start.
    pub fn abort(&mut self, why: String) -> Vec<Step> {
        let mut steps = Vec::new();
        self.stop(why, &mut steps);
        steps
    }

    /// Stops the sequence: one `Stopped`, then a skip for every test it kept
    /// from running.
    fn stop(&mut self, why: String, steps: &mut Vec<Step>) {
        self.stopped = true;
        steps.push(Step::Stopped(why));
        let left: Vec<String> = self
            .plan
            .iter()
            .filter(|p| !self.decided.contains(&p.test))
            .map(|p| p.test.clone())
            .collect();
        for test in left {
            let why = format!("not run: the sequence stopped at boot {}", self.boots);
            steps.push(self.record(&test, Verdict::Skip(why), String::new(), false));
        }
    }
}

#[path = "recovery_judge.rs"]
mod judge;

#[cfg(test)]
#[path = "recovery_tests.rs"]
mod tests;
