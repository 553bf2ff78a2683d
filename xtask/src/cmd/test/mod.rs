//! `cargo xtask test`: the host unit tests and the gates (`gates.rs`: fmt,
//! clippy), the boot matrix
//! (`runner/matrix.rs`), the disk image as disk and USB stick under SeaBIOS
//! and OVMF (`runner/image_checks.rs`), then the kernel's registered tests
//! over the wire protocol:
//!
//! - one suite per strategy (naive, shift-only, linux-4.19, dr7-guard, linux) and LAPIC
//!   mode (`-cpu max`: x2APIC, `-cpu qemu64`: xAPIC), each a sequence of PVH
//!   boots that survives crashes (`runner/sequence.rs`);
//! - the framework's selftests once (`filter=selftest::`, linux, `-cpu max`):
//!   each crashes the kernel on purpose and must be seen crashing just so;
//! - `scenarios::mce_nesting` once (linux, `-cpu max`): a second #MC while
//!   MCIP is set must shut the machine down, seen as a triple fault;
//! - `checker::mutant_blind_is_caught`: with a checker that records nothing,
//!   every naive `detect` test must fail with "expected corruption, none detected".
//! - `mutants::NAME`: the fast mutants of the entry code (`cargo xtask mutants
//!   --fast`), each built and booted until a scenario kills it (`runner/mutants.rs`).
//!
//! All of it runs on `--jobs` QEMU instances side by side (`pool.rs`) and
//! ends with one line `N passed, N failed, N skipped`.

mod gates;
mod list;
mod mutant;
mod pool;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Result;
use testkit::Strategy;

use self::list::list;
use self::mutant::MUTANT;
use self::pool::{lock, prepare, run_jobs};

use crate::cmd::opts::{self, Common, SUITE_CPUS, Switch};
use crate::cmd::setup::{self, Purpose};
use crate::media::kernel;
use crate::qemu::bochs;
use crate::qemu::emulator::Emulator;
use crate::qemu::process;
use crate::report::console::Console;
use crate::report::html::{self, trend};
use crate::report::jsonlog::JsonLog;
use crate::report::junit;
use crate::report::tally::Tally;
use crate::report::verdict::{Report, Verdict};
use crate::runner::boot::{BootConfig, Door};
use crate::runner::browser;
use crate::runner::lava_check;
use crate::runner::matrix;
use crate::runner::sequence::Spec;
use crate::runner::suite::Check;

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
    /// Run the suites under this entry strategy only: naive, shift-only, linux-4.19,
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
    /// under TCG) and `qemu64` (xAPIC), both with Intel's vendor string:
    /// in 64-bit mode SYSENTER exists only on Intel (`sysenter_tf`), and TCG
    /// follows the vendor string].
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
    /// The program that runs the suites. Under Bochs the suites boot the
    /// Limine ISO under BIOS on corei7_skylake_x (x2APIC), the framework's
    /// selftests run there too, and the QEMU-only checks (boot matrix, disk
    /// image, checker mutant, LAVA job) are left out.
    #[arg(long, value_enum, default_value_t = Emulator::Qemu)]
    emulator: Emulator,
    /// Then write the HTML report of this run to target/report.html.
    #[arg(long)]
    report: bool,
    /// Install what is missing without asking (also when `CI` is set).
    #[arg(long)]
    yes: bool,
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
/// The HTML report of this very run, opened in headless Chromium.
const BROWSER: &str = "report::browser";
const SUITE_TIMEOUT: Duration = Duration::from_secs(300);
const SELFTEST_FILTER: &str = "selftest::";
/// A hazard whose right outcome is a crash (a second #MC while MCIP is set
/// shuts the machine down): opt-in like the selftests, in a boot of its own.
const MCE_NESTING_FILTER: &str = "scenarios::mce_nesting";

/// One unit of work for the pool.
enum Job {
    Check(Check),
    Suite(Spec),
    /// A suite whose results decide one check, named by the string.
    Mutant(Spec),
    /// A mutant of the entry code that must be killed (`runner/mutants.rs`).
    EntryMutant(&'static testkit::mutants::Mutant),
    /// The generated LAVA QEMU job run under `lava-run` (`runner/lava_check.rs`).
    Lava,
}

impl Args {
    fn wanted(&self, name: &str) -> bool {
        self.filter.as_deref().is_none_or(|f| name.contains(f))
    }

    fn cpus(&self) -> Vec<String> {
        match (&self.cpu, self.emulator) {
            (Some(cpu), emulator) => vec![emulator.cpu_model(cpu)],
            (None, Emulator::Bochs) => vec![bochs::CPU_MODEL.into()],
            (None, Emulator::Qemu) => SUITE_CPUS.iter().map(|cpu| cpu.to_string()).collect(),
        }
    }

