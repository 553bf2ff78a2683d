//! `cargo xtask image`: writes the disk image for USB sticks and disks
//! (`media/image.rs` builds it), with the user's kernel words on the first menu
//! entry.
//!
//! The same image boots in QEMU through the image doors (`--boot disk-bios`,
//! `disk-uefi`, `usb-bios`, `usb-uefi`), and `cargo xtask test` checks all
//! four with a quick run (`runner/image_checks.rs`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use crate::cmd::opts;
use crate::media::image::{DEFAULT_MIB, build, default_path, menu};
use crate::media::{disk, kernel, limine};

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
