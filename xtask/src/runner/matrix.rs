//! The boot matrix: every door with x2APIC (`-cpu max`) and xAPIC (`-cpu
//! qemu64`) on 4 CPUs, PVH also on 1 and 8, each checked on its `hello` event
//! and the NMI counts of `boot::nmi_all_to_all`'s result; one negative check
//! proves that a kernel failure is seen as one. These boots use plain
//! `-accel tcg`: they check booting, not timing. They run only the `boot::`
//! tests (`filter=boot::`, the smoke entry of limine.conf); the kernel's
//! suites are `sequence.rs`'s.

use std::time::Duration;

use testkit::protocol::{LapicMode, OwnedEvent, parse_stream};
use testkit::summary::{door_name, lapic_name};

use crate::qemu::bochs;
use crate::qemu::crash::vector_name;
use crate::qemu::emulator::Emulator;
use crate::qemu::exit::Exit;
use crate::qemu::machine::{End, Outcome};
use crate::qemu::serial;
use crate::runner::boot::{BootConfig, Door};
use crate::runner::suite::Check;

/// The kernel words of a matrix boot: the NMI check and nothing else.
const SMOKE: &str = "filter=boot::";
/// The test whose result carries the NMI counts.
const NMI_TEST: &str = "boot::nmi_all_to_all";
/// The vector `selftest=ud2` raises: #UD.
const UD: u8 = 6;
/// The kernel must report the #UD of `selftest=ud2` this fast.
const NEGATIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Every boot check, in the order they are started.
pub fn matrix(timeout: Duration) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut add = |door: Door, cpu: &str, smp: u32| {
        let lapic = if cpu == "max" {
            LapicMode::X2apic
        } else {
            LapicMode::Xapic
        };
        checks.push(Check {
            name: format!("boot::{}_{cpu}_smp{smp}", door.ident()),
            config: BootConfig::new(door, smp, cpu, vec![SMOKE.into()]),
            timeout,
            checker: Box::new(move |out| check_boot(out, door, smp, lapic)),
        });
    };
    // The slow doors first, so that the parallel run ends sooner.
    for door in [Door::LimineUefi, Door::LimineBios, Door::Pvh] {
        for cpu in ["max", "qemu64"] {
            add(door, cpu, 4);
        }
    }
    add(Door::Pvh, "max", 1);
    add(Door::Pvh, "max", 8);
    checks.push(Check {
        name: "boot::pvh_selftest_ud2".into(),
        config: BootConfig::new(Door::Pvh, 4, "max", vec!["selftest=ud2".into()]),
        timeout: timeout.min(NEGATIVE_TIMEOUT),
        checker: Box::new(check_ud2),
    });
    checks
}

/// The Bochs smoke boot: the Limine ISO under Bochs' BIOS on 2 CPUs of
/// `corei7_skylake_x` (x2APIC), checked like the QEMU boots.
pub fn bochs_smoke(timeout: Duration) -> Check {
    let (door, smp) = (Door::LimineBios, 2);
    Check {
        name: format!("bochs::{}_smp{smp}", door.ident()),
        config: BootConfig::new(door, smp, bochs::CPU_MODEL, vec![SMOKE.into()])
            .with_emulator(Emulator::Bochs),
        timeout,
        checker: Box::new(move |out| check_boot(out, door, smp, LapicMode::X2apic)),
    }
}

/// The reason a run did not end the expected way, with the kernel's last words.
fn unexpected_end(out: &Outcome, want: &str) -> String {
    let last = serial::tail(&out.serial, 1);
    match last.first() {
        Some(line) => format!("{} (wanted {want}); last serial line `{line}`", out.end),
        None => format!("{} (wanted {want}); no serial output", out.end),
    }
}

