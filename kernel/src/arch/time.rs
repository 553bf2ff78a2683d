//! Time from the TSC, calibrated once against PIT channel 2 (every PC and QEMU
//! machine has it). Used for timeouts and delays, not for benchmarks' truth.
//!
//! The calibration is a window around the boot's first work rather than a
//! wait before it: [`open`] sets PIT channel 2 counting down and reads it,
//! the boot maps memory, fills the IDT and sets up the BSP, and
//! [`Window::close`] reads the count again and divides. Under TCG that work
//! takes longer than the window needs, so the calibration costs nothing; the
//! three 1 ms one-shots it replaces were 3.9 ms of a PVH boot's ~15 ms in the
//! kernel (rdtsc stamps under TCG). They remain the fallback.

use core::sync::atomic::{AtomicU64, Ordering};

use super::cpu::rdtsc;
use super::port::{inb, outb};

/// TSC ticks per microsecond; the fallback assumes 1 GHz if calibration fails.
static TICKS_PER_US: AtomicU64 = AtomicU64::new(1000);

const PIT_HZ: u64 = 1_193_182;
const PIT_CHANNEL2: u16 = 0x42;
const PIT_COMMAND: u16 = 0x43;
/// Port B: bit 0 gates channel 2, bit 1 drives the speaker, bit 5 reads OUT2.
const PORT_B: u16 = 0x61;
const GATE2: u8 = 0x01;
const SPEAKER: u8 = 0x02;
const OUT2: u8 = 0x20;
/// Channel 2, low then high byte, mode 0: OUT2 goes high when the count
/// reaches zero and stays high while the counter wraps on.
const CHANNEL2_MODE0: u8 = 0xb0;
/// Channel 2, latch the count for the next two reads.
const CHANNEL2_LATCH: u8 = 0x80;
/// The window's start count: the longest the 16-bit counter allows, 55 ms.
const WINDOW_COUNT: u16 = u16::MAX;
/// 1 ms of PIT (1193 ticks) gives the rate to about 0.1%, enough for timeouts.
const CALIBRATE_MS: u64 = 1;
const MIN_WINDOW_TICKS: u64 = PIT_HZ * CALIBRATE_MS / 1000;
/// Each end of the window reads the count this often and keeps the read with
/// the narrowest TSC bracket: every vCPU is a host thread, and a preemption
/// widens only the read it lands in.
const READS_PER_END: usize = 3;
/// The fallback's rounds: it keeps the shortest, since a busy host can only
/// make a measurement too long, never too short.
const CALIBRATION_ROUNDS: usize = 3;
/// Bound on waiting for a PIT that does not count (missing on some new PCs).
const MAX_SPINS: u64 = 50_000_000;

/// A calibration window: PIT channel 2 counting down since `start`.
pub struct Window {
    start: Reading,
}

/// The PIT's count, latched at `tsc` (the middle of the read's TSC bracket).
#[derive(Clone, Copy)]
struct Reading {
    tsc: u64,
    count: u16,
}

/// Opens a calibration window: starts PIT channel 2 counting down from
/// `WINDOW_COUNT` and reads where it is. Close it within 55 ms.
pub fn open() -> Window {
    start_channel2(WINDOW_COUNT);
    Window {
        start: best_reading(),
    }
}

impl Window {
    /// Closes the window and sets the TSC rate from it, first waiting until
    /// `CALIBRATE_MS` of PIT has passed. When the counter wrapped (the window
    /// stayed open past 55 ms, say under a stalled host) the rate comes from
    /// the blocking one-shots instead; when the PIT never counted, the 1 GHz
    /// fallback stays.
    pub fn close(self) {
        let elapsed = |count: u16| u64::from(self.start.count.wrapping_sub(count));
        let mut spins = 0u64;
        while elapsed(latch_and_read()) < MIN_WINDOW_TICKS && spins < MAX_SPINS {
            spins += 1;
        }
        let end = best_reading();
        // SAFETY: reading port B only samples the gate and OUT2.
        if unsafe { inb(PORT_B) } & OUT2 != 0 {
            calibrate_blocking();
            return;
        }
        let ticks = elapsed(end.count);
        if ticks >= MIN_WINDOW_TICKS {
            store_rate(end.tsc.saturating_sub(self.start.tsc), ticks);
        }
    }
}

