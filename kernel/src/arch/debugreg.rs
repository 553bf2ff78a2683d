//! The debug registers: DR0-DR3 (addresses), DR6 (status), DR7 (control).
//!
//! Facts from the SDM (vol. 3, ch. 18) this module relies on:
//! - DR7 bits L0-L3 (0, 2, 4, 6) enable slots; R/Wn (16 + 4n, 2 bits) picks
//!   execute (00), write (01) or read/write (11); LENn (18 + 4n, 2 bits) is
//!   1, 2, 8 (10b) or 4 (11b) bytes; execute breakpoints must use length 1.
//! - The CPU never clears DR6: a handler must clear it after reading, or stale
//!   B0-B3 bits misattribute the next #DB. The "clear" value keeps the reserved
//!   bits as the SDM says they read (0xffff0ff0); RTM (bit 16) reads 1 when clear.
//! - An execute breakpoint is a fault; resuming with RFLAGS.RF set lets the
//!   instruction run once without hitting it again. Data breakpoints are traps.
//!
//! A deny-list refuses breakpoints on entry text and on the tracing hook (the
//! analogue of Linux's NOKPROBE_SYMBOL / within_cpu_entry), unless forced.

use core::arch::asm;

pub const SLOTS: usize = 4;
pub const DR6_CLEAR: u64 = 0xffff_0ff0;
/// DR6.B0-B3 (which slot hit) and BS (single step).
pub const DR6_HITS: u64 = 0b1111 | (1 << 14);
/// DR6.BD: the #DB was a debug-register access with DR7.GD set.
pub const DR6_BD: u64 = 1 << 13;
/// DR7.GD: general detect, a #DB before any debug-register access.
pub const DR7_GD: u64 = 1 << 13;
pub const RFLAGS_RF: u64 = 1 << 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Execute,
    Write,
    ReadWrite,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakpointError {
    /// The address lies in a region the deny-list protects; `force` overrides.
    Denied,
    /// Length not 1, 2, 4 or 8, an execute breakpoint longer than 1, or an
    /// address not aligned to its length.
    BadLength,
    BadSlot,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Breakpoint {
    pub slot: usize,
    pub addr: u64,
    pub kind: Kind,
    pub len: u64,
}

pub fn read_dr6() -> u64 {
    let v: u64;
    // SAFETY: reading DR6 in ring 0 has no side effects (DR7.GD is never set
    // except by the GD test, which expects the resulting #DB).
    unsafe { asm!("mov {}, dr6", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Resets DR6 to its "no condition" value, as the SDM asks after each #DB.
pub fn clear_dr6() {
    // SAFETY: writing DR6 only changes the status the next #DB reports.
    unsafe { asm!("mov dr6, {}", in(reg) DR6_CLEAR, options(nomem, nostack, preserves_flags)) };
}

pub fn read_dr7() -> u64 {
    let v: u64;
    // SAFETY: as `read_dr6`.
    unsafe { asm!("mov {}, dr7", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Writes DR7. Only this module and the entry code arm breakpoints.
pub fn write_dr7(value: u64) {
    // SAFETY: a DR7 value only enables breakpoints whose addresses the callers
    // set; a hit raises #DB, which the IDT handles on its own IST stack.
    unsafe { asm!("mov dr7, {}", in(reg) value, options(nomem, nostack, preserves_flags)) };
}

fn write_addr(slot: usize, addr: u64) {
    // SAFETY: an address register alone does nothing until DR7 enables it.
    unsafe {
        match slot {
            0 => asm!("mov dr0, {}", in(reg) addr, options(nomem, nostack, preserves_flags)),
            1 => asm!("mov dr1, {}", in(reg) addr, options(nomem, nostack, preserves_flags)),
            2 => asm!("mov dr2, {}", in(reg) addr, options(nomem, nostack, preserves_flags)),
            _ => asm!("mov dr3, {}", in(reg) addr, options(nomem, nostack, preserves_flags)),
        }
    }
}

/// DR7 bits for `bp`: local enable, R/W and LEN fields.
pub fn dr7_bits(bp: &Breakpoint) -> u64 {
    let rw = match bp.kind {
        Kind::Execute => 0b00,
        Kind::Write => 0b01,
        Kind::ReadWrite => 0b11,
    };
    let len = match bp.len {
        1 => 0b00,
        2 => 0b01,
        8 => 0b10,
        _ => 0b11,
    };
    let shift = 16 + 4 * bp.slot as u64;
    (1 << (2 * bp.slot as u64)) | (rw << shift) | (len << (shift + 2))
}

/// The mask of every DR7 field belonging to `slot`.
fn slot_mask(slot: usize) -> u64 {
    (0b11 << (2 * slot as u64)) | (0b1111 << (16 + 4 * slot as u64))
}

unsafe extern "C" {
    static __entry_text_start: u8;
    static __entry_text_end: u8;
}

/// The entry stubs' section, as [start, end).
pub fn entry_text_range() -> (u64, u64) {
    (
        &raw const __entry_text_start as u64,
        &raw const __entry_text_end as u64,
    )
}

/// Address ranges nobody may put a breakpoint on without `force`: the entry
/// stubs' section, plus extra ranges the caller names.
fn denied(addr: u64, len: u64, extra: &[(u64, u64)]) -> bool {
    core::iter::once(entry_text_range())
        .chain(extra.iter().copied())
        .any(|(start, end)| addr < end && addr + len > start)
}

/// Checks a breakpoint request; `protected` are the deny-list's extra ranges.
pub fn validate(
    bp: &Breakpoint,
    force: bool,
    protected: &[(u64, u64)],
) -> Result<(), BreakpointError> {
    if bp.slot >= SLOTS {
        return Err(BreakpointError::BadSlot);
    }
    let len_ok = matches!(bp.len, 1 | 2 | 4 | 8) && bp.addr.is_multiple_of(bp.len);
    if !len_ok || (bp.kind == Kind::Execute && bp.len != 1) {
        return Err(BreakpointError::BadLength);
    }
    if !force && denied(bp.addr, bp.len, protected) {
        return Err(BreakpointError::Denied);
    }
    Ok(())
}

/// Arms `bp` on the running CPU (after `validate`).
pub fn arm(bp: &Breakpoint) {
    write_addr(bp.slot, bp.addr);
    write_dr7((read_dr7() & !slot_mask(bp.slot)) | dr7_bits(bp));
}

/// Disarms `slot` on the running CPU.
pub fn disarm(slot: usize) {
    write_dr7(read_dr7() & !slot_mask(slot));
}

/// Disarms every slot on the running CPU and clears DR6.
pub fn reset() {
    write_dr7(0);
    clear_dr6();
}
