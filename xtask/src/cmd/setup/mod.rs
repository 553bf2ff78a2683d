//! Set-up: `cargo xtask run` and `cargo xtask test` first find what this
//! machine lacks (the Rust target, QEMU 10, OVMF, xorriso, a C compiler, the
//! report's headless browser) and install it, one line per step saying what
//! and why. `sudo` only when not root; a question on a terminal unless
//! `--yes` or `CI`; one line naming the commands when it cannot. What the
//! commands print goes to `target/artifacts/setup.log`; a failed step shows
//! that log's last lines.
//!
//! `plan.rs` decides (pure, tested on fake machines), `system.rs` asks this
//! machine and carries the steps out. Limine is not here: `limine.rs` finds
//! or fetches it, verified, when a boot needs it.

mod plan;
mod sources;
mod system;

use std::io::{BufRead, IsTerminal};

use anyhow::{Result, bail};

pub use plan::Purpose;
use plan::{Action, Probe, Step};

/// How the steps may go ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Consent {
    /// `--yes` or `CI`: no question.
    Given,
    /// A person at a terminal is asked.
    Ask,
    /// Nobody to ask: say what to run.
    Nobody,
}

fn consent(yes: bool, ci: bool, terminal: bool) -> Consent {
    if yes || ci {
        Consent::Given
    } else if terminal {
        Consent::Ask
    } else {
        Consent::Nobody
    }
}

/// Installs what `purpose` needs and this machine lacks; `Ok` with nothing
/// printed when it has everything.
pub fn ensure(purpose: Purpose, yes: bool) -> Result<()> {
    let probe = system::Machine;
    let steps = plan::plan(&probe, purpose);
    if steps.is_empty() {
        return Ok(());
    }
    let terminal = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let ci = std::env::var_os("CI").is_some();
    let sudo = !probe.root();
    let by_hand = commands_line(&steps, sudo);
    if let Some(text) = steps.iter().find_map(|s| match &s.action {
        Action::Manual(text) => Some(text),
        _ => None,
    }) {
        bail!("set-up cannot go on by itself: {text}; then run {by_hand}");
    }
    if sudo && !probe.program("sudo") {
        bail!("set-up needs root and there is no sudo: as root, run {by_hand}");
    }
    match consent(yes, ci, terminal) {
        Consent::Given => {}
        Consent::Ask => {
            for step in &steps {
                eprintln!("setup: {}", describe(step));
            }
            eprint!("setup: go ahead? [Y/n] ");
            let mut answer = String::new();
            std::io::stdin().lock().read_line(&mut answer)?;
            if !matches!(answer.trim(), "" | "y" | "Y" | "yes") {
                bail!("set-up declined: run {by_hand}");
            }
        }
        Consent::Nobody => {
            bail!("set-up needs consent and nobody is at a terminal: pass --yes, or run {by_hand}")
        }
    }
    // Without a terminal sudo must not wait for a password nobody types.
    let sudo = sudo.then_some(if terminal { "sudo" } else { "sudo -n" });
    let log = log_path();
    let shown = log
        .strip_prefix(crate::root())
        .unwrap_or(&log)
        .display()
        .to_string();
    for (n, step) in steps.iter().enumerate() {
        eprintln!("{}", step_line(n, steps.len(), step, &shown));
        system::carry_out(step, sudo, &log).map_err(|e| {
            anyhow::anyhow!(
                "set-up step {} of {} failed (offline, or no rights?): run {}\n{e:#}",
                n + 1,
                steps.len(),
                commands_line(std::slice::from_ref(step), sudo.is_some())
            )
        })?;
    }
    let left = plan::plan(&probe, purpose);
    if !left.is_empty() {
        let what: Vec<String> = left.iter().map(describe).collect();
        bail!("set-up ran but this is still missing: {}", what.join("; "));
    }
    eprintln!("setup: done");
    Ok(())
}

