//! What `cargo xtask run` shows a person: the kernel's human lines (results
//! coloured where the terminal has colours), one live progress bar per test
//! (iterations done of planned, NMIs landed so far), and nothing of the wire
//! protocol unless `--raw`. Every serial line, wire included, goes to the
//! run's `.serial` file.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use testkit::protocol::{LineKind, OwnedEvent, parse_line};

use crate::qemu::process::Watch;

/// How the lines are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Style {
    /// The wire's `@istorm` lines too.
    pub raw: bool,
    pub colour: bool,
    pub bars: bool,
}

impl Style {
    /// Colours and bars on a terminal; no colours under `NO_COLOR` (any
    /// value) or `TERM=dumb`; no bars under `CI`.
    pub fn for_stdout(raw: bool) -> Style {
        let terminal = std::io::stdout().is_terminal();
        Style::decide(
            raw,
            terminal,
            std::env::var_os("NO_COLOR").is_some(),
            std::env::var("TERM").is_ok_and(|t| t == "dumb"),
            std::env::var_os("CI").is_some(),
        )
    }

    pub fn decide(raw: bool, terminal: bool, no_color: bool, dumb: bool, ci: bool) -> Style {
        Style {
            raw,
            colour: terminal && !no_color && !dumb,
            bars: terminal && !ci,
        }
    }
}

/// Paints the verdict word of a `test NAME ... WORD` line.
pub fn paint(line: &str, colour: bool) -> String {
    if !colour {
        return line.to_string();
    }
    let Some(at) = line.find(" ... ") else {
        return line.to_string();
    };
    let (head, tail) = line.split_at(at + 5);
    let words = [
        ("ok", "32"),
        ("FAILED", "1;31"),
        ("skipped", "33"),
        ("not-reproduced", "33"),
    ];
    for (word, code) in words {
        if let Some(rest) = tail.strip_prefix(word) {
            return format!("{head}\x1b[{code}m{word}\x1b[0m{rest}");
        }
    }
    line.to_string()
}

pub struct View {
    style: Style,
    serial: BufWriter<File>,
    partial: Vec<u8>,
    multi: MultiProgress,
    bar: Option<(String, ProgressBar)>,
    deadline: Instant,
    timeout: Duration,
    /// Wire lines seen.
    pub events: usize,
    /// Where shown lines go instead of stdout (tests).
    shown: Option<Vec<String>>,
}

impl View {
    pub fn new(style: Style, serial: File, timeout: Duration) -> View {
        let target = if style.bars {
            ProgressDrawTarget::stdout()
        } else {
            ProgressDrawTarget::hidden()
        };
        View {
            style,
            serial: BufWriter::new(serial),
            partial: Vec::new(),
            multi: MultiProgress::with_draw_target(target),
            bar: None,
            deadline: Instant::now() + timeout,
            timeout,
            events: 0,
            shown: None,
        }
    }

    fn say(&mut self, line: &str) {
        match &mut self.shown {
            Some(shown) => shown.push(line.to_string()),
            None => self.multi.suspend(|| println!("{line}")),
        }
    }

    fn line(&mut self, line: &str) {
        let _ = writeln!(self.serial, "{line}");
        if self.style.raw {
            self.say(line);
        }
        match parse_line(line) {
            LineKind::Log(text) => {
                if !self.style.raw {
                    let painted = paint(text, self.style.colour);
                    self.say(&painted);
                }
            }
            LineKind::Event(event) => {
                self.events += 1;
                self.event(&event);
            }
            LineKind::Malformed { reason } => {
                self.say(&format!(
                    "warning: a malformed wire line ({reason}): {line}"
                ));
            }
            LineKind::NewerVersion { seen } => self.say(&format!(
                "warning: the kernel speaks protocol {seen}, newer than this host: update xtask"
            )),
        }
    }

