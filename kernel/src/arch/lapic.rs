//! The local APIC, through the `x2apic` crate: x2APIC (MSRs) when CPUID offers it,
//! xAPIC (MMIO, mapped uncacheable by the caller) otherwise. The mode is chosen
//! once on the BSP and every CPU uses the same one.

use core::sync::atomic::{AtomicU64, Ordering};

use x2apic::lapic::{LocalApic, LocalApicBuilder};

use super::percpu::{self, PerCpu};
use super::{cpu, time};

const TIMER_VECTOR: usize = super::vectors::TIMER_VECTOR as usize;
const ERROR_VECTOR: usize = 0xfe;
const SPURIOUS_VECTOR: usize = super::vectors::SPURIOUS_VECTOR as usize;
/// SIPI and INIT delivery is slow on real hardware; QEMU is instant.
const ICR_IDLE_TIMEOUT_US: u64 = 10_000;

/// Virtual address of the xAPIC page, or 0 in x2APIC mode.
static XAPIC_VIRT: AtomicU64 = AtomicU64::new(0);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    X2apic,
    Xapic,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::X2apic => "x2apic",
            Mode::Xapic => "xapic",
        }
    }
}

pub fn mode() -> Mode {
    if XAPIC_VIRT.load(Ordering::Relaxed) == 0 {
        Mode::X2apic
    } else {
        Mode::Xapic
    }
}

/// Chooses the mode on the BSP. In xAPIC mode `map_uncached(phys)` must return a
/// virtual address for the 4 KiB register page, mapped uncacheable.
pub fn select_mode(map_uncached: impl FnOnce(u64) -> u64) -> Mode {
    if !cpu::has_x2apic() {
        // SAFETY: reading IA32_APIC_BASE has no side effects.
        let phys = unsafe { x2apic::lapic::xapic_base() };
        XAPIC_VIRT.store(map_uncached(phys), Ordering::Relaxed);
    }
    mode()
}

/// Enables the running CPU's local APIC with its timer masked.
pub fn init_this_cpu(cpu: &PerCpu) {
    let mut builder = LocalApicBuilder::new();
    builder
        .timer_vector(TIMER_VECTOR)
        .error_vector(ERROR_VECTOR)
        .spurious_vector(SPURIOUS_VECTOR);
    let xapic = XAPIC_VIRT.load(Ordering::Relaxed);
    if xapic != 0 {
        builder.set_xapic_base(xapic);
    }
    let mut lapic = builder
        .build()
        .expect("local APIC: CPUID disagrees with the BSP's mode");
    // SAFETY: enabling the APIC of the running CPU; its timer is masked again at
    // once (the watchdog arms it explicitly when it needs it).
    unsafe {
        lapic.enable();
        lapic.disable_timer();
    }
    // SAFETY: the slot belongs to the running CPU and nothing else touches it.
    unsafe { *cpu.lapic.get() = Some(lapic) };
    mask_lint_pins();
}

const LVT_MASKED: u32 = 1 << 16;

/// Masks LINT0 and LINT1. The crate's `enable` writes 0 to them, which leaves
/// them *unmasked*; an unmasked LINT0 lets the legacy PIC's timer (vector 8 in
/// the BIOS's mapping) through on `sti`, where it looks like a #DF.
fn mask_lint_pins() {
    let xapic = XAPIC_VIRT.load(Ordering::Relaxed);
    if xapic == 0 {
        // SAFETY: x2APIC LVT LINT0/LINT1 MSRs (0x835, 0x836); masking them only
        // stops legacy interrupt pins from reaching this CPU.
        unsafe {
            cpu::wrmsr(0x835, u64::from(LVT_MASKED));
            cpu::wrmsr(0x836, u64::from(LVT_MASKED));
        }
    } else {
        // SAFETY: xAPIC LVT LINT0/LINT1 at offsets 0x350/0x360 of the register
        // page mapped uncacheable by `select_mode`.
        unsafe {
            core::ptr::write_volatile((xapic + 0x350) as *mut u32, LVT_MASKED);
            core::ptr::write_volatile((xapic + 0x360) as *mut u32, LVT_MASKED);
        }
    }
}

fn with_lapic<R>(f: impl FnOnce(&mut LocalApic) -> R) -> R {
    let this = percpu::this();
    // SAFETY: only the owning CPU reaches its own slot, through `this()`. NMI
    // paths never send IPIs, so no handler re-enters this while it runs.
    let lapic = unsafe { (*this.lapic.get()).as_mut() }.expect("local APIC used before init");
    f(lapic)
}

/// The ICR destination field: bits 32..63 in x2APIC, bits 56..63 in xAPIC.
fn destination(apic_id: u32) -> u32 {
    match mode() {
        Mode::X2apic => apic_id,
        Mode::Xapic => apic_id << 24,
    }
}

fn wait_icr_idle(lapic: &LocalApic) -> bool {
    // SAFETY: reading the ICR has no side effects.
    time::wait_until(ICR_IDLE_TIMEOUT_US, || unsafe {
        !lapic.get_ipi_delivery_status()
    })
}

/// Sends an NMI to the CPU with `apic_id`; false if the APIC never accepted it.
pub fn send_nmi(apic_id: u32) -> bool {
    with_lapic(|lapic| {
        // SAFETY: an NMI IPI only interrupts the target, whose NMI handler is set.
        unsafe { lapic.send_nmi(destination(apic_id)) };
        wait_icr_idle(lapic)
    })
}

