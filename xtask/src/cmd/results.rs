//! `cargo xtask results --qr TEXT`: the summary a kernel draws as a QR code at
//! the end of a run (format `IST1`, defined in `testkit::summary`) turned back
//! into the report a QEMU run gives: `test NAME [strategy, lapic] ... ok`
//! lines, `N passed, N failed, N skipped`, and the same `--json` result
//! records and `--junit` XML.
//!
//! The check that a held run's QR code equals its events is
//! `runner/held_check.rs`; the summary's reports are `report/summary.rs`.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use testkit::summary;

use crate::report::console::Console;
use crate::report::jsonlog::JsonLog;
use crate::report::junit;
use crate::report::picture::Rgb;
use crate::report::summary::{describe, reports};
use crate::report::tally::Tally;

/// Turn the QR code shown at the end of a run (real hardware, no serial port)
/// back into the report a QEMU run gives.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The QR code's text, as a phone's scanner shows it (quote it: it holds
    /// `|` and spaces); `-` reads it from stdin.
    #[arg(
        long,
        value_name = "TEXT",
        required_unless_present = "png",
        conflicts_with = "png"
    )]
    qr: Option<String>,
    /// Read the QR code from a screenshot or photo (PNG) instead.
    #[arg(long, value_name = "PATH")]
    png: Option<PathBuf>,
    /// Write the results to PATH as JSON lines (`record: result`, as
    /// `cargo xtask test --json` writes them).
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Write the results to PATH as JUnit XML.
    #[arg(long, value_name = "PATH")]
    junit: Option<PathBuf>,
}

pub fn main(args: Args) -> Result<ExitCode> {
    let text = match (&args.qr, &args.png) {
        (Some(text), _) if text == "-" => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the summary from stdin")?;
            text
        }
        (Some(text), _) => text.clone(),
        (None, Some(png)) => Rgb::read_png(png)?
            .read_qr()
            .with_context(|| format!("`{}`", png.display()))?,
        (None, None) => bail!("give --qr TEXT or --png PATH"),
    };
    let decoded = summary::decode(text.trim()).context("--qr")?;
    let json = args.json.as_deref().map(JsonLog::create).transpose()?;
    eprintln!("{}", describe(&decoded));
    let reports = reports(&decoded);
    let mut tally = Tally::new(Console::plain());
    for report in &reports {
        tally.record(report.clone());
    }
    if let Some(json) = &json {
        for report in &reports {
            json.result(report);
        }
        json.finish()?;
    }
    if let Some(path) = &args.junit {
        junit::write(path, &reports)?;
    }
    let h = &decoded.header;
    if decoded.omitted > 0 {
        println!(
            "\n{} results did not fit in the QR code; the whole run: {} passed, {} failed, \
             {} skipped",
            decoded.omitted, h.passed, h.failed, h.skipped
        );
    }
    let code = tally.finish();
    Ok(if h.failed > 0 {
        ExitCode::FAILURE
    } else {
        code
    })
}
