//! Sending NMIs from one CPU to another, shared by the NMI scenarios (not a
//! test): the handshake between A's iteration loop and B's sender job (GO: A
//! publishes an iteration; DONE: B has finished it), one NMI in flight at a
//! time (B waits for A's entry to count each one), the timeouts, and the
//! arming of A's NMI hook for the first NMI body of an iteration.
//!
//! A scenario keeps one `Link` and one `Hook` in statics (B's job is a plain
//! `fn(u64) -> u64`, and a nested NMI may overwrite the hook's stack frame):
//!
//! ```text
//! static LINK: Link = Link::new();
//! fn sender(_: u64) -> u64 { LINK.serve(|_go| { LINK.send_entered(); }) }
//! // A: LINK.start(ctx, sender, 0)?; for i in 1..=n { LINK.round(i, &HOOK, || {}); } LINK.stop(ctx);
//! ```

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use testkit::{Context, Expect, Expectations, Failure, Observed};

use crate::arch::damage::WaitCell;
use crate::arch::{lapic, percpu, time};
use crate::entry::counters::{self, Counter, Snapshot};

/// The CPU the NMIs interrupt (A) and the one that sends them (B).
pub const VICTIM: usize = 0;
pub const SENDER: usize = 1;
/// How long one step of an iteration may take (an NMI's entry, a stage).
pub const STEP_TIMEOUT_US: u64 = 100_000;
/// How long A waits for B to finish an iteration.
pub const ROUND_TIMEOUT_US: u64 = 4 * STEP_TIMEOUT_US;
/// How long A waits at the end for late NMIs to be counted.
const SETTLE_US: u64 = 1_000_000;

/// What a second NMI inside a running NMI does to each strategy: the plain
/// stub nests and is caught; the nested-NMI entry (`linux`, `linux-4.19`)
/// must run clean.
pub const NESTED_NMI: Expectations = Expectations {
    naive: Expect::Detect,
    shift_only: Expect::Detect,
    linux_4_19: Expect::Survive,
    dr7_guard: Expect::Detect,
    linux: Expect::Survive,
};

/// The handshake between A (the iteration loop) and B (the sender job).
pub struct Link {
    go: AtomicU64,
    done: AtomicU64,
    stop: AtomicBool,
    sent: AtomicU64,
}

impl Link {
    pub const fn new() -> Self {
        Self {
            go: AtomicU64::new(0),
            done: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            sent: AtomicU64::new(0),
        }
    }

    /// A: clears the handshake and the count of NMIs sent, starts `job(arg)`
    /// on B.
    pub fn start(&self, ctx: &mut Context<'_>, job: testkit::Job, arg: u64) -> Result<(), Failure> {
        self.sent.store(0, Ordering::SeqCst);
        self.done.store(0, Ordering::SeqCst);
        self.stop.store(false, Ordering::Release);
        self.go.store(0, Ordering::Release);
        ctx.platform().start_on(SENDER, job, arg)?;
        Ok(())
    }

    /// A: publishes iteration `i` (from 1 on).
    pub fn go(&self, i: u64) {
        self.go.store(i, Ordering::Release);
    }

    /// A: waits until B has finished iteration `i`; false on a timeout.
    pub fn wait_done(&self, i: u64) -> bool {
        time::wait_until(ROUND_TIMEOUT_US, || self.done.load(Ordering::Acquire) == i)
    }

    /// A: one iteration of B's: arms `hook`, publishes `i`, runs `during`
    /// (e.g. a wait probe B releases), waits for B to finish the iteration,
    /// disarms. False when B did not finish in time.
    pub fn round(&self, i: u64, hook: &Hook, during: impl FnOnce()) -> bool {
        hook.arm();
        self.go(i);
        during();
        let done = self.wait_done(i);
        hook.disarm();
        done
    }

    /// A: ends B's job and waits for it.
    pub fn stop(&self, ctx: &mut Context<'_>) {
        self.stop.store(true, Ordering::Release);
        let _ = ctx.platform().join(SENDER, 1000);
    }

    /// B: runs `each(go)` once per iteration A publishes, then marks it done,
    /// until A stops the job. Returns the last iteration seen.
    pub fn serve(&self, mut each: impl FnMut(u64)) -> u64 {
        let mut seen = 0;
        while !self.stop.load(Ordering::Acquire) {
            let go = self.go.load(Ordering::Acquire);
            if go == seen {
                core::hint::spin_loop();
                continue;
            }
            seen = go;
            each(go);
            self.done.store(go, Ordering::Release);
        }
        seen
    }

    /// B: sends A one NMI and counts it, without waiting.
    pub fn send(&self) {
        lapic::send_nmi(percpu::cpu(VICTIM).lapic_id());
        self.sent.fetch_add(1, Ordering::SeqCst);
    }

