//! The proof that the QR code tells the truth: [`check_held`] reads the QR
//! code from the screenshot of a held QEMU run and compares it with the `qr`
//! events on COM1 and with the other wire-protocol events of the same run.

use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use testkit::protocol::{Counters, OwnedEvent, Transcript, parse_stream};
use testkit::summary::{self, Decoded, Entry};

use crate::qemu::exit::Exit;
use crate::qemu::machine::{End, Outcome};
use crate::report::picture::Rgb;
use crate::report::summary::describe;

/// The summary's view of a result: only the counters that travel.
fn travelling(
    test: &str,
    strategy: testkit::Strategy,
    outcome: testkit::protocol::Outcome,
    c: &Counters,
) -> Entry<String> {
    Entry {
        test: test.to_string(),
        strategy,
        outcome,
        counters: Counters {
            corruptions: c.corruptions,
            nmis: c.nmis,
            dbs: c.dbs,
            ..Counters::default()
        },
    }
}

/// Checks a decoded summary against the events of the same run: the hello
/// (door, LAPIC, CPUs, strategy, seed, machine), the done counts, and every
/// result with its outcome and counters.
pub fn matches_stream(decoded: &Decoded, transcript: &Transcript) -> Result<()> {
    let h = &decoded.header;
    let Some(setting) = transcript.setting() else {
        bail!("the serial stream has no hello event");
    };
    ensure!(
        setting == h.setting,
        "the summary's header says {} but the hello event says {setting}",
        describe(decoded)
    );
    let done = transcript.done();
    ensure!(
        done == Some((h.passed, h.failed, h.skipped)),
        "the summary counts {}/{}/{} passed/failed/skipped, the done event {done:?}",
        h.passed,
        h.failed,
        h.skipped
    );
    let results: Vec<Entry<String>> = transcript
        .events()
        .filter_map(|(_, e)| match e {
            OwnedEvent::Result {
                test,
                strategy,
                outcome,
                counters,
                ..
            } => Some(travelling(test, *strategy, *outcome, counters)),
            _ => None,
        })
        .collect();
    ensure!(
        decoded.entries.len() + decoded.omitted as usize == results.len(),
        "the summary lists {} results and leaves out {}, the stream has {}",
        decoded.entries.len(),
        decoded.omitted,
        results.len()
    );
    for entry in &decoded.entries {
        let Some(event) = results
            .iter()
            .find(|r| r.test == entry.test && r.strategy == entry.strategy)
        else {
            bail!(
                "the summary lists {} [{}], the stream has no such result",
                entry.test,
                entry.strategy.name()
            );
        };
        ensure!(
            event == entry,
            "{} [{}]: the summary says {:?} {:?}, the stream {:?} {:?}",
            entry.test,
            entry.strategy.name(),
            entry.outcome,
            entry.counters,
            event.outcome,
            event.counters
        );
    }
    Ok(())
}

/// The held run's checks: the kernel's verdict, the QR code read from the
/// screenshot at `png` equal to the text of the `qr` events on COM1, and
/// both equal to the run's other events.
pub fn check_held(out: &Outcome, png: &Path) -> Result<(), String> {
    check_held_inner(out, png).map_err(|e| format!("{e:#}"))
}

