//! Pieces several scenarios share: timing helpers, the evidence a scenario
//! gathers from the checker and the handlers, and the coverage of the #DB
//! entry/exit window by NMI landing points.

use core::fmt;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use testkit::{Context, Corruption, Observed};

use crate::arch::cpu::rdtsc;
use crate::entry::{WindowEntry, checker, handlers};

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

    pub fn observed(&self) -> Observed {
        match self.report.corruptions() {
            0 => Observed::Survived,
            count => Observed::Corrupted { count },
        }
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
    ctx.counters.corruptions = Some(report.corruptions());
    for c in findings.iter().filter(|c| {
        matches!(
            c.kind,
            checker::Kind::FrameMismatch | checker::Kind::StackClobbered | checker::Kind::Overlap
        )
    }) {
        ctx.report_corruption(Corruption {
            cpu: Some(cpu as u32),
            iteration: 0,
            vector: c.vector,
            field: c.field.name(),
            expected: c.expected,
            seen: c.seen,
        });
    }
    ctx.counters.dbs = Some(dbs);
    ctx.counters.frame_mismatches = Some(report.frame_mismatches);
    ctx.counters.stack_clobbers = Some(report.stack_clobbers);
    ctx.counters.overlaps = Some(report.overlaps);
    let (db_stack_bytes, _) = checker::stack_usage(crate::arch::percpu::cpu(cpu).ist_stacks()[0]);
    ctx.counters.db_stack_bytes = Some(db_stack_bytes);
    ctx.counters.max_depth = Some(u64::from(
        report.max_depth.iter().copied().max().unwrap_or(0),
    ));
    Evidence { dbs, report }
}

const WINDOW_MAX: usize = 128;

/// Which instructions of the #DB stub NMIs landed on. Only the instructions the
/// current strategy executes count: a `shift-ist` instruction is not part of
/// the `naive` path.
pub struct Window {
    addrs: [AtomicU64; WINDOW_MAX],
    len: AtomicUsize,
    base: AtomicU64,
    hits: [AtomicU64; WINDOW_MAX],
}

impl Window {
    pub const fn new() -> Self {
        Self {
            addrs: [const { AtomicU64::new(0) }; WINDOW_MAX],
            len: AtomicUsize::new(0),
            base: AtomicU64::new(0),
            hits: [const { AtomicU64::new(0) }; WINDOW_MAX],
        }
    }

    fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Takes the instructions the strategy with `flags` executes; clears hits.
    pub fn reset(&self, instructions: &[WindowEntry], flags: u64) {
        self.len.store(0, Ordering::Release);
        self.base.store(
            instructions.first().map_or(0, |e| e.addr),
            Ordering::Relaxed,
        );
        let on_path = instructions
            .iter()
            .filter(|e| e.flags & flags == e.flags)
            .take(WINDOW_MAX);
        let mut len = 0;
        for (slot, entry) in self.addrs.iter().zip(on_path) {
            slot.store(entry.addr, Ordering::Relaxed);
            len += 1;
        }
        for hit in &self.hits {
            hit.store(0, Ordering::Relaxed);
        }
        self.len.store(len, Ordering::Release);
    }

    /// Called from NMI context: lock-free, no allocation (binary search).
    pub fn record(&self, rip: u64) {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            let addr = self.addrs[mid].load(Ordering::Relaxed);
            if addr == rip {
                self.hits[mid].fetch_add(1, Ordering::Relaxed);
                return;
            }
            if addr < rip { lo = mid + 1 } else { hi = mid }
        }
    }

    pub fn coverage(&self) -> Coverage {
        let total = self.len();
        let hit = self.hits[..total]
            .iter()
            .filter(|h| h.load(Ordering::Relaxed) > 0)
            .count();
        Coverage { hit, total }
    }

    /// Lists the instructions never hit, as offsets from the stub's start.
    pub fn print_misses(&self) {
        let base = self.base.load(Ordering::Relaxed);
        let mut line: heapless::String<512> = heapless::String::new();
        for (addr, hit) in self.addrs[..self.len()].iter().zip(&self.hits) {
            if hit.load(Ordering::Relaxed) == 0 {
                let offset = addr.load(Ordering::Relaxed) - base;
                let _ = fmt::Write::write_fmt(&mut line, format_args!(" +{offset:#x}"));
            }
        }
        crate::kprintln!(
            "window: never hit:{}",
            if line.is_empty() { " none" } else { &line }
        );
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
