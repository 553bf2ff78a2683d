//! Pieces several scenarios share: timing helpers, the evidence a scenario
//! gathers from the checker and the handlers, and the coverage of the #DB
//! entry/exit window by NMI landing points.

use core::fmt;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use testkit::{Context, Failure, Observed};

use crate::arch::cpu::rdtsc;
use crate::arch::damage::Tally;
use crate::entry::breakpoint::{self, Breakpoint, BreakpointError, Kind};
use crate::entry::{self, Stub, checker, handlers};

/// Spins for about `cycles` TSC cycles.
pub fn spin_cycles(cycles: u64) {
    let end = rdtsc() + cycles;
    while rdtsc() < end {
        core::hint::spin_loop();
    }
}

/// The smallest of a few timings of `f`, in TSC cycles.
pub fn measure<R>(mut f: impl FnMut() -> R) -> u64 {
    (0..8)
        .map(|_| {
            let start = rdtsc();
            core::hint::black_box(f());
            rdtsc() - start
        })
        .min()
        .unwrap_or(0)
}

/// A data breakpoint of `kind` on the `len` bytes at `addr`, in `slot`.
pub fn watch(slot: usize, addr: u64, kind: Kind, len: u64) -> Breakpoint {
    Breakpoint {
        slot,
        addr,
        kind,
        len,
    }
}

/// Arms each of `bps` on this CPU, none forced past the deny-list.
pub fn arm(bps: &[Breakpoint]) -> Result<(), BreakpointError> {
    bps.iter().try_for_each(|bp| breakpoint::arm(*bp, false))
}

static DB_BASE: AtomicU64 = AtomicU64::new(0);

/// Starts a measurement on `cpu`: drops old checker findings, notes the #DB count.
pub fn reset_counts(cpu: usize) {
    checker::take_report(cpu, |_| {});
    DB_BASE.store(handlers::db_count(cpu), Ordering::Relaxed);
}

/// What the checker and the handlers saw on one CPU since `reset_counts`.
pub struct Evidence {
    pub dbs: u64,
    pub report: checker::Report,
}

/// Counts, per iteration, whether the hazard happened in a way that must
/// corrupt an unprotected entry, and whether the checker found an incident in
/// that iteration: the detection rate of a `detect` verdict.
#[derive(Clone, Copy, Debug, Default)]
pub struct Detection {
    pub hazards: u64,
    pub detected: u64,
    /// Incidents in iterations where the hazard did not happen.
    pub unexplained: u64,
    incidents_at_start: u64,
}

impl Detection {
    /// Call when an iteration starts on `cpu`.
    pub fn begin(&mut self, cpu: usize) {
        self.incidents_at_start = checker::incidents_total(cpu);
    }

    /// Incidents on `cpu` since `begin`.
    pub fn incidents_since_begin(&self, cpu: usize) -> u64 {
        checker::incidents_total(cpu) - self.incidents_at_start
    }

    /// Call when it ends: `hazard` says whether the hazard happened.
    pub fn end(&mut self, cpu: usize, hazard: bool) {
        let incident = checker::incidents_total(cpu) > self.incidents_at_start;
        self.hazards += u64::from(hazard);
        self.detected += u64::from(hazard && incident);
        self.unexplained += u64::from(!hazard && incident);
    }
}

impl Evidence {
    /// #DBs beyond the `outer` ones the scenario raised itself.
    pub fn nested_dbs(&self, outer: u64) -> u64 {
        self.dbs.saturating_sub(outer)
    }

    /// Watched-address touches in handlers that raised no #DB, when the
    /// scenario itself raised `outer` #DBs.
    pub fn suppressed(&self, touches: u64, outer: u64) -> u64 {
        touches.saturating_sub(self.nested_dbs(outer))
    }

    /// More nesting than the checker has slots for means it could not check
    /// every level: such a run proves nothing either way.
    pub fn complete(&self) -> bool {
        self.report.depth_overflows == 0
    }

