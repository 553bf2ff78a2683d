//! The kernel side of testkit: the `Platform` the tests run on and the suite
//! runner called by `kernel_main`. Events go out through `report`; this layer
//! adds the watchdog's arming around each test.

use core::fmt::Write;

use testkit::protocol::{Door, Event, LapicMode, Setting};
use testkit::run::{RunConfig, run_tests};
use testkit::{Job, Machine, Platform, RunError, Selection, Strategy, TESTS};

use crate::arch::{boot_info, cpu, lapic, percpu, smp, time};
use crate::{console, report, watchdog};

struct KernelPlatform;

fn run_error(e: smp::RunError, cpu: usize, timeout_ms: u32) -> RunError {
    match e {
        smp::RunError::Offline => RunError::NoSuchCpu(cpu),
        smp::RunError::Busy => RunError::Busy(cpu),
        smp::RunError::NotStarted => RunError::NotStarted(cpu),
        smp::RunError::Timeout => RunError::Timeout { cpu, timeout_ms },
    }
}

impl Platform for KernelPlatform {
    fn cpu_count(&self) -> usize {
        smp::online_count()
    }

    fn current_cpu(&self) -> usize {
        percpu::this().index()
    }

    fn cycles(&self) -> u64 {
        cpu::rdtsc()
    }

    fn start_on(&mut self, cpu: usize, job: Job, arg: u64) -> Result<(), RunError> {
        smp::start_on(cpu, job, arg).map_err(|e| run_error(e, cpu, 0))
    }

    fn join(&mut self, cpu: usize, timeout_ms: u32) -> Result<u64, RunError> {
        smp::join(cpu, u64::from(timeout_ms) * 1000).map_err(|e| run_error(e, cpu, timeout_ms))
    }

    fn emit(&mut self, event: &Event<&str>) {
        emit(event);
    }

    /// Every online CPU's checker: findings, and incidents (damaged entries and
    /// canaries). Between tests no IST handler runs anywhere.
    fn drain_checker(&mut self, each: &mut dyn FnMut(testkit::Corruption<'static>)) -> u64 {
        let mut incidents = 0;
        for cpu in 0..smp::online_count() {
            let report = crate::entry::checker::take_report(cpu, |c| each(c.on_wire(cpu)));
            incidents += report.incidents;
        }
        incidents
    }

    /// On the calling CPU itself the job just runs; elsewhere through the mailbox.
    fn run_on(&mut self, cpu: usize, job: Job, arg: u64, timeout_ms: u32) -> Result<u64, RunError> {
        smp::run_on(cpu, job, arg, u64::from(timeout_ms) * 1000)
            .map_err(|e| run_error(e, cpu, timeout_ms))
    }
}

/// Arms the watchdog for a test's start and disarms it at its result, around
/// writing the event.
fn emit(event: &Event<&str>) {
    if let Event::Result { .. } = event {
        watchdog::disarm();
    }
    report::emit(event);
    if let Event::Start {
        cpu, timeout_ms, ..
    } = event
    {
        watchdog::arm(*cpu as usize, *timeout_ms);
    }
}

/// `list=1`: name every registered test (with its crash expectation) and stop.
fn list_tests() {
    let mut names: heapless::Vec<&testkit::TestDesc, 256> = TESTS.iter().collect();
    names.sort_unstable_by_key(|t| t.name);
    emit(&Event::Plan {
        count: names.len() as u32,
    });
    for test in &names {
        emit(&Event::Planned {
            test: test.name,
            expect_crash: test.expected_crash(),
        });
    }
    emit(&Event::Done {
        passed: 0,
        failed: 0,
        skipped: 0,
        not_reproduced: 0,
    });
}

/// What CPUID says about the hypervisor, if any.
pub fn machine() -> Machine {
    if cpu::cpuid(1, 0).2 & (1 << 31) == 0 {
        return Machine::NoHypervisor;
    }
    let (_, b, c, d) = cpu::cpuid(0x4000_0000, 0);
    let mut vendor = [0u8; 12];
    vendor[..4].copy_from_slice(&b.to_le_bytes());
    vendor[4..8].copy_from_slice(&c.to_le_bytes());
    vendor[8..].copy_from_slice(&d.to_le_bytes());
    match &vendor {
        b"TCGTCGTCGTCG" => Machine::Tcg,
        b"KVMKVMKVM\0\0\0" => Machine::Kvm,
        _ => Machine::OtherVm,
    }
}

/// Runs the selected suite; true when nothing failed.
pub fn run_suite(
    door: boot_info::Door,
    cmdline: &str,
    selection: &Selection<'_>,
    strategy: Strategy,
) -> bool {
    let seed = selection.seed.unwrap_or(1);
    let machine = machine();
    let mut build: heapless::String<32> = heapless::String::new();
    let _ = write!(build, "istorm-{}", env!("CARGO_PKG_VERSION"));
    let setting = Setting {
        door: match door {
            boot_info::Door::Pvh => Door::Pvh,
            boot_info::Door::Limine => Door::Limine,
        },
        machine,
        cpus: smp::online_count() as u32,
        lapic: match lapic::mode() {
            lapic::Mode::X2apic => LapicMode::X2apic,
            lapic::Mode::Xapic => LapicMode::Xapic,
        },
        strategy,
        seed,
    };
    emit(&setting.hello(time::ticks_per_us(), build.as_str()));
    if crate::cmdline::Cmdline::new(cmdline).value("list") == Some("1") {
        list_tests();
        return true;
    }
    let config = RunConfig {
        strategy,
        machine,
        seed,
    };
    let passed = run_tests(&mut KernelPlatform, &TESTS, selection, &config).all_passed();
    if let Some(text) = console::summary::show() {
        // The summary writes only printable ASCII.
        report::summary(core::str::from_utf8(&text).unwrap_or(""));
    }
    passed
}
