//! Where a PVH boot-to-exit goes: the host stamps each serial line as it
//! arrives, so one boot splits into QEMU's start and the firmware (up to the
//! kernel's first line), the kernel's bring-up (up to `boot:`, all CPUs
//! online), the rest of the kernel (up to the wire's `done`), the kernel
//! after `done` (up to its last output: the results summary) and QEMU's exit
//! (QEMU gone). The kernel's own `time:` line adds how long it spent starting
//! the APs (`ap_start_us`, from the first AP's stacks to the last check-in),
//! its set-up before them (`setup_us`, from `kernel_main`) and when it
//! reached `kernel_main` by its TSC (`main_at_us`), which under QEMU starts
//! at 0 with the machine: the guest's share of the first phase.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::median;
use crate::qemu::accel::Accel;
use crate::qemu::crash::BootEnd;
use crate::qemu::exit::Exit;
use crate::qemu::process::Watch;
use crate::runner::boot::{Artifacts, BootConfig};

/// Arrival times of the lines that mark the phases.
struct Stamps {
    start: Instant,
    deadline: Instant,
    partial: Vec<u8>,
    first: Option<Duration>,
    up: Option<Duration>,
    done: Option<Duration>,
    /// The last output's arrival.
    last: Option<Duration>,
    ap_start: Option<Duration>,
    set_up: Option<Duration>,
    main_at: Option<Duration>,
}

impl Watch for Stamps {
    fn output(&mut self, bytes: &[u8]) {
        let now = self.start.elapsed();
        self.first.get_or_insert(now);
        self.last = Some(now);
        self.partial.extend_from_slice(bytes);
        while let Some(at) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=at).collect();
            let line = String::from_utf8_lossy(&line);
            if line.starts_with("boot: ") {
                self.up.get_or_insert(now);
            }
            if line.starts_with("time: ") {
                let field = |name| time_field(&line, name).map(Duration::from_micros);
                self.ap_start = self.ap_start.or(field("ap_start_us"));
                self.set_up = self.set_up.or(field("setup_us"));
                self.main_at = self.main_at.or(field("main_at_us"));
            }
            if line.starts_with("@istorm {\"type\":\"done\"") {
                self.done.get_or_insert(now);
            }
        }
    }

    fn deadline(&self) -> Option<(Instant, String)> {
        Some((self.deadline, "the boot's timeout".into()))
    }
}

/// `name=N` from the kernel's `time:` line.
fn time_field(line: &str, name: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))?
        .parse()
        .ok()
}

/// The phases of a boot, each the median of `runs` boots.
pub struct Split {
    pub firmware: Duration,
    pub bring_up: Duration,
    /// The part of `bring_up` the kernel spent starting the APs.
    pub ap_start: Duration,
    /// The part of `bring_up` from `kernel_main` to starting the APs.
    pub set_up: Duration,
    /// The guest's TSC at `kernel_main`: its share of `firmware`, and ~1 ms
    /// of the PVH door after the first line.
    pub main_at: Duration,
    pub kernel_rest: Duration,
    pub after_done: Duration,
    pub exit: Duration,
}

pub fn measure(
    artifacts: &Artifacts,
    config: &BootConfig,
    accel: Accel,
    timeout: Duration,
    runs: u32,
) -> Result<Split> {
    let mut phases: [Vec<Duration>; 5] = Default::default();
    let mut ap_starts = Vec::new();
    let mut set_ups = Vec::new();
    let mut main_ats = Vec::new();
    for _ in 0..runs {
        let mut stamps = Stamps {
            start: Instant::now(),
            deadline: Instant::now() + timeout,
            partial: Vec::new(),
            first: None,
            up: None,
            done: None,
            last: None,
            ap_start: None,
            set_up: None,
            main_at: None,
        };
        let live = artifacts.boot_watched(config, accel, &mut stamps)?;
        if live.end != BootEnd::Exited(Exit::Success) {
            bail!("the PVH boot did not succeed: {}", live.end);
        }
        let (Some(first), Some(up), Some(done), Some(last)) =
            (stamps.first, stamps.up, stamps.done, stamps.last)
        else {
            bail!("the PVH boot printed no `boot:` line or no done event");
        };
        ap_starts.push(stamps.ap_start.unwrap_or_default());
        set_ups.push(stamps.set_up.unwrap_or_default());
        main_ats.push(stamps.main_at.unwrap_or_default());
        // The process's own clock starts at spawn, a hair after ours.
        let total = live.elapsed.max(last);
        for (slot, value) in
            phases
                .iter_mut()
                .zip([first, up - first, done - up, last - done, total - last])
        {
            slot.push(value);
        }
    }
    let [firmware, bring_up, kernel_rest, after_done, exit] = phases.map(median);
    Ok(Split {
        firmware,
        bring_up,
        ap_start: median(ap_starts),
        set_up: median(set_ups),
        main_at: median(main_ats),
        kernel_rest,
        after_done,
        exit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_from_the_time_line() {
        let line = "time: tsc_mhz=2595 ap_start_us=2418 main_at_us=8120 setup_us=2674\r\n";
        assert_eq!(time_field(line, "ap_start_us"), Some(2418));
        assert_eq!(time_field(line, "main_at_us"), Some(8120));
        assert_eq!(time_field(line, "setup_us"), Some(2674));
        assert_eq!(time_field(line, "start_us"), None);
        assert_eq!(time_field("time: tsc_mhz=2595", "ap_start_us"), None);
    }
}