fn check_held_inner(out: &Outcome, png: &Path) -> Result<()> {
    ensure!(
        out.end == End::Exited(Exit::Success),
        "{} (wanted a held run whose done event counts no failure)",
        out.end
    );
    let shown = Rgb::read_png(png)?
        .read_qr()
        .with_context(|| format!("the screenshot `{}`", png.display()))?;
    let transcript = parse_stream(out.serial.as_bytes());
    let sent = transcript
        .summary_text()
        .context("no complete set of `qr` events on the serial port")?;
    ensure!(
        shown == sent,
        "the QR code on screen reads `{shown}`, COM1 says `{sent}`"
    );
    let decoded = summary::decode(&shown).context("the QR code's text")?;
    matches_stream(&decoded, &transcript)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const QR: &str = crate::report::summary::SAMPLE_QR;

    fn stream() -> String {
        [
            r#"@istorm {"type":"hello","version":2,"door":"limine","machine":"tcg","cpus":2,"lapic":"x2apic","strategy":"naive","seed":1,"build":"x"}"#,
            r#"@istorm {"type":"result","test":"boot::nmi_all_to_all","strategy":"naive","outcome":"pass","expected":"survive","iterations":1,"cycles":1,"cycles_per_iteration":1,"details":"","counters":{"nmis":2,"max_depth":1}}"#,
            r#"@istorm {"type":"result","test":"scenarios::db_kernel_nmi_db","strategy":"naive","outcome":"fail","expected":"detect","iterations":1,"cycles":1,"cycles_per_iteration":1,"details":"x","counters":{"corruptions":3,"nmis":200,"dbs":200}}"#,
            r#"@istorm {"type":"result","test":"scenarios::movss_entry_db::tf","strategy":"naive","outcome":"skip","expected":"survive","iterations":0,"cycles":0,"cycles_per_iteration":0,"details":"hw-only"}"#,
            r#"@istorm {"type":"done","passed":1,"failed":1,"skipped":1}"#,
        ]
        .join("\n")
            + "\n"
    }

    #[test]
    fn a_summary_matches_the_stream_it_came_from() {
        let decoded = summary::decode(QR).unwrap();
        let serial = stream();
        matches_stream(&decoded, &parse_stream(serial.as_bytes())).unwrap();
        let wrong = serial.replace(r#""corruptions":3"#, r#""corruptions":4"#);
        let err = matches_stream(&decoded, &parse_stream(wrong.as_bytes())).unwrap_err();
        assert!(
            err.to_string()
                .contains("scenarios::db_kernel_nmi_db [naive]"),
            "{err}"
        );
        let wrong = serial.replace(r#""seed":1"#, r#""seed":2"#);
        let err = matches_stream(&decoded, &parse_stream(wrong.as_bytes())).unwrap_err();
        assert!(err.to_string().contains("seed=2"), "{err}");
        let wrong = serial.replace(r#""skipped":1"#, r#""skipped":2"#);
        let err = matches_stream(&decoded, &parse_stream(wrong.as_bytes())).unwrap_err();
        assert!(err.to_string().contains("done event"), "{err}");
        let fewer = serial
            .lines()
            .filter(|l| !l.contains("movss"))
            .collect::<Vec<_>>()
            .join("\n");
        let err = matches_stream(&decoded, &parse_stream(fewer.as_bytes())).unwrap_err();
        assert!(err.to_string().contains("the stream has 2"), "{err}");
    }

    #[test]
    fn a_held_run_is_checked_against_its_screenshot() {
        let modules = crate::report::picture::qr_modules(QR);
        let (scale, quiet) = (3, 4);
        let size = modules.len();
        let side = (size + 2 * quiet) * scale;
        let mut pixels = vec![255u8; side * side * 3];
        for (i, px) in pixels.chunks_exact_mut(3).enumerate() {
            let (x, y) = (
                (i % side / scale).wrapping_sub(quiet),
                (i / side / scale).wrapping_sub(quiet),
            );
            if x < size && y < size && modules[y][x] {
                px.fill(0);
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("screen.png");
        Rgb {
            width: side,
            height: side,
            pixels,
        }
        .write_png(&png)
        .unwrap();
        let out = |serial: String, end: End| Outcome {
            end,
            serial,
            stderr: String::new(),
            elapsed: Duration::ZERO,
        };
        let serial = |qr: &str| {
            let mut serial = stream();
            for part in testkit::protocol::qr_parts(qr) {
                serial += &testkit::protocol::line_of(&part).unwrap();
            }
            serial + "hold: halted\r\n@istorm {\"type\":\"hold\"}\r\n"
        };
        // The stream counts a failure: a held run of it ends in failure.
        let err = check_held(&out(serial(QR), End::Exited(Exit::Failure)), &png).unwrap_err();
        assert!(err.contains("wanted a held run"), "{err}");
        let good = out(serial(QR), End::Exited(Exit::Success));
        assert_eq!(check_held(&good, &png), Ok(()));
        let other = serial(&QR.replace("IST1|cpu=QEMU", "IST1|cpu=KVM"));
        let err = check_held(&out(other, End::Exited(Exit::Success)), &png).unwrap_err();
        assert!(err.contains("COM1 says"), "{err}");
        let none = out(stream(), End::Exited(Exit::Success));
        let err = check_held(&none, &png).unwrap_err();
        assert!(err.contains("no complete set of `qr` events"), "{err}");
    }
}
