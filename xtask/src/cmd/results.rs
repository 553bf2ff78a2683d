//! `cargo xtask results --qr TEXT`: the summary a kernel draws as a QR code at
//! the end of a run (format `IST1`, defined in `testkit::summary`) turned back
//! into the report a QEMU run gives: `test NAME [strategy, lapic] ... ok`
//! lines, `N passed, N failed, N skipped`, and the same `--json` result
//! records and `--junit` XML.
//!
//! `cargo xtask results FILE...`: result files of many runs and machines
//! (`--json` lines, `--junit` XML, QR texts, serial logs, LAVA job logs)
//! merged into one hazard x machine table, each machine named by platform,
//! CPU model and microcode (`report/divergence.rs`). `--lava DIR` reads a
//! LAVA job's log (`cargo xtask lava --run` leaves it in DIR/lava.log, a LAVA
//! server gives it as the job's output.yaml) back into istorm's result lines.
//!
//! The check that a held run's QR code equals its events is
//! `runner/held_check.rs`; the summary's reports are `report/summary.rs`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use testkit::summary;

use crate::report::console::Console;
use crate::report::divergence;
use crate::report::finding::{Finding, Outcome};
use crate::report::jsonlog::JsonLog;
use crate::report::junit;
use crate::report::lava_results;
use crate::report::picture::Rgb;
use crate::report::summary::{describe, reports};
use crate::report::tally::Tally;
use crate::report::verdict::{Report, Verdict};

/// Turn the QR code shown at the end of a run (real hardware, no serial port)
/// back into the report a QEMU run gives.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The QR code's text, as a phone's scanner shows it (quote it: it holds
    /// `|` and spaces); `-` reads it from stdin.
    #[arg(
        long,
        value_name = "TEXT",
        required_unless_present_any = ["png", "files", "lava"],
        conflicts_with_all = ["png", "files", "lava"]
    )]
    qr: Option<String>,
    /// Read the QR code from a screenshot or photo (PNG) instead.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["files", "lava"])]
    png: Option<PathBuf>,
    /// A LAVA job's log (a file, or the directory holding `lava.log`) back
    /// into istorm's results.
    #[arg(long, value_name = "DIR", conflicts_with = "files")]
    lava: Option<PathBuf>,
    /// Result files to merge into one table, one column per machine.
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
    /// With FILEs: also write the table as Markdown to PATH.
    #[arg(long, value_name = "PATH", requires = "files")]
    markdown: Option<PathBuf>,
    /// Write the results to PATH as JSON lines (`record: result`, as
    /// `cargo xtask test --json` writes them).
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Write the results to PATH as JUnit XML.
    #[arg(long, value_name = "PATH")]
    junit: Option<PathBuf>,
}

pub fn main(args: Args) -> Result<ExitCode> {
    if !args.files.is_empty() {
        return merge(&args);
    }
    if let Some(dir) = &args.lava {
        return lava(&args, dir);
    }
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

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read `{}`", path.display()))
}

/// The merged table of every FILE.
fn merge(args: &Args) -> Result<ExitCode> {
    let mut findings = Vec::new();
    for path in &args.files {
        findings.extend(lava_results::read_any(
            &read(path)?,
            &path.display().to_string(),
        )?);
    }
    let table = divergence::build(&findings, Vec::new());
    println!("{}", table.render_text());
    if let Some(path) = &args.markdown {
        std::fs::write(path, table.render_markdown())
            .with_context(|| format!("--markdown: cannot write `{}`", path.display()))?;
    }
    Ok(if table.unexplained() > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// A finding as the report a run gives.
fn report_of(f: &Finding) -> Report {
    let verdict = match f.outcome {
        Outcome::Pass => Verdict::Pass,
        Outcome::Fail => Verdict::Fail(f.message.clone()),
        Outcome::Skip => Verdict::Skip(f.message.clone()),
        Outcome::NotReproduced => Verdict::NotReproduced(f.message.clone()),
    };
    Report {
        labels: vec![f.strategy.clone(), f.machine.cpu.clone()],
        note: match f.outcome {
            Outcome::Pass => f.message.clone(),
            _ => String::new(),
        },
        ..Report::new(f.test.clone(), verdict)
    }
}

/// A LAVA job's results as istorm's.
fn lava(args: &Args, path: &Path) -> Result<ExitCode> {
    let file = if path.is_dir() {
        path.join("lava.log")
    } else {
        path.to_path_buf()
    };
    let job = lava_results::read_log(&read(&file)?)?;
    if let Some(f) = job.findings.first() {
        eprintln!("run: {} (from LAVA's log {})", f.machine, file.display());
    }
    let reports: Vec<Report> = job.findings.iter().map(report_of).collect();
    let mut tally = Tally::new(Console::plain());
    for report in &reports {
        tally.record(report.clone());
    }
    if let Some(path) = &args.json {
        let json = JsonLog::create(path)?;
        for report in &reports {
            json.result(report);
        }
        json.finish()?;
    }
    if let Some(path) = &args.junit {
        junit::write(path, &reports)?;
    }
    println!(
        "LAVA: {} test cases, summary {}, job {}{}",
        reports.len(),
        job.summary.map_or("missing", Outcome::name),
        job.job.as_deref().unwrap_or("missing"),
        job.errors
            .first()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default()
    );
    let code = tally.finish();
    Ok(
        if job.summary != Some(Outcome::Pass) || reports.is_empty() {
            ExitCode::FAILURE
        } else {
            code
        },
    )
}
