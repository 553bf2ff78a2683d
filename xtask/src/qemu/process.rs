//! External commands: printed before they run, found on PATH with a Debian package
//! to name when they are missing, and run under a timeout with a guard that kills
//! the child whatever happens.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Prints a command the way a shell user would type it: `$ prog arg ...`.
pub fn show(cmd: &Command) {
    let mut line = String::from("$");
    for word in std::iter::once(cmd.get_program()).chain(cmd.get_args()) {
        line.push(' ');
        line.push_str(&quote(word));
    }
    crate::report::console::note(&line);
}

/// Quotes a word for a POSIX shell when it needs it.
fn quote(word: &OsStr) -> String {
    let s = word.to_string_lossy();
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_=+/.,:@%".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Prints and runs a command to completion; a non-zero exit is an error.
pub fn run(cmd: &mut Command) -> Result<()> {
    show(cmd);
    let name = cmd.get_program().to_string_lossy().into_owned();
    let status = cmd
        .status()
        .with_context(|| format!("cannot start `{name}`"))?;
    if !status.success() {
        bail!("`{name}` failed ({status})");
    }
    Ok(())
}

/// Prints and runs a command whose output matters only when it fails (xorriso,
/// the C compiler, git): the output is captured and the error quotes its end.
pub fn run_quiet(cmd: &mut Command, timeout: Duration) -> Result<()> {
    let name = cmd.get_program().to_string_lossy().into_owned();
    let got = run_captured(cmd, timeout, None, Echo::Quiet)?;
    let Some(status) = got.status else {
        bail!("`{name}` timed out after {} s", timeout.as_secs());
    };
    if !status.success() {
        let mut text = String::from_utf8_lossy(&got.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&got.stdout));
        let last: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let last = last[last.len().saturating_sub(3)..].join(" / ");
        bail!("`{name}` failed ({status}): {last}");
    }
    Ok(())
}

/// Finds a program on PATH.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A command for a program found on PATH; missing, it is one line naming the
/// Debian package that provides it.
pub fn tool(program: &str, debian_package: &str) -> Result<Command> {
    match find_program(program) {
        Some(_) => Ok(Command::new(program)),
        None => {
            bail!("`{program}` not found on PATH: install the Debian package `{debian_package}`")
        }
    }
}

/// Kills and reaps the child when dropped, so that no QEMU outlives its run.
pub struct Guard(Child);

impl Guard {
    pub fn spawn(cmd: &mut Command) -> Result<Guard> {
        let name = cmd.get_program().to_string_lossy().into_owned();
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start `{name}`"))?;
        Ok(Guard(child))
    }

    /// The child's status if it has exited.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        self.0.try_wait().context("waiting for the child")
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Where a child's output goes besides the capture buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Echo {
    /// Captured only.
    Quiet,
    /// Also streamed live: stdout to our stdout, stderr to our stderr.
    Live,
}

/// A finished (or timed-out) child.
pub struct Captured {
    /// `None` when the timeout expired and the child was killed.
    pub status: Option<ExitStatus>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Wall time from spawn to exit (or to the kill).
    pub elapsed: Duration,
}

/// Prints and runs a command with a timeout, feeding it `stdin` and capturing its
/// output. A timeout is a result (`status: None`), not an error.
pub fn run_captured(
    cmd: &mut Command,
    timeout: Duration,
    stdin: Option<&[u8]>,
    echo: Echo,
) -> Result<Captured> {
    show(cmd);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let start = Instant::now();
    let mut guard = Guard::spawn(cmd)?;
    let child = &mut guard.0;
    let out = child.stdout.take().map(|s| drain(s, echo, false));
    let err = child.stderr.take().map(|s| drain(s, echo, true));
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // The child may exit before reading everything: not an error here.
        let _ = pipe.write_all(data);
    }
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for the child")? {
            break Some(status);
        }
        if start.elapsed() >= timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(1));
    };
    let elapsed = start.elapsed();
    let join = |h: Option<thread::JoinHandle<Vec<u8>>>| {
        h.map(|h| h.join().unwrap_or_default()).unwrap_or_default()
    };
    Ok(Captured {
        status,
        stdout: join(out),
        stderr: join(err),
        elapsed,
    })
}

/// Watches a streamed child: sees its stdout as it arrives and says when it
/// must be killed.
pub trait Watch {
    /// The next chunk of the child's stdout.
    fn output(&mut self, bytes: &[u8]);
    /// When the child must be killed, and the reason, if there is a deadline.
    fn deadline(&self) -> Option<(Instant, String)>;
    /// Bytes to write to the child's stdin now (asked after every chunk of
    /// output): the runner's answers to the kernel (`inject.rs`).
    fn input(&mut self) -> Vec<u8> {
        Vec::new()
    }
}

/// A streamed child that has ended.
pub struct Watched {
    /// `None` when a deadline passed and the child was killed.
    pub status: Option<ExitStatus>,
    /// The deadline's reason when the child was killed.
    pub killed: Option<String>,
    pub stderr: Vec<u8>,
    pub elapsed: Duration,
}

/// Prints and runs a command, handing its stdout to `watch` chunk by chunk
/// (so a live display can follow it) and killing it at `watch`'s deadline,
/// which may move as the output comes in.
pub fn run_watched(cmd: &mut Command, watch: &mut dyn Watch) -> Result<Watched> {
    show(cmd);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut guard = Guard::spawn(cmd)?;
    let child = &mut guard.0;
    let err = child.stderr.take().map(|s| drain(s, Echo::Quiet, true));
    let mut stdin = child.stdin.take();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    if let Some(mut pipe) = child.stdout.take() {
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
    }
    let expired = |watch: &dyn Watch| {
        watch
            .deadline()
            .filter(|(at, _)| Instant::now() >= *at)
            .map(|(_, why)| why)
    };
    let tick = Duration::from_millis(20);
    let mut killed = None;
    // Output first: the child closes stdout when it exits.
    loop {
        if let Some(why) = expired(watch) {
            killed = Some(why);
            break;
        }
        let wait = watch.deadline().map_or(tick, |(at, _)| {
            at.saturating_duration_since(Instant::now()).min(tick)
        });
        match rx.recv_timeout(wait) {
            Ok(chunk) => {
                watch.output(&chunk);
                let input = watch.input();
                if let (false, Some(pipe)) = (input.is_empty(), stdin.as_mut()) {
                    // A child that stopped reading is about to exit: not an error.
                    let _ = pipe.write_all(&input).and_then(|()| pipe.flush());
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let status = loop {
        if killed.is_some() {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        if let Some(status) = child.try_wait().context("waiting for the child")? {
            break Some(status);
        }
        killed = expired(watch);
        thread::sleep(Duration::from_millis(1));
    };
    let elapsed = start.elapsed();
    // What the child wrote before it died still counts.
    while let Ok(chunk) = rx.try_recv() {
        watch.output(&chunk);
    }
    Ok(Watched {
        status,
        killed,
        stderr: err
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default(),
        elapsed,
    })
}

/// Reads a pipe to its end on a thread, echoing each chunk as it arrives.
fn drain(
    mut pipe: impl Read + Send + 'static,
    echo: Echo,
    is_err: bool,
) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
            if echo == Echo::Live {
                let _ = if is_err {
                    std::io::stderr().write_all(&buf[..n])
                } else {
                    let mut out = std::io::stdout().lock();
                    out.write_all(&buf[..n]).and_then(|()| out.flush())
                };
            }
        }
        all
    })
}

#[cfg(test)]
#[path = "process_tests.rs"]
mod tests;
