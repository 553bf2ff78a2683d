//! This machine as a [`Probe`], and carrying a [`Step`] out on it.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use super::plan::{Action, Probe, Step};
use crate::qemu::process;

pub struct Machine;

impl Probe for Machine {
    fn program(&self, name: &str) -> bool {
        process::find_program(name).is_some()
    }

    fn qemu_version(&self) -> Option<(u32, u32)> {
        let out = Command::new("qemu-system-x86_64")
            .arg("--version")
            .stderr(Stdio::null())
            .output()
            .ok()?;
        parse_qemu_version(&String::from_utf8_lossy(&out.stdout))
    }

    fn file(&self, path: &str) -> bool {
        std::path::Path::new(path).is_file()
    }

    fn rust_target(&self, target: &str) -> bool {
        // The toolchain `cargo xtask` runs under (rust-toolchain.toml).
        let Ok(out) = Command::new("rustc")
            .args(["--print", "sysroot"])
            .current_dir(crate::root())
            .stderr(Stdio::null())
            .output()
        else {
            return false;
        };
        let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_string();
        std::path::Path::new(&sysroot)
            .join("lib/rustlib")
            .join(target)
            .join("lib")
            .is_dir()
    }

    fn root(&self) -> bool {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() == 0 }
    }

    fn codename(&self) -> Option<String> {
        let text = std::fs::read_to_string("/etc/os-release").ok()?;
        text.lines().find_map(|l| {
            l.strip_prefix("VERSION_CODENAME=")
                .map(|v| v.trim_matches('"').to_string())
        })
    }

    fn read(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(path).ok()
    }

    fn apt_sources(&self) -> Vec<String> {
        let mut texts: Vec<String> = self.read("/etc/apt/sources.list").into_iter().collect();
        if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
            for entry in dir.flatten() {
                let path = entry.path();
                let name = path.to_string_lossy();
                if (name.ends_with(".list") || name.ends_with(".sources"))
                    && let Ok(text) = std::fs::read_to_string(&path)
                {
                    texts.push(text);
                }
            }
        }
        texts
    }
}

/// `QEMU emulator version 10.0.2 (Debian ...)` -> (10, 0).
pub fn parse_qemu_version(text: &str) -> Option<(u32, u32)> {
    let rest = text.lines().next()?.split("version ").nth(1)?;
    let mut parts = rest.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// How many of the log's last lines a failed step shows.
pub const TAIL_LINES: usize = 20;

/// Runs one step; `sudo` is the prefix for commands that need root, `None`
/// when already root. What the command prints (apt and dpkg print hundreds
/// of lines on a fresh machine) goes to the end of `log`, after a line
/// naming the command; a failed step's error quotes the log's last lines.
pub fn carry_out(step: &Step, sudo: Option<&str>, log: &Path) -> Result<()> {
    let as_root = |words: &[&str]| {
        let mut all: Vec<&str> = sudo.map(|s| s.split(' ').collect()).unwrap_or_default();
        all.extend_from_slice(words);
        let mut cmd = Command::new(all[0]);
        cmd.args(&all[1..]);
        cmd
    };
    // apt waits for another apt (a colleague's install) instead of failing.
    let lock_wait = "DPkg::Lock::Timeout=600";
    match &step.action {
        Action::RustTarget(target) => {
            let mut cmd = Command::new("rustup");
            cmd.args(["target", "add", target])
                .current_dir(crate::root());
            run_logged(&mut cmd, None, log)
        }
        Action::EnableSuite { dest, entry, .. } => {
            run_logged(&mut as_root(&["tee", dest]), Some(entry), log)
        }
        Action::AptUpdate => run_logged(
            &mut as_root(&["apt-get", "update", "-qq", "-o", lock_wait]),
            None,
            log,
        ),
        Action::AptInstall {
            suite,
            packages,
            lean,
        } => {
            let mut words = vec![
                "env",
                "DEBIAN_FRONTEND=noninteractive",
                "apt-get",
                "install",
                "-y",
                "-qq",
                "-o",
                lock_wait,
            ];
            if let Some(suite) = suite {
                words.extend(["-t", suite.as_str()]);
            }
            if *lean {
                words.push("--no-install-recommends");
            }
            words.extend(packages.iter().map(String::as_str));
            run_logged(&mut as_root(&words), None, log)
        }
        Action::Manual(text) => bail!("{text}"),
    }
}

/// Runs `cmd` with `input` on its stdin (or nothing) and its output appended
/// to `log`; a failure's error ends with the log's last [`TAIL_LINES`] lines.
pub fn run_logged(cmd: &mut Command, input: Option<&str>, log: &Path) -> Result<()> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
    }
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot write `{}`", log.display()))?;
    let words: Vec<String> = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|w| w.to_string_lossy().into_owned())
        .collect();
    writeln!(file, "$ {}", words.join(" "))?;
    let name = words[0].clone();
    let mut child = cmd
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()
        .with_context(|| format!("cannot start `{name}`"))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(text.as_bytes())?;
    }
    let status = child.wait()?;
    if !status.success() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n  | ");
        bail!(
            "`{}` failed ({status}); the end of `{}`:\n  | {tail}",
            words.join(" "),
            log.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_versions_are_read_from_the_first_line() {
        let debian = "QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2~bpo12+1)\nCopyright";
        assert_eq!(parse_qemu_version(debian), Some((10, 0)));
        assert_eq!(
            parse_qemu_version("QEMU emulator version 7.2.15\n"),
            Some((7, 2))
        );
        assert_eq!(parse_qemu_version("bash: not found"), None);
        assert_eq!(parse_qemu_version(""), None);
    }

    #[test]
    fn a_step_writes_its_output_to_the_log_and_shows_its_end_only_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("artifacts/setup.log");
        let flood =
            "for i in $(seq 1 300); do echo Selecting previously unselected package p$i; done";
        let mut ok = Command::new("sh");
        ok.args(["-c", &format!("{flood}; cat")]);
        run_logged(
            &mut ok,
            Some("deb http://x bookworm-backports main\n"),
            &log,
        )
        .unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.starts_with("$ sh -c for i in"), "{text}");
        assert!(
            text.contains("package p300\ndeb http://x"),
            "the input went through"
        );

        let mut bad = Command::new("sh");
        bad.args([
            "-c",
            &format!("{flood} >&2; echo E: Unable to locate package qemu; exit 100"),
        ]);
        let err = run_logged(&mut bad, None, &log).unwrap_err().to_string();
        assert!(err.contains("failed (exit status: 100)"), "{err}");
        assert!(err.contains(&log.display().to_string()), "{err}");
        assert!(
            err.ends_with("  | E: Unable to locate package qemu"),
            "{err}"
        );
        assert!(
            err.contains("package p282\n") && !err.contains("package p281\n"),
            "{err}"
        );
        assert_eq!(err.lines().count(), TAIL_LINES + 1, "{err}");
        // Both runs are in the log, the first one kept.
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(text.matches("package p300").count(), 2);
    }

    #[test]
    fn this_machine_answers_without_changing() {
        let m = Machine;
        assert!(m.program("sh"));
        assert!(!m.program("no-such-program-istorm"));
        let _ = (m.root(), m.codename(), m.apt_sources(), m.qemu_version());
    }
}
