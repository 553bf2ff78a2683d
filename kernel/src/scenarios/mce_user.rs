//! mce_user: a machine check that interrupts ring 3, and where each
//! strategy's #MC path runs its handler, with a watchpoint armed.
//!
//! Setup: machine checks armed on this CPU; a write watchpoint on a kernel
//! word (DR7 armed, as a debugger would leave it); the #MC hook releases the
//! ring-3 spin loop; CPU 1 releases it too if no #MC came (a host that does
//! not inject must not hang ring 3).
//! Hazard: the kernel asks the host for a #MC ("during": user) and spins in
//! ring 3 until released; the host picks the moment. Linux 6.6's
//! `idtentry_mce_db` sends a #MC from ring 3 off the IST to the task stack
//! (`idtentry_body noist_exc_machine_check`: `error_entry` + `sync_regs`),
//! where it may sleep or be preempted like any user-mode exception; it keeps
//! `local_db_save` around the user variant too (`DEFINE_IDTENTRY_MCE_USER`).
//! Linux 4.19's `idtentry machine_check ... paranoid=1` moves it too, with
//! DR7 left alone.
//! Proof: per iteration, one #MC whose frame interrupted ring 3 on the
//! sandbox stack; where the body's `IstFrame` lay (RSP0 or IST_MC) and the
//! DR7 the body saw. The README's table of the strategies' #MC paths
//! (`mce_plain`, `db_mce_db`, `nmi_mce` and this) comes from these lines.
//! Check: `linux`, `linux-4.19` (USER_SWITCH): every body on this CPU's RSP0
//! stack, none on IST_MC; the rest on IST_MC. DR7 cleared inside the handler
//! exactly under `dr7-guard` and `linux`. No checker incident anywhere.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use testkit::{Context, Observed, TestResult, tags};

use crate::arch::percpu::{self, IstSlot};
use crate::arch::user::{Exit, Program};
use crate::arch::{mce, time};
use crate::entry::breakpoint::{self, Breakpoint, Kind};
use crate::entry::mc::{self, Landing};
use crate::entry::strategy::{self, DR7_GUARD, USER_SWITCH};
use crate::inject::{self, ANSWER_TIMEOUT_US, Answer};
use crate::mm;

const HELPER: usize = 1;
const CPU_TIMEOUT_MS: u32 = 5_000;
/// The sandbox data cell the ring-3 spin waits on.
const RELEASE_CELL: usize = 9;

static WATCHED: AtomicU64 = AtomicU64::new(0);
static DONE: AtomicBool = AtomicBool::new(false);

testkit::test! {
    run: run,
    iterations: 8,
    max_iterations: 100,
    cpus: 2,
    timeout_ms: 60_000,
    tags: &[tags::TCG],
}

fn release() -> &'static AtomicU64 {
    &mm::user_sandbox().data[RELEASE_CELL]
}

/// In the #MC body: a #MC from ring 3 ends the ring-3 spin.
fn on_mc(landing: &Landing) {
    if landing.cs & 3 == 3 {
        release().store(1, Ordering::SeqCst);
    }
}

/// CPU 1: ends the ring-3 spin when no #MC did, after the host's time is up.
fn backstop(_: u64) -> u64 {
    let late = !time::wait_until(2 * ANSWER_TIMEOUT_US, || DONE.load(Ordering::SeqCst));
    release().store(1, Ordering::SeqCst);
    u64::from(late)
}

/// What the iterations saw.
#[derive(Default)]
struct Tally {
    from_user: u64,
    on_rsp0: u64,
    on_ist_mc: u64,
    dr7_cleared: u64,
}

