//! nmi_syscall_gap: NMIs in ring 3 and in the SYSCALL gap while RSP, chosen
//! by ring 3, points into the NMI stack (the CVE-2015-3291 shape).
//!
//! Setup: CPU 0 (A) runs a ring-3 program that loads RSP with an address in
//! its own IST_NMI stack (the middle of it), loops a few times and executes
//! SYSCALL; the test SYSCALL entry runs three NOPs on that RSP before its
//! `int 0x81` goes back to the kernel. CPU 1 (B) sends one NMI per iteration
//! after a delay learned from where earlier ones landed (`aim.rs`).
//! Hazard: the NMI lands in ring 3 or in the SYSCALL gap (CPL 0, user RSP,
//! DF cleared by SFMASK) with the interrupted RSP inside IST_NMI. `linux`'s
//! third nested test ("interrupted RSP on the NMI stack") would take it for
//! a nested NMI, return without handling it and point an "iret" frame at
//! `repeat_nmi` for an outer NMI that does not exist: the NMI is lost. The DF
//! test is what tells the two apart (the nested window sets DF, SYSCALL
//! clears it). Ring 3's NMI never reaches the nested tests (CS first).
//! What the user RSP does: the `int 0x81` frame and the trap path's pushes
//! land at that RSP, i.e. inside IST_NMI. No NMI runs on A at that moment (an
//! NMI that interrupts the gap returns before the gap goes on), so they only
//! overwrite stale words; placed near the top they would plant words of ring
//! 3's choosing in the "NMI executing" slot, and an NMI landing in the trap
//! path would overwrite that path's frame under every strategy. Both are
//! defects of this test SYSCALL entry, which pushes on the user stack (Linux
//! switches to the kernel stack before its first push), not of a strategy,
//! so the RSP sits in the middle of IST_NMI, below what any NMI here uses.
//! The checker reports the NMI's frame as an overlap of what the interrupted
//! code calls its stack ([RSP, top)): true, and no incident.
//! Proof: B reads each landing from A's IST_NMI top (`nmi::last_landing`):
//! NMIs in ring 3 with RSP on IST_NMI, and NMIs on the SYSCALL entry's
//! instructions; `linux`/`linux-4.19` count every gap landing in their
//! NmiUserRspOnStack branch and never take one as nested.
//! Check: every NMI sent ran its handler once (NmiHandled, victim side), no
//! incident, under every strategy: the plain stub never reads the
//! interrupted RSP, so `naive` has nothing to get wrong here.
//! Registers (the damage kit): not checked here. An NMI in the gap
//! interrupts the SYSCALL entry itself, whose registers are the entry's, and
//! the ring-3 code never runs again after its SYSCALL (the test entry goes
//! back to the parked kernel context), so it cannot compare what it had;
//! `nmi_from_user_latch` checks a ring-3 context across NMIs.

use core::sync::atomic::{AtomicU64, Ordering};

use testkit::{Context, Expect, Expectations, TestResult};

use super::aim::{AFTER, Aim, BEFORE, INSIDE, NOT_LANDED};
use super::common;
use super::sender::{self, Counts, Link, VICTIM};
use crate::arch::percpu::{self, IST_STACK_SIZE, IstSlot};
use crate::arch::user::{self, Exit, Program};
use crate::entry::counters::Counter;
use crate::entry::{Stub, nmi};
use crate::mm;

/// Ring-3 loop rounds before SYSCALL: a few, so the NMI finds both.
const MAX_LOOPS: u64 = 16;

static LINK: Link = Link::new();
static DELAY: AtomicU64 = AtomicU64::new(0);
/// 1 while A is on its way into ring 3 or there, 2 once it is back.
static PHASE: AtomicU64 = AtomicU64::new(0);
static CLASS: AtomicU64 = AtomicU64::new(NOT_LANDED);
/// Landings: ring 3 with RSP on IST_NMI; per SYSCALL-entry instruction.
static IN_USER: AtomicU64 = AtomicU64::new(0);
static IN_GAP: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

testkit::test! {
    run: run,
    iterations: 800,
    cpus: 2,
    timeout_ms: 120_000,
    tags: &[testkit::tags::TCG],
    expect: Expectations {
        naive: Expect::Survive,
        shift_only: Expect::Survive,
        linux_4_19: Expect::Survive,
        dr7_guard: Expect::Survive,
        linux: Expect::Survive,
    },
}

/// Where an NMI landed, for the aim: in the SYSCALL gap (counted per
/// instruction), in ring 3 (counted when RSP was on IST_NMI) or on the way
/// there (too early), or back in A's own code (too late).
fn classify(at: nmi::Landing) -> u64 {
    let nmi_stack = percpu::cpu(VICTIM).ist_stack(IstSlot::Nmi);
    let (gap_start, gap_end) = user::syscall_entry_range();
    let on_stack = nmi_stack.contains(at.rsp);
    if at.rip >= gap_start && at.rip < gap_end {
        // The gap's instructions, by their index (nop, nop, nop, int).
        let index = (at.rip - gap_start).min(3) as usize;
        IN_GAP[index].fetch_add(1, Ordering::Relaxed);
        INSIDE
    } else if at.cs & 3 == 3 {
        IN_USER.fetch_add(u64::from(on_stack), Ordering::Relaxed);
        BEFORE
    } else if PHASE.load(Ordering::SeqCst) == 2 || on_stack {
        AFTER
    } else {
        BEFORE
    }
}

