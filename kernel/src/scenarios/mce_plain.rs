//! mce_plain: a machine check injected by the host lands where the kernel
//! says it is looping, on the #MC IST stack, and is ended cleanly. The
//! plumbing every other #MC scenario stands on, shown end to end.
//!
//! Setup: machine checks armed on this CPU (CR4.MCE, MCG_CTL and every
//! MCi_CTL all ones, statuses cleared); the #MC stub (`entry::mc`) on IST_MC.
//! Hazard: none of the entry's own; the kernel asks the host over the wire
//! for a #MC on this CPU while it loops in plain kernel code, outside any
//! handler, and the host injects it with QEMU's monitor (`mce`).
//! Proof: the host answers `injected`, and the #MC body counted exactly one
//! landing for that request, interrupting ring 0 on this test's own stack
//! (the frame's RSP within a page of the loop's), with MCG_STATUS.MCIP and
//! the requested bank status as the host wrote them.
//! Check: the body ran on this CPU's IST_MC (#MC on its own IST stack, under
//! every strategy); after the body, MCIP is clear (a second #MC would
//! otherwise shut the machine down) and the next request lands again.

use core::sync::atomic::{AtomicU64, Ordering};

use testkit::{Context, Observed, TestResult, tags};

use crate::arch::percpu::{self, IstSlot};
use crate::arch::{cpu, mce};
use crate::entry::mc;
use crate::inject::{self, Answer};

testkit::test! {
    run: run,
    iterations: 4,
    max_iterations: 50,
    timeout_ms: 30_000,
    tags: &[tags::TCG],
}

/// The loop's own stack pointer, for the landing proof.
static LOOP_RSP: AtomicU64 = AtomicU64::new(0);

fn step() {
    LOOP_RSP.store(cpu::stack_pointer(), Ordering::Relaxed);
    core::hint::spin_loop();
}

fn run(ctx: &mut Context<'_>) -> TestResult {
    let cpu = ctx.platform().current_cpu();
    if let Err(why) = mce::enable() {
        return Ok(Observed::NotReproduced(testkit::message(format_args!(
            "machine checks unavailable: {why:?}"
        ))));
    }
    let ist_mc = percpu::this().ist_stack(IstSlot::Mc);
    let (mut landed, mut on_stack, mut steps, mut on_ist_mc) = (0u64, 0u64, 0u64, 0u64);
    for i in 0..ctx.iterations {
        let before = mc::landing(cpu).count;
        let seq = inject::request(ctx, cpu, "idle");
        let (answer, ran) = inject::loop_until_answer(seq, step);
        steps += ran;
        if answer != Answer::Injected {
            // No monitor (Bochs, a PC) or one that refused: no #MC was raised.
            return Ok(Observed::NotReproduced(testkit::message(format_args!(
                "request {seq}: the host did not inject ({answer:?}); \
                 machine checks need the QEMU runner's monitor"
            ))));
        }
        let got = mc::landing(cpu);
        if got.count != before + 1 {
            return Err(ctx.fail(format_args!(
                "request {seq}: {} #MC landings for one injection",
                got.count - before
            )));
        }
        landed += 1;
        let rsp = LOOP_RSP.load(Ordering::Relaxed);
        on_stack += u64::from(got.cs == 0x08 && got.rsp.abs_diff(rsp) < 4096);
        on_ist_mc += u64::from(ist_mc.contains(got.frame_at));
        if got.found.mcg_status & mce::MCG_STATUS_MCIP == 0
            || got.found.bank != mce::TEST_BANK
            || got.found.status != mce::TEST_STATUS
        {
            testkit::fail!(
                ctx,
                "request {seq}: the #MC saw mcg_status={:#x} bank={} status={:#x}",
                got.found.mcg_status,
                got.found.bank,
                got.found.status
            );
        }
        if mce::in_progress() {
            testkit::fail!(ctx, "MCIP still set after #MC {i}");
        }
    }
    ctx.note(format_args!(
        "injected={landed} landed={landed} on_loop_stack={on_stack} body_on_ist_mc={on_ist_mc} \
         loop_steps={steps}"
    ));
    testkit::ensure!(
        ctx,
        on_stack == landed,
        "{} of {landed} #MCs did not interrupt ring 0 on the loop's stack",
        landed - on_stack
    );
    testkit::ensure!(
        ctx,
        on_ist_mc == landed,
        "{} of {landed} #MC bodies did not run on this CPU's IST_MC",
        landed - on_ist_mc
    );
    Ok(Observed::Survived)
}
