//! `cargo xtask usb DEVICE`: writes the disk image to a USB stick. The device
//! is judged first (`media/sysfs.rs`: whole, removable, on USB, unmounted, not too
//! large) and the user confirms by typing its model name; then the image is
//! written with a progress bar, flushed with fsync, read back past the page
//! cache (O_DIRECT) and compared by SHA-256 (`media/stick.rs`).

use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};

use crate::media::image;
use crate::media::stick::write_verified;
use crate::media::sysfs::{self, Disk, Node, Policy};

/// Write the disk image to a USB stick (whole device, e.g. /dev/sdb).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The whole USB stick, e.g. /dev/sdb or /dev/disk/by-id/usb-...
    /// (`lsblk -d -o NAME,TRAN,RM,SIZE,MODEL` lists them).
    #[arg(value_name = "DEVICE")]
    device: PathBuf,
    /// Do not ask for the device's model name before writing.
    #[arg(long)]
    yes: bool,
    /// Accept a device larger than 256 GiB.
    #[arg(long)]
    allow_large: bool,
    /// Check the device and print what would be done; build and write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Write this image instead of building target/istorm.img.
    #[arg(long, value_name = "PATH")]
    image: Option<PathBuf>,
    /// Directory with the Limine 8.2.0 binaries, for building the image.
    #[arg(long, value_name = "DIR")]
    limine_dir: Option<PathBuf>,
    /// Put this prebuilt kernel ELF on the image instead of building one.
    #[arg(long, value_name = "ELF")]
    kernel: Option<PathBuf>,
}

pub fn main(args: Args) -> Result<ExitCode> {
    let image_bytes = match &args.image {
        Some(path) => image_len(path)?,
        None => u64::from(image::DEFAULT_MIB) << 20,
    };
    let policy = Policy {
        allow_large: args.allow_large,
        image_bytes,
    };
    let disk = inspect(&args.device, policy)?;
    let shown = args.device.display();
    if args.dry_run {
        let source = match &args.image {
            Some(path) => format!("`{}`", path.display()),
            None => format!("a fresh `{}`", image::default_path().display()),
        };
        println!("usb: `{shown}` is {}: accepted", disk.describe());
        println!(
            "usb: would write {source} ({}) to it, fsync, read it back and compare SHA-256",
            sysfs::human(image_bytes)
        );
        println!("usb: dry run, nothing built or written");
        return Ok(ExitCode::SUCCESS);
    }
    let image = match args.image {
        Some(path) => path,
        None => image::build_default(args.limine_dir.as_deref(), args.kernel.as_ref())?,
    };
    if !args.yes {
        confirm(&disk, &shown.to_string(), &mut io::stdin().lock())?;
    }
    let started = Instant::now();
    let sum = write_verified(&image, &args.device, true)?;
    println!(
        "usb: wrote and verified {} on `{shown}` in {:.1} s (SHA-256 {})",
        sysfs::human(image_bytes),
        started.elapsed().as_secs_f64(),
        &sum[..16]
    );
    println!("{}", next_steps());
    Ok(ExitCode::SUCCESS)
}

/// The image's size; it must be a whole number of 512-byte sectors.
fn image_len(path: &Path) -> Result<u64> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("--image {}: cannot read it", path.display()))?;
    ensure!(meta.is_file(), "--image {}: not a file", path.display());
    let len = meta.len();
    ensure!(
        len > 0 && len % 512 == 0,
        "--image {}: {len} bytes is not a disk image (a multiple of 512 bytes)",
        path.display()
    );
    Ok(len)
}

/// Judges the real device: `stat`, `/sys`, `/proc/self/mounts`.
fn inspect(device: &Path, policy: Policy) -> Result<Disk> {
    let shown = device.display().to_string();
    let meta = match std::fs::metadata(device) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            bail!(
                "`{shown}` does not exist (`lsblk -d -o NAME,TRAN,RM,SIZE,MODEL` lists the disks)"
            )
        }
        Err(e) => bail!("cannot inspect `{shown}`: {e}"),
    };
    let mounts =
        std::fs::read_to_string("/proc/self/mounts").context("reading /proc/self/mounts")?;
    sysfs::inspect(Path::new("/sys"), &shown, Node::of(&meta), &mounts, policy)
}

/// Asks for the model name; anything else is a refusal.
fn confirm(disk: &Disk, shown: &str, input: &mut dyn BufRead) -> Result<()> {
    eprintln!(
        "usb: this erases everything on `{shown}`: {}",
        disk.describe()
    );
    eprint!("usb: type its model name `{}` to go on: ", disk.model);
    let _ = io::stderr().flush();
    let mut line = String::new();
    let n = input
        .read_line(&mut line)
        .context("reading the confirmation")?;
    let typed = line.trim();
    if n == 0 {
        bail!("not confirmed (no input); type the model name or pass --yes");
    }
    ensure!(
        typed == disk.model,
        "not confirmed: `{typed}` is not the model name `{}`; nothing written",
        disk.model
    );
    Ok(())
}

/// What to do with the stick.
fn next_steps() -> String {
    [
        "next: plug the stick into the PC to test and power it on holding its boot-menu key:",
        "  Dell, Lenovo, Acer, Toshiba, Gigabyte: F12; HP: F9 (or Esc, then F9);",
        "  ASUS: F8 (desktops) or Esc (laptops); MSI, ASRock: F11; Intel NUC: F10;",
        "  Mac (Intel): hold Option, UEFI only",
        "then: pick the stick (its `UEFI:` entry, or the plain one for legacy BIOS);",
        "  Secure Boot must be off: Limine's loader is not signed",
        "then: in Limine's menu pick `istorm: default suite` (it starts by itself after 3 s);",
        "  the other entries run one strategy alone, or a quick smoke run",
        "results: on screen at the end, and on COM1 (115200 8N1) if the PC has a serial port;",
        "  the QR code on screen turns back into a report with `cargo xtask results --qr TEXT`",
    ]
    .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk() -> Disk {
        Disk {
            name: "sdb".into(),
            model: "Cruzer Blade".into(),
            vendor: "SanDisk".into(),
            bytes: 16 << 30,
        }
    }

    #[test]
    fn only_the_model_name_confirms() {
        let mut yes = io::Cursor::new(b"  Cruzer Blade \n".to_vec());
        confirm(&disk(), "/dev/sdb", &mut yes).unwrap();
        for (typed, want) in [
            (&b"yes\n"[..], "`yes` is not the model name `Cruzer Blade`"),
            (b"cruzer blade\n", "is not the model name"),
            (b"", "no input"),
        ] {
            let mut input = io::Cursor::new(typed.to_vec());
            let err = confirm(&disk(), "/dev/sdb", &mut input).unwrap_err();
            assert!(err.to_string().contains(want), "{err}");
        }
    }

    #[test]
    fn images_must_be_whole_sectors() {
        let dir = tempfile::tempdir().unwrap();
        let odd = dir.path().join("odd.img");
        std::fs::write(&odd, b"abc").unwrap();
        let err = image_len(&odd).unwrap_err().to_string();
        assert!(err.contains("not a disk image"), "{err}");
        let err = image_len(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a file"), "{err}");
    }

    #[test]
    fn a_plain_file_and_a_missing_path_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("somefile");
        std::fs::write(&file, b"x").unwrap();
        let policy = Policy {
            allow_large: false,
            image_bytes: 64 << 20,
        };
        let err = inspect(&file, policy).unwrap_err().to_string();
        assert!(
            err.contains("is a regular file, not a block device"),
            "{err}"
        );
        let err = inspect(&dir.path().join("nope"), policy)
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not exist"), "{err}");
    }
}
