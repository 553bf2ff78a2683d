//! The in-kernel watchdog: the local APIC timer of a CPU that no test uses (the
//! last one) ticks every ~10 ms; when the running test passes its timeout, the
//! watchdog asks the test's CPU where it is (an NMI records its RIP), reports a
//! `hang` event naming the test, CPU and RIP, and ends the run. The host's own
//! timeout stays as the last resort (one CPU, or a watchdog CPU kept busy).

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crate::arch::exit::{ExitCode, exit};
use crate::arch::{cpu, lapic, percpu, smp, time};
use crate::entry::handlers;

const NONE: usize = usize::MAX;
/// Grace beyond a test's own timeout before the watchdog bites.
const SLACK_US: u64 = 500_000;
const PROBE_WAIT_US: u64 = 50_000;
/// How long the watchdog's CPU may take to start its timer.
const START_TIMEOUT_US: u64 = 1_000_000;

static WATCH_CPU: AtomicUsize = AtomicUsize::new(NONE);
static TEST_CPU: AtomicUsize = AtomicUsize::new(0);
/// TSC deadline of the running test; 0 when no test runs.
static DEADLINE: AtomicU64 = AtomicU64::new(0);
static FIRED: AtomicBool = AtomicBool::new(false);

/// Before the APs start: hands the last of `cpus` CPUs the job of starting
/// its timer, which it runs as soon as it checks in. Waking it for the job
/// once it halted cost a PVH boot 0.5-1.6 ms under TCG (rdtsc stamps): its
/// vCPU is a host thread that the host has to schedule again. With one CPU
/// there is no watchdog.
pub fn prepare(cpus: usize) -> Option<usize> {
    if cpus < 2 {
        return None;
    }
    let watch = cpus - 1;
    crate::entry::set_timer_hook(tick);
    smp::post_before_start(watch, start_timer, 0).ok()?;
    Some(watch)
}

fn start_timer(_: u64) -> u64 {
    lapic::start_periodic_timer();
    0
}

/// After the APs start: waits until the `prepare`d CPU runs its timer.
pub fn start(watch: Option<usize>) -> Option<usize> {
    let watch = watch?;
    smp::join(watch, START_TIMEOUT_US).ok()?;
    WATCH_CPU.store(watch, Ordering::Release);
    Some(watch)
}

pub fn arm(test_cpu: usize, timeout_ms: u32) {
    TEST_CPU.store(test_cpu, Ordering::Relaxed);
    let budget_us = u64::from(timeout_ms) * 1000 + SLACK_US;
    DEADLINE.store(
        cpu::rdtsc() + budget_us * time::ticks_per_us(),
        Ordering::Release,
    );
}

pub fn disarm() {
    DEADLINE.store(0, Ordering::Release);
}

/// Timer interrupt on the watchdog CPU.
pub fn tick() {
    let deadline = DEADLINE.load(Ordering::Acquire);
    if deadline == 0 || cpu::rdtsc() < deadline || FIRED.swap(true, Ordering::AcqRel) {
        return;
    }
    let stuck = TEST_CPU.load(Ordering::Relaxed);
    handlers::request_probe(stuck);
    lapic::send_nmi(percpu::cpu(stuck).lapic_id());
    time::wait_until(PROBE_WAIT_US, || handlers::probed_rip(stuck) != 0);
    crate::report::hang(stuck, handlers::probed_rip(stuck));
    exit(ExitCode::Failure)
}