/// The best of `READS_PER_END` reads: the one whose latch command is
/// bracketed most tightly by the TSC.
fn best_reading() -> Reading {
    let mut best = (u64::MAX, Reading { tsc: 0, count: 0 });
    for _ in 0..READS_PER_END {
        let before = rdtsc();
        // SAFETY: latching channel 2 only copies its count for reading.
        unsafe { outb(PIT_COMMAND, CHANNEL2_LATCH) };
        let after = rdtsc();
        let count = read_latched();
        let width = after - before;
        if width < best.0 {
            let tsc = before + width / 2;
            best = (width, Reading { tsc, count });
        }
    }
    best.1
}

/// The count now (for waiting on the PIT; no TSC bracket).
fn latch_and_read() -> u16 {
    // SAFETY: latching channel 2 only copies its count for reading.
    unsafe { outb(PIT_COMMAND, CHANNEL2_LATCH) };
    read_latched()
}

/// The latched count, low byte first (the access mode `open` set).
fn read_latched() -> u16 {
    // SAFETY: two reads of channel 2 return the latched count and nothing else.
    let (low, high) = unsafe { (inb(PIT_CHANNEL2), inb(PIT_CHANNEL2)) };
    u16::from_le_bytes([low, high])
}

/// Sets the rate from `tsc` ticks counted over `pit_ticks` of the PIT.
/// Rounded, not truncated: at Bochs' 10 MHz a rate measured as 9.9 ticks/us
/// truncated to 9 stretched every us-based delay by 10% and moved where
/// `nmi_nested_windows`' aimed NMIs land.
fn store_rate(tsc: u64, pit_ticks: u64) {
    let per = pit_ticks * 1_000_000;
    let per_us = (tsc * PIT_HZ + per / 2) / per;
    if per_us > 0 {
        TICKS_PER_US.store(per_us, Ordering::Relaxed);
    }
}

/// The fallback: the TSC against a `CALIBRATE_MS` PIT one-shot, three times,
/// keeping the shortest.
fn calibrate_blocking() {
    let best = (0..CALIBRATION_ROUNDS)
        .filter_map(|_| pit_one_shot_ticks())
        .min();
    if let Some(ticks) = best {
        store_rate(ticks, MIN_WINDOW_TICKS);
    }
}

/// TSC ticks during one PIT channel-2 one-shot of `CALIBRATE_MS`.
fn pit_one_shot_ticks() -> Option<u64> {
    start_channel2(MIN_WINDOW_TICKS as u16);
    let start = rdtsc();
    let mut spins = 0u64;
    // OUT2 goes high when the count reaches zero; bounded in case the PIT is
    // missing.
    // SAFETY: reading port B only samples the gate and OUT2.
    while unsafe { inb(PORT_B) } & OUT2 == 0 && spins < MAX_SPINS {
        spins += 1;
    }
    (spins < MAX_SPINS).then(|| rdtsc() - start)
}

/// Gates PIT channel 2 on (speaker off) and starts it counting down from
/// `count` in mode 0.
fn start_channel2(count: u16) {
    // SAFETY: ports 0x42/0x43/0x61 are the PIT channel 2 and its gate; the
    // kernel owns them and nothing else uses the speaker channel.
    unsafe {
        let gate = inb(PORT_B);
        outb(PORT_B, (gate & !SPEAKER) | GATE2);
        outb(PIT_COMMAND, CHANNEL2_MODE0);
        outb(PIT_CHANNEL2, count as u8);
        outb(PIT_CHANNEL2, (count >> 8) as u8);
    }
}

pub fn ticks_per_us() -> u64 {
    TICKS_PER_US.load(Ordering::Relaxed)
}

pub fn delay_us(us: u64) {
    let end = rdtsc() + us * ticks_per_us();
    while rdtsc() < end {
        core::hint::spin_loop();
    }
}

/// Spins until `done()` is true or `timeout_us` passes; true when it is done.
pub fn wait_until(timeout_us: u64, done: impl FnMut() -> bool) -> bool {
    wait_until_pausing(timeout_us, done, core::hint::spin_loop)
}

/// As [`wait_until`], calling `pause` between checks (a spin hint, or a
/// halt until an interrupt).
pub fn wait_until_pausing(
    timeout_us: u64,
    mut done: impl FnMut() -> bool,
    mut pause: impl FnMut(),
) -> bool {
    let end = rdtsc() + timeout_us * ticks_per_us();
    loop {
        if done() {
            return true;
        }
        if rdtsc() >= end {
            return done();
        }
        pause();
    }
}
