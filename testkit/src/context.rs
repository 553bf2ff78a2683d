//! What a test sees while it runs: its iteration count, a seeded RNG, and the
//! platform the kernel provides behind a small trait.

use crate::expect::{Expect, Machine, Strategy};
use crate::message::{Message, message};
use crate::protocol::{Counters, Event, Hex};
use crate::rng::Rng;
use core::fmt;

/// Work for another CPU: a plain function and one argument word, so that no
/// closure state has to cross CPUs. Shared data lives in the scenario's statics.
pub type Job = fn(arg: u64) -> u64;

/// The signature of every registered test.
pub type TestFn = fn(&mut Context<'_>) -> TestResult;

/// The kernel side of a test run. Kept small on purpose: everything a scenario
/// needs beyond this belongs to the kernel's own safe wrappers.
pub trait Platform {
    /// CPUs that are up and can take jobs, including the one running the test.
    fn cpu_count(&self) -> usize;
    /// The index of the CPU calling this.
    fn current_cpu(&self) -> usize;
    /// A monotonic cycle counter (the TSC); only differences are meaningful.
    fn cycles(&self) -> u64;
    /// Starts `job(arg)` on `cpu` and returns without waiting.
    fn start_on(&mut self, cpu: usize, job: Job, arg: u64) -> Result<(), RunError>;
    /// Waits for the job started on `cpu` and returns its result.
    fn join(&mut self, cpu: usize, timeout_ms: u32) -> Result<u64, RunError>;
    /// Writes one event to the wire (and, if the kernel likes, a human line).
    fn emit(&mut self, event: &Event<&str>);

    /// Drains the integrity checker of every CPU: calls `each` for every
    /// recorded finding and returns the number of incidents (damaged entries,
    /// damaged canaries). The runner calls it before each test (to start
    /// clean) and after (so that no test can leave a finding unjudged).
    fn drain_checker(&mut self, each: &mut dyn FnMut(Corruption<'static>)) -> u64;

    /// Runs `job(arg)` on `cpu` and waits for it.
    fn run_on(&mut self, cpu: usize, job: Job, arg: u64, timeout_ms: u32) -> Result<u64, RunError> {
        self.start_on(cpu, job, arg)?;
        self.join(cpu, timeout_ms)
    }
}

/// Why a job could not run on another CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunError {
    NoSuchCpu(usize),
    /// The CPU is still running an earlier job.
    Busy(usize),
    Timeout {
        cpu: usize,
        timeout_ms: u32,
    },
    /// Joining a CPU that was given no job.
    NotStarted(usize),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NoSuchCpu(cpu) => write!(f, "no CPU {cpu}"),
            Self::Busy(cpu) => write!(f, "CPU {cpu} is busy"),
            Self::Timeout { cpu, timeout_ms } => {
                write!(f, "CPU {cpu} did not finish in {timeout_ms} ms")
            }
            Self::NotStarted(cpu) => write!(f, "CPU {cpu} was given no job"),
        }
    }
}

/// What a test saw. The runner turns it into an outcome with the expectation
/// for the current strategy ([`crate::judge`]).
// No heap to box into: the messages are fixed-capacity strings, and a test
// returns one `Observed` by value once.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observed {
    /// The hazard happened and every check the test made held; the same as
    /// `Ran(Evidence::default())`. The runner still drains the checker.
    Survived,
    /// The hazard happened; what the test counted while it did.
    Ran(Evidence),
    /// The test's own telltale shows the platform never produced the hazard
    /// (e.g. an emulator that drops the #DB a silicon CPU delays): nothing is
    /// said about the entry code. Not a skip: the test was tried.
    NotReproduced(Message),
    /// The test could not do its job (setup failed, an unexplained event...).
    Failed(Message),
}

/// The counts a verdict rests on. Zero means "none seen", and each count
/// says what it is measured against in [`crate::judge`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Evidence {
    /// Checker incidents the test drained: IST entries found with a damaged
    /// frame or stack, one per entry (the runner adds what it drains after).
    pub incidents: u64,
    /// `detect`: times the hazard happened in a way that must corrupt an
    /// unprotected entry ...
    pub hazards: u64,
    /// ... and how many of them the checker accounted for with an incident.
    pub detected: u64,
    /// `timing`: landings predicted to corrupt, predicted clean, and the
    /// landings where the checker disagreed with the prediction.
    pub predicted_corrupt: u64,
    pub predicted_clean: u64,
    pub mismatches: u64,
    /// NMIs sent and never entered on the victim, by the entry's own count.
    pub lost_nmis: u64,
    /// Registers of the interrupted code found changed after the hazard.
    pub damaged_registers: u64,
}

/// What a test returns. `Err` is a failure to do the job, like
/// `Ok(Observed::Failed(..))`; it exists so tests can use `?`. The error is kept
/// small (clippy's `result_large_err` would flag every test otherwise): a
/// formatted message goes into the context with [`Context::fail`].
pub type TestResult = Result<Observed, Failure>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// A platform call failed; `?` on a [`RunError`] gives this.
    Run(RunError),
    /// A fixed reason.
    Because(&'static str),
    /// The reason was formatted into the context by [`Context::fail`].
    Noted,
}

impl From<RunError> for Failure {
    fn from(e: RunError) -> Self {
        Failure::Run(e)
    }
}

