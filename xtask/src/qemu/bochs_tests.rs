use super::*;

#[test]
fn the_bochsrc_holds_what_headless_needs() {
    let m = Machine::new(2, None).unwrap();
    let rc = bochsrc(
        &m,
        Path::new("/t/istorm.iso"),
        Path::new("/t/com1.txt"),
        Path::new("/t/bochs.log"),
    );
    for line in [
        "cpu: model=corei7_skylake_x, count=2, ips=10000000, reset_on_triple_fault=0",
        "display_library: term",
        "vga: extension=none",
        "ata0-master: type=cdrom, path=\"/t/istorm.iso\", status=inserted",
        "com1: enabled=1, mode=file, dev=\"/t/com1.txt\"",
        "panic: action=fatal",
    ] {
        assert!(rc.lines().any(|l| l == line), "{line}\n{rc}");
    }
    assert_eq!(RC, "continue\nquit\n");
    assert!(
        Machine::new(9, None)
            .unwrap_err()
            .to_string()
            .contains("1 to 8")
    );
    assert!(Machine::new(0, None).is_err());
}

#[test]
fn done_panic_and_silence_decide_when_to_stop() {
    let now = Instant::now();
    let mut ender = Ender::default();
    ender.feed(b"boot: x\n@istorm {\"type\":\"done\",\"passed\":1,\"fai");
    assert_eq!(ender.stop(now), None);
    ender.feed(b"led\":0,\"skipped\":0}\n");
    assert_eq!(ender.stop(now), None, "the summary follows `done`");
    ender.feed(b"@istorm {\"type\":\"qr\",\"part\":1,\"parts\":2,\"text\":\"IST1|a\"}\n");
    assert_eq!(ender.stop(Instant::now()), None, "one part of two");
    ender.feed(b"@istorm {\"type\":\"qr\",\"part\":2,\"parts\":2,\"text\":\"b\"}\n");
    assert_eq!(
        ender.stop(Instant::now()),
        Some(BootEnd::Exited(Exit::Success))
    );
    let mut ender = Ender::default();
    ender.feed(b"@istorm {\"type\":\"done\",\"passed\":1,\"failed\":2,\"skipped\":0}\n");
    assert_eq!(ender.stop(Instant::now()), None);
    assert_eq!(
        ender.stop(Instant::now() + LAST_WORDS),
        Some(BootEnd::Exited(Exit::Failure)),
        "no summary: stopped `LAST_WORDS` after `done`"
    );
    let mut ender = Ender::default();
    ender.feed(b"@istorm {\"type\":\"done\",\"passed\":1,\"failed\":0,\"skipped\":0}\n");
    ender.feed(b"@istorm {\"type\":\"panic\",\"cpu\":0,\"message\":\"in the summary\"}\n");
    assert_eq!(
        ender.stop(Instant::now()),
        None,
        "last words get their time"
    );
    assert!(
        matches!(
            ender.stop(Instant::now() + LAST_WORDS),
            Some(BootEnd::Killed { .. })
        ),
        "a panic after `done` is not a clean exit"
    );
    let mut ender = Ender::default();
    ender.feed(b"@istorm {\"type\":\"panic\",\"cpu\":0,\"message\":\"x\"}\n");
    assert_eq!(
        ender.stop(Instant::now()),
        None,
        "last words get their time"
    );
    assert!(matches!(
        ender.stop(Instant::now() + LAST_WORDS),
        Some(BootEnd::Killed { .. })
    ));
}

#[test]
fn a_triple_fault_is_read_from_the_log() {
    let log = "00123p[CPU0  ] >>PANIC<< exception(): 3rd (13) exception with no resolution\n";
    let end = self_end(Some(1), None, log);
    let crash = crate::qemu::crash::classify(None, &end);
    assert_eq!(crash.kind, crate::qemu::crash::CrashKind::TripleFault);
    assert_eq!(
        crash.reason,
        "triple fault: the emulator says `exception(): 3rd (13) exception with no \
         resolution`, no panic or hang event"
    );
    let end = self_end(None, Some(9), "");
    assert_eq!(
        crate::qemu::crash::classify(None, &end).kind,
        crate::qemu::crash::CrashKind::Host
    );
    assert!(complaints(log).starts_with("bochs: 00123p[CPU0"));
}
