//! The runner against a fake platform: event order, skips, verdicts, details.

mod support;

use support::{Fake, HIDDEN};
use testkit::protocol::{Counters, Event, Expected, Outcome};
use testkit::run::{RunConfig, Summary, run_tests};
use testkit::{
    Context, Corruption, Evidence, Expect, Expectations, Failure, Machine, Observed, Selection,
    Strategy, TestDesc, TestResult, tags,
};

fn double(arg: u64) -> u64 {
    arg * 2
}

fn survives(ctx: &mut Context<'_>) -> TestResult {
    for i in 0..ctx.iterations {
        assert_eq!(ctx.run_on(1, double, u64::from(i), 100)?, u64::from(i) * 2);
        ctx.progress(i + 1);
    }
    Counters::add(&mut ctx.counters.nmis, u64::from(ctx.iterations));
    let n = ctx.iterations;
    ctx.note(format_args!("{n} round trips"));
    Ok(Observed::Survived)
}

fn corrupts(ctx: &mut Context<'_>) -> TestResult {
    let seen = ctx.rng.next_u64();
    ctx.report_corruption(Corruption {
        cpu: None,
        iteration: 0,
        vector: 1,
        field: "rip",
        expected: 1,
        seen,
    });
    Ok(Observed::Ran(Evidence {
        incidents: 1,
        hazards: 1,
        detected: 1,
        ..Evidence::default()
    }))
}

fn claims_without_reporting(_: &mut Context<'_>) -> TestResult {
    Ok(Observed::Ran(Evidence {
        incidents: 1,
        hazards: 1,
        detected: 1,
        ..Evidence::default()
    }))
}

fn hides_a_finding(_: &mut Context<'_>) -> TestResult {
    HIDDEN.store(2, std::sync::atomic::Ordering::SeqCst);
    Ok(Observed::Survived)
}

fn needs_missing_cpu(ctx: &mut Context<'_>) -> TestResult {
    ctx.run_on(9, double, 0, 100)?;
    Ok(Observed::Survived)
}

fn fails_with_a_formatted_reason(ctx: &mut Context<'_>) -> TestResult {
    let cpus = ctx.cpu_count();
    testkit::fail!(ctx, "saw {cpus} CPUs, wanted an NMI from each");
}

fn ensures_a_condition(ctx: &mut Context<'_>) -> TestResult {
    testkit::ensure!(ctx, ctx.cpu_count() > 1, "unreachable: two CPUs are up");
    let wanted = 64;
    testkit::ensure!(ctx, ctx.cpu_count() >= wanted, "needs {wanted} CPUs");
    Ok(Observed::Survived)
}

fn fails_for_a_fixed_reason(_: &mut Context<'_>) -> TestResult {
    Err(Failure::Because("the hazard never happened"))
}

const fn desc(name: &'static str, run: testkit::TestFn) -> TestDesc {
    TestDesc::new(name, run, module_path!(), file!(), line!())
}

const DETECT_ON_NAIVE: Expectations =
    Expectations::all(Expect::Survive).with(Strategy::Naive, Expect::Detect);

fn suite() -> Vec<TestDesc> {
    vec![
        TestDesc {
            iterations: 3,
            cpus: 2,
            ..desc("z::survives", survives)
        },
        TestDesc {
            expect: DETECT_ON_NAIVE,
            ..desc("a::corrupts", corrupts)
        },
        TestDesc {
            expect: DETECT_ON_NAIVE,
            ..desc("b::claims", claims_without_reporting)
        },
        desc("c::missing_cpu", needs_missing_cpu),
        TestDesc {
            tags: &[tags::HW_ONLY],
            ..desc("d::hw_only", survives)
        },
        TestDesc {
            cpus: 8,
            ..desc("e::big", survives)
        },
    ]
}

fn run(cmdline: &str, strategy: Strategy) -> (Fake, Summary) {
    let mut fake = Fake::new(2);
    let config = RunConfig {
        strategy,
        machine: Machine::Tcg,
        seed: 7,
    };
    let summary = run_tests(
        &mut fake,
        &suite(),
        &Selection::parse(cmdline).unwrap(),
        &config,
    );
    (fake, summary)
}

