//! Machine checks on the kernel's request. A test that needs a #MC puts an
//! `inject` event on the wire (CPU, bank, status, what the CPU loops); the
//! runner waits a moment of its own choosing, injects with QEMU's monitor
//! (`mce CPU BANK STATUS MCG_STATUS ADDR MISC` through QMP's
//! `human-monitor-command`), and answers on the kernel's COM1 receive line
//! (`@host injected SEQ`, or `@host refused SEQ` when the monitor would not).
//! Every QEMU boot the runner watches carries a QMP socket for this.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use testkit::protocol::host::Reply;
use testkit::protocol::{LineKind, OwnedEvent, parse_line};

use crate::qemu::process::Watch;
use crate::qemu::qmp::{self, Qmp};

/// What injects: QEMU's monitor, or a fake in tests.
pub trait Monitor {
    /// Runs one HMP command line; what it printed.
    fn hmp(&mut self, line: &str) -> Result<String>;
}

/// The monitor of one QEMU run, connected on first use.
pub struct QemuMonitor {
    socket: PathBuf,
    qmp: Option<Qmp>,
}

impl QemuMonitor {
    /// A socket for one run, and the QEMU options that open it.
    pub fn new() -> Result<(QemuMonitor, [OsString; 2])> {
        let (socket, args) = qmp::socket()?;
        Ok((QemuMonitor { socket, qmp: None }, args))
    }
}

impl Drop for QemuMonitor {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl Monitor for QemuMonitor {
    fn hmp(&mut self, line: &str) -> Result<String> {
        if self.qmp.is_none() {
            self.qmp = Some(Qmp::connect(&self.socket)?);
        }
        let qmp = self.qmp.as_mut().expect("connected above");
        qmp.hmp(line)
    }
}

/// The monitor command for one request: no address, no MISC.
pub fn mce_command(cpu: u32, bank: u32, status: u64, mcg_status: u64) -> String {
    format!("mce {cpu} {bank} {status:#x} {mcg_status:#x} 0 0")
}

/// The host's moment: a delay of 0-3 ms that differs from request to request
/// (a fixed function of `seq`, so a run can be repeated), so that the #MC
/// lands at different points of the kernel's loop.
pub fn delay(seq: u32) -> Duration {
    Duration::from_micros(u64::from(seq.wrapping_mul(2_654_435_761)) % 3_000)
}

/// Whether the monitor's words mean the #MC was delivered (silence), or that
/// the machine is going down because of it (a #MC while MCIP is set: the
/// `mce_nesting` hazard). Anything else it says is a refusal.
fn delivered(said: &str) -> bool {
    let said = said.trim();
    said.is_empty() || said.contains("triple fault")
}

/// Follows the serial output for `inject` events and answers them.
pub struct Injector<M> {
    monitor: M,
    line: Vec<u8>,
    answers: Vec<u8>,
    /// Requests served: (seq, what the monitor said, when).
    pub served: Vec<(u32, String, Instant)>,
}

impl<M: Monitor> Injector<M> {
    pub fn new(monitor: M) -> Self {
        Self {
            monitor,
            line: Vec::new(),
            answers: Vec::new(),
            served: Vec::new(),
        }
    }

    /// The next chunk of serial output.
    pub fn output(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            if byte != b'\n' {
                self.line.push(byte);
                continue;
            }
            let line = String::from_utf8_lossy(&self.line).into_owned();
            self.line.clear();
            if let LineKind::Event(event) = parse_line(&line) {
                self.serve(&event);
            }
        }
    }

    fn serve(&mut self, event: &OwnedEvent) {
        let OwnedEvent::Inject {
            seq,
            cpu,
            bank,
            status,
            mcg_status,
            ..
        } = *event
        else {
            return;
        };
        std::thread::sleep(delay(seq));
        let command = mce_command(cpu, bank, status.0, mcg_status.0);
        let said = match self.monitor.hmp(&command) {
            Ok(said) => said,
            Err(e) => format!("{e:#}"),
        };
        let reply = if delivered(&said) {
            Reply::Injected { seq }
        } else {
            crate::report::console::note(&format!("warning: `{command}` refused: {}", said.trim()));
            Reply::Refused { seq }
        };
        self.answers.extend_from_slice(reply.encode().as_bytes());
        self.served.push((seq, said, Instant::now()));
    }

    /// Answers not yet written to the kernel.
    pub fn take_answers(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.answers)
    }
}

/// A watch with an injector in front: the injector sees every chunk first,
/// its answers go to QEMU's stdin (the kernel's COM1 receive line).
pub struct Injecting<'a, M> {
    pub inner: &'a mut dyn Watch,
    pub injector: Injector<M>,
}

impl<M: Monitor> Watch for Injecting<'_, M> {
    fn output(&mut self, bytes: &[u8]) {
        self.injector.output(bytes);
        self.inner.output(bytes);
    }

    fn deadline(&self) -> Option<(Instant, String)> {
        self.inner.deadline()
    }

    fn input(&mut self) -> Vec<u8> {
        let mut bytes = self.injector.take_answers();
        bytes.extend(self.inner.input());
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::protocol::{Event, Hex, encode_line};

    /// Says what it is told to, records what it was asked.
    struct Fake {
        asked: Vec<String>,
        says: &'static str,
    }

    impl Monitor for &mut Fake {
        fn hmp(&mut self, line: &str) -> Result<String> {
            self.asked.push(line.to_string());
            Ok(self.says.to_string())
        }
    }

    fn request(seq: u32) -> Vec<u8> {
        let mut buf = [0u8; testkit::protocol::LINE_MAX];
        let n = encode_line(
            &Event::Inject {
                test: "scenarios::mce_plain",
                seq,
                cpu: 1,
                bank: 1,
                status: Hex(0xb200_0000_0000_0000),
                mcg_status: Hex(5),
                during: "db",
            },
            &mut buf,
        )
        .unwrap();
        buf[..n].to_vec()
    }

    #[test]
    fn a_request_is_injected_and_answered() {
        let mut fake = Fake {
            asked: Vec::new(),
            says: "",
        };
        let mut injector = Injector::new(&mut fake);
        let wire = [b"log line\n".as_slice(), &request(7)].concat();
        // Cut anywhere: the request is served once, when its line is complete.
        let (a, b) = wire.split_at(wire.len() - 5);
        injector.output(a);
        assert!(injector.take_answers().is_empty());
        injector.output(b);
        let answers = injector.take_answers();
        assert_eq!(
            Reply::parse(std::str::from_utf8(&answers).unwrap()),
            Some(Reply::Injected { seq: 7 })
        );
        drop(injector);
        assert_eq!(fake.asked, ["mce 1 1 0xb200000000000000 0x5 0 0"]);
    }

    #[test]
    fn what_the_monitor_objects_to_is_refused() {
        let mut fake = Fake {
            asked: Vec::new(),
            says: "CPU 1: Uncorrected error reporting disabled\r\n",
        };
        let mut injector = Injector::new(&mut fake);
        injector.output(&request(2));
        let answers = String::from_utf8(injector.take_answers()).unwrap();
        assert_eq!(answers, "@host refused 2\n");
        // A #MC while MCIP is set takes the machine down: that is delivered.
        assert!(delivered(
            "CPU 0: Previous MCE still in progress, raising triple fault"
        ));
    }

    #[test]
    fn the_moment_moves_within_3_ms() {
        let delays: Vec<Duration> = (0..16).map(delay).collect();
        assert!(delays.iter().all(|d| *d < Duration::from_millis(3)));
        assert!(delays.windows(2).any(|w| w[0] != w[1]));
    }
}