fn run(ctx: &mut Context<'_>) -> TestResult {
    let this = percpu::this();
    let cpu = this.index();
    if let Err(why) = mce::enable() {
        return Ok(Observed::NotReproduced(testkit::message(format_args!(
            "machine checks unavailable: {why:?}"
        ))));
    }
    let sandbox = mm::user_sandbox();
    let (user_stack, rsp0, ist_mc) = (
        sandbox.stack_top - 4096..=sandbox.stack_top,
        this.ring0_stack(),
        this.ist_stack(IstSlot::Mc),
    );
    let watch = Breakpoint {
        slot: 0,
        addr: WATCHED.as_ptr() as u64,
        kind: Kind::Write,
        len: 8,
    };
    mc::set_hook(Some(on_mc));
    let mut t = Tally::default();
    let mut failure = None;
    for i in 0..ctx.iterations {
        if breakpoint::arm(watch, false).is_err() {
            failure = Some(("arming the watchpoint", i));
            break;
        }
        release().store(0, Ordering::SeqCst);
        DONE.store(false, Ordering::SeqCst);
        if ctx.platform().start_on(HELPER, backstop, 0).is_err() {
            failure = Some(("starting CPU 1's backstop", i));
            break;
        }
        let before = mc::landing(cpu).count;
        let seq = inject::request(ctx, cpu, "user");
        let exit = sandbox.run(Program::Spin, release().as_ptr() as u64, 0);
        DONE.store(true, Ordering::SeqCst);
        let late = ctx.platform().join(HELPER, CPU_TIMEOUT_MS).unwrap_or(1);
        let (answer, _) = inject::loop_until_answer(seq, || {});
        breakpoint::reset();
        let landing = mc::landing(cpu);
        if answer != Answer::Injected || landing.count != before + 1 || late != 0 {
            failure = Some(("injection", i));
            break;
        }
        if !matches!(exit, Exit::Returned(_)) {
            failure = Some(("ring 3 did not come back through int 0x80", i));
            break;
        }
        t.from_user += u64::from(landing.cs & 3 == 3 && user_stack.contains(&landing.rsp));
        t.on_rsp0 += u64::from(rsp0.contains(landing.frame_at));
        t.on_ist_mc += u64::from(ist_mc.contains(landing.frame_at));
        t.dr7_cleared += u64::from(landing.live_dr7 & 0xff == 0);
    }
    mc::set_hook(None);
    breakpoint::reset();
    let n = u64::from(ctx.iterations);
    ctx.note(format_args!(
        "injected={n} from_user={} body_on_rsp0={} body_on_ist_mc={} dr7_cleared_in_mc={}",
        t.from_user, t.on_rsp0, t.on_ist_mc, t.dr7_cleared
    ));
    match failure {
        Some(("injection", at)) => {
            return Ok(Observed::NotReproduced(testkit::message(format_args!(
                "iteration {at}: the host did not inject a machine check into ring 3"
            ))));
        }
        Some((what, at)) => testkit::fail!(ctx, "{what} (iteration {at})"),
        None => {}
    }
    testkit::ensure!(
        ctx,
        t.from_user == n,
        "{} of {n} #MCs did not interrupt ring 3 on the sandbox stack",
        n - t.from_user
    );
    let switch = strategy::applies(USER_SWITCH);
    let (want, got_elsewhere) = if switch {
        (t.on_rsp0, t.on_ist_mc)
    } else {
        (t.on_ist_mc, t.on_rsp0)
    };
    testkit::ensure!(
        ctx,
        want == n && got_elsewhere == 0,
        "{} of {n} ring-3 #MC handlers ran on {} (RSP0: {}, IST_MC: {})",
        n - want,
        if switch {
            "IST_MC, not the task stack (RSP0)"
        } else {
            "RSP0, not IST_MC"
        },
        t.on_rsp0,
        t.on_ist_mc
    );
    let guard = strategy::applies(DR7_GUARD);
    testkit::ensure!(
        ctx,
        t.dr7_cleared == if guard { n } else { 0 },
        "DR7 cleared inside {} of {n} #MC handlers (expected {})",
        t.dr7_cleared,
        if guard { "all" } else { "none" }
    );
    Ok(Observed::Survived)
}
