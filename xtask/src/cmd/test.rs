//! `cargo xtask test`: the host unit tests, the boot matrix (`runner/matrix.rs`), the
//! disk image as disk and USB stick under SeaBIOS and OVMF (`cmd/image.rs`), then
//! the kernel's registered tests over the wire protocol:
//!
//! - one suite per strategy (naive, shift-ist, dr7-guard, linux) and LAPIC
//!   mode (`-cpu max`: x2APIC, `-cpu qemu64`: xAPIC), each a sequence of PVH
//!   boots that survives crashes (`runner/sequence.rs`);
//! - the framework's selftests once (`filter=selftest::`, linux, `-cpu max`):
//!   each crashes the kernel on purpose and must be seen crashing just so;
//! - `checker::mutant_ignore_rip_is_caught`: with a checker blind to RIP, the
//!   naive strategy must not pass `scenarios::db_kernel_nmi_db`.
//!
//! All of it runs on `--jobs` QEMU instances side by side and ends with one
//! line `N passed, N failed, N skipped`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use testkit::Strategy;
use testkit::protocol::{OwnedEvent, parse_stream};

use crate::cmd::opts::{self, Common, Switch};
use crate::media::limine::{self, Lookup};
use crate::qemu::accel::{self, Accel};
use crate::qemu::process::Echo;
use crate::report::console::{self, Console};
use crate::report::jsonlog::JsonLog;
use crate::report::tally::Tally;
use crate::report::verdict::{Report, Verdict};
use crate::runner::boot::{Artifacts, BootConfig, Door};
use crate::runner::sequence::{self, Shared, Spec};
use crate::runner::suite::{self, Check};
use crate::{media::kernel, qemu::process, report::junit, runner::matrix};

/// Run the host unit tests, the QEMU boot matrix, then the kernel's tests
/// under every strategy and LAPIC mode.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Run only the tests whose name contains this text: given to the kernel
    /// as `filter=` and applied to the host checks' names. Tests tagged
    /// selftest, crash or bench run only when a filter names them.
    #[arg(long, value_name = "SUBSTR")]
    filter: Option<String>,
    /// Iterations for every kernel test (each test caps it).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    iterations: Option<u32>,
    /// Seed of the kernel's randomised sweeps.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Run the suites under this entry strategy only: naive, shift-ist,
    /// dr7-guard or linux [default: all four].
    #[arg(long, value_name = "STRATEGY", value_parser = opts::parse_strategy)]
    entry: Option<Strategy>,
    /// How QEMU starts the kernel for the suites.
    #[arg(long, value_enum, default_value_t = Door::Pvh)]
    boot: Door,
    /// CPUs for the suites (1 to 64).
    #[arg(long, default_value_t = 4, value_parser = opts::smp_parser())]
    smp: u32,
    /// Run the suites on this QEMU CPU model only [default: `max` (x2APIC
    /// under TCG) and `qemu64` (xAPIC)].
    #[arg(long, value_name = "MODEL", value_parser = opts::parse_cpu)]
    cpu: Option<String>,
    /// Under TCG, run the suites with `-accel tcg,one-insn-per-tb=on`. TCG
    /// delivers NMIs only between translation blocks; one instruction per
    /// block lets them land on every instruction of the entry path (measured:
    /// the NMI sweep's coverage of the #DB entry window goes from 6% to
    /// 100%). It costs speed only where CPUs work: idle CPUs halt. The boot
    /// matrix always runs plain `tcg`.
    #[arg(long, value_enum, value_name = "on|off", default_value_t = Switch::On)]
    tcg_single_step: Switch,
    /// Write every event of every boot (annotated with boot, strategy and
    /// LAPIC mode) and one result per test to PATH as JSON lines.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Write the results to PATH as JUnit XML.
    #[arg(long, value_name = "PATH")]
    junit: Option<PathBuf>,
    /// Boot once with `list=1`, print the kernel's test names and exit.
    #[arg(long)]
    list: bool,
    /// QEMU instances run side by side [default: the number of cores].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    jobs: Option<u32>,
    #[command(flatten)]
    common: Common,
}