fn sender(_: u64) -> u64 {
    LINK.serve(|_| {
        common::spin_cycles(DELAY.load(Ordering::Relaxed));
        if LINK.send_entered() {
            CLASS.store(classify(nmi::last_landing(VICTIM)), Ordering::Relaxed);
        }
    })
}

fn run(ctx: &mut Context<'_>) -> TestResult {
    let nesting = crate::entry::nmi_stub(ctx.strategy) == Stub::NmiLinux;
    let nmi_stack = percpu::this().ist_stack(IstSlot::Nmi);
    testkit::ensure!(
        ctx,
        percpu::this().index() == VICTIM,
        "runs on CPU {VICTIM} only"
    );
    // The middle of IST_NMI, 16-aligned: in its range, below what NMIs use.
    let user_rsp = (nmi_stack.top - IST_STACK_SIZE / 2) & !15;
    user::enable_syscall(true);
    let sandbox = mm::user_sandbox();
    // A start for the aim: one trip through ring 3 and the SYSCALL gap.
    let span = common::measure(|| sandbox.run(Program::SyscallOnRsp, user_rsp, MAX_LOOPS));
    let mut aim = Aim::new(span);
    common::reset_counts(VICTIM);
    IN_USER.store(0, Ordering::Relaxed);
    for count in &IN_GAP {
        count.store(0, Ordering::Relaxed);
    }
    let counts = Counts::take();
    LINK.start(ctx, sender, 0)?;
    let mut incomplete = 0u64;
    let mut bad_exits = 0u64;
    for i in 1..=u64::from(ctx.iterations) {
        DELAY.store(aim.next_delay(&mut ctx.rng), Ordering::Relaxed);
        CLASS.store(NOT_LANDED, Ordering::Relaxed);
        PHASE.store(1, Ordering::SeqCst);
        LINK.go(i);
        let loops = 1 + ctx.rng.below(MAX_LOOPS);
        let exit = sandbox.run(Program::SyscallOnRsp, user_rsp, loops);
        PHASE.store(2, Ordering::SeqCst);
        bad_exits += u64::from(exit != Exit::Returned(user::SYSCALL_RETURNED));
        incomplete += u64::from(!LINK.wait_done(i));
        aim.learn(DELAY.load(Ordering::Relaxed), CLASS.load(Ordering::Relaxed));
        if i % 500 == 0 {
            ctx.progress(i as u32);
        }
    }
    LINK.stop(ctx);

    let sent = LINK.sent();
    let count = |c: Counter| counts.count(c);
    let handled = counts.settled(Counter::NmiHandled, sent);
    let user_rsp_on_stack = count(Counter::NmiUserRspOnStack);
    let nested = counts.nested().total();
    let gap: [u64; 4] = core::array::from_fn(|i| IN_GAP[i].load(Ordering::Relaxed));
    let in_gap: u64 = gap.iter().sum();
    let in_user = IN_USER.load(Ordering::Relaxed);
    let evidence = common::collect(ctx, VICTIM);
    ctx.counters.nmis = Some(handled);
    ctx.note(format_args!(
        "sent={sent} entered={} handled={handled} user_rsp=top-{:#x} in_user_rsp_on_nmi_stack={in_user} in_gap={in_gap} gap_hits={gap:?} from_user={} user_rsp_on_stack={user_rsp_on_stack} nested={nested} overlaps={} incidents={} bad_exits={bad_exits} incomplete={incomplete}",
        count(Counter::NmiEntered),
        nmi_stack.top - user_rsp,
        count(Counter::NmiFromUser),
        evidence.report.overlaps,
        evidence.report.incidents,
    ));
    testkit::ensure!(
        ctx,
        bad_exits == 0,
        "{bad_exits} ring-3 runs did not come back through SYSCALL"
    );
    if in_gap == 0 || in_user == 0 {
        testkit::fail!(
            ctx,
            "NMIs in the SYSCALL gap: {in_gap}, in ring 3 with RSP on IST_NMI: {in_user}: the hazard did not happen"
        );
    }
    if nesting && (user_rsp_on_stack < in_gap || nested > 0) {
        testkit::fail!(
            ctx,
            "{in_gap} NMIs landed in the gap, the DF branch counted {user_rsp_on_stack}, {nested} taken as nested"
        );
    }
    Ok(sender::with_lost(
        evidence.observed(common::Detection::default()),
        sent,
        handled,
    ))
}
