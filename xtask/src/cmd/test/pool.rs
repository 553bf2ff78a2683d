//! The pool of `cargo xtask test`: what the jobs need is built first, then
//! the jobs run on `--jobs` threads, each its own QEMU, the kernel suites
//! alone (their NMI timing needs the cores), and every report goes to the
//! tally as soon as it is known.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Result;

use super::list::list_boot;
use super::mutant::{MUTANT, judge_mutant};
use super::{Args, Job};
use crate::cmd::opts::Switch;
use crate::media::kernel;
use crate::media::limine::{self, Lookup};
use crate::qemu::accel::{self, Accel};
use crate::qemu::bochs;
use crate::qemu::emulator::Emulator;
use crate::qemu::process::Echo;
use crate::report::console::{self, Worker};
use crate::report::jsonlog::JsonLog;
use crate::report::tally::Tally;
use crate::report::verdict::{Report, Verdict};
use crate::runner::boot::{Artifacts, Door};
use crate::runner::budget::{Budget, SUITE_CORES};
use crate::runner::lava_check;
use crate::runner::mutants;
use crate::runner::sequence::{self, Shared};
use crate::runner::suite;

/// The fast mutants' boots: few iterations, a short leash (`runner/mutants.rs`).
const MUTANT_ITERATIONS: u32 = 50;
const MUTANT_SMP: u32 = 4;
const MUTANT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(90);

/// What the pool needs: the accelerator, the files, and the jobs that can run.
pub(super) struct Ready {
    choice: accel::Choice,
    artifacts: Artifacts,
    jobs: Vec<Job>,
}

/// Builds what the jobs need. A job whose files cannot be made fails (or,
/// without Limine, is skipped) on its own: its report is among the second
/// value; a kernel that does not build fails every job.
pub(super) fn prepare(args: &Args, jobs: Vec<Job>) -> Result<(Option<Ready>, Vec<Report>)> {
    let choice = accel::choose(args.common.accel)?;
    let kernel = match kernel::kernel_or(args.common.kernel.as_ref()) {
        Ok(kernel) => kernel,
        Err(e) => {
            eprintln!("error: {e:#}");
            let failed = jobs
                .into_iter()
                .map(|job| {
                    let (name, labels) = match job {
                        Job::Check(check) => (check.name, Vec::new()),
                        Job::Suite(spec) => ("suite::build".to_string(), spec.labels()),
                        Job::Mutant(spec) => (MUTANT.to_string(), spec.labels()),
                        Job::EntryMutant(m) => (format!("mutants::{}", m.name), Vec::new()),
                        Job::Lava => (lava_check::NAME.to_string(), Vec::new()),
                    };
                    Report {
                        labels,
                        ..Report::new(name, Verdict::Fail("the kernel did not build".into()))
                    }
                })
                .collect();
            return Ok((None, failed));
        }
    };
    let needs_limine = |job: &Job| match job {
        Job::Check(check) => check.config.door.needs_limine(),
        Job::Suite(spec) | Job::Mutant(spec) => spec.config.door.needs_limine(),
        Job::Lava | Job::EntryMutant(_) => false,
    };
    let limine = if args.door().needs_limine() {
        Some(limine::require(args.common.limine_dir.as_deref())?)
    } else if jobs.iter().any(needs_limine) {
        match limine::locate(args.common.limine_dir.as_deref())? {
            Lookup::Found(limine) => Some(limine),
            Lookup::Missing(why) => {
                eprintln!("limine: {why}");
                None
            }
        }
    } else {
        None
    };
    let artifacts = Artifacts::new(kernel).with_limine(limine);
    let jobs = drop_empty_suites(args, jobs, &artifacts, choice.accel);
    let mut runnable = Vec::new();
    let mut early = Vec::new();
    for job in jobs {
        let Job::Check(check) = job else {
            runnable.push(job);
            continue;
        };
        let verdict = if check.config.door.needs_limine() && !artifacts.has_limine() {
            Some(Verdict::Skip(
                "Limine cannot be had, see the `limine:` line above".into(),
            ))
        } else if check.config.emulator == Emulator::Bochs && !bochs::installed() {
            Some(Verdict::Skip(bochs::MISSING.into()))
        } else {
            let prepared = artifacts.prepare(&check.config);
            prepared.err().map(|e| Verdict::Fail(format!("{e:#}")))
        };
        match verdict {
            None => runnable.push(Job::Check(check)),
            Some(verdict) => early.push(Report::new(check.name, verdict)),
        }
    }
    let ready = Ready {
        choice,
        artifacts,
        jobs: runnable,
    };
    Ok((Some(ready), early))
}