    /// Fails the test unless the run is `complete`.
    pub fn check_complete(&self, ctx: &mut Context<'_>) -> Result<(), Failure> {
        testkit::ensure!(
            ctx,
            self.complete(),
            "nesting went deeper than the checker tracks"
        );
        Ok(())
    }

    /// The evidence a verdict rests on, with `detection` when the test counted
    /// its hazards per iteration.
    pub fn observed(&self, detection: Detection) -> Observed {
        Observed::Ran(testkit::Evidence {
            incidents: self.report.incidents,
            hazards: detection.hazards,
            detected: detection.detected,
            ..testkit::Evidence::default()
        })
    }
}

/// Drains the checker of `cpu` into the context: every recorded finding goes on
/// the wire, the counters into the result.
pub fn collect(ctx: &mut Context<'_>, cpu: usize) -> Evidence {
    let dbs = handlers::db_count(cpu) - DB_BASE.load(Ordering::Relaxed);
    let mut findings: heapless::Vec<checker::Corruption, 32> = heapless::Vec::new();
    let report = checker::take_report(cpu, |c| {
        let _ = findings.push(*c);
    });
    ctx.counters.corruptions =
        Some(report.frame_mismatches + report.stack_clobbers + report.overlaps + report.canaries);
    for c in findings.iter().filter(|c| {
        matches!(
            c.kind,
            checker::Kind::FrameMismatch
                | checker::Kind::StackClobbered
                | checker::Kind::Overlap
                | checker::Kind::Canary
        )
    }) {
        ctx.report_corruption(c.on_wire(cpu));
    }
    ctx.counters.dbs = Some(dbs);
    ctx.counters.frame_mismatches = Some(report.frame_mismatches);
    ctx.counters.stack_clobbers = Some(report.stack_clobbers);
    ctx.counters.overlaps = Some(report.overlaps);
    let db_stack = crate::arch::percpu::cpu(cpu).ist_stack(crate::arch::percpu::IstSlot::Db);
    let (db_stack_bytes, _) = checker::stack_usage(db_stack);
    ctx.counters.db_stack_bytes = Some(db_stack_bytes);
    ctx.counters.max_depth = Some(u64::from(
        report.max_depth.iter().copied().max().unwrap_or(0),
    ));
    Evidence { dbs, report }
}

/// The register damage kit's proof, for a note: probes checked, damaged,
/// and the first damaged register by name.
pub struct Registers<'a>(pub &'a Tally);

impl fmt::Display for Registers<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "regs_checked={} regs_damaged={}",
            self.0.checked, self.0.damaged
        )?;
        if self.0.damaged > 0 {
            write!(f, " ({})", self.0)?;
        }
        Ok(())
    }
}

/// `observed` with the probes in which a register came back changed: the
/// verdict fails on any (docs/verdicts.md).
pub fn with_damage(mut observed: Observed, tally: &Tally) -> Observed {
    if let Observed::Ran(e) = &mut observed {
        e.damaged_registers = tally.damaged;
    }
    observed
}

/// Room for the longest stub on one path (`nmi_stub_linux`: about 180).
const WINDOW_MAX: usize = 224;

/// Which instructions of an entry stub NMIs landed on, and after which of
/// those landings the checker found a damaged frame. Only the instructions the
/// current strategy executes count: a `shift-only` instruction is not part of
/// the `naive` path.
pub struct Window {
    addrs: [AtomicU64; WINDOW_MAX],
    flags: [AtomicU64; WINDOW_MAX],
    len: AtomicUsize,
    base: AtomicU64,
    hits: [AtomicU64; WINDOW_MAX],
    corrupted: [AtomicU64; WINDOW_MAX],
}

impl Window {
    pub const fn new() -> Self {
        Self {
            addrs: [const { AtomicU64::new(0) }; WINDOW_MAX],
            flags: [const { AtomicU64::new(0) }; WINDOW_MAX],
            len: AtomicUsize::new(0),
            base: AtomicU64::new(0),
            hits: [const { AtomicU64::new(0) }; WINDOW_MAX],
            corrupted: [const { AtomicU64::new(0) }; WINDOW_MAX],
        }
    }

    fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Takes the instructions of `stub` the strategy with `flags` executes;
    /// clears the counts.
    pub fn reset(&self, stub: Stub, flags: u64) {
        self.len.store(0, Ordering::Release);
        let (start, end) = stub.range();
        self.base.store(start, Ordering::Relaxed);
        let on_path = entry::window()
            .iter()
            .filter(|e| e.addr >= start && e.addr < end && e.flags & flags == e.flags)
            .take(WINDOW_MAX);
        let mut len = 0;
        for (i, entry) in on_path.enumerate() {
            self.addrs[i].store(entry.addr, Ordering::Relaxed);
            self.flags[i].store(entry.flags, Ordering::Relaxed);
            len += 1;
        }
        for count in self.hits.iter().chain(&self.corrupted) {
            count.store(0, Ordering::Relaxed);
        }
        self.len.store(len, Ordering::Release);
    }

    /// The index of the instruction at `rip`, if it is one of the window's.
    /// Lock-free, no allocation (binary search): callable from NMI context.
    pub fn index_of(&self, rip: u64) -> Option<usize> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            let addr = self.addrs[mid].load(Ordering::Relaxed);
            if addr == rip {
                return Some(mid);
            }
            if addr < rip { lo = mid + 1 } else { hi = mid }
        }
        None
    }

    /// Counts an NMI landing at `rip`; returns its index.
    pub fn record(&self, rip: u64) -> Option<usize> {
        let index = self.index_of(rip)?;
        self.hits[index].fetch_add(1, Ordering::Relaxed);
        Some(index)
    }

    /// Counts a landing at `index` after which the checker found damage.
    pub fn corrupted(&self, index: usize) {
        self.corrupted[index].fetch_add(1, Ordering::Relaxed);
    }

    /// The first and last instruction put on the path by `flag` alone (e.g.
    /// the IST shift and un-shift), as indexes.
    pub fn bracket(&self, flag: u64) -> Option<(usize, usize)> {
        let mut marked = (0..self.len()).filter(|&i| self.flags[i].load(Ordering::Relaxed) == flag);
        let first = marked.next()?;
        Some((first, marked.last().unwrap_or(first)))
    }

    /// Coverage of the instructions at addresses in `[lo, hi)` only.
    pub fn coverage_within(&self, lo: u64, hi: u64) -> Coverage {
        let inside = |i: &usize| {
            let addr = self.addrs[*i].load(Ordering::Relaxed);
            addr >= lo && addr < hi
        };
        let total = (0..self.len()).filter(inside).count();
        let hit = (0..self.len())
            .filter(inside)
            .filter(|&i| self.hits[i].load(Ordering::Relaxed) > 0)
            .count();
        Coverage { hit, total }
    }

    pub fn coverage(&self) -> Coverage {
        let total = self.len();
        let hit = self.hits[..total]
            .iter()
            .filter(|h| h.load(Ordering::Relaxed) > 0)
            .count();
        Coverage { hit, total }
    }

    /// Puts one `window` event per instruction on the wire, with the
    /// prediction `predict` makes for landings there.
    pub fn emit(&self, ctx: &mut Context<'_>, stub: Stub, predict: impl Fn(usize) -> Option<bool>) {
        let base = self.base.load(Ordering::Relaxed);
        let test = ctx.test;
        for i in 0..self.len() {
            ctx.platform().emit(&testkit::protocol::Event::Window {
                test,
                stub: stub.symbol(),
                offset: (self.addrs[i].load(Ordering::Relaxed) - base) as u32,
                hits: self.hits[i].load(Ordering::Relaxed),
                corrupted: self.corrupted[i].load(Ordering::Relaxed),
                predicted: predict(i),
            });
        }
    }
}

#[derive(Clone, Copy)]
pub struct Coverage {
    pub hit: usize,
    pub total: usize,
}

impl fmt::Display for Coverage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = (self.hit * 100).checked_div(self.total).unwrap_or(0);
        write!(f, "window_coverage={}/{} ({pct}%)", self.hit, self.total)
    }
}
