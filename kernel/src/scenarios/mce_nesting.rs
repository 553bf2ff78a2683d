//! mce_nesting: a second machine check while the first one's handler runs
//! (MCG_STATUS.MCIP still set) shuts the machine down. No entry strategy can
//! do anything about it: the architecture ends the run, and the right
//! outcome is that the host runner sees exactly that crash and goes on.
//!
//! Setup: machine checks armed on CPU 1; CPU 1 loops in kernel code; the #MC
//! hook holds CPU 1 inside its #MC handler (MCIP set) until released.
//! Hazard: CPU 0 asks the host for a #MC on CPU 1 and waits until CPU 1's
//! handler says it holds; then asks for a second #MC on CPU 1.
//! Proof: the first request is answered `injected` and CPU 1's #MC body saw
//! MCIP set; the second is sent while that handler still runs.
//! Check: the machine shuts down (QEMU: "Previous MCE still in progress,
//! raising triple fault"; with `-no-reboot`, an exit): this test is tagged
//! `crash:triple-fault`, and the runner counts it passed only when it sees
//! that crash and no other, then resumes the suite after it. Reaching the
//! end of `run` is the failure: a second #MC that did not end the machine.
//! Opt-in like every crash test; `cargo xtask test` runs it in a boot of its
//! own. Without MCA (Bochs 2.7: no banks) it is `not-reproduced`.

use core::sync::atomic::{AtomicBool, Ordering};

use testkit::{Context, Observed, TestResult, tags};

use crate::arch::{mce, time};
use crate::entry::mc::{self, Landing};
use crate::inject::{self, Answer};

const VICTIM: usize = 1;
const CPU_TIMEOUT_MS: u32 = 5_000;
/// How long the victim holds its #MC handler (the run ends long before).
const HOLD_US: u64 = 4_000_000;

static HELD: AtomicBool = AtomicBool::new(false);
static MCIP_SEEN: AtomicBool = AtomicBool::new(false);
static RELEASE: AtomicBool = AtomicBool::new(false);

testkit::test! {
    run: run,
    cpus: 2,
    timeout_ms: 20_000,
    tags: &[tags::TCG, tags::CRASH_TRIPLE_FAULT],
}

/// On the victim, inside #MC with MCIP set: hold until released.
fn hold(landing: &Landing) {
    MCIP_SEEN.store(
        landing.found.mcg_status & mce::MCG_STATUS_MCIP != 0,
        Ordering::SeqCst,
    );
    HELD.store(true, Ordering::SeqCst);
    time::wait_until(HOLD_US, || RELEASE.load(Ordering::SeqCst));
}

fn enable(_: u64) -> u64 {
    u64::from(mce::enable().is_ok())
}

fn idle(_: u64) -> u64 {
    time::wait_until(HOLD_US, || RELEASE.load(Ordering::SeqCst));
    0
}

fn run(ctx: &mut Context<'_>) -> TestResult {
    for flag in [&HELD, &MCIP_SEEN, &RELEASE] {
        flag.store(false, Ordering::SeqCst);
    }
    if ctx.run_on(VICTIM, enable, 0, CPU_TIMEOUT_MS)? == 0 {
        // No MCA here (Bochs): the hazard cannot be produced, and the machine
        // must not be taken down on purpose.
        return Ok(Observed::NotReproduced(testkit::message(format_args!(
            "machine checks unavailable on CPU {VICTIM}"
        ))));
    }
    mc::set_hook(Some(hold));
    ctx.platform().start_on(VICTIM, idle, 0)?;
    let first = inject::request(ctx, VICTIM, "idle");
    let (answer, _) = inject::loop_until_answer(first, || {});
    let held = time::wait_until(1_000_000, || HELD.load(Ordering::SeqCst));
    if answer != Answer::Injected || !held || !MCIP_SEEN.load(Ordering::SeqCst) {
        RELEASE.store(true, Ordering::SeqCst);
        mc::set_hook(None);
        let _ = ctx.platform().join(VICTIM, CPU_TIMEOUT_MS);
        return Err(ctx.fail(format_args!(
            "first #MC: host {answer:?}, handler held {held}, MCIP {}",
            MCIP_SEEN.load(Ordering::SeqCst)
        )));
    }
    // The victim is inside its #MC handler with MCIP set: the second one.
    let second = inject::request(ctx, VICTIM, "mc");
    let (answer, _) = inject::loop_until_answer(second, || {});
    time::delay_us(100_000);
    RELEASE.store(true, Ordering::SeqCst);
    mc::set_hook(None);
    let _ = ctx.platform().join(VICTIM, CPU_TIMEOUT_MS);
    Err(ctx.fail(format_args!(
        "a second #MC with MCIP set did not shut the machine down (host: {answer:?})"
    )))
}