/// Where the steps' commands write: apt and dpkg print hundreds of lines on
/// a fresh machine, which a person reads only when a step fails.
fn log_path() -> std::path::PathBuf {
    crate::qemu::screenshot::artifacts_dir().join("setup.log")
}

/// The line said as step `n` (from 0) of `total` starts: what, why, and
/// where its output goes.
fn step_line(n: usize, total: usize, step: &Step, log: &str) -> String {
    format!(
        "setup: [{}/{total}] {} (output: {log})",
        n + 1,
        describe(step)
    )
}

/// One line: what the step installs and why.
fn describe(step: &Step) -> String {
    let what = match &step.action {
        Action::RustTarget(target) => format!("Rust target {target} (rustup)"),
        Action::EnableSuite { suite, dest, .. } => {
            format!("apt source {suite} in {dest}, copied from this machine's own entry")
        }
        Action::AptUpdate => "apt-get update".into(),
        Action::AptInstall {
            suite, packages, ..
        } => format!(
            "apt-get install {}{}",
            packages.join(" "),
            suite
                .as_ref()
                .map_or(String::new(), |s| format!(" from {s}"))
        ),
        Action::Manual(text) => text.clone(),
    };
    format!("{what}: {}", step.why)
}

/// The commands a person would type for these steps, on one line.
fn commands_line(steps: &[Step], sudo: bool) -> String {
    let su = if sudo { "sudo " } else { "" };
    let words: Vec<String> = steps
        .iter()
        .filter_map(|step| match &step.action {
            Action::RustTarget(t) => Some(format!("rustup target add {t}")),
            Action::EnableSuite { suite, dest, .. } => Some(format!(
                "(copy this machine's Debian source entry with the suite {suite} into {su}{dest})"
            )),
            Action::AptUpdate => Some(format!("{su}apt-get update")),
            Action::AptInstall {
                suite,
                packages,
                lean,
            } => Some(format!(
                "{su}apt-get install {}{}{}",
                suite.as_ref().map_or(String::new(), |s| format!("-t {s} ")),
                if *lean {
                    "--no-install-recommends "
                } else {
                    ""
                },
                packages.join(" ")
            )),
            Action::Manual(_) => None,
        })
        .collect();
    format!("`{}`", words.join(" && "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consent_comes_from_yes_ci_or_a_person() {
        assert_eq!(consent(true, false, false), Consent::Given);
        assert_eq!(consent(false, true, true), Consent::Given);
        assert_eq!(consent(false, false, true), Consent::Ask);
        assert_eq!(consent(false, false, false), Consent::Nobody);
    }

    #[test]
    fn the_by_hand_line_names_every_command_with_sudo_only_when_needed() {
        let steps = plan::plan(&plan::tests::fresh(), Purpose::Run);
        let line = commands_line(&steps, true);
        assert!(
            line.starts_with("`rustup target add x86_64-unknown-none && (copy"),
            "{line}"
        );
        assert!(line.contains("&& sudo apt-get update && sudo apt-get install -t bookworm-backports qemu-system-x86 && sudo apt-get install ovmf xorriso gcc`"), "{line}");
        assert!(!commands_line(&steps, false).contains("sudo"));
        assert!(!line.contains('\n'));
        for step in &steps {
            assert!(!describe(step).contains('\n'));
        }
    }

    #[test]
    fn each_step_says_in_one_line_what_why_and_where_its_output_goes() {
        let steps = plan::plan(&plan::tests::fresh(), Purpose::Test);
        let lines: Vec<String> = (0..steps.len())
            .map(|n| step_line(n, steps.len(), &steps[n], "target/artifacts/setup.log"))
            .collect();
        assert_eq!(
            lines[2],
            format!(
                "setup: [3/{}] apt-get update: {} (output: target/artifacts/setup.log)",
                steps.len(),
                steps[2].why
            )
        );
        for line in &lines {
            assert!(!line.contains('\n') && line.ends_with("(output: target/artifacts/setup.log)"));
        }
    }
}
