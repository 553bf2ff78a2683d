//! Bringing CPUs up and giving them work.
//!
//! The BSP prepares every CPU's slot (stacks, TSS) before it starts it, so an AP
//! needs nothing from the BSP after it runs. Started APs wait in `serve` for a
//! function to run (`run_on`); that is how tests put code on a chosen CPU.

use core::sync::atomic::{AtomicU64, Ordering};

use spin::Mutex;

use super::MAX_CPUS;
use super::boot_info::{ApLaunch, BootInfo};
use super::percpu::{self, IST_COUNT, StackBounds};
use super::{gdt, idt, lapic, time};

/// How long an AP may take to check in after its SIPI or goto.
const AP_START_TIMEOUT_US: u64 = 1_000_000;

/// Stacks a CPU needs, allocated by the BSP (with guard pages) before the start.
pub struct CpuStacks {
    pub kernel: StackBounds,
    /// TSS.RSP0: where an interrupt from ring 3 lands. Separate from `kernel`,
    /// whose live frames sit below the context that entered ring 3.
    pub ring0: StackBounds,
    pub ist: [StackBounds; IST_COUNT],
}

/// Loads this CPU's GDT/TSS and the IDT, points GS at its slot and enables its
/// local APIC. Runs on the CPU itself, first thing.
pub fn init_this_cpu(index: usize) {
    let cpu = percpu::cpu(index);
    gdt::load(cpu); // first: loading the null GS selector clears the GS base
    percpu::install(index);
    idt::load();
    lapic::init_this_cpu(cpu);
    cpu.set_online();
}

/// Sets up the BSP (index 0). The IDT's gates are filled before this
/// (`entry::traps::install`); this loads it.
pub fn init_bsp(lapic_id: u32, stacks: CpuStacks) {
    mask_legacy_pic();
    percpu::cpu(0).prepare(0, lapic_id, stacks.ist, stacks.ring0);
    init_this_cpu(0);
}

/// Masks every line of both 8259 PICs: the kernel uses the local APIC only.
fn mask_legacy_pic() {
    // SAFETY: writing the PICs' interrupt mask registers only silences them.
    unsafe {
        super::port::outb(0x21, 0xff);
        super::port::outb(0xa1, 0xff);
    }
}

/// Starts every AP in `boot.cpus[1..]`, all at once, then waits for each to
/// check in; returns how many CPUs are online (the BSP included). A CPU that
/// never checks in is handed to `did_not_start` (index, LAPIC ID) and skipped.
/// Started side by side, the APs' bring-up overlaps (under TCG each is a host
/// thread); one after the other, the waits added up (`cargo xtask bench boot`).
pub fn start_aps(
    boot: &BootInfo,
    mut alloc_stacks: impl FnMut() -> CpuStacks,
    mut did_not_start: impl FnMut(usize, u32),
) -> usize {
    let aps = || boot.cpus.iter().enumerate().skip(1).take(MAX_CPUS - 1);
    let start = super::cpu::rdtsc();
    for (index, entry) in aps() {
        let stacks = alloc_stacks();
        percpu::cpu(index).prepare(index, entry.lapic_id, stacks.ist, stacks.ring0);
        let launch = ApLaunch {
            stack_top: stacks.kernel.top,
            entry: ap_entry,
            arg: index as u64,
        };
        boot.ap_starter.start(entry, launch);
    }
    for (index, entry) in aps() {
        // Halting between checks (`lapic::nap`): under TCG with fewer host
        // cores than vCPUs (2 for 4 here) a spinning BSP keeps the APs it
        // waits for off a core: over 20 PVH boots each, `ap_start_us` went
        // past 4 ms in 4 with spinning (up to 5.6 ms), never past 2.9 ms
        // with naps.
        let online = || percpu::cpu(index).is_online();
        if !time::wait_until_pausing(AP_START_TIMEOUT_US, online, lapic::nap) {
            did_not_start(index, entry.lapic_id);
        }
    }
    let took = (super::cpu::rdtsc() - start) / time::ticks_per_us().max(1);
    AP_START_US.store(took, Ordering::Relaxed);
    online_count()
}

/// How long `start_aps` took, from the first AP's stacks to the last check-in.
static AP_START_US: AtomicU64 = AtomicU64::new(0);

pub fn ap_start_us() -> u64 {
    AP_START_US.load(Ordering::Relaxed)
}