fn outcome_of<'e>(fake: &'e Fake, name: &str) -> (&'e Outcome, &'e str, &'e Expected) {
    fake.events
        .iter()
        .find_map(|e| match e {
            Event::Result {
                test,
                outcome,
                details,
                expected,
                ..
            } if test == name => Some((outcome, details.as_str(), expected)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no result for {name}"))
}

#[test]
fn plan_then_tests_in_name_order_then_done() {
    let (fake, summary) = run("", Strategy::Naive);
    assert_eq!(fake.events[0], Event::Plan { count: 6 });
    let planned: Vec<&str> = fake
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Planned { test, .. } => Some(test.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        planned,
        [
            "a::corrupts",
            "b::claims",
            "c::missing_cpu",
            "d::hw_only",
            "e::big",
            "z::survives"
        ]
    );
    let order: Vec<&str> = fake
        .results()
        .iter()
        .map(|e| e.test().unwrap().as_str())
        .collect();
    assert_eq!(order, planned);
    assert_eq!(
        summary,
        Summary {
            passed: 2,
            failed: 2,
            skipped: 2,
            not_reproduced: 0
        }
    );
    assert_eq!(
        fake.events.last(),
        Some(&Event::Done {
            passed: 2,
            failed: 2,
            skipped: 2,
            not_reproduced: 0
        })
    );
    assert!(!summary.all_passed());
}

#[test]
fn verdicts_and_details() {
    let (fake, _) = run("", Strategy::Naive);
    assert_eq!(
        outcome_of(&fake, "a::corrupts"),
        (&Outcome::Pass, "detected 1/1 (100%)", &Expected::Detect)
    );
    let (outcome, details, _) = outcome_of(&fake, "b::claims");
    assert_eq!(outcome, &Outcome::Fail);
    assert!(
        details.contains("expected corruption, none detected"),
        "{details}"
    );
    assert_eq!(
        outcome_of(&fake, "c::missing_cpu"),
        (&Outcome::Fail, "no CPU 9", &Expected::Survive)
    );
    assert_eq!(outcome_of(&fake, "d::hw_only").0, &Outcome::Skip);
    assert_eq!(outcome_of(&fake, "e::big").1, "needs 8 CPUs, 2 up");
    assert_eq!(
        outcome_of(&fake, "z::survives"),
        (&Outcome::Pass, "3 round trips", &Expected::Survive)
    );
}

#[test]
fn failures_carry_their_reason() {
    let tests = [
        desc("f::formatted", fails_with_a_formatted_reason),
        desc("f::fixed", fails_for_a_fixed_reason),
        desc("f::ensured", ensures_a_condition),
        TestDesc {
            expect: DETECT_ON_NAIVE.with(Strategy::Naive, Expect::Skip("not here")),
            ..desc("f::skip_wins", fails_for_a_fixed_reason)
        },
    ];
    let mut fake = Fake::new(2);
    let config = RunConfig {
        strategy: Strategy::Naive,
        machine: Machine::Kvm,
        seed: 0,
    };
    let summary = run_tests(&mut fake, &tests, &Selection::parse("").unwrap(), &config);
    assert_eq!(
        summary,
        Summary {
            passed: 0,
            failed: 3,
            skipped: 1,
            not_reproduced: 0
        }
    );
    assert_eq!(outcome_of(&fake, "f::ensured").1, "needs 64 CPUs");
    assert_eq!(
        outcome_of(&fake, "f::formatted").1,
        "saw 2 CPUs, wanted an NMI from each"
    );
    assert_eq!(outcome_of(&fake, "f::fixed").1, "the hazard never happened");
    assert_eq!(
        outcome_of(&fake, "f::skip_wins"),
        (&Outcome::Skip, "not here", &Expected::Skip)
    );
}

#[test]
fn under_a_surviving_strategy_corruption_fails() {
    let (fake, _) = run("filter=corrupts", Strategy::Linux);
    assert_eq!(outcome_of(&fake, "a::corrupts").0, &Outcome::Fail);
    assert!(matches!(fake.events[2], Event::Start { .. }));
    assert!(matches!(
        fake.events[3],
        Event::Corruption {
            cpu: 0,
            vector: 1,
            ..
        }
    ));
}

#[test]
fn a_run_reports_start_progress_counters_and_cycles() {
    let (fake, _) = run("filter=z:: iterations=2", Strategy::Linux);
    let kinds: Vec<_> = fake.events.iter().map(|e| e.kind()).collect();
    assert_eq!(
        kinds,
        [
            "plan", "planned", "start", "progress", "progress", "result", "done"
        ]
    );
    let Event::Start {
        iterations,
        timeout_ms,
        cpu,
        ..
    } = &fake.events[2]
    else {
        panic!()
    };
    assert_eq!(
        (*iterations, *timeout_ms, *cpu),
        (2, TestDesc::DEFAULT_TIMEOUT_MS, 0)
    );
    let Event::Result {
        iterations,
        cycles,
        cycles_per_iteration,
        counters,
        ..
    } = &fake.events[5]
    else {
        panic!()
    };
    assert_eq!((*iterations, *cycles, *cycles_per_iteration), (2, 10, 5));
    assert_eq!(counters.nmis, Some(2));
}

#[test]
fn skip_list_resumes_after_a_crash_and_seeds_repeat() {
    let (fake, summary) = run(
        "skip=a::corrupts,b::claims skip=c::missing_cpu",
        Strategy::Naive,
    );
    assert_eq!(fake.events[0], Event::Plan { count: 3 });
    assert_eq!(summary.failed, 0);
    // The same seed gives a test the same numbers however the suite was cut.
    let seen = |fake: &Fake| {
        fake.events.iter().find_map(|e| match e {
            Event::Corruption { seen, .. } => Some(*seen),
            _ => None,
        })
    };
    let (alone, _) = run("filter=a::corrupts", Strategy::Naive);
    let (all, _) = run("", Strategy::Naive);
    assert_eq!(seen(&alone), seen(&all));
    assert!(seen(&alone).is_some());
}

#[test]
fn a_finding_the_test_did_not_collect_fails_it() {
    let mut fake = Fake::new(2);
    let (strategy, machine, seed) = (Strategy::Linux, Machine::Kvm, 0);
    let config = RunConfig {
        strategy,
        machine,
        seed,
    };
    let tests = [desc("h::hides", hides_a_finding)];
    let summary = run_tests(&mut fake, &tests, &Selection::parse("").unwrap(), &config);
    assert_eq!(summary.failed, 1);
    let (outcome, details, _) = outcome_of(&fake, "h::hides");
    assert_eq!(outcome, &Outcome::Fail);
    assert!(details.contains("did not collect"), "{details}");
    let wired = fake.events.iter().filter(|e| e.kind() == "corruption");
    assert_eq!(wired.count(), 2, "every drained finding goes on the wire");
}
