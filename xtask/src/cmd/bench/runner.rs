//! `cargo xtask bench runner`: what the test runner itself costs.
//!
//! - (a) a boot whose filter selects nothing: boot to exit, the base;
//! - (b) a boot running the 8 empty tests `bench::empty_*`: one test costs
//!   ((b) - (a)) / 8;
//! - (c) `filter=selftest::panic`: the panicking test ends the first boot, and
//!   its `_then_ok` neighbour needs a second one; the crash-and-reboot cost
//!   is (c) - (a).
//!
//! Each is the median of `--runs` runs, printed in seconds and against (a).

use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use testkit::protocol::{Outcome, OwnedEvent, parse_stream};

use super::{Setup, median};
use crate::qemu::exit::Exit;
use crate::qemu::machine::End;
use crate::qemu::process::Echo;
use crate::report::console::Console;
use crate::report::tally::Tally;
use crate::report::verdict::{Report, Verdict};
use crate::runner::boot::BootConfig;
use crate::runner::sequence::{self, Shared, Spec};

const EMPTY_TESTS: u32 = 8;

/// One boot that must end with `done` and `passes` passed results.
fn timed_boot(setup: &Setup, config: &BootConfig, passes: u32) -> Result<Duration> {
    let out = setup
        .artifacts
        .boot(config, setup.accel(), setup.timeout(), Echo::Quiet)?;
    let words = config.args.join(" ");
    if out.end != End::Exited(Exit::Success) {
        bail!("the boot with `{words}` did not succeed: {}", out.end);
    }
    let transcript = parse_stream(out.serial.as_bytes());
    ensure!(
        transcript.is_complete(),
        "the boot with `{words}` has no done event"
    );
    let passed = transcript
        .events()
        .filter(|(_, e)| {
            matches!(
                e,
                OwnedEvent::Result {
                    outcome: Outcome::Pass,
                    ..
                }
            )
        })
        .count();
    ensure!(
        passed == passes as usize,
        "the boot with `{words}` passed {passed} tests, not {passes}: is the kernel up to date?"
    );
    Ok(out.elapsed)
}

/// The crash sequence, through the same runner as `cargo xtask test`.
fn timed_crash(setup: &Setup, config: &BootConfig) -> Result<Duration> {
    let tally = Mutex::new(Tally::new(Console::quiet()));
    let boots = AtomicUsize::new(0);
    let shared = Shared {
        artifacts: &setup.artifacts,
        accel: setup.accel(),
        tally: &tally,
        json: None,
        boots: &boots,
    };
    let spec = Spec {
        strategy: "linux".into(),
        lapic: setup.args.cpu.clone(),
        config: config.clone(),
        retry: true,
        boot_timeout: setup.timeout(),
        counted: false,
    };
    let worker = Console::quiet().worker();
    let mut reports: Vec<Report> = Vec::new();
    let start = Instant::now();
    sequence::run(&spec, &shared, &worker, &mut |r| reports.push(r));
    let elapsed = start.elapsed();
    let names: Vec<&str> = reports.iter().map(|r| r.name.as_str()).collect();
    ensure!(
        names == ["selftest::panic", "selftest::panic_then_ok"],
        "`filter=selftest::panic` gave {names:?}: is the kernel up to date?"
    );
    if let Some(bad) = reports.iter().find(|r| r.verdict != Verdict::Pass) {
        bail!("{}", bad.line());
    }
    Ok(elapsed)
}

pub fn run(setup: &Setup) -> Result<ExitCode> {
    let runs = setup.args.runs;
    let nothing = setup.config(&["entry=linux", "filter=no-such-test"]);
    let empty = setup.config(&["entry=linux", "filter=bench::empty_"]);
    let crash = setup.config(&["entry=linux", "filter=selftest::panic"]);
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    // Interleaved, so that a slow moment of the machine touches all three.
    for _ in 0..runs {
        a.push(timed_boot(setup, &nothing, 0)?);
        b.push(timed_boot(setup, &empty, EMPTY_TESTS)?);
        c.push(timed_crash(setup, &crash)?);
    }
    let (a, b, c) = (median(a), median(b), median(c));
    let secs = |d: Duration| d.as_secs_f64();
    // Signed: a per-test cost below the noise may come out negative, and
    // saying so is better than a flattering zero.
    let per_test = (secs(b) - secs(a)) / f64::from(EMPTY_TESTS);
    let reboot = secs(c) - secs(a);
    println!(
        "\nrunner costs, {runs} runs each (median), {}:",
        setup.describe()
    );
    println!("{:<44} {:>9} {:>9}", "what", "seconds", "x (a)");
    let rows = [
        ("(a) boot to exit, no test selected", secs(a)),
        ("(b) boot with 8 empty tests", secs(b)),
        ("one test: ((b) - (a)) / 8", per_test),
        ("(c) panic, reboot, resume (2 boots)", secs(c)),
        ("crash and reboot: (c) - (a)", reboot),
    ];
    for (what, time) in rows {
        let ratio = time / secs(a);
        println!("{what:<44} {time:>9.4} {ratio:>8.2}x");
    }
    Ok(ExitCode::SUCCESS)
}
