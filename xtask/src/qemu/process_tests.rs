//! The tests of `process.rs`: quoting, timeouts, watched runs and their
//! deadlines, on real child processes (`sh`, `sleep`).

use super::*;

#[test]
fn words_are_quoted_only_when_needed() {
    assert_eq!(quote(OsStr::new("-smp")), "-smp");
    assert_eq!(
        quote(OsStr::new("iobase=0xf4,iosize=0x04")),
        "iobase=0xf4,iosize=0x04"
    );
    assert_eq!(quote(OsStr::new("a b")), "'a b'");
    assert_eq!(quote(OsStr::new("it's")), r"'it'\''s'");
    assert_eq!(quote(OsStr::new("")), "''");
}

#[test]
fn output_and_status_are_captured() {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "read x; echo out $x; echo err >&2; exit 3"]);
    let got = run_captured(
        &mut cmd,
        Duration::from_secs(10),
        Some(b"hi\n"),
        Echo::Quiet,
    )
    .unwrap();
    assert_eq!(got.status.and_then(|s| s.code()), Some(3));
    assert_eq!(got.stdout, b"out hi\n");
    assert_eq!(got.stderr, b"err\n");
}

#[test]
fn a_hang_is_killed_at_the_timeout() {
    let mut cmd = Command::new("sleep");
    cmd.arg("30");
    let got = run_captured(&mut cmd, Duration::from_millis(200), None, Echo::Quiet).unwrap();
    assert!(got.status.is_none());
    assert!(got.elapsed < Duration::from_secs(5));
}

struct Collect {
    out: Vec<u8>,
    deadline: Option<(Instant, String)>,
}

impl Watch for Collect {
    fn output(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
        // A deadline that appears with the output, as a test's start does.
        if self.out.ends_with(b"start\n") {
            self.deadline = Some((Instant::now() + Duration::from_millis(200), "test".into()));
        }
    }
    fn deadline(&self) -> Option<(Instant, String)> {
        self.deadline.clone()
    }
}

#[test]
fn watched_output_arrives_and_a_moving_deadline_kills() {
    let mut watch = Collect {
        out: Vec::new(),
        deadline: None,
    };
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "echo one; echo err >&2; exit 4"]);
    let got = run_watched(&mut cmd, &mut watch).unwrap();
    assert_eq!(got.status.and_then(|s| s.code()), Some(4));
    assert_eq!(
        (watch.out.as_slice(), got.stderr.as_slice()),
        (&b"one\n"[..], &b"err\n"[..])
    );

    let mut watch = Collect {
        out: Vec::new(),
        deadline: None,
    };
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "echo start; exec sleep 30"]);
    let got = run_watched(&mut cmd, &mut watch).unwrap();
    assert!(got.status.is_none());
    assert_eq!(got.killed.as_deref(), Some("test"));
    assert!(got.elapsed < Duration::from_secs(5));
}

/// Answers `ask` with `yes` on the child's stdin.
struct Answer {
    out: Vec<u8>,
    pending: Vec<u8>,
}

impl Watch for Answer {
    fn output(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
        if bytes.ends_with(b"ask\n") {
            self.pending.extend_from_slice(b"yes\n");
        }
    }
    fn deadline(&self) -> Option<(Instant, String)> {
        None
    }
    fn input(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }
}

#[test]
fn a_watch_answers_on_stdin() {
    let mut watch = Answer {
        out: Vec::new(),
        pending: Vec::new(),
    };
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "echo ask; read x; echo got $x"]);
    let got = run_watched(&mut cmd, &mut watch).unwrap();
    assert_eq!(got.status.and_then(|s| s.code()), Some(0));
    assert_eq!(watch.out, b"ask\ngot yes\n");
}

#[test]
fn missing_programs_name_their_package() {
    let err = tool("istorm-no-such-program", "istorm-pkg").unwrap_err();
    assert_eq!(
        err.to_string(),
        "`istorm-no-such-program` not found on PATH: install the Debian package `istorm-pkg`"
    );
    assert_eq!(tool("sh", "dash").unwrap().get_program(), "sh");
}
