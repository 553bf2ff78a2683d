//! `cargo xtask image`: the disk image for USB sticks and disks. One raw image
//! boots under legacy BIOS and UEFI: its EFI system partition (`media/disk.rs`)
//! holds Limine's EFI loaders, its BIOS stage 3 `limine-bios.sys`, the menu
//! and the kernel, and `limine bios-install` puts the BIOS stages 1 and 2 in
//! the MBR and the GPT's partition entries.
//!
//! The same image boots in QEMU through the image doors (`--boot disk-bios`,
//! `disk-uefi`, `usb-bios`, `usb-uefi`), and `cargo xtask test` checks all
//! four with a quick run ([`checks`]).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use testkit::protocol::parse_stream;

use crate::media::disk::{self, Entry};
use crate::media::limine::{self, Limine};
use crate::qemu::exit::Exit;
use crate::qemu::machine::{End, Outcome};
use crate::runner::boot::{BootConfig, Door};
use crate::runner::suite::Check;
use crate::{
    cmd::opts, cmd::results, media::iso, media::kernel, qemu::process, qemu::screenshot,
    qemu::serial,
};

const TOOL_TIMEOUT: Duration = Duration::from_secs(120);
pub const DEFAULT_MIB: u32 = 64;
/// Where limine.conf names the kernel (`kernel_path: boot():/boot/istorm`).
const KERNEL_PATH: &str = "boot/istorm";
/// Limine 8 looks for its menu in `/limine.conf`, `/limine/`, `/boot/`,
/// `/boot/limine/` and `/EFI/BOOT/` (strings of BOOTX64.EFI and
/// limine-bios.sys); the ISO uses the same place.
const CONF_PATH: &str = "boot/limine/limine.conf";

/// Build the disk image for USB sticks and disks (GPT, FAT32 EFI system
/// partition, Limine for BIOS and UEFI).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where to write the image [default: target/istorm.img].
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
    /// Size of the image in MiB.
    #[arg(long, value_name = "MiB", default_value_t = DEFAULT_MIB,
          value_parser = clap::value_parser!(u32).range(i64::from(disk::MIN_MIB)..=i64::from(disk::MAX_MIB)))]
    size: u32,
    /// Kernel command-line words appended to the first (default) menu entry,
    /// e.g. "filter=boot::".
    #[arg(long, value_name = "WORDS")]
    cmdline: Option<String>,
    /// Set the menu's timeout to 0 (boot the default entry at once), as the
    /// QEMU runs do; by default the menu waits 3 s for a choice.
    #[arg(long)]
    no_menu: bool,
    /// Directory with the Limine 8.2.0 binaries (else LIMINE_DIR, the cache in
    /// target/, /usr/share/limine, /usr/local/share/limine, a git clone).
    #[arg(long, value_name = "DIR")]
    limine_dir: Option<PathBuf>,
    /// Put this prebuilt kernel ELF on the image instead of building one.
    #[arg(long, value_name = "ELF")]
    kernel: Option<PathBuf>,
}