/// A normal boot: kernel success, the right `hello`, and every CPU's NMI to
/// every other CPU sent and received.
fn check_boot(out: &Outcome, door: Door, smp: u32, lapic: LapicMode) -> Result<(), String> {
    if out.end != End::Exited(Exit::Success) {
        return Err(unexpected_end(out, "kernel success"));
    }
    let transcript = parse_stream(out.serial.as_bytes());
    let setting = transcript.setting().ok_or("no hello event")?;
    let mut wrong = Vec::new();
    if setting.door != door.wire() {
        wrong.push(format!(
            "door={} (wanted {})",
            door_name(setting.door),
            door_name(door.wire())
        ));
    }
    if setting.cpus != smp {
        wrong.push(format!("cpus={} (wanted {smp})", setting.cpus));
    }
    if setting.lapic != lapic {
        wrong.push(format!(
            "lapic={} (wanted {})",
            lapic_name(setting.lapic),
            lapic_name(lapic)
        ));
    }
    if !wrong.is_empty() {
        return Err(format!("hello: {}", wrong.join(", ")));
    }
    // One CPU has nobody to send an NMI to: the kernel skips the test.
    if smp == 1 {
        return Ok(());
    }
    let counters = transcript
        .events()
        .find_map(|(_, e)| match e {
            OwnedEvent::Result { test, counters, .. } if test == NMI_TEST => Some(*counters),
            _ => None,
        })
        .ok_or(format!("no result for {NMI_TEST}"))?;
    let want = u64::from(smp) * u64::from(smp - 1);
    let (sent, received) = (counters.nmis_sent, counters.nmis);
    if sent != Some(want) || received != Some(want) {
        let show = |n: Option<u64>| n.map_or("none".to_string(), |n| n.to_string());
        return Err(format!(
            "{NMI_TEST}: sent={} received={} (wanted {want} each)",
            show(sent),
            show(received)
        ));
    }
    Ok(())
}

