//! istorm: a unikernel that torture-tests x86-64 exception entry.
//!
//! Data flows one way: boot (two doors) -> arch -> entry -> scenarios -> wire.
//!
//! The modules are layers; a module imports only from layers below it
//! (`xtask/tests/layering.rs` holds the tree to this list; docs/architecture.md
//! says why), bottom first:
//!
//! 1. `arch`: the CPU and the machine: descriptors, IDT gates, APIC, SMP,
//!    debug registers, vectors and IST slots, `MAX_CPUS`, and `BootInfo`, the
//!    shape in which both doors hand over what the loader said.
//! 2. `cmdline`: this boot's command line.
//! 3. `mm`: frames, stacks with guard pages, MMIO and user mappings.
//! 4. `console`: serial and framebuffer text, the results screen.
//! 5. `report`: the wire writer and the fatal paths (panic, unexpected
//!    exception, hang), which name the running test.
//! 6. `entry`: every stub (#DB, NMI, #MC, the plain ones), the dispatcher,
//!    the checker, the strategies, the tracing hook, breakpoints with their
//!    deny-list.
//! 7. `watchdog`: the LAPIC-timer watchdog (sets `entry`'s timer hook).
//! 8. `inject`: machine checks on request from the host.
//! 9. `scenarios`: the tests.
//! 10. `harness`: testkit's `Platform` and the suite runner.
//! 11. the crate root (`kernel_main`, the panic handler).
//! 12. `boot`: the doors. They run first, but sit on top: each fills a
//!     `BootInfo` and calls `kernel_main`; nothing below knows which door ran.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod arch;
mod boot;
#[forbid(unsafe_code)]
mod cmdline;
#[forbid(unsafe_code)]
mod console;
mod entry;
#[forbid(unsafe_code)]
mod harness;
#[forbid(unsafe_code)]
mod inject;
mod mm;
#[forbid(unsafe_code)]
mod report;
#[forbid(unsafe_code)]
mod scenarios;
#[forbid(unsafe_code)]
mod watchdog;

use arch::boot_info::BootInfo;
use arch::exit::{ExitCode, exit};
use arch::percpu::{IST_COUNT, IST_STACK_PAGES, StackBounds};
use arch::smp::CpuStacks;
use arch::{lapic, smp};

const KERNEL_STACK_PAGES: u64 = 16;
const RING0_STACK_PAGES: u64 = 4;

fn alloc_cpu_stacks() -> CpuStacks {
    let mut ist = [StackBounds::default(); IST_COUNT];
    for stack in &mut ist {
        *stack = mm::alloc_stack(IST_STACK_PAGES);
        entry::checker::paint(*stack);
    }
    CpuStacks {
        kernel: mm::alloc_stack(KERNEL_STACK_PAGES),
        ring0: mm::alloc_stack(RING0_STACK_PAGES),
        ist,
    }
}

/// Both doors end here with the same `BootInfo`.
pub fn kernel_main(boot: &BootInfo) -> ! {
    // QEMU's TSC starts at 0 with the machine: this is how long the firmware
    // and the door took (`cargo xtask bench boot` reports it).
    let entered = arch::cpu::rdtsc();
    console::framebuffer::init(boot.framebuffer.as_ref());
    // The TSC is calibrated across the set-up below, which needs no timing;
    // starting the APs does (its waits and timeout). Clearing a framebuffer
    // comes first, so the window does not grow with the screen (past 55 ms
    // it falls back to the blocking calibration).
    let calibration = arch::time::open();
    kprintln!(
        "istorm {}: x86-64 exception entry torture tests",
        env!("CARGO_PKG_VERSION")
    );
    cmdline::save(boot.cmdline());
    let cmdline = cmdline::Cmdline::new(boot.cmdline());
    let selection =
        testkit::Selection::parse(boot.cmdline()).unwrap_or_else(|e| panic!("command line: {e}"));
    let strategy = selection.strategy.unwrap_or(entry::Strategy::Linux);
    entry::checker::set_mode(entry::checker::Mode::parse(cmdline.value("checker")));

    mm::init(boot);
    for cpu in 0..boot.cpus.len().min(arch::MAX_CPUS) {
        entry::checker::attach(cpu, mm::alloc_zeroed(entry::checker::STORAGE_BYTES));
    }
    let mode = lapic::select_mode(mm::map_mmio);
    entry::traps::install();
    smp::init_bsp(boot.cpus[0].lapic_id, alloc_cpu_stacks());
    entry::install(strategy);
    calibration.close();
    let set_up = arch::cpu::rdtsc();
    let watch = watchdog::prepare(boot.cpus.len().min(arch::MAX_CPUS));
    let online = smp::start_aps(boot, alloc_cpu_stacks, |index, lapic_id| {
        kprintln!("smp: cpu {index} (lapic id {lapic_id}) did not start");
    });
    kprintln!(
        "boot: door={} cpus={} lapic={}",
        boot.door,
        online,
        mode.name()
    );
    if online != boot.cpus.len() {
        kprintln!("boot: only {online} of {} CPUs came up", boot.cpus.len());
        exit(ExitCode::Failure);
    }
    let tsc_mhz = arch::time::ticks_per_us();
    kprintln!(
        "time: tsc_mhz={tsc_mhz} ap_start_us={} main_at_us={} setup_us={}",
        smp::ap_start_us(),
        entered / tsc_mhz,
        (set_up - entered) / tsc_mhz
    );
    if watchdog::start(watch).is_none() {
        kprintln!("watchdog: one CPU only, the host timeout is the only guard");
    }
    if let Some(which) = cmdline.value("selftest") {
        scenarios::selftest::run(which);
    }
    let passed = harness::run_suite(boot.door, boot.cmdline(), &selection, strategy);
    if cmdline.value("hold") == Some("1") {
        // Keep the screen up (results, QR code) until the host has taken its
        // screenshot and stops QEMU.
        report::hold();
    }
    exit(if passed {
        ExitCode::Success
    } else {
        ExitCode::Failure
    })
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    report::panic(info)
}
