//! The disk image for USB sticks and disks. One raw image boots under legacy
//! BIOS and UEFI: its EFI system partition (`disk.rs`) holds Limine's EFI
//! loaders, its BIOS stage 3 `limine-bios.sys`, the menu and the kernel, and
//! `limine bios-install` puts the BIOS stages 1 and 2 in the MBR and the GPT's
//! partition entries.
//!
//! `cargo xtask image` writes it (`cmd/image.rs`); the image doors boot it in
//! QEMU (`qemu/drive.rs` attaches it, `runner/image_checks.rs` checks it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::media::disk::{self, Entry};
use crate::media::limine::{self, Limine};
use crate::media::{iso, kernel};
use crate::qemu::process;

const TOOL_TIMEOUT: Duration = Duration::from_secs(120);
pub const DEFAULT_MIB: u32 = 64;
/// Where limine.conf names the kernel (`kernel_path: boot():/boot/istorm`).
const KERNEL_PATH: &str = "boot/istorm";
/// Limine 8 looks for its menu in `/limine.conf`, `/limine/`, `/boot/`,
/// `/boot/limine/` and `/EFI/BOOT/` (strings of BOOTX64.EFI and
/// limine-bios.sys); the ISO uses the same place.
const CONF_PATH: &str = "boot/limine/limine.conf";

/// The default image path.
pub fn default_path() -> PathBuf {
    crate::target_dir().join("istorm.img")
}

/// Builds `target/istorm.img` as `cargo xtask image` does without options
/// (the menu waits 3 s), for `cargo xtask usb`.
pub fn build_default(limine_dir: Option<&Path>, kernel: Option<&PathBuf>) -> Result<PathBuf> {
    let kernel = kernel::kernel_or(kernel)?;
    let limine = limine::require(limine_dir)?;
    let out = default_path();
    build(&kernel, &limine, &menu(&[], false)?, DEFAULT_MIB, &out)?;
    Ok(out)
}

/// The workspace's limine.conf with `extra` appended to the first entry's
/// command line and, for QEMU runs, the menu timeout at 0.
pub fn menu(extra: &[String], no_menu: bool) -> Result<String> {
    let path = crate::root().join("limine.conf");
    let conf = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read `{}`", path.display()))?;
    let conf = if no_menu {
        iso::zero_timeout(&conf)
    } else {
        conf
    };
    iso::rewrite_conf(&conf, extra).context("rewriting limine.conf")
}

/// Builds the image at `out` (through a scratch file renamed at the end, so
/// that `out` is never half-written).
pub fn build(kernel: &Path, limine: &Limine, conf: &str, size_mib: u32, out: &Path) -> Result<()> {
    build_inner(kernel, limine, conf, size_mib, out).context("building the disk image")
}

fn build_inner(
    kernel: &Path,
    limine: &Limine,
    conf: &str,
    size_mib: u32,
    out: &Path,
) -> Result<()> {
    let tool = limine.host_tool()?;
    let read = |path: &Path| {
        std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))
    };
    let kernel_elf = read(kernel)?;
    let x64 = read(&limine.file("BOOTX64.EFI"))?;
    let ia32 = read(&limine.file("BOOTIA32.EFI"))?;
    let stage3 = read(&limine.file("limine-bios.sys"))?;
    let files = [
        Entry {
            path: "EFI/BOOT/BOOTX64.EFI",
            data: &x64,
        },
        Entry {
            path: "EFI/BOOT/BOOTIA32.EFI",
            data: &ia32,
        },
        Entry {
            path: "boot/limine/limine-bios.sys",
            data: &stage3,
        },
        Entry {
            path: CONF_PATH,
            data: conf.as_bytes(),
        },
        Entry {
            path: KERNEL_PATH,
            data: &kernel_elf,
        },
    ];
    let mut hash = Sha256::new();
    hash.update(size_mib.to_le_bytes());
    for entry in &files {
        hash.update(entry.path.as_bytes());
        hash.update((entry.data.len() as u64).to_le_bytes());
        hash.update(entry.data);
    }
    let seed: [u8; 32] = hash.finalize().into();

    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
    }
    let mut partial = out.as_os_str().to_owned();
    partial.push(format!(".partial-{}", std::process::id()));
    let partial = PathBuf::from(partial);
    let made = disk::write(&partial, size_mib, &seed, &files).and_then(|()| {
        let mut cmd = Command::new(&tool);
        cmd.arg("bios-install").arg(&partial);
        process::run_quiet(&mut cmd, TOOL_TIMEOUT)
    });
    if let Err(e) = made {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    std::fs::rename(&partial, out)
        .with_context(|| format!("cannot move the image to `{}`", out.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_menu_gets_the_words_and_keeps_its_timeout_unless_asked() {
        let conf = menu(&["filter=boot::".into()], false).unwrap();
        assert!(conf.contains("timeout: 3"), "{conf}");
        let first = conf
            .lines()
            .find(|l| l.trim_start().starts_with("cmdline:"));
        assert!(first.unwrap().ends_with("filter=boot::"), "{conf}");
        let quick = menu(&[], true).unwrap();
        assert!(quick.contains("timeout: 0") && !quick.contains("timeout: 3"));
    }

    #[test]
    fn the_shared_limine_makes_an_image_that_bios_install_accepts() {
        let shared = crate::root().join("../shared/limine/v8.2.0");
        let Ok(limine) = limine::verify(&shared) else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("istorm");
        std::fs::write(&kernel, b"\x7fELF not really").unwrap();
        let out = dir.path().join("x.img");
        build(&kernel, &limine, "timeout: 0\n", disk::MIN_MIB, &out).unwrap();
        let data = std::fs::read(&out).unwrap();
        // Stage 1 in the MBR, the boot signature kept, the GPT still there.
        assert_ne!(&data[..440], &[0u8; 440][..]);
        assert_eq!(&data[510..512], b"\x55\xaa");
        assert_eq!(&data[512..520], b"EFI PART");
        let mut file = std::fs::File::open(&out).unwrap();
        let gpt = gpt::GptConfig::new().open_from_device(&mut file).unwrap();
        assert_eq!(gpt.partitions()[&1].first_lba, 2048);
    }
}
