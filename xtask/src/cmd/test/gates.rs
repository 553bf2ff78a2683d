//! The gates `cargo xtask test` runs before any QEMU boots: formatting, and
//! clippy on the host crates and on the kernel for its own target. Each gate
//! is one report and fails on the first finding (`-D warnings`). The tidy and
//! layering rules are ordinary tests in `xtask/tests/`, run with the host
//! unit tests.

use crate::media::kernel::{self, KERNEL_TARGET};
use crate::qemu::process;
use crate::report::verdict::{Report, Verdict};

/// Each gate's name and its cargo arguments.
pub const GATES: [(&str, &[&str]); 3] = [
    ("gate::fmt", &["fmt", "--all", "--check"]),
    (
        "gate::clippy_host",
        &[
            "clippy",
            "-p",
            "testkit",
            "-p",
            "xtask",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    ),
    (
        // Every unsafe block needs its `// SAFETY:` comment (clippy checks that
        // it belongs to the block; `xtask/tests/tidy.rs` that it sits right above).
        "gate::clippy_kernel",
        &[
            "clippy",
            "--release",
            "-p",
            "istorm-kernel",
            "--target",
            KERNEL_TARGET,
            "--",
            "-D",
            "warnings",
            "-D",
            "clippy::undocumented_unsafe_blocks",
        ],
    ),
];

/// Runs the gates `wanted` picks, one after the other.
pub fn run(wanted: impl Fn(&str) -> bool) -> Vec<Report> {
    GATES
        .iter()
        .filter(|(name, _)| wanted(name))
        .map(|&(name, args)| {
            let mut cmd = kernel::cargo();
            cmd.args(args);
            let verdict = match process::run(&mut cmd) {
                Ok(()) => Verdict::Pass,
                Err(e) => Verdict::Fail(format!("{e:#}")),
            };
            Report::new(name, verdict)
        })
        .collect()
}
