//! istorm: a unikernel that torture-tests x86-64 exception entry.
//!
//! Data flows one way: boot (two doors) -> arch -> entry -> scenarios -> wire.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod arch;
mod boot;
mod cmdline;
mod console;
mod entry;
mod mm;
mod scenarios;

use arch::exit::{ExitCode, exit};
use arch::percpu::{IST_COUNT, StackBounds};
use arch::smp::CpuStacks;
use arch::{lapic, smp};
use boot::BootInfo;

/// 16 KiB per IST stack: deep enough for nested handlers, small enough that an
/// overflow into the guard page is quick to provoke on purpose.
const IST_STACK_PAGES: u64 = 4;
const KERNEL_STACK_PAGES: u64 = 16;

fn alloc_cpu_stacks() -> CpuStacks {
    let mut ist = [StackBounds::default(); IST_COUNT];
    for stack in &mut ist {
        *stack = mm::alloc_stack(IST_STACK_PAGES);
    }
    CpuStacks { kernel: mm::alloc_stack(KERNEL_STACK_PAGES), ist }
}

/// Both doors end here with the same `BootInfo`.
pub fn kernel_main(boot: &BootInfo) -> ! {
    kprintln!("istorm {}: x86-64 exception entry torture tests", env!("CARGO_PKG_VERSION"));
    arch::time::calibrate();
    mm::init(boot);
    let mode = lapic::select_mode(mm::map_mmio);
    smp::init_bsp(boot.cpus[0].lapic_id, alloc_cpu_stacks());
    let online = smp::start_aps(boot, alloc_cpu_stacks);
    kprintln!("boot: door={} cpus={} lapic={}", boot.door, online, mode.name());

    let cmdline = cmdline::Cmdline::new(boot.cmdline());
    if let Some(which) = cmdline.value("selftest") {
        scenarios::selftest::run(which);
    }
    let nmi_ok = scenarios::nmi_all_to_all::run(online);
    let all_up = online == boot.cpus.len();
    if !all_up {
        kprintln!("boot: only {online} of {} CPUs came up", boot.cpus.len());
    }
    exit(if nmi_ok && all_up { ExitCode::Success } else { ExitCode::Failure })
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let cpu = arch::percpu::try_index().map_or(-1, |i| i as i64);
    console::print_fatal(format_args!("panic: cpu={cpu} {info}\n"));
    exit(ExitCode::Failure)
}
