//! Where the runner's words go: result lines on stdout, commands and warnings
//! on stderr, and, when stdout is a terminal and `CI` is not set, live
//! progress bars (one for the whole run, one per job) below the lines.
//!
//! Anything printed while bars are drawn must go through here, or the bars
//! would be drawn over it; [`note`] is the stderr path for code that has no
//! `Console` at hand (the `$ command` lines of `process`).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The bars of the console in use, if any, for [`note`].
static ACTIVE: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// Prints a line on stderr without tearing the progress bars.
pub fn note(line: &str) {
    let active = ACTIVE.lock().unwrap_or_else(|p| p.into_inner()).clone();
    match active {
        Some(multi) => multi.suspend(|| eprintln!("{line}")),
        None => eprintln!("{line}"),
    }
}

/// Whether progress bars suit this run: a terminal on stdout, and not CI.
pub fn wants_bars(stdout_is_terminal: bool, ci: Option<&str>) -> bool {
    stdout_is_terminal && ci.is_none()
}

struct Bars {
    multi: MultiProgress,
    main: ProgressBar,
}

pub struct Console {
    bars: Option<Bars>,
    quiet: bool,
}

impl Console {
    /// Plain lines only (no terminal, CI, or tests).
    pub fn plain() -> Console {
        Console {
            bars: None,
            quiet: false,
        }
    }

    /// No lines at all: for benches that run suites and print a table.
    pub fn quiet() -> Console {
        Console {
            bars: None,
            quiet: true,
        }
    }

    /// Bars when [`wants_bars`] says so, plain lines otherwise.
    pub fn for_stdout() -> Console {
        let ci = std::env::var("CI").ok();
        if !wants_bars(std::io::stdout().is_terminal(), ci.as_deref()) {
            return Console::plain();
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
        let main = multi.add(ProgressBar::new(0));
        main.set_style(
            ProgressStyle::with_template("[{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        main.enable_steady_tick(Duration::from_millis(200));
        *ACTIVE.lock().unwrap_or_else(|p| p.into_inner()) = Some(multi.clone());
        Console {
            bars: Some(Bars { multi, main }),
            quiet: false,
        }
    }

    /// A line on stdout (a result), above the bars.
    pub fn line(&self, text: &str) {
        match &self.bars {
            Some(bars) => bars.multi.suspend(|| println!("{text}")),
            None if self.quiet => {}
            None => println!("{text}"),
        }
    }

    /// Results so far, and how many are expected (it grows as plans arrive).
    pub fn counts(&self, done: usize, expected: usize, summary: &str) {
        if let Some(bars) = &self.bars {
            bars.main.set_length(expected.max(done) as u64);
            bars.main.set_position(done as u64);
            bars.main.set_message(summary.to_string());
        }
    }

    /// A status line for one job (hidden in plain mode).
    pub fn worker(&self) -> Worker {
        Worker {
            bar: self.bars.as_ref().map(|bars| {
                let bar = bars.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("  {spinner} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            }),
        }
    }

    /// Removes the bars, leaving the lines.
    pub fn finish(&self) {
        if let Some(bars) = &self.bars {
            bars.main.finish_and_clear();
            let _ = bars.multi.clear();
            *ACTIVE.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.finish();
    }
}

/// One job's status line: which boot, which test, how far.
pub struct Worker {
    bar: Option<ProgressBar>,
}

impl Worker {
    pub fn set(&self, text: String) {
        if let Some(bar) = &self.bar {
            bar.set_message(text);
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_only_on_a_terminal_outside_ci() {
        assert!(wants_bars(true, None));
        assert!(!wants_bars(false, None));
        assert!(!wants_bars(true, Some("true")));
        assert!(!wants_bars(true, Some("")));
    }

    #[test]
    fn plain_workers_are_silent() {
        let console = Console::plain();
        console.worker().set("nothing to see".into());
        console.counts(1, 2, "1 passed");
    }
}
