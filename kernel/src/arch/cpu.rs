//! Small CPU primitives: CPUID, control registers, MSRs, halting, stack switch.

use core::arch::{asm, x86_64::__cpuid_count};

pub const IA32_GS_BASE: u32 = 0xc000_0101;

/// CPUID leaf/subleaf as (eax, ebx, ecx, edx).
pub fn cpuid(leaf: u32, subleaf: u32) -> (u32, u32, u32, u32) {
    #[allow(unused_unsafe)]
    // SAFETY: CPUID exists on every x86-64 CPU and has no side effects.
    let r = unsafe { __cpuid_count(leaf, subleaf) };
    (r.eax, r.ebx, r.ecx, r.edx)
}

/// Whether the CPU offers x2APIC mode (CPUID.1:ECX bit 21).
pub fn has_x2apic() -> bool {
    cpuid(1, 0).2 & (1 << 21) != 0
}

/// The APIC ID of the running CPU, as the firmware's tables list it.
pub fn apic_id() -> u32 {
    let max_leaf = cpuid(0, 0).0;
    if max_leaf >= 0xb {
        let (_, ebx, _, edx) = cpuid(0xb, 0);
        if ebx != 0 {
            return edx; // full 32-bit x2APIC ID
        }
    }
    cpuid(1, 0).1 >> 24
}

pub fn read_cr3() -> u64 {
    let value: u64;
    // SAFETY: reading CR3 has no side effects in ring 0.
    unsafe { asm!("mov {}, cr3", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

pub fn read_cr2() -> u64 {
    let value: u64;
    // SAFETY: reading CR2 has no side effects in ring 0.
    unsafe { asm!("mov {}, cr2", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

/// # Safety
/// Writing an MSR can change anything about the CPU; the caller knows this one.
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: forwarded from the caller.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
             options(nostack, preserves_flags));
    }
}

/// # Safety
/// Reading an MSR the CPU does not have raises #GP; the caller knows this one.
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: forwarded from the caller; RDMSR has no other effect.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC is unprivileged by default and has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Stops this CPU for good: interrupts off, then HLT forever (an NMI may wake
/// it; it halts again).
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: CLI/HLT in ring 0 only stop this CPU.
        unsafe { asm!("cli; hlt", options(nomem, nostack)) };
    }
}

/// Sleeps until an interrupt or NMI arrives. Interrupts are enabled only for
/// the HLT itself: STI's one-instruction shadow means an interrupt that became
/// pending before it is taken after HLT starts, so no wake-up is lost.
pub fn wait_for_interrupt() {
    // SAFETY: the IDT handles every vector that can arrive; IF is off again after.
    unsafe { asm!("sti; hlt; cli", options(nomem, nostack)) };
}

/// Raises #UD on purpose (`selftest=ud2`).
pub fn raise_invalid_opcode() {
    // SAFETY: UD2 raises #UD, which the IDT handles; nothing else happens.
    unsafe { asm!("ud2", options(nomem, nostack)) };
}

/// INT3: a #BP trap, handled and counted when breakpoints are expected.
pub fn int3() {
    // SAFETY: raises #BP, which the IDT handles; execution continues after it.
    unsafe { asm!("int3", options(nomem, nostack)) };
}

/// Ends the machine with a triple fault (`selftest::triple_fault`): an empty
/// IDT turns the #UD into #GP, #DF and then a shutdown, which QEMU with
/// `-no-reboot` reports as an exit with status 0.
pub fn triple_fault() -> ! {
    let empty = x86_64::structures::DescriptorTablePointer {
        limit: 0,
        base: x86_64::VirtAddr::new(0),
    };
    // SAFETY: deliberately fatal; nothing runs after the fault.
    unsafe {
        x86_64::instructions::tables::lidt(&empty);
        asm!("ud2", options(nomem, nostack, noreturn));
    }
}

/// Loads SS from `*selector` (which must hold the current SS selector) and
/// executes INT3 right after it, optionally with RFLAGS.TF set across the pair.
/// MOV SS blocks debug exceptions until the next instruction completes, so on
/// silicon the #DB (single-step, or a data breakpoint on `*selector`) is
/// delivered on the first instruction of the #BP handler (CVE-2018-8897).
pub fn mov_ss_then_int3(selector: &core::sync::atomic::AtomicU16, trap_flag: bool) {
    // SAFETY: SS is reloaded with the selector it already holds; INT3 and the
    // #DBs raise handled exceptions; TF is cleared again before returning (the
    // single-steps it causes on the way out are traps the #DB handler counts).
    unsafe {
        if trap_flag {
            asm!(
                "pushfq",
                "or qword ptr [rsp], 0x100",      // TF
                "popfq",
                "mov ss, word ptr [{sel}]",
                "int3",
                "pushfq",
                "and qword ptr [rsp], ~0x100",
                "popfq",
                sel = in(reg) selector.as_ptr(),
            );
        } else {
            asm!("mov ss, word ptr [{sel}]", "int3", sel = in(reg) selector.as_ptr());
        }
    }
}

/// The current SS selector.
pub fn ss() -> u16 {
    let ss: u16;
    // SAFETY: reading a segment register has no side effects.
    unsafe { asm!("mov {0:x}, ss", out(reg) ss, options(nomem, nostack, preserves_flags)) };
    ss
}

/// ICEBP (INT1, 0xf1): a trap-like #DB with no DR6 condition bit and no
/// privilege check.
pub fn icebp() {
    // SAFETY: raises #DB, which the IDT handles on its own IST stack.
    unsafe { asm!(".byte 0xf1", options(nomem, nostack)) };
}

/// Switches to `stack_top` and calls `entry(arg)`; never returns. Used to move an
/// AP from the loader's stack onto its own.
pub fn switch_stack_and_call(stack_top: u64, entry: extern "C" fn(u64) -> !, arg: u64) -> ! {
    // SAFETY: the new stack is a fresh, mapped kernel stack owned by this CPU;
    // nothing on the old stack is used again because `entry` never returns.
    unsafe {
        asm!(
            "mov rsp, {stack}",
            "xor ebp, ebp",       // end of the frame-pointer chain
            "call {entry}",
            "ud2",
            stack = in(reg) stack_top,
            entry = in(reg) entry,
            in("rdi") arg,
            options(noreturn),
        )
    }
}

/// The stack pointer of the caller (approximately: its frame's RSP).
#[inline(always)]
pub fn stack_pointer() -> u64 {
    let rsp: u64;
    // SAFETY: reading RSP has no side effects.
    unsafe { asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack, preserves_flags)) };
    rsp
}

/// The running code's RFLAGS.
pub fn rflags() -> u64 {
    let flags: u64;
    // SAFETY: PUSHFQ/POP read RFLAGS through the stack and change nothing.
    unsafe { asm!("pushfq", "pop {}", out(reg) flags, options(nomem, preserves_flags)) };
    flags
}