/// `selftest=ud2`: the kernel reports the #UD in a `panic` event and exits
/// with failure.
fn check_ud2(out: &Outcome) -> Result<(), String> {
    if out.end != End::Exited(Exit::Failure) {
        return Err(unexpected_end(out, "kernel failure"));
    }
    let transcript = parse_stream(out.serial.as_bytes());
    let vector = transcript.events().find_map(|(_, e)| match e {
        OwnedEvent::Panic { vector, .. } => Some(*vector),
        _ => None,
    });
    match vector {
        Some(Some(UD)) => Ok(()),
        Some(Some(v)) => Err(format!(
            "panic event for vector {v} ({}), wanted {UD} (#UD)",
            vector_name(v)
        )),
        Some(None) => Err(format!("panic event without a vector, wanted {UD} (#UD)")),
        None => Err("no panic event".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qemu::exit::Ending;
    use testkit::protocol::{Event, Hex, LINE_MAX, PROTOCOL_VERSION, encode_line};

    fn out(end: End, serial: &str) -> Outcome {
        Outcome::canned(end, serial)
    }

    /// A boot's wire: its `hello` and, given `(sent, received)`, the NMI
    /// test's result.
    fn wire(door: &str, cpus: u32, lapic: &str, nmis: Option<(u64, u64)>) -> String {
        let mut serial = format!(
            "istorm\r\n@istorm {{\"type\":\"hello\",\"version\":{PROTOCOL_VERSION},\"door\":\"{door}\",\
             \"machine\":\"tcg\",\"cpus\":{cpus},\"lapic\":\"{lapic}\",\"strategy\":\"linux\",\
             \"seed\":1,\"tsc_mhz\":2000,\"build\":\"t\"}}\r\n"
        );
        if let Some((sent, received)) = nmis {
            serial += &format!(
                "@istorm {{\"type\":\"result\",\"test\":\"{NMI_TEST}\",\"strategy\":\"linux\",\
                 \"outcome\":\"pass\",\"expected\":\"survive\",\"iterations\":1,\"cycles\":1,\
                 \"cycles_per_iteration\":1,\"details\":\"\",\
                 \"counters\":{{\"nmis\":{received},\"nmis_sent\":{sent}}}}}\r\n"
            );
        }
        serial
    }

    #[test]
    fn the_matrix_has_the_named_checks() {
        let names: Vec<String> = matrix(Duration::from_secs(60))
            .into_iter()
            .map(|c| c.name)
            .collect();
        for name in [
            "boot::pvh_max_smp4",
            "boot::pvh_qemu64_smp4",
            "boot::pvh_max_smp1",
            "boot::pvh_max_smp8",
            "boot::limine_bios_max_smp4",
            "boot::limine_bios_qemu64_smp4",
            "boot::limine_uefi_max_smp4",
            "boot::limine_uefi_qemu64_smp4",
            "boot::pvh_selftest_ud2",
        ] {
            assert!(
                names.iter().any(|n| n == name),
                "{name} missing from {names:?}"
            );
        }
        assert_eq!(names.len(), 9);
    }

    #[test]
    fn a_good_boot_passes_and_each_wrong_field_is_named() {
        let ok = |serial: &str| {
            check_boot(
                &out(End::Exited(Exit::Success), serial),
                Door::Pvh,
                4,
                LapicMode::X2apic,
            )
        };
        assert_eq!(ok(&wire("pvh", 4, "x2apic", Some((12, 12)))), Ok(()));
        let err = ok(&wire("limine", 4, "xapic", Some((12, 12)))).unwrap_err();
        assert_eq!(
            err,
            "hello: door=limine (wanted pvh), lapic=xapic (wanted x2apic)"
        );
        let err = ok(&wire("pvh", 4, "x2apic", Some((12, 11)))).unwrap_err();
        assert_eq!(
            err,
            "boot::nmi_all_to_all: sent=12 received=11 (wanted 12 each)"
        );
        let err = ok(&wire("pvh", 4, "x2apic", None)).unwrap_err();
        assert_eq!(err, "no result for boot::nmi_all_to_all");
        // The text lines the kernel prints for people prove nothing.
        let err = ok("boot: door=pvh cpus=4 lapic=x2apic\nnmi: sent=12 received=12\n");
        assert_eq!(err.unwrap_err(), "no hello event");
    }

    #[test]
    fn a_bad_end_fails_with_the_last_serial_line() {
        let triple = out(
            End::Exited(Exit::NeverExited(Ending::Status(0))),
            "boot: door=pvh\r\nlast words\r\n",
        );
        let err = check_boot(&triple, Door::Pvh, 4, LapicMode::X2apic).unwrap_err();
        assert!(
            err.contains("triple fault") && err.contains("`last words`"),
            "{err}"
        );
        let hang = out(End::Hang(Duration::from_secs(30)), "");
        let err = check_boot(&hang, Door::Pvh, 4, LapicMode::X2apic).unwrap_err();
        assert!(err.starts_with("hang after 30 s"), "{err}");
    }

    #[test]
    fn one_cpu_expects_no_nmis() {
        // The kernel skips its NMI test on one CPU: no result to read.
        let one = |smp| {
            check_boot(
                &out(
                    End::Exited(Exit::Success),
                    &wire("pvh", smp, "x2apic", None),
                ),
                Door::Pvh,
                smp,
                LapicMode::X2apic,
            )
        };
        assert_eq!(one(1), Ok(()));
        assert!(one(2).unwrap_err().contains("no result"));
    }

    #[test]
    fn matrix_boots_run_only_the_boot_tests() {
        for check in matrix(Duration::from_secs(60)) {
            let want: &[&str] = if check.name.ends_with("selftest_ud2") {
                &["selftest=ud2"]
            } else {
                &[SMOKE]
            };
            assert_eq!(check.config.args, want, "{}", check.name);
            assert!(!check.config.single_step, "{}", check.name);
        }
    }

    #[test]
    fn the_negative_check_wants_failure_and_the_ud_on_the_wire() {
        let panic = |vector: Option<u8>| {
            let event = Event::Panic {
                test: None,
                cpu: 0,
                message: "unexpected exception #UD",
                rip: Some(Hex(0x1)),
                vector,
            };
            let mut line = [0u8; LINE_MAX];
            let n = encode_line(&event, &mut line).unwrap();
            format!(
                "exception: vector=6 (#UD) rip=0x1\r\n{}",
                String::from_utf8_lossy(&line[..n])
            )
        };
        let failed = |serial: &str| check_ud2(&out(End::Exited(Exit::Failure), serial));
        assert_eq!(failed(&panic(Some(UD))), Ok(()));
        assert!(check_ud2(&out(End::Exited(Exit::Success), &panic(Some(UD)))).is_err());
        assert_eq!(
            failed(&panic(Some(13))).unwrap_err(),
            "panic event for vector 13 (#GP), wanted 6 (#UD)"
        );
        assert!(
            failed(&panic(None))
                .unwrap_err()
                .contains("without a vector")
        );
        // The text line alone is for people: it proves nothing.
        let err = failed("exception: vector=6 (#UD) rip=0x1\r\n").unwrap_err();
        assert_eq!(err, "no panic event");
    }
}
