//! SYSENTER for the tests: the fast system call that, unlike SYSCALL, has no
//! flag mask. It clears IF, VM and RF, and nothing else: a TF set in ring 3
//! is still set on the first instruction of the entry, so the single-step
//! #DB arrives there, in ring 0, on the stack SYSENTER loaded from
//! IA32_SYSENTER_ESP and before the entry can have done anything at all.
//!
//! In 64-bit mode SYSENTER is an Intel instruction: AMD CPUs (and QEMU
//! models with AMD's vendor string) raise #UD for it in long mode.
//!
//! The test entry runs three NOPs and goes back to the parked kernel context
//! through `int 0x81`, like the SYSCALL test entry in `user`.

use core::arch::global_asm;
use core::cell::UnsafeCell;

use super::cpu::{cpuid, wrmsr};

const IA32_SYSENTER_CS: u32 = 0x174;
const IA32_SYSENTER_ESP: u32 = 0x175;
const IA32_SYSENTER_EIP: u32 = 0x176;
/// SYSENTER loads CS from the MSR and SS from CS + 8: 0x08 and 0x10 here.
const KERNEL_CS: u64 = 0x08;

global_asm!(
    r#"
    .pushsection .text.entry, "ax"
    .balign 16
    .global sysenter_entry
sysenter_entry:
    nop                         /* a leaked TF single-steps each of these */
    nop
    nop
    int 0x81                    /* back to the parked context (ring 0 gate) */
    ud2
    .global sysenter_entry_end
sysenter_entry_end:
    .popsection
"#
);

unsafe extern "C" {
    static sysenter_entry: u8;
    static sysenter_entry_end: u8;
}

/// The stack SYSENTER switches to (one per kernel: one test CPU at a time).
#[repr(C, align(16))]
struct Stack(UnsafeCell<[u8; 4096]>);
// SAFETY: only the CPU running a SYSENTER test uses it, one test at a time.
unsafe impl Sync for Stack {}
static STACK: Stack = Stack(UnsafeCell::new([0; 4096]));

/// Whether SYSENTER can work in 64-bit mode here: Intel's vendor string.
pub fn available() -> bool {
    let (_, ebx, ecx, edx) = cpuid(0, 0);
    (ebx, edx, ecx) == (0x756e_6547, 0x4965_6e69, 0x6c65_746e) // "GenuineIntel"
}

/// Points SYSENTER at the test entry on this CPU.
pub fn enable() {
    let top = STACK.0.get() as u64 + 4096;
    // SAFETY: the three MSRs exist on every CPU with SEP (all x86-64 CPUs);
    // SYSENTER then enters `sysenter_entry` in ring 0 on `STACK`, which no
    // one else uses; nothing executes SYSENTER outside the test.
    unsafe {
        wrmsr(IA32_SYSENTER_CS, KERNEL_CS);
        wrmsr(IA32_SYSENTER_ESP, top);
        wrmsr(IA32_SYSENTER_EIP, &raw const sysenter_entry as u64);
    }
}

/// The entry's instructions, and the stack top SYSENTER loads.
pub fn entry_range() -> (u64, u64) {
    (
        &raw const sysenter_entry as u64,
        &raw const sysenter_entry_end as u64,
    )
}

/// The RSP the entry starts on.
pub fn stack_top() -> u64 {
    STACK.0.get() as u64 + 4096
}

/// The hardware frame of the outermost #DB on this CPU, read from the top of
/// its #DB IST stack: (rip, cs, rsp), and whether the caller runs on that
/// stack. Meant for a #DB hook: it proves where the #DB came from.
pub fn outer_db_frame() -> ((u64, u64, u64), bool) {
    let stack = super::percpu::this().ist_stacks()[usize::from(super::percpu::IST_DB) - 1];
    let here = super::cpu::stack_pointer();
    let frame = stack.top - 5 * 8;
    // SAFETY: the #DB IST stack is mapped for the whole run; its top five
    // words are the outermost #DB's hardware frame while that #DB runs (and
    // stale but readable words otherwise).
    let word = |i: u64| unsafe { core::ptr::read_volatile((frame + 8 * i) as *const u64) };
    (
        (word(0), word(1), word(3)),
        here >= stack.bottom && here < stack.top,
    )
}
