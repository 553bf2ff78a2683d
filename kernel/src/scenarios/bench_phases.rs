//! bench::entry_phases: where the cycles of a #DB and of an NMI go, per phase
//! the checker can see (its entry half, the body with the tracing hook, its
//! exit half), for `cargo xtask bench entry`. Runs only when a filter names it.
//! With `checker=off` the checker's halves shrink to their bookkeeping, so the
//! strategy's own cost shows apart from the checker's in one run each.

use core::sync::atomic::{AtomicU64, Ordering};

use testkit::{Context, Observed, TestResult, ensure, tags};

use crate::arch::percpu::{self, IstSlot};
use crate::arch::{lapic, time};
use crate::entry::breakpoint::{self, Breakpoint, Kind};
use crate::entry::checker::{self, Stamps};

static WATCHED: AtomicU64 = AtomicU64::new(0);

testkit::test! {
    name: "bench::entry_phases",
    run: run,
    iterations: 2_000,
    cpus: 2,
    tags: &[tags::BENCH],
}

/// Average cycles per entry: checker in, body, checker out.
fn per_entry(s: Stamps) -> (u64, u64, u64) {
    let n = s.count.max(1);
    (s.checker_in / n, s.body / n, s.checker_out / n)
}

fn run(ctx: &mut Context<'_>) -> TestResult {
    let cpu = percpu::this().index();
    let bp = Breakpoint {
        slot: 0,
        addr: WATCHED.as_ptr() as u64,
        kind: Kind::Write,
        len: 8,
    };
    if let Err(e) = breakpoint::arm(bp, false) {
        testkit::fail!(ctx, "arming the watchpoint: {e:?}");
    }
    checker::reset_stamps();
    checker::set_stamps(true);
    for _ in 0..ctx.iterations {
        WATCHED.fetch_add(1, Ordering::SeqCst); // one #DB
    }
    breakpoint::reset();
    let target = percpu::cpu(1);
    for _ in 0..ctx.iterations {
        let before = target.nmi_count.load(Ordering::Acquire);
        lapic::send_nmi(target.lapic_id());
        time::wait_until(100_000, || {
            target.nmi_count.load(Ordering::Acquire) > before
        });
    }
    checker::set_stamps(false);
    let (db, nmi) = (
        checker::stamps(cpu, IstSlot::Db),
        checker::stamps(1, IstSlot::Nmi),
    );
    let n = u64::from(ctx.iterations);
    ensure!(
        ctx,
        db.count == n && nmi.count == n,
        "stamped {} #DBs and {} NMIs for {n}",
        db.count,
        nmi.count
    );
    let (d_in, d_body, d_out) = per_entry(db);
    let (n_in, n_body, n_out) = per_entry(nmi);
    ctx.note(format_args!(
        "db: checker_in={d_in} body={d_body} checker_out={d_out}; nmi: checker_in={n_in} body={n_body} checker_out={n_out} (cycles per entry)"
    ));
    Ok(Observed::Survived)
}