    /// B: sends A one NMI and waits until A's entry counted it (one NMI in
    /// flight at a time); false when it did not arrive within a step.
    pub fn send_entered(&self) -> bool {
        self.send_then(|| {})
    }

    /// B: `send_entered`, with `then` run right after the NMI left (e.g. a
    /// stage A waits for).
    pub fn send_then(&self, then: impl FnOnce()) -> bool {
        let before = entered();
        self.send();
        then();
        time::wait_until(STEP_TIMEOUT_US, || entered() > before)
    }

    /// NMIs B sent since `start`.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }
}

/// How long B waits after A entered its wait probe, so that the first NMI
/// finds every register loaded (a few instructions after the probe's start).
const PROBE_LOAD_CYCLES: u64 = 20_000;

/// B: waits (a step at most) until A is in the wait probe on `cell` with
/// its registers loaded; false if A never got there.
pub fn await_probe(cell: &WaitCell) -> bool {
    let entered = time::wait_until(STEP_TIMEOUT_US, || cell.entered());
    if entered {
        super::common::spin_cycles(PROBE_LOAD_CYCLES);
    }
    entered
}

/// NMIs A's entry code counted (its first instruction).
fn entered() -> u64 {
    counters::read(VICTIM, Counter::NmiEntered)
}

/// Waits until `flag` reads `value` (a stage of an iteration); false on a
/// step's timeout.
pub fn wait_for(flag: &AtomicU64, value: u64) -> bool {
    time::wait_until(STEP_TIMEOUT_US, || flag.load(Ordering::SeqCst) == value)
}

/// A's NMI hook: the first NMI body of an iteration runs the scenario's
/// action; a body that starts while another runs is counted as nested.
pub struct Hook {
    armed: AtomicBool,
    running: AtomicBool,
    nested: AtomicU64,
}

impl Hook {
    pub const fn new() -> Self {
        Self {
            armed: AtomicBool::new(false),
            running: AtomicBool::new(false),
            nested: AtomicU64::new(0),
        }
    }

    /// Clears the count of nested bodies.
    pub fn reset(&self) {
        self.nested.store(0, Ordering::Relaxed);
    }

    /// The next NMI body on A runs the action.
    pub fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    pub fn disarm(&self) {
        self.armed.store(false, Ordering::SeqCst);
    }

    /// Call from the NMI hook: on A, runs `first` in the body that takes the
    /// arming; counts a body that starts inside another.
    pub fn body(&self, first: impl FnOnce()) {
        if percpu::this().index() != VICTIM {
            return;
        }
        if self.running.swap(true, Ordering::SeqCst) {
            // Seen from the victim itself: an NMI body runs inside another.
            self.nested.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.armed.swap(false, Ordering::SeqCst) {
            first();
        }
        self.running.store(false, Ordering::SeqCst);
    }

    /// Whether an NMI body is running on A.
    pub fn running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    /// NMI bodies that started inside another since `reset`.
    pub fn nested_bodies(&self) -> u64 {
        self.nested.load(Ordering::Relaxed)
    }
}

/// A's entry counters since a point in the run.
pub struct Counts(Snapshot);

/// The three nested tests of `nmi_stub_linux`, as counted by A's entry.
#[derive(Clone, Copy)]
pub struct Nested {
    pub by_flag: u64,
    pub by_rsp: u64,
    pub in_repeat: u64,
}

impl Nested {
    pub fn total(&self) -> u64 {
        self.by_flag + self.by_rsp + self.in_repeat
    }
}

impl Counts {
    pub fn take() -> Self {
        Self(Snapshot::take(VICTIM))
    }

    pub fn count(&self, counter: Counter) -> u64 {
        Snapshot::take(VICTIM).since(&self.0, counter)
    }

    /// `counter` once it reached `n` (a late NMI is not a lost one), or what
    /// it reached after a second.
    pub fn settled(&self, counter: Counter, n: u64) -> u64 {
        time::wait_until(SETTLE_US, || self.count(counter) >= n);
        self.count(counter)
    }

    pub fn nested(&self) -> Nested {
        Nested {
            by_flag: self.count(Counter::NmiNestedByFlag),
            by_rsp: self.count(Counter::NmiNestedByRsp),
            in_repeat: self.count(Counter::NmiNestedInRepeat),
        }
    }
}

/// `observed` with the NMIs that B sent and A's entry never counted.
pub fn with_lost(mut observed: Observed, sent: u64, arrived: u64) -> Observed {
    if let Observed::Ran(e) = &mut observed {
        e.lost_nmis = sent.saturating_sub(arrived);
    }
    observed
}
