//! This machine as a [`Probe`], and carrying a [`Step`] out on it.

use std::io::Write;
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

/// Runs one step; `sudo` is the prefix for commands that need root, `None`
/// when already root.
pub fn carry_out(step: &Step, sudo: Option<&str>) -> Result<()> {
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
            process::run(&mut cmd)
        }
        Action::EnableSuite { dest, entry, .. } => {
            let mut cmd = as_root(&["tee", dest]);
            process::show(&cmd);
            let mut child = cmd
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .context("cannot start `tee`")?;
            child
                .stdin
                .take()
                .context("tee has no stdin")?
                .write_all(entry.as_bytes())?;
            let status = child.wait()?;
            if !status.success() {
                bail!("writing {dest} failed ({status})");
            }
            Ok(())
        }
        Action::AptUpdate => {
            let mut cmd = as_root(&["apt-get", "update", "-qq", "-o", lock_wait]);
            process::run(&mut cmd)
        }
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
            process::run(&mut as_root(&words))
        }
        Action::Manual(text) => bail!("{text}"),
    }
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
    fn this_machine_answers_without_changing() {
        let m = Machine;
        assert!(m.program("sh"));
        assert!(!m.program("no-such-program-istorm"));
        let _ = (m.root(), m.codename(), m.apt_sources(), m.qemu_version());
    }
}