const HOST_TESTS: &str = "host::unit_tests";
const MUTANT: &str = "checker::mutant_ignore_rip_is_caught";
const MUTANT_TARGET: &str = "scenarios::db_kernel_nmi_db";
const SUITE_TIMEOUT: Duration = Duration::from_secs(300);
const SELFTEST_FILTER: &str = "selftest::";

/// One unit of work for the pool.
enum Job {
    Check(Check),
    Suite(Spec),
    /// A suite whose results decide one check, named by the string.
    Mutant(Spec),
}

impl Args {
    fn wanted(&self, name: &str) -> bool {
        self.filter.as_deref().is_none_or(|f| name.contains(f))
    }

    fn cpus(&self) -> Vec<String> {
        match &self.cpu {
            Some(cpu) => vec![cpu.clone()],
            None => vec!["max".into(), "qemu64".into()],
        }
    }

    /// The kernel words of a suite, `skip=` excepted.
    fn kernel_args(&self, strategy: Strategy, filter: Option<&str>) -> Vec<String> {
        let mut words = vec![format!("entry={}", strategy.name())];
        words.extend(filter.map(|f| format!("filter={f}")));
        words.extend(self.iterations.map(|n| format!("iterations={n}")));
        words.extend(self.seed.map(|n| format!("seed={n}")));
        words
    }

    fn spec(&self, strategy: Strategy, cpu: &str, args: Vec<String>) -> Spec {
        Spec {
            strategy: strategy.name().into(),
            lapic: opts::lapic_label(cpu),
            config: BootConfig {
                door: self.boot,
                smp: self.smp,
                cpu: cpu.into(),
                args,
                single_step: self.tcg_single_step == Switch::On,
            },
            retry: true,
            boot_timeout: self.common.timeout_or(SUITE_TIMEOUT),
            counted: true,
        }
    }

    /// Every job, the longest first so that the pool ends sooner.
    fn jobs(&self) -> Vec<Job> {
        let mut jobs = Vec::new();
        let cpus = self.cpus();
        if self.wanted(MUTANT) {
            let mut args = self.kernel_args(Strategy::Naive, Some("db_kernel_nmi_db"));
            args.push("checker=ignore-rip".into());
            let cpu = cpus.first().map_or("max", String::as_str);
            let mut spec = self.spec(Strategy::Naive, cpu, args);
            spec.retry = false;
            spec.counted = false;
            jobs.push(Job::Mutant(spec));
        }
        let mut checks = matrix::matrix(self.common.timeout());
        checks.extend(crate::runner::image_checks::checks(self.common.timeout()));
        let (slow, fast): (Vec<Check>, Vec<Check>) = checks
            .into_iter()
            .filter(|c| self.wanted(&c.name))
            .partition(|c| c.config.door.is_uefi());
        jobs.extend(slow.into_iter().map(Job::Check));
        let strategies = match self.entry {
            Some(strategy) => vec![strategy],
            None => Strategy::ALL.to_vec(),
        };
        for cpu in &cpus {
            for &strategy in &strategies {
                let args = self.kernel_args(strategy, self.filter.as_deref());
                jobs.push(Job::Suite(self.spec(strategy, cpu, args)));
            }
        }
        if self.filter.is_none() {
            let args = self.kernel_args(Strategy::Linux, Some(SELFTEST_FILTER));
            let cpu = cpus.first().map_or("max", String::as_str);
            jobs.push(Job::Suite(self.spec(Strategy::Linux, cpu, args)));
        }
        jobs.extend(fast.into_iter().map(Job::Check));
        jobs
    }
}

