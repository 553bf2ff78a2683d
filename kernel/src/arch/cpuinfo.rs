//! What the end-of-run summary says about the CPU: its CPUID brand string
//! and, where it can be read without risk, its microcode revision.

use core::arch::asm;

use crate::arch::cpu;

/// IA32_BIOS_SIGN_ID on Intel, PATCH_LEVEL on AMD: the microcode revision.
const MSR_UCODE_REV: u32 = 0x8b;

/// The brand string (CPUID 0x8000_0002..4), trimmed; `unknown` without it.
pub fn model() -> heapless::String<48> {
    let mut model = heapless::String::new();
    if cpu::cpuid(0x8000_0000, 0).0 < 0x8000_0004 {
        let _ = model.push_str("unknown");
        return model;
    }
    let mut bytes = [0u8; 48];
    for (i, leaf) in (0x8000_0002u32..=0x8000_0004).enumerate() {
        let (a, b, c, d) = cpu::cpuid(leaf, 0);
        for (j, reg) in [a, b, c, d].into_iter().enumerate() {
            let at = i * 16 + j * 4;
            bytes[at..at + 4].copy_from_slice(&reg.to_le_bytes());
        }
    }
    let text = bytes.split(|&b| b == 0).next().unwrap_or(&[]);
    let mut last_space = true;
    for &b in text {
        let c = if b.is_ascii_graphic() {
            char::from(b)
        } else {
            ' '
        };
        if !(c == ' ' && last_space) {
            let _ = model.push(c);
        }
        last_space = c == ' ';
    }
    while model.ends_with(' ') {
        model.pop();
    }
    model
}

/// The microcode revision, or `None` where reading it could fault or would
/// mean nothing: under a hypervisor (CPUID.1:ECX bit 31; TCG may not have the
/// MSR at all, KVM makes one up) and on vendors other than Intel and AMD.
/// A revision of 0 is "not loaded or not reported" and also `None`.
pub fn microcode() -> Option<u32> {
    if cpu::cpuid(1, 0).2 & (1 << 31) != 0 {
        return None;
    }
    let (_, b, c, d) = cpu::cpuid(0, 0);
    let mut vendor = [0u8; 12];
    for (i, reg) in [b, d, c].into_iter().enumerate() {
        vendor[i * 4..i * 4 + 4].copy_from_slice(&reg.to_le_bytes());
    }
    let revision = match &vendor {
        b"GenuineIntel" => {
            // SDM vol. 3, "Microcode Update Signature": write 0, run CPUID(1),
            // then the revision is in the high half.
            // SAFETY: every Intel CPU with CPUID has IA32_BIOS_SIGN_ID, and
            // writing 0 to it is the documented way to read it.
            unsafe { cpu::wrmsr(MSR_UCODE_REV, 0) };
            cpu::cpuid(1, 0);
            (read_ucode_msr() >> 32) as u32
        }
        // PATCH_LEVEL: the low half, read as is.
        b"AuthenticAMD" => read_ucode_msr() as u32,
        _ => return None,
    };
    (revision != 0).then_some(revision)
}

/// RDMSR 0x8B. Only for `microcode`, which checked the vendor first.
fn read_ucode_msr() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: called only on bare-metal Intel and AMD CPUs, which all have MSR
    // 0x8B (see `microcode`), so RDMSR cannot fault; reading it changes nothing.
    unsafe {
        asm!("rdmsr", in("ecx") MSR_UCODE_REV, out("eax") lo, out("edx") hi,
             options(nomem, nostack, preserves_flags));
    }
    u64::from(hi) << 32 | u64::from(lo)
}
