//! `--json PATH`: every event of every boot as one JSON object per line, each
//! annotated with the boot it came from, then one result record per test.
//!
//! Every line has a `record` field saying what it is:
//!
//! ```text
//! {"record":"boot","boot":3,"sequence":"naive, x2apic","strategy":"naive","lapic":"x2apic","attempt":2,"cmdline":"entry=naive skip=..."}
//! {"record":"event","boot":3,...,"line":7,"event":{"type":"hello",...}}
//! {"record":"stream_error","boot":3,...,"line":9,"error":"malformed event: ..."}
//! {"record":"boot_end","boot":3,...,"end":"kernel reported success (QEMU exit status 33)","seconds":1.9}
//! {"record":"result","test":"scenarios::db_kernel_nmi_db","labels":["naive","x2apic"],"outcome":"pass",...}
//! ```
//!
//! The kernel's event sits unchanged under `event`, so a complete boot shows
//! its `hello` and its `done` there. Lines from parallel boots interleave;
//! the `boot` number tells them apart.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::{Value, json};
use testkit::protocol::OwnedEvent;

use crate::report::platform::Platform;
use crate::report::verdict::{Report, Verdict};

/// Which boot a line belongs to.
#[derive(Clone, Debug, Serialize)]
pub struct BootTag {
    /// Unique within the run, counted from 1 in the order boots start.
    pub boot: usize,
    /// The sequence's labels, joined (`naive, x2apic`).
    pub sequence: String,
    pub strategy: String,
    pub lapic: String,
    /// The boot's number within its sequence (1 for the first).
    pub attempt: usize,
}

pub struct JsonLog {
    path: PathBuf,
    out: Mutex<(BufWriter<File>, Option<std::io::Error>)>,
}

impl JsonLog {
    pub fn create(path: &Path) -> Result<JsonLog> {
        let file = File::create(path)
            .with_context(|| format!("--json: cannot create `{}`", path.display()))?;
        Ok(JsonLog {
            path: path.to_path_buf(),
            out: Mutex::new((BufWriter::new(file), None)),
        })
    }

    fn write(&self, record: &str, tag: Option<&BootTag>, fields: Value) {
        let mut line = serde_json::Map::new();
        line.insert("record".into(), record.into());
        if let Some(Ok(Value::Object(tag))) = tag.map(serde_json::to_value) {
            line.extend(tag);
        }
        if let Value::Object(fields) = fields {
            line.extend(fields);
        }
        let line = Value::Object(line);
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        if out.1.is_none()
            && let Err(e) = writeln!(out.0, "{line}")
        {
            out.1 = Some(e);
        }
    }

    pub fn boot(&self, tag: &BootTag, cmdline: &str) {
        self.write("boot", Some(tag), json!({ "cmdline": cmdline }));
    }

    pub fn event(&self, tag: &BootTag, line: usize, event: &OwnedEvent) {
        self.write("event", Some(tag), json!({ "line": line, "event": event }));
    }

    pub fn stream_error(&self, tag: &BootTag, line: usize, error: &str) {
        self.write(
            "stream_error",
            Some(tag),
            json!({ "line": line, "error": error }),
        );
    }

    pub fn boot_end(&self, tag: &BootTag, end: &str, seconds: f64) {
        self.write(
            "boot_end",
            Some(tag),
            json!({ "end": end, "seconds": seconds }),
        );
    }

    pub fn result(&self, report: &Report) {
        self.write("result", None, result_fields(report));
    }

    /// Flushes; the first write error, if any, is the error.
    pub fn finish(&self) -> Result<()> {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = out.1.take() {
            return Err(e).with_context(|| format!("--json: writing `{}`", self.path.display()));
        }
        out.0
            .flush()
            .with_context(|| format!("--json: writing `{}`", self.path.display()))
    }
}

/// A final result as JSON fields.
pub fn result_fields(report: &Report) -> Value {
    let (outcome, message) = match &report.verdict {
        Verdict::Pass => ("pass", report.note.as_str()),
        Verdict::Fail(why) => ("fail", why.as_str()),
        Verdict::Skip(why) => ("skip", why.as_str()),
        Verdict::NotReproduced(why) => ("not-reproduced", why.as_str()),
    };
    json!({
        "test": report.name,
        "labels": report.labels,
        "platform": report.platform.map(Platform::name),
        "outcome": outcome,
        "message": message,
        "seconds": report.duration.map(|d| d.as_secs_f64()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::protocol::{RecordKind, parse_stream};

    #[test]
    fn events_keep_their_shape_under_the_boot_tag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.jsonl");
        let log = JsonLog::create(&path).unwrap();
        let tag = BootTag {
            boot: 2,
            sequence: "naive, x2apic".into(),
            strategy: "naive".into(),
            lapic: "x2apic".into(),
            attempt: 1,
        };
        log.boot(&tag, "entry=naive");
        let serial = "@istorm {\"type\":\"done\",\"passed\":1,\"failed\":0,\"skipped\":0}\n";
        for record in parse_stream(serial.as_bytes()).records {
            if let RecordKind::Event(e) = &record.kind {
                log.event(&tag, record.line, e);
            }
        }
        let mut report = Report::new("a::b", Verdict::Fail("rip \"differs\"".into()));
        report.labels = vec!["naive".into(), "x2apic".into()];
        log.result(&report);
        log.finish().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["record"], "boot");
        assert_eq!(lines[0]["cmdline"], "entry=naive");
        assert_eq!(lines[1]["record"], "event");
        assert_eq!(lines[1]["boot"], 2);
        assert_eq!(lines[1]["lapic"], "x2apic");
        assert_eq!(lines[1]["event"]["type"], "done");
        assert_eq!(lines[2]["outcome"], "fail");
        assert_eq!(lines[2]["message"], "rip \"differs\"");
        assert_eq!(lines[2]["labels"][0], "naive");
    }

    #[test]
    fn an_unwritable_path_is_an_error_naming_it() {
        let err = JsonLog::create(Path::new("/nonexistent/dir/x.jsonl"))
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("/nonexistent/dir/x.jsonl"));
    }
}