pub fn main(args: Args) -> Result<ExitCode> {
    if let Some(filter) = &args.filter {
        opts::check_kernel_args(&[format!("filter={filter}")])?;
    }
    if args.list {
        return list(&args);
    }
    let json = args.json.as_deref().map(JsonLog::create).transpose()?;
    if let Some(path) = &args.junit {
        // Fail now on a path that cannot be written, not after the run.
        junit::write(path, &[])?;
    }
    let host = args.wanted(HOST_TESTS).then(host_tests);
    let jobs = args.jobs();
    // Build and prepare before the progress bars start: cargo and xorriso
    // write to the terminal themselves.
    let (ready, early) = if jobs.is_empty() {
        (None, Vec::new())
    } else {
        prepare(&args, jobs)?
    };
    let tally = Mutex::new(Tally::new(Console::for_stdout()));
    {
        let mut tally = lock(&tally);
        tally.expect(usize::from(host.is_some()) + early.len());
        for report in host.into_iter().chain(early) {
            tally.record(report);
        }
    }
    if let Some(ready) = ready {
        run_jobs(&args, ready, &tally, json.as_ref());
    }
    let tally = tally.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut failed_output = false;
    if let Some(json) = &json {
        for report in tally.reports() {
            json.result(report);
        }
        if let Err(e) = json.finish() {
            eprintln!("error: {e:#}");
            failed_output = true;
        }
    }
    if let Some(path) = &args.junit
        && let Err(e) = junit::write(path, tally.reports())
    {
        eprintln!("error: {e:#}");
        failed_output = true;
    }
    let code = tally.finish();
    Ok(if failed_output {
        ExitCode::FAILURE
    } else {
        code
    })
}

/// What the pool needs: the accelerator, the files, and the jobs that can run.
struct Ready {
    choice: accel::Choice,
    artifacts: Artifacts,
    jobs: Vec<Job>,
}

