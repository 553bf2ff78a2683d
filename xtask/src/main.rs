//! `cargo xtask`: build istorm, boot it in QEMU through its doors, run its tests and
//! benchmarks.
//!
//! The code lives in five rooms, and imports run one way, down this list:
//!
//! ```text
//! cmd      one file per subcommand (run, test, bench, image, usb, results)
//! runner   boot configurations, checks, suites, sequences, crash recovery, the matrix
//! media    the kernel ELF, Limine, the ISO, the disk image, USB sticks
//! qemu     machine, processes, exit statuses, accelerator, firmware, serial, QMP
//! report   console, JSON lines, JUnit, pictures
//! ```
//!
//! A room may import the rooms below it, never one above; within a room,
//! modules may import each other without a cycle. `tests/rooms.rs` holds it.
//! This file only parses the command line and says where the workspace is.

mod cmd;
mod media;
mod qemu;
mod report;
mod runner;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

/// Build, boot and test istorm.
#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version, about)]
enum Cli {
    /// Build the kernel ELF and print its path.
    Build,
    /// Boot the kernel in QEMU and stream its serial console.
    Run(cmd::run::Args),
    /// Run the host unit tests, the QEMU boot matrix and the kernel's tests
    /// under every strategy and LAPIC mode.
    Test(cmd::test::Args),
    /// Measure boot times, the runner's costs, or exception-entry round trips.
    Bench(cmd::bench::Args),
    /// Build the disk image for USB sticks (GPT, FAT32 EFI system partition,
    /// Limine for BIOS and UEFI).
    Image(cmd::image::Args),
    /// Write the disk image to a USB stick, after checking that the device
    /// is one.
    Usb(cmd::usb::Args),
    /// Turn the QR code shown at the end of a run back into the report a
    /// QEMU run gives; merge result files of many runs (JSON lines, JUnit,
    /// QR texts, serial and LAVA logs) into one table.
    Results(cmd::results::Args),
    /// Run the catalog on every platform here (QEMU TCG x2APIC and xAPIC,
    /// Bochs, KVM) and print the hazard x platform divergence table.
    Matrix(cmd::divergence::Args),
    /// Write LAVA job definitions (QEMU, and an x86 PC booting the USB image).
    Lava(cmd::lava::Args),
    /// Mutation testing of the entry code: build each mutant of the catalog,
    /// run the scenarios that must kill it, print the kill matrix.
    Mutants(cmd::mutants::Args),
    /// Write one self-contained HTML page from a run's JSON: the strategy x
    /// scenario matrix, where NMIs landed in the entry stubs, the trend.
    Report(cmd::report::Args),
}

/// A command-line mistake as one line `error: ...` (clap's own report has a
/// usage block and exits with 2); help and version print as clap prints them.
fn parse_args() -> Result<Cli, ExitCode> {
    Cli::try_parse().map_err(|e| {
        use clap::error::ErrorKind;
        match e.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                let _ = e.print();
                ExitCode::SUCCESS
            }
            _ => {
                eprintln!("{}", one_line(&e.render().to_string()));
                ExitCode::FAILURE
            }
        }
    })
}

/// The first line of clap's report, `error: ...`; a line ending in `:`
/// (clap's "required arguments were not provided:") takes the next one along.
fn one_line(report: &str) -> String {
    let mut lines = report.lines().map(str::trim).filter(|l| !l.is_empty());
    let mut first = lines.next().unwrap_or("").to_string();
    if first.ends_with(':')
        && let Some(next) = lines.next()
    {
        first = format!("{first} {next}");
    }
    if first.starts_with("error:") {
        first
    } else {
        format!("error: {first}")
    }
}

fn main() -> ExitCode {
    let cli = match parse_args() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let result = match cli {
        Cli::Build => media::kernel::kernel().map(|elf| {
            println!("{}", elf.display());
            ExitCode::SUCCESS
        }),
        Cli::Run(args) => cmd::run::main(args),
        Cli::Test(args) => cmd::test::main(args),
        Cli::Bench(args) => cmd::bench::main(args),
        Cli::Image(args) => cmd::image::main(args),
        Cli::Usb(args) => cmd::usb::main(args),
        Cli::Results(args) => cmd::results::main(args),
        Cli::Matrix(args) => cmd::divergence::main(args),
        Cli::Lava(args) => cmd::lava::main(args),
        Cli::Report(args) => cmd::report::main(args),
        Cli::Mutants(args) => cmd::mutants::main(args),
    };
    result.unwrap_or_else(|error| {
        // `{:#}` prints the whole context chain on one line and never a backtrace,
        // whatever RUST_BACKTRACE says: a user's mistake is not a crash.
        eprintln!("error: {error:#}");
        ExitCode::FAILURE
    })
}

/// The workspace root (the directory holding the top-level Cargo.toml).
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
}

/// The workspace's `target/` directory, where every generated file goes.
pub fn target_dir() -> PathBuf {
    root().join("target")
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn mistakes_are_one_line() {
        use clap::Parser;
        let e = Cli::try_parse_from(["xtask", "test", "--entry", "shift_ist"])
            .err()
            .unwrap();
        let line = super::one_line(&e.render().to_string());
        assert!(
            line.starts_with("error: invalid value 'shift_ist'"),
            "{line}"
        );
        assert!(
            line.contains("naive, shift-only, linux-4.19, dr7-guard, linux"),
            "{line}"
        );
        assert!(!line.contains('\n'));
        assert_eq!(super::one_line("oops\n"), "error: oops");
        let e = Cli::try_parse_from(["xtask", "usb"]).err().unwrap();
        let line = super::one_line(&e.render().to_string());
        assert_eq!(
            line,
            "error: the following required arguments were not provided: <DEVICE>"
        );
    }
}
