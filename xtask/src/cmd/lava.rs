//! `cargo xtask lava`: writes the LAVA jobs (`media/lava.rs`) and a local
//! device dictionary; `--run` runs the QEMU job here with Debian's `lava-run`
//! and reads its results back (`runner/lava_check.rs`, which `cargo xtask
//! test` also runs as `lava::qemu_job_runs`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::media::lava::{self, Media};
use crate::media::{iso, kernel, limine};
use crate::report::finding::Outcome;
use crate::runner::lava_check::run_local;

/// Write LAVA job definitions for a lab: QEMU, and an x86 PC booting the USB image.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory for the job files [default: target/lava].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// What the QEMU job boots: the Limine ISO (the real path) or the PVH kernel.
    #[arg(long, value_enum, default_value_t = Boot::Iso)]
    boot: Boot,
    /// Where the lab downloads istorm.iso, istorm (the kernel) and istorm.img
    /// from [default: file:// URLs of this machine's files].
    #[arg(long, value_name = "URL")]
    url_base: Option<String>,
    /// Run the QEMU job here with `lava-run` and print its results as istorm's.
    #[arg(long)]
    run: bool,
    /// Directory with the Limine 8.2.0 binaries (for the ISO).
    #[arg(long, value_name = "DIR")]
    limine_dir: Option<PathBuf>,
    /// Kernel command-line words for the job's boot [default: none, the
    /// default suite under linux].
    #[arg(last = true, value_name = "KERNEL ARGS")]
    kernel_args: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Boot {
    Iso,
    Pvh,
}

/// Minutes the jobs give the test action.
const MINUTES: u32 = 10;

fn url(base: Option<&str>, local: &Path) -> String {
    match base {
        Some(base) => format!(
            "{}/{}",
            base.trim_end_matches('/'),
            local.file_name().unwrap_or_default().to_string_lossy()
        ),
        None => lava::file_url(local),
    }
}

pub fn main(args: Args) -> Result<ExitCode> {
    crate::cmd::opts::check_kernel_args(&args.kernel_args)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| crate::target_dir().join("lava"));
    std::fs::create_dir_all(&out).with_context(|| format!("creating `{}`", out.display()))?;
    let kernel = kernel::kernel()?;
    let base = args.url_base.as_deref();
    let media = match args.boot {
        Boot::Pvh => Media::Pvh {
            url: url(base, &kernel),
            cmdline: args.kernel_args.join(" "),
        },
        Boot::Iso => {
            let limine = limine::require(args.limine_dir.as_deref())?;
            let path = crate::target_dir().join("istorm-lava.iso");
            iso::build(&kernel, &limine, &args.kernel_args, &path)?;
            Media::Iso {
                url: url(base, &path),
            }
        }
    };
    let image = crate::target_dir().join("istorm.img");
    let files = [
        ("istorm-qemu.yaml", lava::qemu_job(&media, MINUTES)),
        (
            "istorm-x86.yaml",
            lava::x86_job(&url(base, &image), MINUTES),
        ),
        ("qemu-device.yaml", lava::qemu_device()),
    ];
    for (name, text) in &files {
        let path = out.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing `{}`", path.display()))?;
        println!("wrote {}", path.display());
    }
    println!(
        "the x86 job boots {} (build it with `cargo xtask image`); submit with \
         `lavacli jobs submit {}`",
        image.display(),
        out.join("istorm-x86.yaml").display()
    );
    if !args.run {
        return Ok(ExitCode::SUCCESS);
    }
    let job = run_local(&out, &out.join("istorm-qemu.yaml"))?;
    let mut failed = false;
    for f in &job.findings {
        println!("test {} [{}] ... {}", f.test, f.strategy, f.outcome.name());
        failed |= f.outcome == Outcome::Fail;
    }
    println!(
        "LAVA: {} test cases, summary {}, job {}",
        job.findings.len(),
        job.summary.map_or("missing", Outcome::name),
        job.job.as_deref().unwrap_or("missing")
    );
    Ok(if failed || job.summary != Some(Outcome::Pass) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
