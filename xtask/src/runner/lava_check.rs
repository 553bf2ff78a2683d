//! The generated LAVA jobs, run here: `lava-run` (Debian's lava-dispatcher)
//! boots the QEMU job against a local device dictionary and its log comes
//! back as istorm results; the x86 job is checked with `lava-run --validate`
//! against a stand-in PC. `cargo xtask test` runs this as
//! `lava::qemu_job_runs`, skipped with the reason where lava-run is missing.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};

use crate::media::lava::{self, Media};
use crate::qemu::process::{self, Echo};
use crate::report::finding::Outcome;
use crate::report::lava_results::{self, Job};
use crate::report::verdict::{Report, Verdict};

pub const NAME: &str = "lava::qemu_job_runs";
pub const LAVA_RUN: &str = "lava-run";
pub const MISSING: &str = "lava-run not installed (Debian package lava-dispatcher)";

/// Runs `job` with `lava-run` against the local device dictionary in `dir`;
/// LAVA's log goes to `dir/lava.log`, its files to `dir/output/`.
pub fn run_local(dir: &Path, job: &Path) -> Result<Job> {
    ensure!(process::find_program(LAVA_RUN).is_some(), "{MISSING}");
    let device = dir.join("qemu-device.yaml");
    if !device.exists() {
        std::fs::write(&device, lava::qemu_device()).context("writing the device dictionary")?;
    }
    let output = dir.join("output");
    let _ = std::fs::remove_dir_all(&output);
    let log_path = dir.join("lava.log");
    let mut cmd = Command::new(LAVA_RUN);
    cmd.arg("--job-id")
        .arg(std::process::id().to_string())
        .arg("--output-dir")
        .arg(&output)
        .arg("--device")
        .arg(&device)
        .arg(job);
    // lava-run exits non-zero when the job fails: its log says why.
    let got = process::run_captured(&mut cmd, Duration::from_secs(180), None, Echo::Quiet)?;
    ensure!(got.status.is_some(), "`{LAVA_RUN}` timed out after 180 s");
    // The job log is on stderr (one JSON object per line).
    let mut text = got.stderr;
    text.extend_from_slice(&got.stdout);
    std::fs::write(&log_path, &text)
        .with_context(|| format!("writing `{}`", log_path.display()))?;
    let text = std::fs::read_to_string(&log_path)
        .with_context(|| format!("reading `{}`", log_path.display()))?;
    lava_results::read_log(&text)
}

/// `lava-run --validate` of the x86 job against a stand-in PC (an empty
/// image, `cat` for the console): the job's actions fit LAVA's schema.
fn validate_x86(dir: &Path) -> Result<()> {
    let image = dir.join("istorm.img");
    std::fs::write(&image, b"")?;
    let job = dir.join("istorm-x86.yaml");
    std::fs::write(&job, lava::x86_job(&lava::file_url(&image), 2))?;
    let device = dir.join("x86-device.yaml");
    std::fs::write(&device, lava::x86_device("true {IMAGE}", "cat"))?;
    let mut cmd = Command::new(LAVA_RUN);
    cmd.args(["--validate", "--job-id"])
        .arg(format!("{}-validate", std::process::id()))
        .arg("--output-dir")
        .arg(dir.join("validate"))
        .arg("--device")
        .arg(&device)
        .arg(&job);
    let got = process::run_captured(&mut cmd, Duration::from_secs(60), None, Echo::Quiet)?;
    let log = String::from_utf8_lossy(&got.stderr);
    let result = lava_results::read_log(&log)?;
    ensure!(
        result.job.as_deref() == Some("pass"),
        "lava-run --validate rejects the x86 job: {}",
        result.errors.join("; ")
    );
    Ok(())
}

/// The CI check: the generated QEMU job (PVH kernel, `boot::` tests under
/// linux) runs under lava-run and its results come back as istorm's.
pub fn check(kernel: &Path) -> Report {
    if process::find_program(LAVA_RUN).is_none() {
        return Report::new(NAME, Verdict::Skip(MISSING.into()));
    }
    let dir = crate::target_dir().join("lava-check");
    let run = || -> Result<String> {
        std::fs::create_dir_all(&dir)?;
        let media = Media::Pvh {
            url: lava::file_url(kernel),
            cmdline: "entry=linux filter=boot::".into(),
        };
        let job_path = dir.join("istorm-qemu.yaml");
        std::fs::write(&job_path, lava::qemu_job(&media, 2))?;
        std::fs::write(dir.join("qemu-device.yaml"), lava::qemu_device())?;
        let job = run_local(&dir, &job_path)?;
        let log = dir.join("lava.log");
        let nmi = job
            .findings
            .iter()
            .find(|f| f.test == "boot::nmi_all_to_all" && f.strategy == "linux");
        ensure!(
            nmi.is_some_and(|f| f.outcome == Outcome::Pass),
            "boot::nmi_all_to_all [linux] is not a passing LAVA test case (see {}): {:?}",
            log.display(),
            job.errors
        );
        ensure!(
            job.summary == Some(Outcome::Pass) && job.job.as_deref() == Some("pass"),
            "LAVA summary {:?}, job {:?} (see {})",
            job.summary,
            job.job,
            log.display()
        );
        validate_x86(&dir)?;
        Ok(format!(
            "{} LAVA test cases read back, summary pass, job pass; the x86 job validates",
            job.findings.len()
        ))
    };
    match run() {
        Ok(note) => Report {
            note,
            ..Report::new(NAME, Verdict::Pass)
        },
        Err(e) => Report::new(NAME, Verdict::Fail(format!("{e:#}"))),
    }
}