pub fn online_count() -> usize {
    (0..MAX_CPUS)
        .filter(|&i| percpu::cpu(i).is_online())
        .count()
}

extern "C" fn ap_entry(index: u64) -> ! {
    init_this_cpu(index as usize);
    serve(index as usize)
}

/// Work for another CPU: a plain function and one argument word, so that no
/// closure state has to cross CPUs.
pub type Job = fn(u64) -> u64;

struct Mailbox {
    work: Mutex<Option<(Job, u64)>>,
    posted: AtomicU64,
    finished: AtomicU64,
    result: AtomicU64,
}

static MAILBOXES: [Mailbox; MAX_CPUS] = [const {
    Mailbox {
        work: Mutex::new(None),
        posted: AtomicU64::new(0),
        finished: AtomicU64::new(0),
        result: AtomicU64::new(0),
    }
}; MAX_CPUS];

/// An AP's idle loop: run whatever `start_on` posts, forever.
fn serve(index: usize) -> ! {
    let mailbox = &MAILBOXES[index];
    loop {
        let work = mailbox.work.lock().take();
        match work {
            Some((job, arg)) => {
                let result = job(arg);
                mailbox.result.store(result, Ordering::Relaxed);
                mailbox.finished.fetch_add(1, Ordering::Release);
            }
            // Halting instead of spinning leaves the host's cores to the CPUs
            // under test: under TCG every vCPU is a host thread.
            None => super::cpu::wait_for_interrupt(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunError {
    Offline,
    /// The CPU has not finished its previous job.
    Busy,
    /// Joining a CPU that was given no job.
    NotStarted,
    Timeout,
}

/// Posts `job(arg)` to CPU `index` (an AP) and returns at once.
pub fn start_on(index: usize, job: Job, arg: u64) -> Result<(), RunError> {
    if index >= MAX_CPUS || !percpu::cpu(index).is_online() || index == percpu::this().index() {
        return Err(RunError::Offline);
    }
    let mailbox = &MAILBOXES[index];
    if mailbox.posted.load(Ordering::Acquire) != mailbox.finished.load(Ordering::Acquire) {
        return Err(RunError::Busy);
    }
    mailbox.posted.fetch_add(1, Ordering::AcqRel);
    *mailbox.work.lock() = Some((job, arg));
    lapic::send_ipi(percpu::cpu(index).lapic_id(), super::vectors::WAKEUP_VECTOR);
    Ok(())
}

/// Posts `job(arg)` to AP `index` before `start_aps` starts it: `serve` runs
/// it as soon as the AP checks in, with no wake-up IPI (a halted vCPU is a
/// host thread the host must schedule again). `join` waits for it as usual.
/// Offline for the BSP or an index past `MAX_CPUS`; Busy once the AP runs
/// (use `start_on`) or when it already has a job.
pub fn post_before_start(index: usize, job: Job, arg: u64) -> Result<(), RunError> {
    if index == 0 || index >= MAX_CPUS {
        return Err(RunError::Offline);
    }
    let mailbox = &MAILBOXES[index];
    if percpu::cpu(index).is_online() || mailbox.posted.load(Ordering::Acquire) != 0 {
        return Err(RunError::Busy);
    }
    mailbox.posted.fetch_add(1, Ordering::AcqRel);
    *mailbox.work.lock() = Some((job, arg));
    Ok(())
}

/// Waits up to `timeout_us` for the job posted to `index` and returns its result.
pub fn join(index: usize, timeout_us: u64) -> Result<u64, RunError> {
    let mailbox = MAILBOXES.get(index).ok_or(RunError::Offline)?;
    let posted = mailbox.posted.load(Ordering::Acquire);
    if posted == 0 {
        return Err(RunError::NotStarted);
    }
    if time::wait_until(timeout_us, || {
        mailbox.finished.load(Ordering::Acquire) >= posted
    }) {
        Ok(mailbox.result.load(Ordering::Relaxed))
    } else {
        Err(RunError::Timeout)
    }
}

/// Runs `job(arg)` on CPU `index` and waits; on the calling CPU it just calls it.
pub fn run_on(index: usize, job: Job, arg: u64, timeout_us: u64) -> Result<u64, RunError> {
    if index == percpu::this().index() {
        return Ok(job(arg));
    }
    start_on(index, job, arg)?;
    join(index, timeout_us)
}
