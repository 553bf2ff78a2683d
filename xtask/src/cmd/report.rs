//! `cargo xtask report`: the HTML page of a run (`report/html`), and with
//! `--check`, the same check in headless Chromium that `cargo xtask test`
//! runs on its own run (`runner/browser`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::media::kernel;
use crate::report::html::{self, trend};
use crate::runner::browser;

/// Write the HTML report of a run.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The run's JSON lines (`cargo xtask test --json`) [default: the newest
    /// run kept under target/runs].
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// A platform divergence JSON file to include as a table.
    #[arg(long, value_name = "PATH")]
    platforms: Option<PathBuf>,
    /// The kernel ELF whose entry stubs are disassembled [default: the one
    /// `cargo xtask build` makes, built when missing].
    #[arg(long, value_name = "ELF")]
    kernel: Option<PathBuf>,
    /// Where the page goes.
    #[arg(long, short, value_name = "PATH", default_value = "target/report.html")]
    out: PathBuf,
    /// Then open it in headless Chromium and check it against the JSON.
    #[arg(long)]
    check: bool,
    /// Print the strategy table (scenario x strategy, each cell's verdict and
    /// its evidence) as Markdown instead: the README's table comes from it.
    #[arg(long)]
    strategy_table: bool,
    /// Print, for every sweep with a per-landing prediction (`shift-only`),
    /// the table of landings per stub instruction: NMIs, corrupted, predicted.
    #[arg(long)]
    timing_table: bool,
}

pub fn main(args: Args) -> Result<ExitCode> {
    let json = match args.json {
        Some(json) => json,
        None => trend::latest().context(
            "no run kept under target/runs: run `cargo xtask test` first, or pass --json PATH",
        )?,
    };
    if args.strategy_table || args.timing_table {
        let text = std::fs::read_to_string(&json)
            .with_context(|| format!("reading `{}`", json.display()))?;
        let run = html::Run::parse(&text)?;
        if args.strategy_table {
            print!("{}", html::strategy_table::markdown(&run));
        }
        if args.timing_table {
            print!("{}", html::strategy_table::timing_markdown(&run));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let elf = match args.kernel {
        Some(elf) => elf,
        None if kernel::kernel_path().is_file() => kernel::kernel_path(),
        None => kernel::kernel()?,
    };
    html::write(&json, args.platforms.as_deref(), Some(&elf), &args.out)?;
    println!("report: {}", args.out.display());
    if args.check {
        println!("report check: {}", browser::check(&json, Some(&elf))?);
    }
    Ok(ExitCode::SUCCESS)
}