impl Args {
    fn words(&self) -> Vec<String> {
        self.cmdline
            .as_deref()
            .map(|c| c.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    }
}

/// The default image path.
pub fn default_path() -> PathBuf {
    crate::target_dir().join("istorm.img")
}

pub fn main(args: Args) -> Result<ExitCode> {
    let words = args.words();
    opts::check_kernel_args(&words)?;
    let out = args.out.clone().unwrap_or_else(default_path);
    let kernel = kernel::kernel_or(args.kernel.as_ref())?;
    let limine = limine::require(args.limine_dir.as_deref())?;
    let conf = menu(&words, args.no_menu)?;
    build(&kernel, &limine, &conf, args.size, &out)?;
    println!("{}", out.display());
    eprintln!(
        "image: {} MiB, GPT + FAT32 EFI system partition, Limine {} for BIOS and UEFI",
        args.size,
        limine::VERSION
    );
    eprintln!(
        "image: write it to a USB stick with `cargo xtask usb /dev/sdX --image {}`",
        out.display()
    );
    Ok(ExitCode::SUCCESS)
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

/// How QEMU attaches the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Medium {
    /// A SATA disk on the q35 AHCI controller.
    Disk,
    /// A removable USB mass-storage device on an xHCI controller.
    Usb,
}

/// A file name as a QEMU option value (commas doubled).
fn option_value(path: &Path) -> OsString {
    let text = path.to_string_lossy();
    OsString::from(text.replace(',', ",,"))
}

/// QEMU options that attach `image` as `medium`. `snapshot=on` opens the file
/// read-only with writes going to a temporary overlay: parallel runs share
/// one image, and the kernel can never change it.
pub fn drive_args(medium: Medium, image: &Path) -> Vec<OsString> {
    let mut file = OsString::from("format=raw,snapshot=on,file=");
    file.push(option_value(image));
    let mut args: Vec<OsString> = Vec::new();
    match medium {
        Medium::Disk => {
            let mut drive = OsString::from("if=ide,");
            drive.push(&file);
            args.extend(["-drive".into(), drive]);
        }
        Medium::Usb => {
            let mut drive = OsString::from("if=none,id=stick,");
            drive.push(&file);
            args.extend([
                "-device".into(),
                "qemu-xhci,id=xhci".into(),
                "-drive".into(),
                drive,
                "-device".into(),
                "usb-storage,bus=xhci.0,drive=stick,removable=on".into(),
            ]);
        }
    }
    args
}

/// The kernel words of the image checks: the boot test only.
const QUICK: &str = "filter=boot::";
const CHECK_SMP: u32 = 2;

/// The four boots of the image: disk and USB stick, SeaBIOS and OVMF, each a
/// quick run that must end with the kernel's `done` event and no failure;
/// then a held run whose screenshot's QR code must tell what its events tell.
pub fn checks(timeout: Duration) -> Vec<Check> {
    let mut checks: Vec<Check> = [
        ("image::uefi_disk", Door::DiskUefi),
        ("image::uefi_usb", Door::UsbUefi),
        ("image::bios_disk", Door::DiskBios),
        ("image::bios_usb", Door::UsbBios),
    ]
    .into_iter()
    .map(|(name, door)| Check {
        name: name.into(),
        config: BootConfig {
            door,
            smp: CHECK_SMP,
            cpu: "max".into(),
            args: vec![QUICK.into()],
            single_step: false,
        },
        timeout,
        checker: Box::new(check_run),
    })
    .collect();
    checks.push(screenshot_check(timeout));
    checks
}

/// A quick run from the image held at its end (`hold=1`): the screenshot
/// lands in `target/artifacts/`, and its QR code must equal the `qr:` line
/// and the run's events (`results::check_held`).
fn screenshot_check(timeout: Duration) -> Check {
    let config = BootConfig {
        door: Door::DiskBios,
        smp: CHECK_SMP,
        cpu: "max".into(),
        args: vec![QUICK.into(), screenshot::HOLD.into()],
        single_step: false,
    };
    let png = screenshot::png_path(&config);
    Check {
        name: "image::screenshot_qr".into(),
        config,
        timeout,
        checker: Box::new(move |out| results::check_held(out, &png)),
    }
}

/// A quick run from the image: kernel success, Limine's door with every CPU,
/// and a complete wire stream whose `done` counts no failure.
fn check_run(out: &Outcome) -> Result<(), String> {
    let boot = serial::boot_line(&out.serial);
    if out.end != End::Exited(Exit::Success) {
        let last = serial::tail(&out.serial, 1);
        let last = last.first().map_or("no serial output".into(), |l| {
            format!("last serial line `{l}`")
        });
        return Err(format!("{} (wanted kernel success); {last}", out.end));
    }
    let boot = boot?;
    if boot.door != "limine" || boot.cpus != u64::from(CHECK_SMP) {
        return Err(format!(
            "boot line: door={} cpus={} (wanted limine and {CHECK_SMP})",
            boot.door, boot.cpus
        ));
    }
    let transcript = parse_stream(out.serial.as_bytes());
    if let Some((line, error)) = transcript.errors().next() {
        return Err(format!("serial line {line}: {error}"));
    }
    let done = transcript.done();
    match done {
        None => Err("no `done` event".into()),
        Some((0, _, _)) => Err("`done` counts no passed test".into()),
        Some((_, 0, _)) => Ok(()),
        Some((passed, failed, skipped)) => Err(format!(
            "`done`: {passed} passed, {failed} failed, {skipped} skipped"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(end: End, serial: &str) -> Outcome {
        Outcome::canned(end, serial)
    }

    const GOOD: &str = "boot: door=limine cpus=2 lapic=x2apic\r\n\
        test boot::nmi_all_to_all [linux] ... ok\r\n\
        @istorm {\"type\":\"done\",\"passed\":1,\"failed\":0,\"skipped\":0}\r\n";

    #[test]
    fn the_image_checks_are_named_as_promised() {
        let checks = checks(Duration::from_secs(60));
        let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
        for name in [
            "image::bios_disk",
            "image::uefi_disk",
            "image::bios_usb",
            "image::uefi_usb",
        ] {
            assert!(names.contains(&name), "{name} missing from {names:?}");
        }
        assert!(names.contains(&"image::screenshot_qr"), "{names:?}");
        for check in &checks {
            assert!(check.config.door.needs_limine(), "{}", check.name);
            let held = screenshot::is_held(&check.config.args);
            assert_eq!(held, check.name == "image::screenshot_qr", "{}", check.name);
            assert_eq!(check.config.args[0], QUICK);
        }
    }

    #[test]
    fn a_quick_run_passes_and_each_fault_is_named() {
        let ok = |end: End, serial: &str| check_run(&out(end, serial));
        let success = || End::Exited(Exit::Success);
        assert_eq!(ok(success(), GOOD), Ok(()));
        let err = ok(End::Hang(Duration::from_secs(9)), GOOD).unwrap_err();
        assert!(err.starts_with("hang after 9 s"), "{err}");
        let err = ok(success(), &GOOD.replace("door=limine", "door=pvh")).unwrap_err();
        assert!(err.contains("door=pvh"), "{err}");
        let err = ok(success(), &GOOD.replace("\"failed\":0", "\"failed\":2")).unwrap_err();
        assert!(err.contains("2 failed"), "{err}");
        let err = ok(success(), &GOOD.replace("\"passed\":1", "\"passed\":0")).unwrap_err();
        assert!(err.contains("no passed"), "{err}");
        let cut = GOOD.rsplit_once("@istorm").unwrap().0;
        let err = ok(success(), cut).unwrap_err();
        assert!(err.contains("done"), "{err}");
    }

    #[test]
    fn drives_are_read_only_snapshots_and_commas_are_escaped() {
        let words = |m| {
            drive_args(m, Path::new("/t/a,b.img"))
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            words(Medium::Disk),
            "-drive if=ide,format=raw,snapshot=on,file=/t/a,,b.img"
        );
        let usb = words(Medium::Usb);
        assert!(usb.starts_with("-device qemu-xhci,id=xhci -drive if=none,id=stick,"));
        assert!(usb.ends_with("-device usb-storage,bus=xhci.0,drive=stick,removable=on"));
    }

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
