//! Bochs 2.7 (Debian `bochs bochsbios vgabios bochs-term`) as a second
//! emulator: it boots the Limine ISO under its BIOS, headless, and the kernel
//! speaks the same wire protocol on COM1 as under QEMU.
//!
//! What Bochs needs, measured with Limine 8.2.0 (docs/emulators.md):
//! - headless is `display_library: term` with `TERM` set, and stdout away
//!   from ours (the term display draws there);
//! - `vga: extension=none`, else Limine picks a 32 bpp mode the term display
//!   refuses;
//! - an `-rc` file holding `continue` and `quit`, or it waits at its prompt;
//! - its exit status is only ever 0 or 1, and it never exits by itself after
//!   the kernel's exit port (QEMU's isa-debug-exit is not there): results come
//!   from COM1 alone. The runner stops it once `done` and the summary after
//!   it have arrived (the kernel's exit byte is then read from `done`'s
//!   counts), shortly after a `panic` or `hang` event, at a deadline, or
//!   when it dies; a triple fault ends it through `reset_on_triple_fault=0`
//!   and `panic: action=fatal`.
//!
//! COM1 goes to a file that is read as it grows (Bochs writes each byte
//! through), so the live parser, the deadlines and crash recovery work as
//! they do for QEMU.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use testkit::protocol::{LineKind, OwnedEvent, parse_line};

use crate::qemu::crash::BootEnd;
use crate::qemu::exit::{Ending, Exit};
use crate::qemu::machine::{End, Live, Outcome};
use crate::qemu::process::{self, Echo, Watch};

pub const PROGRAM: &str = "bochs";
/// Skylake-X: x2APIC, the newest model Bochs 2.7 has with it (its CPUID
/// brand string is `report::platform::BOCHS_CPU_BRAND`).
pub const CPU_MODEL: &str = "corei7_skylake_x";
/// Emulated instructions per emulated second. With `clock: sync=none` Bochs
/// does not tie emulated time to the host's, so this only sets the TSC rate
/// the kernel measures (10 MHz) and the length of its timeouts in
/// instructions: 10 M keeps the default suite's timeouts in reach (each test's
/// `timeout_ms` is 10^4 instructions per ms) and boots in ~2 s on 2 CPUs.
pub const IPS: u64 = 10_000_000;
/// Bochs' SMP build takes up to 8 CPUs here; more only slows it.
pub const MAX_CPUS: u32 = 8;
/// After a `panic` or `hang` event the kernel halts; its last lines get this
/// long to arrive before Bochs is stopped.
const LAST_WORDS: Duration = Duration::from_millis(500);
/// The line Bochs logs when a triple fault stops it (with
/// `reset_on_triple_fault=0`).
const TRIPLE_FAULT: &str = "exception with no resolution";

/// What to say when Bochs is not there.
pub const MISSING: &str = "Bochs is not installed (Debian: bochs bochsbios vgabios bochs-term)";

/// Whether Bochs and its BIOS images are installed.
pub fn installed() -> bool {
    process::find_program(PROGRAM).is_some()
        && Path::new("/usr/share/bochs/BIOS-bochs-latest").is_file()
        && Path::new("/usr/share/bochs/VGABIOS-lgpl-latest").is_file()
}

/// The emulated machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    pub cpus: u32,
    pub model: String,
}

impl Machine {
    pub fn new(cpus: u32, model: Option<&str>) -> Result<Machine> {
        ensure!(
            (1..=MAX_CPUS).contains(&cpus),
            "--smp {cpus}: Bochs runs 1 to {MAX_CPUS} CPUs"
        );
        Ok(Machine {
            cpus,
            model: model.unwrap_or(CPU_MODEL).to_string(),
        })
    }
}

/// The configuration file for one boot of `iso`, COM1 into `serial`.
pub fn bochsrc(machine: &Machine, iso: &Path, serial: &Path, log: &Path) -> String {
    let share = "/usr/share/bochs";
    format!(
        "# istorm: one headless boot of the Limine ISO (written by cargo xtask)\n\
         megs: 256\n\
         cpu: model={model}, count={cpus}, ips={IPS}, reset_on_triple_fault=0\n\
         clock: sync=none, time0=1\n\
         romimage: file={share}/BIOS-bochs-latest\n\
         vgaromimage: file={share}/VGABIOS-lgpl-latest\n\
         vga: extension=none\n\
         display_library: term\n\
         speaker: enabled=0\n\
         ata0-master: type=cdrom, path=\"{iso}\", status=inserted\n\
         boot: cdrom\n\
         com1: enabled=1, mode=file, dev=\"{serial}\"\n\
         log: \"{log}\"\n\
         panic: action=fatal\n\
         error: action=report\n\
         info: action=ignore\n\
         debug: action=ignore\n",
        model = machine.model,
        cpus = machine.cpus,
        iso = iso.display(),
        serial = serial.display(),
        log = log.display(),
    )
}

