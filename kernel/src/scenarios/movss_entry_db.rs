//! movss_entry_db: `MOV SS` followed by an instruction that enters the kernel.
//!
//! Setup: a #DB hook that records where each #DB landed and what DR6 said.
//! Hazard: MOV SS blocks debug exceptions for one instruction; when that next
//! instruction is INT3, the pending #DB is delivered on the first instruction
//! of the #BP handler (CVE-2018-8897), where no entry code expects one.
//! Two variants, both `hw-only` after measuring QEMU 10.0 TCG:
//! - `tf`: TF set across `mov ss; int3`. TCG drops the pending single-step
//!   entirely (measured: 0 of 100 #DBs at the #BP entry; only the 3 ordinary
//!   single-steps after the INT3 returns), as the design notes Bochs does.
//! - `watchpoint`: a read watchpoint on the selector MOV SS loads: TCG does not
//!   delay this #DB to the next instruction at all.
//!
//! Proof: exactly one #DB per iteration whose RIP is the #BP stub's first
//! instruction, with the expected DR6 bit (BS, or B<slot>); none at all is
//! `not-reproduced` (Bochs drops the #DB when INT3 follows MOV SS).
//! Check: that count, the #BP still ran once per iteration, and the runner's
//! drain of the checker. `movss_user` is the ring-3 shape of the CVE.
//! Registers (the damage kit): the `watchpoint` variant's `mov ss; int3`
//! runs inside the kit's probe (all 15 GPRs and RFLAGS patterned per
//! iteration, compared after the #BP and the #DB returned). The `tf` variant
//! cannot: the kit keeps TF clear (with TF set the probe single-steps its own
//! loads and stores and returns to Rust code with TF still set).

use core::sync::atomic::{AtomicU16, AtomicU64, Ordering};

use testkit::{Context, Observed, TestResult, tags};

use super::common;
use crate::arch::cpu;
use crate::arch::damage::{self, Hazard, R15, Regs, Tally};
use crate::entry::breakpoint::{self, Kind};
use crate::entry::handlers::{self, DbEvent};
use crate::entry::traps;

const DR6_BS: u64 = 1 << 14;
const SLOT: usize = 1;

static AT_BP_ENTRY: AtomicU64 = AtomicU64::new(0);
static ELSEWHERE: AtomicU64 = AtomicU64::new(0);
static EXPECTED_DR6: AtomicU64 = AtomicU64::new(0);

#[repr(align(8))]
struct Selector(AtomicU16);
/// The selector MOV SS loads: the one SS already holds.
static SELECTOR: Selector = Selector(AtomicU16::new(0));

testkit::test! {
    case: "tf",
    run: |ctx| run(ctx, false),
    iterations: 100,
    tags: &[tags::HW_ONLY],
}

testkit::test! {
    case: "watchpoint",
    run: |ctx| run(ctx, true),
    iterations: 100,
    tags: &[tags::HW_ONLY],
}

fn on_db(event: &DbEvent) {
    let bp_entry = traps::stub_address(3);
    if event.rip == bp_entry && event.dr6 & EXPECTED_DR6.load(Ordering::Relaxed) != 0 {
        AT_BP_ENTRY.fetch_add(1, Ordering::Relaxed);
    } else {
        ELSEWHERE.fetch_add(1, Ordering::Relaxed);
    }
}

fn run(ctx: &mut Context<'_>, watchpoint: bool) -> TestResult {
    let selector = &SELECTOR.0;
    selector.store(cpu::ss(), Ordering::SeqCst);
    AT_BP_ENTRY.store(0, Ordering::Relaxed);
    ELSEWHERE.store(0, Ordering::Relaxed);
    EXPECTED_DR6.store(
        if watchpoint { 1 << SLOT } else { DR6_BS },
        Ordering::Relaxed,
    );
    let bps_before = handlers::bp_count(crate::arch::percpu::this().index());
    handlers::set_db_hook(Some(on_db));
    handlers::expect_breakpoints(true);
    if watchpoint {
        let bp = common::watch(SLOT, selector.as_ptr() as u64, Kind::ReadWrite, 2);
        if let Err(e) = common::arm(&[bp]) {
            testkit::fail!(ctx, "arming the watchpoint: {e:?}");
        }
    }
    let mut regs = Tally::default();
    for i in 0..u64::from(ctx.iterations) {
        if watchpoint {
            let mut fill = Regs::pattern(i, 0x55);
            fill.0[R15] = selector.as_ptr() as u64;
            regs.record(i, &fill, &damage::run_kernel(Hazard::MovSsInt3, &fill));
        } else {
            cpu::mov_ss_then_int3(selector, true);
        }
    }
    breakpoint::reset();
    handlers::expect_breakpoints(false);
    handlers::set_db_hook(None);

    let iterations = u64::from(ctx.iterations);
    let at_entry = AT_BP_ENTRY.load(Ordering::Relaxed);
    let elsewhere = ELSEWHERE.load(Ordering::Relaxed);
    let bps = handlers::bp_count(crate::arch::percpu::this().index()) - bps_before;
    ctx.counters.dbs = Some(at_entry + elsewhere);
    ctx.note(format_args!(
        "db_at_bp_entry={at_entry} db_elsewhere={elsewhere} bps={bps} {}",
        common::Registers(&regs)
    ));
    testkit::ensure!(ctx, regs.damaged == 0, "MOV SS; INT3: {regs}");
    testkit::ensure!(ctx, bps == iterations, "{bps} #BP for {iterations} INT3");
    // The telltale: not one #DB on the handler's first instruction means the
    // platform dropped the delayed #DB (or never delayed it): it did not
    // produce the hazard, which says nothing about the entry code.
    if at_entry == 0 {
        return Ok(Observed::NotReproduced(testkit::message(format_args!(
            "the platform delivered none of {iterations} MOV SS #DBs on the #BP handler's first instruction ({elsewhere} elsewhere)"
        ))));
    }
    testkit::ensure!(
        ctx,
        at_entry == iterations,
        "{at_entry} of {iterations} #DBs landed on the #BP handler's first instruction"
    );
    Ok(common::with_damage(
        Observed::Ran(Default::default()),
        &regs,
    ))
}
