//! `cargo xtask bench jobs`: what running suites side by side buys here.
//!
//! The same suite boots (one per strategy, `filter=db_kernel_nmi_db`,
//! the heaviest sweep) run one at a time, then two at a time regardless of
//! the core budget, and the wall times are compared. `cargo xtask test`
//! itself runs `cores / 2` suites side by side (`runner/budget.rs`), so on a
//! machine with C cores its suites phase is expected to take
//! `1 / min(suites, C / 2)` of the one-at-a-time time, as long as each
//! suite's two busy vCPUs get a core each.

use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use testkit::Strategy;

use super::Setup;
use crate::qemu::exit::Exit;
use crate::qemu::machine::End;
use crate::qemu::process::Echo;
use crate::runner::budget::{Budget, SUITE_CORES};

const FILTER: &str = "filter=db_kernel_nmi_db";

/// Boots every suite on `side_by_side` threads: the wall time, and how many
/// boots did not end in success.
fn round(setup: &Setup, side_by_side: usize) -> Result<(Duration, usize)> {
    let next = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let error = Mutex::new(None);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..side_by_side {
            scope.spawn(|| {
                while let Some(strategy) = Strategy::ALL.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let entry = format!("entry={}", strategy.name());
                    let config = setup.config(&[entry.as_str(), FILTER]);
                    match setup
                        .artifacts
                        .boot(&config, setup.accel(), setup.timeout(), Echo::Quiet)
                    {
                        Ok(out) if out.end == End::Exited(Exit::Success) => {}
                        Ok(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => *error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e),
                    }
                }
            });
        }
    });
    if let Some(e) = error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        bail!(e);
    }
    Ok((start.elapsed(), failed.into_inner()))
}

pub fn run(setup: &Setup) -> Result<ExitCode> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let budget = Budget::new(cores);
    let (alone, alone_failed) = round(setup, 1)?;
    let (paired, paired_failed) = round(setup, 2)?;
    let speedup = alone.as_secs_f64() / paired.as_secs_f64();
    println!(
        "\n{} suites (`{FILTER}`), {}, {cores} host cores:",
        Strategy::ALL.len(),
        setup.describe()
    );
    println!("{:<34} {:>9} {:>14}", "how", "seconds", "not succeeded");
    println!(
        "{:<34} {:>9.2} {alone_failed:>14}",
        "one at a time",
        alone.as_secs_f64()
    );
    println!(
        "{:<34} {:>9.2} {paired_failed:>14}",
        "two side by side (forced)",
        paired.as_secs_f64()
    );
    println!("speed-up of two side by side here: {speedup:.2}x");
    println!(
        "`cargo xtask test` runs {} suite(s) side by side on {cores} cores ({SUITE_CORES} cores per suite); \
         expected speed-up of its suites phase on C cores: min(suites, C / {SUITE_CORES})x, \
         e.g. 2x on 4 cores, 4x on 8, 8x on 16, capped by the number of suites",
        budget.suites_at_once()
    );
    Ok(ExitCode::SUCCESS)
}