/// The commands Bochs reads at start (`-rc`): run, and leave when stopped.
pub const RC: &str = "continue\nquit\n";

/// Where Bochs' files for one boot live: `target/bochs/PID-N/`.
fn scratch() -> Result<PathBuf> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = crate::target_dir()
        .join("bochs")
        .join(format!("{}-{n}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing `{}`", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating `{}`", dir.display()))?;
    Ok(dir)
}

/// What the serial stream has said that decides when Bochs is stopped.
#[derive(Debug, Default)]
pub struct Ender {
    pending: Vec<u8>,
    /// `done`'s failed count, and when it arrived.
    done: Option<(u32, Instant)>,
    /// The last part of the results summary (`qr`, which follows `done`).
    summary_sent: bool,
    /// When a `panic` or `hang` event arrived.
    pub last_words: Option<Instant>,
}

impl Ender {
    pub fn feed(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        while let Some(at) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=at).collect();
            match parse_line(&String::from_utf8_lossy(&line)) {
                LineKind::Event(OwnedEvent::Done { failed, .. }) => {
                    self.done = Some((failed, Instant::now()));
                }
                LineKind::Event(OwnedEvent::Qr { part, parts, .. }) if part == parts => {
                    self.summary_sent = true;
                }
                LineKind::Event(OwnedEvent::Panic { .. } | OwnedEvent::Hang { .. }) => {
                    self.last_words.get_or_insert_with(Instant::now);
                }
                _ => {}
            }
        }
    }

    /// The end to report if Bochs is stopped now, or `None` to keep going.
    /// After `done` the kernel still sends its results summary; stopping at
    /// `done` cut it mid-line (a "malformed event" warning in three of the
    /// five Bochs boots of a `cargo xtask matrix`), so Bochs runs on until
    /// the summary's last part, or `LAST_WORDS` after `done` for a kernel
    /// that sends none.
    pub fn stop(&self, now: Instant) -> Option<BootEnd> {
        match (self.done, self.last_words) {
            // A panic or hang, even after `done` (in the summary), is the end.
            (_, Some(at)) if now >= at + LAST_WORDS => Some(BootEnd::Killed {
                after: Duration::ZERO,
                why: "stopped after the kernel's last words (Bochs has no exit device)".into(),
            }),
            (Some((failed, at)), None) if self.summary_sent || now >= at + LAST_WORDS => {
                Some(BootEnd::Exited(if failed == 0 {
                    Exit::Success
                } else {
                    Exit::Failure
                }))
            }
            _ => None,
        }
    }
}

/// How Bochs ended by itself, from its status and its log.
pub fn self_end(code: Option<i32>, signal: Option<i32>, log: &str) -> BootEnd {
    if let Some(line) = log.lines().find(|l| l.contains(TRIPLE_FAULT)) {
        let said = line.split(">>PANIC<< ").nth(1).unwrap_or(line).trim();
        return BootEnd::TripleFault(said.to_string());
    }
    match (code, signal) {
        (_, Some(s)) => BootEnd::Exited(Exit::NeverExited(Ending::Signal(s))),
        (Some(c), _) => BootEnd::Exited(Exit::NeverExited(Ending::Status(c.max(1)))),
        (None, None) => BootEnd::Exited(Exit::NeverExited(Ending::Status(-1))),
    }
}

/// The lines of Bochs' log worth a failure report (panics and errors).
fn complaints(log: &str) -> String {
    log.lines()
        .filter(|l| l.contains("p[") || l.contains("e[") || l.contains(TRIPLE_FAULT))
        .take(20)
        .map(|l| format!("bochs: {l}\n"))
        .collect()
}

