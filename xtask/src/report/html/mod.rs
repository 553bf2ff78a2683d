//! The report as a page (`cargo xtask report`, `test --report`): one self-contained HTML page
//! from a run's JSON: the strategy x scenario matrix with each cell's
//! evidence, the entry stubs disassembled with where the NMIs landed and
//! which landings corrupted a frame, the timing table of the timing-dependent
//! strategies, the platform divergence table when given, and the trend of the
//! runs kept under `target/runs/`.
//!
//! The page is checked in headless Chromium by `runner/browser`.

mod disasm;
mod elf;
mod model;
mod page;
mod parts;
pub mod strategy_table;
mod tables;
pub mod trend;

pub use model::Run;
#[cfg(test)]
pub use page::render;
pub use parts::Inputs;
pub use parts::keys;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};

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
        Some(path) => stubs(path, &run)?,
        None => BTreeMap::new(),
    };
    let trend = trend::points(&trend::runs_dir());
    let title = format!("istorm report: {}", json.display());
    let page = page::render(&Inputs {
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

/// Every listed stub the kernel has, and every stub a window names,
/// disassembled.
fn stubs(kernel: &Path, run: &model::Run) -> Result<BTreeMap<String, Vec<disasm::Insn>>> {
    let data =
        std::fs::read(kernel).with_context(|| format!("cannot read `{}`", kernel.display()))?;
    let elf = elf::Elf::parse(&data).with_context(|| format!("reading `{}`", kernel.display()))?;
    let listed = disasm::STUBS.iter().map(|(symbol, _)| symbol.to_string());
    let named = run.windows.iter().map(|w| w.stub.clone());
    Ok(listed
        .chain(named)
        .filter_map(|symbol| {
            let insns = disasm::stub(&elf, &symbol).ok()?;
            Some((symbol, insns))
        })
        .collect())
}
