//! The machine-check architecture (MCA): what a CPU needs before a machine
//! check can be delivered at all, and the registers a #MC handler reads and
//! clears. No #MC entry lives here (see `entry::mc`), only the MSRs.
//!
//! Facts this module relies on (SDM vol. 3, ch. 16; measured on QEMU 10 TCG,
//! whose monitor `mce` command follows KVM's `kvm_vcpu_ioctl_x86_set_mce`):
//! - CPUID.1:EDX.MCE (bit 7) says #MC exists, .MCA (bit 14) that the MSRs do.
//! - With CR4.MCE clear a machine check shuts the CPU down (QEMU: "MCE
//!   capability is not enabled, raising triple fault").
//! - An uncorrected error (MCi_STATUS.UC) is reported only when IA32_MCG_CTL is
//!   all ones (if MCG_CAP.CTL_P says it exists) and the bank's MCi_CTL is all
//!   ones; otherwise the injection is silently dropped.
//! - MCG_STATUS.MCIP is set while a #MC is being handled; a second #MC with
//!   MCIP still set shuts the machine down. The handler clears MCIP (writes 0
//!   to MCG_STATUS) once it is done, and the bank's MCi_STATUS (writing 0 is
//!   the one value every implementation accepts).

use core::arch::asm;

use super::cpu::{cpuid, rdmsr, wrmsr};

const IA32_MCG_CAP: u32 = 0x179;
const IA32_MCG_STATUS: u32 = 0x17a;
const IA32_MCG_CTL: u32 = 0x17b;
/// MCi_CTL of bank 0; bank i's CTL, STATUS, ADDR, MISC are at 0x400 + 4i + 0..3.
const IA32_MC0_CTL: u32 = 0x400;

const CPUID_MCE: u32 = 1 << 7;
const CPUID_MCA: u32 = 1 << 14;
const CR4_MCE: u64 = 1 << 6;

const MCG_CAP_COUNT: u64 = 0xff;
const MCG_CAP_CTL_P: u64 = 1 << 8;

/// MCG_STATUS: the interrupted RIP may be restarted ...
pub const MCG_STATUS_RIPV: u64 = 1 << 0;
/// ... and a machine check is in progress.
pub const MCG_STATUS_MCIP: u64 = 1 << 2;

/// MCi_STATUS bits: valid, uncorrected, enabled, context corrupt.
pub const MCI_STATUS_VAL: u64 = 1 << 63;
pub const MCI_STATUS_UC: u64 = 1 << 61;
pub const MCI_STATUS_EN: u64 = 1 << 60;
pub const MCI_STATUS_PCC: u64 = 1 << 57;

/// The bank the tests ask the host to fill (any bank the CPU has would do).
pub const TEST_BANK: u32 = 1;
/// An uncorrected, enabled error with a corrupt processor context: the kind
/// that must raise #MC (a corrected one is only logged in the bank).
pub const TEST_STATUS: u64 = MCI_STATUS_VAL | MCI_STATUS_UC | MCI_STATUS_EN | MCI_STATUS_PCC;
/// MCG_STATUS as the injected #MC sets it: in progress, restartable.
pub const TEST_MCG_STATUS: u64 = MCG_STATUS_MCIP | MCG_STATUS_RIPV;

/// Why a CPU cannot take the tests' machine checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unsupported {
    /// CPUID has no MCE or no MCA.
    NoMca,
    /// MCG_CAP reports fewer banks than `TEST_BANK` needs.
    TooFewBanks(u64),
}

/// Whether CPUID offers #MC and the MCA registers.
pub fn available() -> bool {
    let edx = cpuid(1, 0).3;
    edx & CPUID_MCE != 0 && edx & CPUID_MCA != 0
}

/// MCG_CAP: the bank count and whether IA32_MCG_CTL exists.
fn capabilities() -> (u64, bool) {
    // SAFETY: MCG_CAP exists whenever CPUID reports MCA (checked by callers).
    let cap = unsafe { rdmsr(IA32_MCG_CAP) };
    (cap & MCG_CAP_COUNT, cap & MCG_CAP_CTL_P != 0)
}

fn read_cr4() -> u64 {
    let value: u64;
    // SAFETY: reading CR4 has no side effects in ring 0.
    unsafe { asm!("mov {}, cr4", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

/// Arms machine checks on the running CPU: CR4.MCE, IA32_MCG_CTL (when it
/// exists) and every bank's MCi_CTL all ones, every MCi_STATUS and MCG_STATUS
/// cleared. Idempotent; returns the bank count.
pub fn enable() -> Result<u64, Unsupported> {
    if !available() {
        return Err(Unsupported::NoMca);
    }
    let (banks, ctl_p) = capabilities();
    if banks <= u64::from(TEST_BANK) {
        return Err(Unsupported::TooFewBanks(banks));
    }
    // SAFETY: the MSRs exist (CPUID.MCA, MCG_CAP's count and CTL_P); all ones
    // in the control registers enables reporting of every error, 0 clears a
    // status register; CR4.MCE only enables delivery of #MC, whose IDT gate
    // (IST_MC) exists from boot.
    unsafe {
        if ctl_p {
            wrmsr(IA32_MCG_CTL, u64::MAX);
        }
        for bank in 0..banks as u32 {
            wrmsr(IA32_MC0_CTL + 4 * bank, u64::MAX);
            wrmsr(IA32_MC0_CTL + 4 * bank + 1, 0);
        }
        wrmsr(IA32_MCG_STATUS, 0);
        let cr4 = read_cr4() | CR4_MCE;
        asm!("mov cr4, {}", in(reg) cr4, options(nomem, nostack, preserves_flags));
    }
    Ok(banks)
}

/// What a #MC handler found: MCG_STATUS and the first valid bank.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Found {
    pub mcg_status: u64,
    /// The bank whose MCi_STATUS.VAL was set (u32::MAX: none).
    pub bank: u32,
    pub status: u64,
}

/// Reads MCG_STATUS and the banks, for a #MC handler (or a test that wants to
/// see MCIP). Reads only; `clear` ends the machine check.
pub fn read() -> Found {
    // SAFETY: called on a CPU where `enable` succeeded (the #MC handler runs
    // only on such a CPU: without CR4.MCE there is no #MC); reads only.
    unsafe {
        let mcg_status = rdmsr(IA32_MCG_STATUS);
        let (banks, _) = capabilities();
        for bank in 0..banks as u32 {
            let status = rdmsr(IA32_MC0_CTL + 4 * bank + 1);
            if status & MCI_STATUS_VAL != 0 {
                return Found {
                    mcg_status,
                    bank,
                    status,
                };
            }
        }
        Found {
            mcg_status,
            bank: u32::MAX,
            status: 0,
        }
    }
}

/// Ends a machine check: clears the bank's MCi_STATUS, then MCG_STATUS (MCIP
/// last: a #MC that comes after this is a new one, not a nested one).
pub fn clear(bank: u32) {
    // SAFETY: as in `read`; writing 0 to MCi_STATUS and MCG_STATUS is the
    // architectural way to release the bank and leave the machine check.
    unsafe {
        if bank != u32::MAX {
            wrmsr(IA32_MC0_CTL + 4 * bank + 1, 0);
        }
        wrmsr(IA32_MCG_STATUS, 0);
    }
}

/// Whether a machine check is in progress on this CPU (MCG_STATUS.MCIP).
pub fn in_progress() -> bool {
    // SAFETY: as in `read`.
    unsafe { rdmsr(IA32_MCG_STATUS) & MCG_STATUS_MCIP != 0 }
}