/// Runs the jobs on `--jobs` threads, each its own QEMU, recording each
/// report as soon as it is known.
pub(super) fn run_jobs(args: &Args, ready: Ready, tally: &Mutex<Tally>, json: Option<&JsonLog>) {
    let Ready {
        choice,
        artifacts,
        jobs: runnable,
    } = ready;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = args.jobs.map_or(cores, |n| n as usize);
    let budget = Budget::new(cores);
    let checks = runnable
        .iter()
        .filter(|j| matches!(j, Job::Check(_) | Job::Lava))
        .count();
    let step = match (args.emulator, choice.accel, args.tcg_single_step) {
        (Emulator::Qemu, Accel::Tcg, Switch::On) => ", suites with one-insn-per-tb",
        _ => "",
    };
    if let Some(cpu) = args.cpus().first()
        && let Some(line) = args.emulator.describe(args.smp, cpu)
    {
        console::note(&line);
    }
    console::note(&format!(
        "{choice}; {checks} boot checks and {} suites on {threads} jobs, {cores} cores: \
         {} suites side by side{step}",
        runnable.len() - checks,
        budget.suites_at_once().min(threads)
    ));
    let mutants = runnable
        .iter()
        .filter(|j| matches!(j, Job::Mutant(_) | Job::EntryMutant(_)))
        .count();
    lock(tally).expect(checks + mutants);
    let boots = AtomicUsize::new(0);
    let shared = Shared {
        artifacts: &artifacts,
        accel: choice.accel,
        tally,
        json,
        boots: &boots,
    };
    let next = AtomicUsize::new(0);
    let workers = threads.clamp(1, runnable.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                let worker = lock(tally).console().worker();
                while let Some(job) = runnable.get(next.fetch_add(1, Ordering::Relaxed)) {
                    run_job(job, &shared, &worker, &budget);
                }
            });
        }
    });
}

/// With a filter that no kernel test matches (one naming a boot check, say),
/// the suites would each boot to run nothing: one `list=1` boot tells.
fn drop_empty_suites(args: &Args, jobs: Vec<Job>, artifacts: &Artifacts, accel: Accel) -> Vec<Job> {
    let Some(filter) = &args.filter else {
        return jobs;
    };
    if !jobs.iter().any(|j| matches!(j, Job::Suite(_))) {
        return jobs;
    }
    let names = match list_boot(args, artifacts, accel, Door::Pvh) {
        Ok(names) => names,
        // Let the suites run and say what is wrong.
        Err(_) => return jobs,
    };
    if names.iter().any(|(name, _)| name.contains(filter.as_str())) {
        return jobs;
    }
    eprintln!("no kernel test name contains `{filter}`: no suite to run");
    jobs.into_iter()
        .filter(|j| !matches!(j, Job::Suite(_)))
        .collect()
}

pub(super) fn lock(tally: &Mutex<Tally>) -> std::sync::MutexGuard<'_, Tally> {
    tally.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs one job once its cores are free (`runner/budget.rs`).
fn run_job(job: &Job, shared: &Shared, worker: &Worker, budget: &Budget) {
    let _cores = budget.take(match job {
        Job::Check(_) | Job::Lava => 1,
        Job::Suite(_) | Job::Mutant(_) | Job::EntryMutant(_) => SUITE_CORES,
    });
    match job {
        Job::Check(check) => {
            worker.set(check.name.clone());
            let run =
                shared
                    .artifacts
                    .boot(&check.config, shared.accel, check.timeout, Echo::Quiet);
            let mut report = suite::judge(check, run);
            report.platform = Some(check.config.emulator.platform(shared.accel));
            lock(shared.tally).record(report);
        }
        Job::Suite(spec) => {
            sequence::run(spec, shared, worker, &mut |report| {
                lock(shared.tally).record(report)
            });
        }
        Job::Mutant(spec) => {
            let mut seen = Vec::new();
            sequence::run(spec, shared, worker, &mut |report| seen.push(report));
            let report = Report {
                labels: spec.labels(),
                ..judge_mutant(&seen)
            };
            lock(shared.tally).record(report);
        }
        Job::EntryMutant(mutant) => {
            let settings = mutants::Settings {
                accel: shared.accel,
                iterations: MUTANT_ITERATIONS,
                smp: MUTANT_SMP,
                cpu: mutants::CPU.into(),
                emulator: crate::qemu::emulator::Emulator::Qemu,
                limine: None,
                timeout: MUTANT_TIMEOUT,
                all_probes: false,
            };
            let outcome = mutants::run(mutant, &settings, worker);
            let mut report = mutants::report(&outcome);
            report.duration = Some(outcome.build + outcome.run);
            lock(shared.tally).record(report);
        }
        Job::Lava => {
            worker.set(lava_check::NAME.into());
            let report = lava_check::check(shared.artifacts.kernel());
            lock(shared.tally).record(report);
        }
    }
}
