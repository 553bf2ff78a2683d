//! Where a PVH boot-to-exit goes: the host stamps each serial line as it
//! arrives, so one boot splits into QEMU's start and the firmware (up to the
//! kernel's first line), the kernel's bring-up (up to `boot:`, all CPUs
//! online), the rest of the kernel (up to the wire's `done`) and the exit
//! (QEMU gone).

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
}

impl Watch for Stamps {
    fn output(&mut self, bytes: &[u8]) {
        let now = self.start.elapsed();
        self.first.get_or_insert(now);
        self.partial.extend_from_slice(bytes);
        while let Some(at) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=at).collect();
            let line = String::from_utf8_lossy(&line);
            if line.starts_with("boot: ") {
                self.up.get_or_insert(now);
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

/// The phases of a boot, each the median of `runs` boots.
pub struct Split {
    pub firmware: Duration,
    pub bring_up: Duration,
    pub kernel_rest: Duration,
    pub exit: Duration,
}

pub fn measure(
    artifacts: &Artifacts,
    config: &BootConfig,
    accel: Accel,
    timeout: Duration,
    runs: u32,
) -> Result<Split> {
    let mut phases: [Vec<Duration>; 4] = Default::default();
    for _ in 0..runs {
        let mut stamps = Stamps {
            start: Instant::now(),
            deadline: Instant::now() + timeout,
            partial: Vec::new(),
            first: None,
            up: None,
            done: None,
        };
        let live = artifacts.boot_watched(config, accel, &mut stamps)?;
        if live.end != BootEnd::Exited(Exit::Success) {
            bail!("the PVH boot did not succeed: {}", live.end);
        }
        let (Some(first), Some(up), Some(done)) = (stamps.first, stamps.up, stamps.done) else {
            bail!("the PVH boot printed no `boot:` line or no done event");
        };
        // The process's own clock starts at spawn, a hair after ours.
        let total = live.elapsed.max(done);
        for (slot, value) in phases
            .iter_mut()
            .zip([first, up - first, done - up, total - done])
        {
            slot.push(value);
        }
    }
    let [firmware, bring_up, kernel_rest, exit] = phases.map(median);
    Ok(Split {
        firmware,
        bring_up,
        kernel_rest,
        exit,
    })
}
