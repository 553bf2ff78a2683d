//! `cargo xtask report` (and `test --report`): one self-contained HTML page
//! from a run's JSON: the strategy x scenario matrix with each cell's
//! evidence, the entry stubs disassembled with where the NMIs landed and
//! which landings corrupted a frame, the timing table of the timing-dependent
//! strategies, the platform divergence table when given, and the trend of the
//! runs kept under `target/runs/`.
//!
//! `browser.rs` opens the page in headless Chromium over WebDriver and checks
//! it (a check of `cargo xtask test`).

pub mod browser;
mod disasm;
mod elf;
mod html;
mod model;
pub mod trend;
mod webdriver;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};

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
    /// Then open it in headless Chromium and check it against the JSON (what
    /// `cargo xtask test` does with its own run).
    #[arg(long)]
    check: bool,
}

pub fn main(args: Args) -> Result<ExitCode> {
    let json = match args.json {
        Some(json) => json,
        None => trend::latest().context(
            "no run kept under target/runs: run `cargo xtask test` first, or pass --json PATH",
        )?,
    };
    let kernel = match args.kernel {
        Some(kernel) => kernel,
        None if crate::build::kernel_path().is_file() => crate::build::kernel_path(),
        None => crate::build::kernel()?,
    };
    write(&json, args.platforms.as_deref(), Some(&kernel), &args.out)?;
    println!("report: {}", args.out.display());
    if args.check {
        println!("report check: {}", browser::check(&json, Some(&kernel))?);
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads the run (and the rest) and writes the page to `out`.
pub fn write(
    json: &Path,
    platforms: Option<&Path>,
    kernel: Option<&Path>,
    out: &Path,
) -> Result<()> {
    let text = std::fs::read_to_string(json)
        .with_context(|| format!("cannot read the run `{}`", json.display()))?;
    let run = model::Run::parse(&text).with_context(|| format!("reading `{}`", json.display()))?;
    let platforms = platforms
        .map(|path| -> Result<serde_json::Value> {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read `{}`", path.display()))?;
            serde_json::from_str(&text).with_context(|| format!("`{}` is not JSON", path.display()))
        })
        .transpose()?;
    let stubs = match kernel {
        Some(path) => stubs(path)?,
        None => BTreeMap::new(),
    };
    let trend = trend::points(&trend::runs_dir());
    let title = format!("istorm report: {}", json.display());
    let page = html::render(&html::Inputs {
        title: &title,
        run: &run,
        stubs: &stubs,
        platforms: platforms.as_ref(),
        trend: &trend,
    });
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
    }
    std::fs::write(out, page).with_context(|| format!("cannot write `{}`", out.display()))
}

/// Every listed stub the kernel has, disassembled.
fn stubs(kernel: &Path) -> Result<BTreeMap<String, Vec<disasm::Insn>>> {
    let data =
        std::fs::read(kernel).with_context(|| format!("cannot read `{}`", kernel.display()))?;
    let elf = elf::Elf::parse(&data).with_context(|| format!("reading `{}`", kernel.display()))?;
    Ok(disasm::STUBS
        .iter()
        .filter_map(|(symbol, _)| Some((symbol.to_string(), disasm::stub(&elf, symbol).ok()?)))
        .collect())
}
