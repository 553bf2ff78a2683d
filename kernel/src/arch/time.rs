//! Time from the TSC, calibrated once against PIT channel 2 (every PC and QEMU
//! machine has it). Used for timeouts and delays, not for benchmarks' truth.

use core::sync::atomic::{AtomicU64, Ordering};

use super::cpu::rdtsc;
use super::port::{inb, outb};

/// TSC ticks per microsecond; the fallback assumes 1 GHz if calibration fails.
static TICKS_PER_US: AtomicU64 = AtomicU64::new(1000);

const PIT_HZ: u64 = 1_193_182;
/// 3 x 1 ms: at 5 x 2 ms the calibration alone was 10 ms of the 23 ms a PVH
/// boot spends bringing the kernel up (`cargo xtask bench boot`); 1 ms of PIT
/// (1193 ticks) still gives the rate to about 0.1%, enough for timeouts.
const CALIBRATE_MS: u64 = 1;
const CALIBRATION_ROUNDS: usize = 3;

/// Measures the TSC against a 1 ms PIT one-shot, three times, and keeps the
/// shortest: under a busy host (every vCPU is a host thread) a measurement can
/// only come out too long, never too short.
pub fn calibrate() {
    let best = (0..CALIBRATION_ROUNDS)
        .filter_map(|_| pit_one_shot_ticks())
        .min();
    if let Some(ticks) = best {
        let per_us = ticks / (CALIBRATE_MS * 1000);
        if per_us > 0 {
            TICKS_PER_US.store(per_us, Ordering::Relaxed);
        }
    }
}

/// TSC ticks during one PIT channel-2 one-shot of `CALIBRATE_MS`.
fn pit_one_shot_ticks() -> Option<u64> {
    let count = (PIT_HZ * CALIBRATE_MS / 1000) as u16;
    // SAFETY: ports 0x42/0x43/0x61 are the PIT channel 2 and its gate; the
    // kernel owns them and nothing else uses the speaker channel.
    unsafe {
        let gate = inb(0x61);
        outb(0x61, (gate & !0x02) | 0x01); // gate on, speaker off
        outb(0x43, 0xb0); //                 channel 2, lo/hi byte, mode 0
        outb(0x42, count as u8);
        outb(0x42, (count >> 8) as u8);
        let start = rdtsc();
        let mut spins = 0u64;
        // OUT2 (bit 5) goes high when the count reaches zero; bounded in case the
        // PIT is missing (some new PCs).
        while inb(0x61) & 0x20 == 0 && spins < 50_000_000 {
            spins += 1;
        }
        (spins < 50_000_000).then(|| rdtsc() - start)
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
pub fn wait_until(timeout_us: u64, mut done: impl FnMut() -> bool) -> bool {
    let end = rdtsc() + timeout_us * ticks_per_us();
    loop {
        if done() {
            return true;
        }
        if rdtsc() >= end {
            return done();
        }
        core::hint::spin_loop();
    }
}