/// Builds what the jobs need. A job whose files cannot be made fails (or,
/// without Limine, is skipped) on its own: its report is among the second
/// value; a kernel that does not build fails every job.
fn prepare(args: &Args, jobs: Vec<Job>) -> Result<(Option<Ready>, Vec<Report>)> {
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
    };
    let limine = if args.boot.needs_limine() {
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
fn run_jobs(args: &Args, ready: Ready, tally: &Mutex<Tally>, json: Option<&JsonLog>) {
    let Ready {
        choice,
        artifacts,
        jobs: runnable,
    } = ready;
    let threads = match args.jobs {
        Some(n) => n as usize,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let checks = runnable
        .iter()
        .filter(|j| matches!(j, Job::Check(_)))
        .count();
    let step = match (choice.accel, args.tcg_single_step) {
        (Accel::Tcg, Switch::On) => ", suites with one-insn-per-tb",
        _ => "",
    };
    console::note(&format!(
        "{choice}; {checks} boot checks and {} suites on {threads} jobs{step}",
        runnable.len() - checks
    ));
    let mutants = runnable
        .iter()
        .filter(|j| matches!(j, Job::Mutant(_)))
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
                    run_job(job, &shared, &worker);
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

fn lock(tally: &Mutex<Tally>) -> std::sync::MutexGuard<'_, Tally> {
    tally.lock().unwrap_or_else(|p| p.into_inner())
}

/// Kernel suites run alone: their NMI timing sweeps need the two vCPUs they
/// keep busy to run at once, and under TCG every vCPU is a host thread.
/// Measured on 2 cores: a suite boot takes ~2 s alone and 80-166 s next to
/// another suite. Boot checks share the machine with each other freely.
static TIMING: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn run_job(job: &Job, shared: &Shared, worker: &crate::report::console::Worker) {
    let (_shared, _alone) = match job {
        Job::Check(_) => (Some(TIMING.read().unwrap_or_else(|p| p.into_inner())), None),
        Job::Suite(_) | Job::Mutant(_) => (
            None,
            Some(TIMING.write().unwrap_or_else(|p| p.into_inner())),
        ),
    };
    match job {
        Job::Check(check) => {
            worker.set(check.name.clone());
            let run =
                shared
                    .artifacts
                    .boot(&check.config, shared.accel, check.timeout, Echo::Quiet);
            let report = suite::judge(check, run);
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
    }
}

/// The checker mutant is caught when the target test does not pass under it:
/// a failed result and a crash both count.
fn judge_mutant(seen: &[Report]) -> Report {
    let target = seen.iter().find(|r| r.name == MUTANT_TARGET);
    let (verdict, note) = match target.map(|r| &r.verdict) {
        Some(Verdict::Fail(why)) => (
            Verdict::Pass,
            format!("{MUTANT_TARGET} fails under checker=ignore-rip: {why}"),
        ),
        Some(Verdict::Pass) => (
            Verdict::Fail(format!(
                "a checker blind to RIP let naive pass {MUTANT_TARGET}: {}",
                target.map_or("", |r| r.note.as_str())
            )),
            String::new(),
        ),
        Some(Verdict::Skip(why)) => (
            Verdict::Fail(format!("{MUTANT_TARGET} was skipped: {why}")),
            String::new(),
        ),
        None => {
            let why = seen
                .iter()
                .find_map(|r| match &r.verdict {
                    Verdict::Fail(why) => Some(format!(": {}", why)),
                    _ => None,
                })
                .unwrap_or_default();
            (
                Verdict::Fail(format!("{MUTANT_TARGET} never ran{why}")),
                String::new(),
            )
        }
    };
    Report {
        note,
        detail: target.map(|r| r.detail.clone()).unwrap_or_default(),
        ..Report::new(MUTANT, verdict)
    }
}

/// `cargo test` on the host crates; one report for all of them.
fn host_tests() -> Report {
    let mut cmd = kernel::cargo();
    cmd.args(["test", "-p", "testkit", "-p", "xtask"]);
    let verdict = match process::run(&mut cmd) {
        Ok(()) => Verdict::Pass,
        Err(e) => Verdict::Fail(format!("{e:#}")),
    };
    Report::new(HOST_TESTS, verdict)
}

/// `--list`: one boot with `list=1`; the names of the `planned` events.
fn list(args: &Args) -> Result<ExitCode> {
    let choice = accel::choose(args.common.accel)?;
    let kernel = kernel::kernel_or(args.common.kernel.as_ref())?;
    let limine = if args.boot.needs_limine() {
        Some(limine::require(args.common.limine_dir.as_deref())?)
    } else {
        None
    };
    let artifacts = Artifacts::new(kernel).with_limine(limine);
    let names = list_boot(args, &artifacts, choice.accel, args.boot)?;
    let shown: Vec<&String> = names
        .iter()
        .map(|(name, _)| name)
        .filter(|name| args.wanted(name))
        .collect();
    for name in &shown {
        println!("{name}");
    }
    eprintln!("{} of {} registered tests", shown.len(), names.len());
    Ok(ExitCode::SUCCESS)
}

/// Boots once with `list=1`: every registered test, with its crash expectation.
fn list_boot(
    args: &Args,
    artifacts: &Artifacts,
    accel: Accel,
    door: Door,
) -> Result<Vec<(String, Option<String>)>> {
    let config = BootConfig {
        door,
        smp: args.smp,
        cpu: args.cpus().swap_remove(0),
        args: vec!["list=1".into()],
        single_step: false,
    };
    artifacts.prepare(&config)?;
    let out = artifacts.boot(&config, accel, args.common.timeout(), Echo::Quiet)?;
    listed(&out.serial).with_context(|| format!("listing the kernel's tests ({})", out.end))
}

/// The tests a `list=1` boot names, with their crash expectations.
fn listed(serial: &str) -> Result<Vec<(String, Option<String>)>> {
    let transcript = parse_stream(serial.as_bytes());
    if let Some((line, error)) = transcript
        .errors()
        .find(|(_, e)| !matches!(e, testkit::protocol::StreamError::MissingDone))
    {
        bail!("line {line}: {error}");
    }
    ensure!(
        transcript.is_complete(),
        "the boot ended without a done event"
    );
    Ok(transcript
        .events()
        .filter_map(|(_, e)| match e {
            OwnedEvent::Planned { test, expect_crash } => {
                Some((test.clone(), expect_crash.clone()))
            }
            _ => None,
        })
        .collect())
}
