//! Building the kernel (and running host cargo commands) with a clean environment.
//!
//! `cargo xtask` runs inside an outer `cargo run`, which exports `CARGO_*` and
//! `RUSTC*` variables meant for the xtask's own build. Passed on, they would leak
//! into the kernel's build for another target, so every one of them is removed
//! except `CARGO_HOME` (where the registry cache lives); `RUSTUP_*` stays so the
//! toolchain does not change. `RUSTFLAGS`/`RUSTDOCFLAGS` go too: they would
//! replace the target's rustflags in `.cargo/config.toml`
//! (`-C relocation-model=static`, which Limine needs).

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, ensure};

use crate::qemu::process;

pub const KERNEL_TARGET: &str = "x86_64-unknown-none";
const KERNEL_PACKAGE: &str = "istorm-kernel";
const KERNEL_BIN: &str = "istorm";

/// Whether an inherited environment variable must not reach a nested cargo.
fn is_leaky(name: &OsStr) -> bool {
    let name = name.to_string_lossy();
    (name.starts_with("CARGO") && name != "CARGO_HOME")
        || name.starts_with("RUSTC")
        || name == "RUSTFLAGS"
        || name == "RUSTDOCFLAGS"
}

/// A `cargo` command run from the workspace root with a clean environment.
pub fn cargo() -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(crate::root());
    for (name, _) in std::env::vars_os() {
        if is_leaky(&name) {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// Where the release kernel ELF lands.
pub fn kernel_path() -> PathBuf {
    crate::target_dir()
        .join(KERNEL_TARGET)
        .join("release")
        .join(KERNEL_BIN)
}

/// `cargo build` of the release kernel, for the caller to adjust and run.
fn kernel_build() -> Command {
    let mut cmd = cargo();
    cmd.args([
        "build",
        "--release",
        "-p",
        KERNEL_PACKAGE,
        "--target",
        KERNEL_TARGET,
    ]);
    cmd
}

/// Builds the kernel ELF and returns its path.
pub fn kernel() -> Result<PathBuf> {
    process::run(&mut kernel_build()).context("building the kernel")?;
    let elf = kernel_path();
    ensure!(
        elf.is_file(),
        "cargo built the kernel but `{}` is missing",
        elf.display()
    );
    Ok(elf)
}

const MUTANT_BUILD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// Where mutant kernels are built: their own target directory, so that a
/// mutant build never replaces the real kernel or its incremental cache.
pub fn mutants_dir() -> PathBuf {
    crate::target_dir().join("mutants")
}

/// Builds the kernel as mutant `name` (`ISTORM_MUTANT=name`, read by the
/// kernel's `entry::mutant`) and copies the ELF to `mutants/elf/NAME`, where
/// it stays valid while the next mutant builds.
pub fn mutant_kernel(name: &str) -> Result<PathBuf> {
    let dir = mutants_dir();
    let mut cmd = kernel_build();
    cmd.env("ISTORM_MUTANT", name).env("CARGO_TARGET_DIR", &dir);
    process::run_quiet(&mut cmd, MUTANT_BUILD_TIMEOUT)
        .with_context(|| format!("building mutant {name}"))?;
    let built = dir.join(KERNEL_TARGET).join("release").join(KERNEL_BIN);
    let kept = dir.join("elf").join(name);
    std::fs::create_dir_all(dir.join("elf"))?;
    std::fs::copy(&built, &kept)
        .with_context(|| format!("copying `{}` to `{}`", built.display(), kept.display()))?;
    Ok(kept)
}

/// The kernel to boot: a prebuilt ELF given with `--kernel`, else a fresh build.
pub fn kernel_or(prebuilt: Option<&PathBuf>) -> Result<PathBuf> {
    match prebuilt {
        Some(elf) => {
            ensure!(elf.is_file(), "--kernel {}: no such file", elf.display());
            Ok(elf.clone())
        }
        None => kernel(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outer_cargo_variables_are_removed() {
        for leaky in [
            "CARGO",
            "CARGO_MANIFEST_DIR",
            "CARGO_PKG_NAME",
            "CARGO_TARGET_DIR",
            "CARGO_ENCODED_RUSTFLAGS",
            "CARGO_BUILD_TARGET",
            "RUSTC",
            "RUSTC_WRAPPER",
            "RUSTC_WORKSPACE_WRAPPER",
            "RUSTFLAGS",
            "RUSTDOCFLAGS",
        ] {
            assert!(is_leaky(OsStr::new(leaky)), "{leaky}");
        }
        for kept in [
            "CARGO_HOME",
            "RUSTUP_HOME",
            "RUSTUP_TOOLCHAIN",
            "PATH",
            "HOME",
        ] {
            assert!(!is_leaky(OsStr::new(kept)), "{kept}");
        }
    }

    #[test]
    fn cargo_commands_start_at_the_workspace_root() {
        let cmd = cargo();
        assert_eq!(cmd.get_current_dir(), Some(crate::root()));
        assert!(crate::root().join("Cargo.toml").is_file());
    }
}