/// Starts this CPU's timer: periodic, about every 10 ms on QEMU (1 GHz APIC
/// clock / 16 / 625000); the period only needs to be short next to a timeout.
pub fn start_periodic_timer() {
    with_lapic(|lapic| {
        // SAFETY: the timer vector has a gate; only the watchdog CPU enables it.
        unsafe {
            lapic.set_timer_mode(x2apic::lapic::TimerMode::Periodic);
            lapic.set_timer_divide(x2apic::lapic::TimerDivide::Div16);
            lapic.set_timer_initial(625_000);
            lapic.enable_timer();
        }
    })
}

/// The timer's count for one `nap`: 50 us at QEMU's 1 GHz APIC clock / 16.
const NAP_COUNT: u32 = 3_125;

/// Halts this CPU until its timer fires once, `NAP_COUNT` ticks from now (or
/// an earlier interrupt or NMI wakes it), then masks the timer again. Under
/// TCG a halted vCPU's host thread sleeps, leaving the host's cores to the
/// others; a spinning one keeps one.
pub fn nap() {
    with_lapic(|lapic| {
        // SAFETY: the timer vector has a gate; the one-shot fires at most once,
        // into the HLT below (a shot that beats it stays pending until the STI).
        unsafe {
            lapic.set_timer_mode(x2apic::lapic::TimerMode::OneShot);
            lapic.set_timer_divide(x2apic::lapic::TimerDivide::Div16);
            lapic.enable_timer();
            lapic.set_timer_initial(NAP_COUNT);
        }
    });
    cpu::wait_for_interrupt();
    with_lapic(|lapic| {
        // SAFETY: a zero initial count stops a one-shot that has not fired;
        // masking keeps the timer off until someone arms it again.
        unsafe {
            lapic.set_timer_initial(0);
            lapic.disable_timer();
        }
    });
}

/// Sends a fixed interrupt `vector` to the CPU with `apic_id`.
pub fn send_ipi(apic_id: u32, vector: u8) {
    with_lapic(|lapic| {
        // SAFETY: the vector has a gate on every CPU (wake-up or timer).
        unsafe { lapic.send_ipi(vector, destination(apic_id)) };
        wait_icr_idle(lapic);
    })
}

/// Signals the end of the interrupt being handled on this CPU.
pub fn end_of_interrupt() {
    // SAFETY: called from an interrupt handler of a fixed-vector interrupt.
    with_lapic(|lapic| unsafe { lapic.end_of_interrupt() })
}

/// INIT, then two start-up IPIs with `vector` (the trampoline's page number),
/// with the waits `delays` names (`startup_delays`).
pub fn send_init_sipi_sipi(apic_id: u32, vector: u8, delays: StartupDelays) {
    with_lapic(|lapic| {
        // SAFETY: the target is an AP waiting for SIPI; the trampoline page is in
        // place (the caller's contract).
        unsafe {
            lapic.send_init_ipi(destination(apic_id));
            wait_icr_idle(lapic);
            time::delay_us(delays.after_init);
            for _ in 0..2 {
                lapic.send_sipi(vector, destination(apic_id));
                time::delay_us(delays.after_sipi.0);
                wait_icr_idle(lapic);
                time::delay_us(delays.after_sipi.1);
            }
        }
    })
}

/// The waits of an INIT-SIPI-SIPI sequence, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartupDelays {
    /// After INIT, before the first SIPI.
    pub after_init: u64,
    /// After each SIPI, before and after waiting for the ICR to go idle.
    pub after_sipi: (u64, u64),
}

/// The MP specification's waits, for CPUs that need them.
const LEGACY_DELAYS: StartupDelays = StartupDelays {
    after_init: 10_000,
    after_sipi: (300, 200),
};
const MODERN_DELAYS: StartupDelays = StartupDelays {
    after_init: 0,
    after_sipi: (10, 10),
};

const VENDOR_INTEL: u32 = u32::from_le_bytes(*b"Genu");
const VENDOR_AMD: u32 = u32::from_le_bytes(*b"Auth");
const VENDOR_HYGON: u32 = u32::from_le_bytes(*b"Hygo");
/// CPUID.1:ECX bit 31: a hypervisor runs this CPU.
const HYPERVISOR: u32 = 1 << 31;

/// The waits this CPU needs. Linux (`smp_quirk_init_udelay`, renamed
/// `smp_set_init_udelay`, arch/x86/kernel/smpboot.c) waits nothing after INIT
/// on Intel family 6 and later, AMD family 0xF and later and Hygon 0x18 and
/// later, and then 10 us around each SIPI instead of 300 and 200; every other
/// CPU keeps the MP specification's 10 ms. Not Linux's rule but ours: a CPU
/// with the hypervisor bit gets the short waits too, because its INIT is a
/// call into the hypervisor's APIC model that has taken effect when the ICR
/// write returns (QEMU's `-cpu max` under TCG reports an AMD family 6, which
/// Linux's table would give the 10 ms).
pub fn startup_delays() -> StartupDelays {
    let (_, vendor, _, _) = cpu::cpuid(0, 0);
    let (signature, _, features, _) = cpu::cpuid(1, 0);
    delays_for(
        vendor,
        display_family(signature),
        features & HYPERVISOR != 0,
    )
}

/// CPUID.1:EAX's family, with the extended family added for family 0xF.
fn display_family(signature: u32) -> u32 {
    let base = (signature >> 8) & 0xf;
    if base == 0xf {
        base + ((signature >> 20) & 0xff)
    } else {
        base
    }
}

fn delays_for(vendor: u32, family: u32, hypervisor: bool) -> StartupDelays {
    let modern = match vendor {
        VENDOR_INTEL => family >= 6,
        VENDOR_AMD => family >= 0xf,
        VENDOR_HYGON => family >= 0x18,
        _ => false,
    };
    if modern || hypervisor {
        MODERN_DELAYS
    } else {
        LEGACY_DELAYS
    }
}