/// The state handed to a running test.
pub struct Context<'p> {
    /// The test's registered name, for the events it emits.
    pub test: &'static str,
    /// How many iterations to run (the selection's override, capped).
    pub iterations: u32,
    /// Seeded from the run's seed and the test's name: the same seed gives the
    /// same sequence whatever other tests were selected.
    pub rng: Rng,
    pub strategy: Strategy,
    pub machine: Machine,
    /// What the test is expected to show under this strategy (set by the
    /// runner): a test that can predict per landing does so under `Timing`.
    pub expect: Expect,
    /// Filled in by the test; reported in the result event.
    pub counters: Counters,
    /// A short line for the result event when the test has something to say.
    pub details: Message,
    corruptions_reported: u64,
    failure: Message,
    platform: &'p mut dyn Platform,
}

impl<'p> Context<'p> {
    pub fn new(
        test: &'static str,
        iterations: u32,
        rng: Rng,
        strategy: Strategy,
        machine: Machine,
        platform: &'p mut dyn Platform,
    ) -> Self {
        Self {
            test,
            iterations,
            rng,
            strategy,
            machine,
            expect: Expect::Survive,
            counters: Counters::default(),
            details: Message::new(),
            corruptions_reported: 0,
            failure: Message::new(),
            platform,
        }
    }

    /// Whether the verdict will check a per-landing prediction.
    pub fn expect_timing(&self) -> bool {
        self.expect == Expect::Timing
    }

    pub fn platform(&mut self) -> &mut dyn Platform {
        self.platform
    }

    pub fn cpu_count(&self) -> usize {
        self.platform.cpu_count()
    }

    pub fn cycles(&self) -> u64 {
        self.platform.cycles()
    }

    pub fn run_on(
        &mut self,
        cpu: usize,
        job: Job,
        arg: u64,
        timeout_ms: u32,
    ) -> Result<u64, RunError> {
        self.platform.run_on(cpu, job, arg, timeout_ms)
    }

    /// Reports iterations done so far, so the host can tell slow from stuck.
    pub fn progress(&mut self, done: u32) {
        let test = self.test;
        self.platform.emit(&Event::Progress {
            test,
            done,
            nmis: None,
        });
    }

    /// [`Context::progress`] with the NMIs landed so far where the test aims
    /// them, for the live display of `cargo xtask run`.
    pub fn progress_nmis(&mut self, done: u32, nmis: u64) {
        let test = self.test;
        self.platform.emit(&Event::Progress {
            test,
            done,
            nmis: Some(nmis),
        });
    }

    /// Puts one checker finding on the wire. Only corruptions reported here
    /// count as detected: a test cannot claim a detection the host never saw.
    pub fn report_corruption(&mut self, c: Corruption<'_>) {
        self.corruptions_reported += 1;
        let count = self.counters.corruptions.unwrap_or(0);
        self.counters.corruptions = Some(count.max(self.corruptions_reported));
        let cpu = self.platform.current_cpu() as u32;
        self.platform.emit(&Event::Corruption {
            test: self.test,
            cpu: c.cpu.unwrap_or(cpu),
            iteration: c.iteration,
            vector: c.vector,
            field: c.field,
            expected: Hex(c.expected),
            seen: Hex(c.seen),
        });
    }

    pub fn corruptions_reported(&self) -> u64 {
        self.corruptions_reported
    }

    /// Drains every CPU's checker through the platform, putting each finding
    /// on the wire; returns the incidents drained.
    pub fn drain_checker(&mut self) -> u64 {
        // The first findings go on the wire one by one; all are counted.
        let mut findings: heapless::Vec<Corruption<'static>, 16> = heapless::Vec::new();
        let incidents = self.platform.drain_checker(&mut |c| {
            let _ = findings.push(c);
        });
        for c in findings {
            self.report_corruption(c);
        }
        incidents
    }

    /// Records why the test failed: `return Err(ctx.fail(format_args!(..)))`,
    /// which [`fail!`](crate::fail) and [`ensure!`](crate::ensure) write for you.
    pub fn fail(&mut self, args: fmt::Arguments<'_>) -> Failure {
        self.failure = message(args);
        Failure::Noted
    }

    /// What the runner judges: the test's result with any failure spelled out.
    pub(crate) fn observed(&self, result: TestResult) -> Observed {
        match result {
            Ok(observed) => observed,
            Err(Failure::Run(e)) => Observed::Failed(message(format_args!("{e}"))),
            Err(Failure::Because(why)) => Observed::Failed(message(format_args!("{why}"))),
            Err(Failure::Noted) => Observed::Failed(self.failure.clone()),
        }
    }

    /// Sets the result's details line.
    pub fn note(&mut self, args: fmt::Arguments<'_>) {
        self.details = message(args);
    }
}

/// One finding of the integrity checker, as a test hands it to the context.
#[derive(Clone, Copy, Debug)]
pub struct Corruption<'a> {
    /// The CPU whose frame was damaged; `None` means the one running the test.
    pub cpu: Option<u32>,
    pub iteration: u32,
    pub vector: u8,
    /// Which slot differed: "rip", "cs", "rflags", "rsp", "ss", "canary"...
    pub field: &'a str,
    pub expected: u64,
    pub seen: u64,
}

/// Ends the running test as failed, with a formatted reason:
/// `testkit::fail!(ctx, "lost {lost} of {sent} NMIs")` is
/// `return Err(ctx.fail(format_args!(...)))`.
#[macro_export]
macro_rules! fail {
    ($ctx:expr, $($reason:tt)+) => {
        return ::core::result::Result::Err($ctx.fail(::core::format_args!($($reason)+)))
    };
}

/// Ends the running test as failed unless `cond` holds:
/// `testkit::ensure!(ctx, hits > 0, "the hazard never happened")`.
#[macro_export]
macro_rules! ensure {
    ($ctx:expr, $cond:expr, $($reason:tt)+) => {
        if !$cond {
            $crate::fail!($ctx, $($reason)+);
        }
    };
}