    /// The suites' door: Bochs boots only the Limine ISO under BIOS.
    fn door(&self) -> Door {
        match self.emulator {
            Emulator::Bochs => Door::LimineBios,
            Emulator::Qemu => self.boot,
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
            lapic: self.emulator.lapic_label(cpu),
            config: BootConfig::new(self.door(), self.smp, cpu, args)
                .with_single_step(self.tcg_single_step == Switch::On)
                .with_emulator(self.emulator),
            retry: true,
            boot_timeout: self.common.timeout_or(SUITE_TIMEOUT),
            counted: true,
        }
    }

    /// Every job, the longest first so that the pool ends sooner.
    fn jobs(&self) -> Vec<Job> {
        let mut jobs = Vec::new();
        let cpus = self.cpus();
        let qemu = self.emulator == Emulator::Qemu;
        if qemu && self.wanted(MUTANT) {
            let mut args = self.kernel_args(Strategy::Naive, Some("scenarios::"));
            args.push("checker=blind".into());
            args.push("iterations=300".into());
            let cpu = cpus.first().map_or("max", String::as_str);
            let mut spec = self.spec(Strategy::Naive, cpu, args);
            spec.retry = false;
            spec.counted = false;
            jobs.push(Job::Mutant(spec));
        }
        let mut checks = Vec::new();
        if qemu {
            checks.extend(matrix::matrix(self.common.timeout()));
            checks.extend(crate::runner::image_checks::checks(self.common.timeout()));
            checks.push(matrix::bochs_smoke(self.common.timeout()));
        }
        if qemu && self.wanted(lava_check::NAME) {
            jobs.push(Job::Lava);
        }
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
        if qemu {
            jobs.extend(
                testkit::mutants::CATALOG
                    .iter()
                    .filter(|m| m.fast && self.wanted(&format!("mutants::{}", m.name)))
                    .map(Job::EntryMutant),
            );
        }
        if self.filter.is_none() {
            let cpu = cpus.first().map_or("max", String::as_str);
            for filter in [SELFTEST_FILTER, MCE_NESTING_FILTER] {
                let args = self.kernel_args(Strategy::Linux, Some(filter));
                jobs.push(Job::Suite(self.spec(Strategy::Linux, cpu, args)));
            }
        }
        jobs.extend(fast.into_iter().map(Job::Check));
        jobs
    }
}

pub fn main(args: Args) -> Result<ExitCode> {
    if let Some(filter) = &args.filter {
        opts::check_kernel_args(&[format!("filter={filter}")])?;
    }
    setup::ensure(Purpose::Test, args.yes)?;
    if args.list {
        return list(&args);
    }
    // Every run's JSON is kept under target/runs (the report's trend); a
    // run of part of the catalog is named so, and left out of the trend.
    let partial = args.filter.is_some() || args.entry.is_some() || args.cpu.is_some();
    let kept = trend::new_run_path(partial)?;
    let json_path = args.json.clone().unwrap_or_else(|| kept.clone());
    let json = Some(JsonLog::create(&json_path)?);
    if let Some(path) = &args.junit {
        // Fail now on a path that cannot be written, not after the run.
        junit::write(path, &[])?;
    }
    let host = args.wanted(HOST_TESTS).then(host_tests);
    let gates = gates::run(|name| args.wanted(name));
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
        tally.expect(usize::from(host.is_some()) + gates.len() + early.len());
        for report in host.into_iter().chain(gates).chain(early) {
            tally.record(report);
        }
    }
    if let Some(ready) = ready {
        run_jobs(&args, ready, &tally, json.as_ref());
    }
    let mut tally = tally.into_inner().unwrap_or_else(|p| p.into_inner());
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
    if json_path != kept
        && let Err(e) = std::fs::copy(&json_path, &kept)
    {
        eprintln!("warning: keeping the run in `{}`: {e}", kept.display());
    }
    let elf = args
        .common
        .kernel
        .clone()
        .unwrap_or_else(kernel::kernel_path);
    let elf = elf.is_file().then_some(elf);
    if args.wanted(BROWSER) {
        tally.expect(1);
        let report = match browser::check(&json_path, elf.as_deref()) {
            Ok(note) => Report {
                note,
                ..Report::new(BROWSER, Verdict::Pass)
            },
            Err(e) => Report::new(BROWSER, Verdict::Fail(format!("{e:#}"))),
        };
        tally.record(report);
    }
    if args.report {
        let out = crate::target_dir().join("report.html");
        match html::write(&json_path, None, elf.as_deref(), &out) {
            Ok(()) => eprintln!("report: {}", out.display()),
            Err(e) => {
                eprintln!("error: the report: {e:#}");
                failed_output = true;
            }
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
