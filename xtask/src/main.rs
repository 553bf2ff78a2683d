//! `cargo xtask`: build istorm, boot it in QEMU through its doors, run its tests and
//! benchmarks. One file per subcommand (`run.rs`, `test.rs`, `bench.rs`); the
//! modules they share each hold one concept.

mod accel;
mod boot;
mod build;
mod console;
mod crash;
mod exit;
mod iso;
mod jsonlog;
mod junit;
mod limine;
mod matrix;
mod opts;
mod ovmf;
mod process;
mod qemu;
mod recovery;
mod sequence;
mod serial;
mod suite;

mod bench;
mod run;
mod test;

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
    Run(run::Args),
    /// Run the host unit tests, then the QEMU boot matrix.
    Test(test::Args),
    /// Measure boot times.
    Bench(bench::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli {
        Cli::Build => build::kernel().map(|elf| {
            println!("{}", elf.display());
            ExitCode::SUCCESS
        }),
        Cli::Run(args) => run::main(args),
        Cli::Test(args) => test::main(args),
        Cli::Bench(args) => bench::main(args),
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
}
