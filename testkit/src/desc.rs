//! Test descriptions and their registration through a linker section.
//!
//! Each [`test!`](crate::test) puts one [`TestDesc`] into the `linkme_TESTS`
//! section; the linker gathers them into [`TESTS`]. There is no central list to
//! forget to update. The kernel's linker script must keep that section
//! (`KEEP(*(linkme_TESTS))`); `linkme` finds it through the `__start_`/`__stop_`
//! symbols the linker defines, on `target_os = "none"` as on Linux.

use crate::context::{Failure, TestFn, TestResult};
use crate::expect::{Expect, Expectations};
use linkme::distributed_slice;

/// Every registered test, in link order (the runner sorts them by name).
#[distributed_slice]
pub static TESTS: [TestDesc];

/// Well-known tags. Tags are free text; these are the ones the runner reads.
pub mod tags {
    /// Meaningful under QEMU TCG (the CI default).
    pub const TCG: &str = "tcg";
    /// Needs silicon timing TCG does not model: skipped on TCG with a reason.
    pub const HW_ONLY: &str = "hw-only";
    /// Checks the framework or the checker itself rather than a hazard.
    pub const SELFTEST: &str = "selftest";
    /// Ends the boot on purpose, in the way named after the colon (see
    /// [`crate::protocol::Event::Planned`]). Runs only when a filter names it.
    pub const CRASH_PANIC: &str = "crash:panic";
    pub const CRASH_EXCEPTION: &str = "crash:exception";
    pub const CRASH_HANG: &str = "crash:hang";
    pub const CRASH_TRIPLE_FAULT: &str = "crash:triple-fault";
    /// A measurement for `cargo xtask bench`: runs only when a filter names it.
    pub const BENCH: &str = "bench";
}

/// One registered test.
#[derive(Clone, Copy, Debug)]
pub struct TestDesc {
    /// A stable path like `scenarios::db_kernel_nmi_db`: the name filters,
    /// skip lists and reports use.
    pub name: &'static str,
    /// `module_path!()` of the registration, for finding the source.
    pub module: &'static str,
    pub file: &'static str,
    pub line: u32,
    /// Iterations when the command line does not say.
    pub iterations: u32,
    /// A cap on `iterations=N`, for tests whose iterations are slow.
    pub max_iterations: u32,
    /// CPUs needed; with fewer the test is skipped, not failed.
    pub cpus: u32,
    /// How long the host waits for the result before calling it a hang.
    pub timeout_ms: u32,
    pub tags: &'static [&'static str],
    pub expect: Expectations,
    pub run: TestFn,
}

impl TestDesc {
    pub const DEFAULT_ITERATIONS: u32 = 1;
    pub const DEFAULT_MAX_ITERATIONS: u32 = 1_000_000;
    pub const DEFAULT_TIMEOUT_MS: u32 = 10_000;

    /// A description with the defaults: one iteration, one CPU, 10 s, no tags,
    /// expected to survive under every strategy. [`test!`](crate::test) fills
    /// in the location; other fields are overridden with struct-update syntax.
    pub const fn new(
        name: &'static str,
        run: TestFn,
        module: &'static str,
        file: &'static str,
        line: u32,
    ) -> Self {
        Self {
            name,
            module,
            file,
            line,
            iterations: Self::DEFAULT_ITERATIONS,
            max_iterations: Self::DEFAULT_MAX_ITERATIONS,
            cpus: 1,
            timeout_ms: Self::DEFAULT_TIMEOUT_MS,
            tags: &[],
            expect: Expectations::all(Expect::Survive),
            run,
        }
    }

    /// A placeholder body, for descriptions built by hand without one.
    pub fn missing_run(_: &mut crate::Context<'_>) -> TestResult {
        Err(Failure::Because("test has no run function"))
    }

    /// How this test ends the boot on purpose, from its `crash:` tag.
    pub fn expected_crash(&self) -> Option<&'static str> {
        self.tags.iter().find_map(|t| t.strip_prefix("crash:"))
    }

    /// Selftests, crash tests and benchmarks run only when a filter asks for them.
    pub fn opt_in(&self) -> bool {
        self.expected_crash().is_some() || self.has_tag(tags::BENCH) || self.has_tag(tags::SELFTEST)
    }

    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.contains(&tag)
    }

    /// A test's name from where it is registered: `module_path!()` without
    /// the crate's own name, so `istorm::scenarios::gd_detect` registers
    /// `scenarios::gd_detect`. [`test!`](crate::test) uses it when no `name`
    /// is given, so the name cannot drift from the file.
    pub const fn name_from_module(path: &'static str) -> &'static str {
        let bytes = path.as_bytes();
        let mut i = 0;
        while i + 1 < bytes.len() {
            if bytes[i] == b':' && bytes[i + 1] == b':' {
                return path.split_at(i + 2).1;
            }
            i += 1;
        }
        path
    }
}

/// Registers a test: one item next to its function.
///
/// ```
/// use testkit::{Context, Expect, Expectations, Observed, Strategy, TestResult};
///
/// fn db_kernel_nmi_db(ctx: &mut Context<'_>) -> TestResult {
///     Ok(Observed::Survived)
/// }
///
/// testkit::test! {
///     run: db_kernel_nmi_db,
///     cpus: 2,
///     iterations: 10_000,
///     tags: &[testkit::tags::TCG],
///     expect: Expectations::all(Expect::Survive).with(Strategy::Naive, Expect::Detect),
/// }
/// ```
///
/// The name comes from the module the registration sits in, without the
/// crate's name ([`TestDesc::name_from_module`]): registered in
/// `kernel/src/scenarios/db_kernel_nmi_db.rs` it is
/// `scenarios::db_kernel_nmi_db`. A file that registers several tests names
/// each with `case: "tf"` first (`scenarios::movss_entry_db::tf`). `name:
/// "..."` first instead sets the name by hand, for a name that must differ
/// from the file's path.
///
/// `run` is required; the other fields of [`TestDesc`] are optional, in any
/// order. Module, file and line are filled in. Any number of tests may be
/// registered in one module.
#[macro_export]
macro_rules! test {
    (name: $name:expr, run: $run:expr $(, $field:ident : $value:expr)* $(,)?) => {
        // An anonymous const gives the static a private scope, so that several
        // registrations in one module do not collide.
        const _: () = {
            #[$crate::__private::distributed_slice($crate::TESTS)]
            #[linkme(crate = $crate::__private::linkme)]
            static TEST: $crate::TestDesc = $crate::TestDesc {
                $($field: $value,)*
                ..$crate::TestDesc::new($name, $run, ::core::module_path!(), ::core::file!(), ::core::line!())
            };
        };
    };
    (case: $case:literal, run: $run:expr $(, $field:ident : $value:expr)* $(,)?) => {
        $crate::test! {
            name: $crate::TestDesc::name_from_module(
                ::core::concat!(::core::module_path!(), "::", $case)
            ),
            run: $run
            $(, $field: $value)*
        }
    };
    (run: $run:expr $(, $field:ident : $value:expr)* $(,)?) => {
        $crate::test! {
            name: $crate::TestDesc::name_from_module(::core::module_path!()),
            run: $run
            $(, $field: $value)*
        }
    };
}
