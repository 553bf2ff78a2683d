//! int3_forms: the breakpoint instructions from ring 3 against the gate's DPL.
//!
//! Setup: the ring-3 sandbox; the #BP gate at DPL 3, then at DPL 0.
//! Hazard: `INT3` (0xcc) and `INT 3` (0xcd 0x03) both check the gate's DPL, so
//! with DPL 0 both must raise #GP (error code = vector 3 in the IDT: 0x1a), not
//! reach the handler; ICEBP (0xf1) raises #DB with no privilege check while
//! `INT 1` (0xcd 0x01) obeys the #DB gate's DPL 0 (#GP, 0x0a). An entry that
//! confuses them gives ring 3 a kernel path it should not have.
//! Proof: per iteration, each program's exit (returned or which exception)
//! and the #BP/#DB counts.
//! Check: exactly the outcomes above, every iteration. With the DPL-3 gate,
//! INT3, `INT 3` and ICEBP also run inside the register damage kit's ring-3
//! probes:
//! all 15 GPRs and RFLAGS patterned in ring 3, compared after the return.

use core::sync::atomic::{AtomicU64, Ordering};

use testkit::{Context, Observed, TestResult, tags};

use crate::arch::damage::{Hazard, Regs, Tally};
use crate::arch::debugreg::DR6_HITS;
use crate::arch::idt;
use crate::arch::user::{Exit, Program};
use crate::entry::handlers::{self, DbEvent};
use crate::mm;

const GP: u8 = 13;
/// #GP error code for an IDT gate: (vector << 3) | IDT bit.
const fn idt_error(vector: u64) -> u64 {
    (vector << 3) | 2
}

static USER_DBS: AtomicU64 = AtomicU64::new(0);

testkit::test! {
    run: run,
    iterations: 100,
    tags: &[tags::TCG],
}

fn on_db(event: &DbEvent) {
    if event.from_user && event.dr6 & DR6_HITS == 0 {
        USER_DBS.fetch_add(1, Ordering::Relaxed);
    }
}

/// How a program should end.
#[derive(Clone, Copy)]
enum Want {
    /// It reached its `int 0x80` (its RAX is whatever it was: not checked).
    Returned,
    /// #GP for the IDT gate of this vector.
    GpOnGate(u64),
}

/// Runs one program and compares its exit; true when it matched.
fn expect(program: Program, want: Want) -> bool {
    match (mm::user_sandbox().run(program, 0, 0), want) {
        (Exit::Returned(_), Want::Returned) => true,
        (Exit::Exception { vector, error_code }, Want::GpOnGate(gate)) => {
            vector == GP && error_code == idt_error(gate)
        }
        _ => false,
    }
}

fn run(ctx: &mut Context<'_>) -> TestResult {
    let cpu = crate::arch::percpu::this().index();
    let bps_before = handlers::bp_count(cpu);
    USER_DBS.store(0, Ordering::Relaxed);
    handlers::expect_breakpoints(true);
    handlers::set_db_hook(Some(on_db));
    let (returned, gp) = (Want::Returned, Want::GpOnGate);
    let mut wrong = 0u32;
    let mut tally = Tally::default();
    for i in 0..u64::from(ctx.iterations) {
        idt::set_breakpoint_gate_user(true);
        wrong += u32::from(!expect(Program::Int3, returned));
        wrong += u32::from(!expect(Program::IntN3, returned));
        idt::set_breakpoint_gate_user(false);
        wrong += u32::from(!expect(Program::Int3, gp(3)));
        wrong += u32::from(!expect(Program::IntN3, gp(3)));
        idt::set_breakpoint_gate_user(true);
        wrong += u32::from(!expect(Program::Icebp, returned));
        wrong += u32::from(!expect(Program::IntN1, gp(1)));
        let probes = [Hazard::Int3, Hazard::IntN3, Hazard::Icebp];
        for (n, hazard) in probes.into_iter().enumerate() {
            let fill = Regs::pattern(3 * i + n as u64, 0x33);
            match mm::user_sandbox().run_probe(hazard, &fill) {
                Some(Ok(seen)) => _ = tally.record(i, &fill, &seen),
                _ => wrong += 1,
            }
        }
    }
    handlers::set_db_hook(None);
    handlers::expect_breakpoints(false);
    let bps = handlers::bp_count(cpu) - bps_before;
    let dbs = USER_DBS.load(Ordering::Relaxed);
    let iterations = u64::from(ctx.iterations);
    ctx.counters.dbs = Some(dbs);
    ctx.note(format_args!(
        "wrong_exits={wrong} bps={bps} icebp_dbs={dbs} regs_checked={} regs_damaged={}",
        tally.checked, tally.damaged
    ));
    if wrong != 0 || bps != 4 * iterations || dbs != 2 * iterations {
        testkit::fail!(
            ctx,
            "{wrong} programs ended wrongly; {bps} #BP (want {}), {dbs} ICEBP #DB (want {})",
            4 * iterations,
            2 * iterations
        );
    }
    testkit::ensure!(
        ctx,
        tally.damaged == 0,
        "ring-3 INT3 / INT 3 / ICEBP: {tally}"
    );
    Ok(Observed::Survived)
}
