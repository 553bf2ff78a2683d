//! Every CPU in turn sends an NMI to every other CPU through its local APIC.
//!
//! Setup: all CPUs online, each counting NMIs in its per-CPU slot.
//! Hazard: none yet; this proves the delivery path the torture tests rely on.
//! Proof: the receiver's counter moves for each NMI before the next one is sent
//! (QEMU merges two pending NMIs into one, so one at a time, always).
//! Check: sent == received == N * (N - 1).
//! Registers (the damage kit): not checked here; the NMIs interrupt each
//! CPU's idle loop, and no hazard runs. `nmi_nesting` and its neighbours
//! check the interrupted code's registers across NMIs.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::{percpu, smp, time};
use testkit::{Context, Observed, TestResult};

use crate::kprintln;

const DELIVERY_TIMEOUT_US: u64 = 100_000;
const SENDER_TIMEOUT_US: u64 = 5_000_000;

static SENT: AtomicU64 = AtomicU64::new(0);
static LOST: AtomicU64 = AtomicU64::new(0);
static CPUS: AtomicU64 = AtomicU64::new(0);

/// Runs on one sender CPU: one NMI to each other CPU, waiting for each to land.
fn send_to_all_others(me: u64) -> u64 {
    let me = me as usize;
    for target in (0..CPUS.load(Ordering::Relaxed) as usize).filter(|&t| t != me) {
        let receiver = percpu::cpu(target);
        let before = receiver.nmi_count.load(Ordering::Acquire);
        if !crate::arch::lapic::send_nmi(receiver.lapic_id()) {
            LOST.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        SENT.fetch_add(1, Ordering::Relaxed);
        if !time::wait_until(DELIVERY_TIMEOUT_US, || {
            receiver.nmi_count.load(Ordering::Acquire) > before
        }) {
            LOST.fetch_add(1, Ordering::Relaxed);
        }
    }
    0
}

testkit::test! {
    name: "boot::nmi_all_to_all",
    run: run,
    cpus: 2,
    tags: &[testkit::tags::TCG],
}

fn run(ctx: &mut Context<'_>) -> TestResult {
    let cpus = ctx.cpu_count();
    SENT.store(0, Ordering::Relaxed);
    LOST.store(0, Ordering::Relaxed);
    CPUS.store(cpus as u64, Ordering::Relaxed);
    let received_before: u64 = (0..cpus)
        .map(|i| percpu::cpu(i).nmi_count.load(Ordering::Acquire))
        .sum();
    let mut stuck = 0;
    for sender in 0..cpus {
        if smp::run_on(sender, send_to_all_others, sender as u64, SENDER_TIMEOUT_US).is_err() {
            stuck += 1;
        }
    }
    let received: u64 = (0..cpus)
        .map(|i| percpu::cpu(i).nmi_count.load(Ordering::Acquire))
        .sum::<u64>()
        - received_before;
    let sent = SENT.load(Ordering::Relaxed);
    kprintln!("nmi: sent={sent} received={received}");
    let expected = (cpus * cpus.saturating_sub(1)) as u64;
    ctx.counters.nmis = Some(received);
    ctx.counters.nmis_sent = Some(sent);
    if stuck == 0 && sent == received && sent == expected {
        Ok(Observed::Survived)
    } else {
        testkit::fail!(
            ctx,
            "sent={sent} received={received} expected={expected} stuck_senders={stuck}"
        )
    }
}
