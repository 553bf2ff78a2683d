//! The runner: iterates the selected tests in name order and reports each on
//! the wire. The kernel sends `hello` (it knows the door and the LAPIC mode),
//! then calls [`run_tests`] with [`TESTS`](crate::TESTS), then exits with
//! [`Summary::all_passed`].

use crate::context::{Context, Evidence, Observed, Platform};
use crate::desc::TestDesc;
use crate::expect::{Machine, Strategy};
use crate::message::message;
use crate::protocol::{Counters, Event, Outcome};
use crate::rng::Rng;
use crate::select::Selection;
use crate::verdict::{Tally, judge, skip_reason};

/// What does not change between the tests of one boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunConfig {
    pub strategy: Strategy,
    pub machine: Machine,
    pub seed: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub passed: u32,
    pub failed: u32,
    pub skipped: u32,
    pub not_reproduced: u32,
}

impl Summary {
    pub fn all_passed(&self) -> bool {
        self.failed == 0
    }

    fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Pass => self.passed += 1,
            Outcome::Fail => self.failed += 1,
            Outcome::Skip => self.skipped += 1,
            Outcome::NotReproduced => self.not_reproduced += 1,
        }
    }
}

/// Runs every test `selection` picks: `plan`, `planned` per test, then
/// `start`/`result` (or just `result` for a skip) per test, then `done`.
pub fn run_tests(
    platform: &mut dyn Platform,
    tests: &[TestDesc],
    selection: &Selection<'_>,
    config: &RunConfig,
) -> Summary {
    let kept = keep_mask(tests, |t| selection.selects(t));
    let selected = || in_name_order(tests, &kept);
    let count = selected().count() as u32;
    platform.emit(&Event::Plan { count });
    for test in selected() {
        platform.emit(&Event::Planned {
            test: test.name,
            expect_crash: test.expected_crash(),
        });
    }
    let mut summary = Summary::default();
    for test in selected() {
        summary.count(run_one(platform, test, selection, config));
    }
    let Summary {
        passed,
        failed,
        skipped,
        not_reproduced,
    } = summary;
    platform.emit(&Event::Done {
        passed,
        failed,
        skipped,
        not_reproduced,
    });
    summary
}

fn run_one(
    platform: &mut dyn Platform,
    test: &TestDesc,
    selection: &Selection<'_>,
    config: &RunConfig,
) -> Outcome {
    let expect = test.expect.get(config.strategy);
    let result = |outcome, iterations, cycles: u64, details, counters| Event::Result {
        test: test.name,
        strategy: config.strategy,
        outcome,
        expected: expect.kind(),
        iterations,
        cycles,
        cycles_per_iteration: cycles / u64::from(iterations.max(1)),
        details,
        counters,
    };

    if let Some(why) = skip_reason(test, config.strategy, config.machine, platform.cpu_count()) {
        let details = message(format_args!("{why}"));
        platform.emit(&result(
            Outcome::Skip,
            0,
            0,
            details.as_str(),
            Counters::default(),
        ));
        return Outcome::Skip;
    }

    let iterations = selection.iterations_for(test);
    let cpu = platform.current_cpu() as u32;
    let (strategy, timeout_ms) = (config.strategy, test.timeout_ms);
    platform.emit(&Event::Start {
        test: test.name,
        strategy,
        iterations,
        cpu,
        timeout_ms,
    });

    // Findings from before the test (boot, the runner between tests) are not
    // this test's: drop them so the drain after it judges only its own.
    platform.drain_checker(&mut |_| {});
    let rng = Rng::for_test(config.seed, test.name);
    let mut ctx = Context::new(
        test.name,
        iterations,
        rng,
        config.strategy,
        config.machine,
        platform,
    );
    ctx.expect = expect;
    let begin = ctx.cycles();
    let returned = (test.run)(&mut ctx);
    let cycles = ctx.cycles().wrapping_sub(begin);
    let observed = ctx.observed(returned);
    // Whatever the test did not collect itself is judged too.
    let drained = ctx.drain_checker();
    let tally = Tally {
        drained,
        reported: ctx.corruptions_reported(),
    };
    let verdict = judge(expect, &observed, tally);
    let mut counters = ctx.counters;
    record_evidence(&mut counters, &observed, drained);
    let note = ctx.details;

    // Say what went wrong first; the test's own note after it.
    let details = match (verdict.reason.as_str(), note.as_str()) {
        (reason, "") => message(format_args!("{reason}")),
        ("", note) => message(format_args!("{note}")),
        (reason, note) => message(format_args!("{reason}; {note}")),
    };
    platform.emit(&result(
        verdict.outcome,
        iterations,
        cycles,
        details.as_str(),
        counters,
    ));
    verdict.outcome
}

/// Puts the counts a verdict rests on into the result's counters, so a reader
/// of the wire sees the same numbers the verdict saw.
fn record_evidence(counters: &mut Counters, observed: &Observed, drained: u64) {
    let e = match observed {
        Observed::Ran(e) => *e,
        Observed::Survived => Evidence::default(),
        Observed::NotReproduced(_) | Observed::Failed(_) => return,
    };
    let nonzero = |n: u64| (n > 0).then_some(n);
    counters.incidents = Some(e.incidents + drained);
    counters.hazards = nonzero(e.hazards).or(counters.hazards);
    counters.detected = nonzero(e.detected).or(counters.detected);
    counters.lost_nmis = Some(e.lost_nmis);
    counters.damaged_registers = Some(e.damaged_registers);
    if e.predicted_corrupt + e.predicted_clean > 0 {
        counters.mismatches = Some(e.mismatches);
    }
}

/// The most tests a catalog may register (`keep_mask` marks the kept ones
/// in a fixed array: no heap).
const MAX_TESTS: usize = 1024;

/// Which of `tests` `keep` keeps, asked once per test: the plan, the
/// `planned` events and the run all walk the same selection (asking three
/// times cost a PVH boot that selects nothing 0.06 ms of the 0.7 ms it spends
/// in `run_tests` under TCG, rdtsc around the call, 9 boots each).
fn keep_mask(tests: &[TestDesc], keep: impl Fn(&TestDesc) -> bool) -> [bool; MAX_TESTS] {
    assert!(tests.len() <= MAX_TESTS, "more than {MAX_TESTS} tests");
    let mut kept = [false; MAX_TESTS];
    for (slot, test) in kept.iter_mut().zip(tests) {
        *slot = keep(test);
    }
    kept
}

/// The tests `kept` marks, sorted by name (then by link order for equal
/// names), without a heap: link order differs between builds, and a stable
/// order makes runs comparable and `skip=` resumes predictable. Quadratic in
/// the kept tests: each step scans the kept ones for the next name, so a
/// run that selects a few (or none, as a boot-to-exit does) costs a few
/// scans, not one per test in the catalog.
fn in_name_order<'a>(
    tests: &'a [TestDesc],
    kept: &'a [bool; MAX_TESTS],
) -> impl Iterator<Item = &'a TestDesc> + 'a {
    let key = |i: usize| (tests[i].name, i);
    let mut last: Option<(&str, usize)> = None;
    core::iter::from_fn(move || {
        let next = (0..tests.len())
            .filter(|&i| kept[i])
            .map(key)
            .filter(|k| last.is_none_or(|l| *k > l))
            .min()?;
        last = Some(next);
        Some(&tests[next.1])
    })
}
