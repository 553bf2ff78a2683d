//! A small QMP client over QEMU's unix socket (`-qmp unix:PATH,server=on,
//! wait=off`): the greeting, `qmp_capabilities`, then commands one at a time,
//! each answered by one reply (asynchronous events in between are skipped).
//! Screenshots (`screendump`) and machine checks (`human-monitor-command`
//! with `mce`) go through it. A crate (`qapi`) would bring typed commands and
//! an async runtime for two commands; this is forty lines.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};

/// How long one reply may take.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// A fresh socket path under `target/qmp/` for one QEMU run, and QEMU's
/// option for it.
pub fn socket() -> Result<(PathBuf, [OsString; 2])> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = crate::target_dir().join("qmp");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("{}-{n}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let mut option = OsString::from("unix:");
    option.push(&path);
    option.push(",server=on,wait=off");
    Ok((path, ["-qmp".into(), option]))
}

/// One QMP session, past the greeting and capabilities negotiation.
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    pub fn connect(socket: &Path) -> Result<Qmp> {
        let stream = UnixStream::connect(socket)
            .with_context(|| format!("cannot connect to QMP at `{}`", socket.display()))?;
        stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        };
        let greeting = qmp.reply()?;
        ensure!(
            greeting.get("QMP").is_some(),
            "QMP greeting expected, got {greeting}"
        );
        qmp.execute(json!({ "execute": "qmp_capabilities" }))?;
        Ok(qmp)
    }

    /// Sends one command (`{"execute": ..., "arguments": ...}`); its `return`.
    pub fn execute(&mut self, command: Value) -> Result<Value> {
        writeln!(self.writer, "{command}").context("writing to QMP")?;
        let reply = self.reply()?;
        match (reply.get("error"), reply.get("return")) {
            (Some(error), _) => bail!("QMP {}: {error}", command["execute"]),
            (None, Some(value)) => Ok(value.clone()),
            (None, None) => bail!("QMP {}: no return in {reply}", command["execute"]),
        }
    }

    /// One human-monitor (HMP) command line; what it printed.
    pub fn hmp(&mut self, line: &str) -> Result<String> {
        let out = self.execute(json!({
            "execute": "human-monitor-command",
            "arguments": { "command-line": line },
        }))?;
        Ok(out.as_str().unwrap_or_default().to_string())
    }

    /// The next reply, skipping asynchronous events.
    fn reply(&mut self) -> Result<Value> {
        read_reply(&mut self.reader)
    }
}

/// The next QMP reply on `reader`, skipping asynchronous events.
pub fn read_reply(reader: &mut impl BufRead) -> Result<Value> {
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).context("reading from QMP")?;
        ensure!(n > 0, "QMP closed the connection");
        let value: Value =
            serde_json::from_str(&line).with_context(|| format!("QMP sent `{}`", line.trim()))?;
        if value.get("event").is_none() {
            return Ok(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_skipped_and_garbage_is_an_error() {
        let text = "{\"event\":\"RESET\"}\n{\"return\":{}}\n";
        let got = read_reply(&mut text.as_bytes()).unwrap();
        assert_eq!(got, json!({ "return": {} }));
        let err = read_reply(&mut "not json\n".as_bytes()).unwrap_err();
        assert!(
            format!("{err:#}").contains("QMP sent `not json`"),
            "{err:#}"
        );
        let err = read_reply(&mut "".as_bytes()).unwrap_err();
        assert!(err.to_string().contains("closed"), "{err}");
    }
}