/// Boots `iso` once, handing COM1's output to `watch` as it arrives.
pub fn run_watched(machine: &Machine, iso: &Path, watch: &mut dyn Watch) -> Result<Live> {
    let dir = scratch()?;
    let (serial, log) = (dir.join("com1.txt"), dir.join("bochs.log"));
    let (rc, conf) = (dir.join("rc"), dir.join("bochsrc"));
    std::fs::write(&rc, RC).context("writing Bochs' rc file")?;
    std::fs::write(&conf, bochsrc(machine, iso, &serial, &log)).context("writing the bochsrc")?;
    ensure!(installed(), "{MISSING}");
    let mut cmd = Command::new(PROGRAM);
    cmd.arg("-q").arg("-f").arg(&conf).arg("-rc").arg(&rc);
    let term = std::env::var("TERM").unwrap_or_default();
    if term.is_empty() || term == "dumb" {
        cmd.env("TERM", "xterm");
    }
    process::show(&cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let started = Instant::now();
    let mut guard = process::Guard::spawn(&mut cmd)?;
    let mut ender = Ender::default();
    let mut reader = Tail::new(serial);
    let end = loop {
        let chunk = reader.read();
        if !chunk.is_empty() {
            ender.feed(&chunk);
            watch.output(&chunk);
        }
        let now = Instant::now();
        if let Some(end) = ender.stop(now) {
            break end;
        }
        if let Some((at, why)) = watch.deadline()
            && now >= at
        {
            let after = started.elapsed();
            break BootEnd::Killed { after, why };
        }
        if let Some(status) = guard.try_wait()? {
            use std::os::unix::process::ExitStatusExt;
            let rest = reader.read();
            ender.feed(&rest);
            watch.output(&rest);
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            break ender
                .stop(Instant::now() + LAST_WORDS)
                .unwrap_or_else(|| self_end(status.code(), status.signal(), &log));
        }
        if chunk.is_empty() {
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    // Stops Bochs if it still runs (it never exits by itself).
    drop(guard);
    let end = match end {
        // The kernel's last words: killed now, so the time is now.
        BootEnd::Killed { why, .. } => BootEnd::Killed {
            after: started.elapsed(),
            why,
        },
        end => end,
    };
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    // Scratch files of a clean boot go; a failed one's stay for reading.
    if matches!(end, BootEnd::Exited(Exit::Success)) {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(Live {
        end,
        stderr: complaints(&log),
        elapsed: started.elapsed(),
    })
}

/// Boots `iso` once and waits for the end (or the timeout), like `qemu::run`.
pub fn run(machine: &Machine, iso: &Path, timeout: Duration, echo: Echo) -> Result<Outcome> {
    struct Collect {
        serial: Vec<u8>,
        deadline: Instant,
        echo: Echo,
    }
    impl Watch for Collect {
        fn output(&mut self, bytes: &[u8]) {
            self.serial.extend_from_slice(bytes);
            if self.echo == Echo::Live {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(bytes).and_then(|()| out.flush());
            }
        }
        fn deadline(&self) -> Option<(Instant, String)> {
            Some((self.deadline, "the timeout".into()))
        }
    }
    let mut collect = Collect {
        serial: Vec::new(),
        deadline: Instant::now() + timeout,
        echo,
    };
    let live = run_watched(machine, iso, &mut collect)?;
    let end = match live.end {
        BootEnd::Exited(exit) => End::Exited(exit),
        // A one-shot run's end has no words for it: QEMU's reset status.
        BootEnd::TripleFault(_) => End::Exited(Exit::NeverExited(Ending::Status(0))),
        BootEnd::Killed { .. } | BootEnd::NotRun(_) => End::Hang(timeout),
    };
    Ok(Outcome {
        end,
        serial: String::from_utf8_lossy(&collect.serial).into_owned(),
        stderr: live.stderr,
        elapsed: live.elapsed,
    })
}

/// Reads a file as it grows.
struct Tail {
    path: PathBuf,
    file: Option<std::fs::File>,
}

impl Tail {
    fn new(path: PathBuf) -> Tail {
        Tail { path, file: None }
    }

    /// What was appended since the last call (nothing before the file exists).
    fn read(&mut self) -> Vec<u8> {
        if self.file.is_none() {
            self.file = std::fs::File::open(&self.path).ok();
        }
        let mut got = Vec::new();
        if let Some(file) = &mut self.file {
            let _ = file.read_to_end(&mut got);
        }
        got
    }
}

#[cfg(test)]
#[path = "bochs_tests.rs"]
mod tests;