    fn event(&mut self, event: &OwnedEvent) {
        match event {
            OwnedEvent::Start {
                test, iterations, ..
            } => {
                self.finish_bar();
                let bar = self.multi.add(ProgressBar::new(u64::from(*iterations)));
                bar.set_style(
                    ProgressStyle::with_template(
                        "  {prefix} [{bar:30}] {pos}/{len} iterations{msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar.set_prefix(test.clone());
                bar.enable_steady_tick(Duration::from_millis(200));
                self.bar = Some((test.clone(), bar));
            }
            OwnedEvent::Progress { test, done, nmis } => {
                if let Some((name, bar)) = &self.bar
                    && name == test
                {
                    bar.set_position(u64::from(*done));
                    if let Some(nmis) = nmis {
                        bar.set_message(format!(", {nmis} NMIs landed"));
                    }
                }
                // Slow is not stuck: each sign of life moves the deadline.
                self.deadline = Instant::now() + self.timeout;
            }
            OwnedEvent::Result { .. } | OwnedEvent::Done { .. } => self.finish_bar(),
            _ => {}
        }
    }

    fn finish_bar(&mut self) {
        if let Some((_, bar)) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    /// Flushes the serial file and removes any bar left.
    pub fn finish(&mut self) {
        if !self.partial.is_empty() {
            let rest = String::from_utf8_lossy(&std::mem::take(&mut self.partial)).into_owned();
            self.line(&rest);
        }
        self.finish_bar();
        let _ = self.serial.flush();
    }
}

impl Watch for View {
    fn output(&mut self, bytes: &[u8]) {
        self.partial.extend_from_slice(bytes);
        while let Some(at) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=at).collect();
            let text = String::from_utf8_lossy(&line);
            self.line(text.trim_end_matches(['\n', '\r']));
        }
    }

    fn deadline(&self) -> Option<(Instant, String)> {
        Some((
            self.deadline,
            format!("no output for {} s", self.timeout.as_secs()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert_eq!(
            Style::decide(false, true, false, false, false),
            Style {
                raw: false,
                colour: true,
                bars: true
            }
        );
        assert!(!Style::decide(false, false, false, false, false).colour);
        assert!(!Style::decide(false, true, true, false, false).colour);
        assert!(!Style::decide(false, true, false, true, false).colour);
        let ci = Style::decide(false, true, false, false, true);
        assert!(ci.colour && !ci.bars);
    }

    #[test]
    fn verdict_words_are_painted() {
        let line = "test scenarios::x [linux] ... ok: n=1";
        assert_eq!(paint(line, false), line);
        assert_eq!(
            paint(line, true),
            "test scenarios::x [linux] ... \x1b[32mok\x1b[0m: n=1"
        );
        assert!(paint("test t ... FAILED", true).contains("\x1b[1;31mFAILED"));
        assert_eq!(paint("boot: door=pvh", true), "boot: door=pvh");
    }

    const SERIAL: &[u8] = b"boot: ok\n@istorm {\"type\":\"plan\",\"count\":1}\n@istorm {\"type\":\"start\",\"test\":\"t\",\"strategy\":\"linux\",\"iterations\":10,\"cpu\":0,\"timeout_ms\":1}\r\n@istorm {\"type\":\"progress\",\"test\":\"t\",\"done\":5}\ntest t ... ok\nhalf";

    fn show(raw: bool, path: &std::path::Path) -> (View, Vec<String>) {
        let style = Style::decide(raw, false, false, false, false);
        let mut view = View::new(style, File::create(path).unwrap(), Duration::from_secs(5));
        view.shown = Some(Vec::new());
        view.output(SERIAL);
        view.finish();
        let shown = view.shown.take().unwrap();
        (view, shown)
    }

    #[test]
    fn the_wire_goes_to_the_file_and_to_the_screen_only_when_raw() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.serial");
        let (view, shown) = show(false, &path);
        assert_eq!(shown, ["boot: ok", "test t ... ok", "half"]);
        let (_, raw) = show(true, &path);
        assert_eq!(raw.len(), 6);
        let prefix = testkit::protocol::PREFIX;
        assert!(raw.iter().filter(|l| l.starts_with(prefix)).count() == 3);
        let kept = std::fs::read_to_string(&path).unwrap();
        assert_eq!(kept.lines().count(), 6, "{kept}");
        assert!(kept.contains("@istorm {\"type\":\"plan\""));
        assert_eq!(view.events, 3);
    }
}
