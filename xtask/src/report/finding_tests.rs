use super::*;
use crate::report::verdict::{Report, Verdict};

const QR: &str = "IST1|cpu=AMD Ryzen 7 5800X 8-Core Processor|ucode=0xa201016|door=limine\
    |lapic=x2apic|vm=no-hypervisor|cpus=16|seed=1|strategy=linux|pass=1|fail=0|skip=1\
    |boot::nmi_all_to_all=P,n240|scenarios::movss_entry_db::tf=S";

#[test]
fn a_qr_text_names_its_machine() {
    let found = read(QR, "qr").unwrap();
    assert_eq!(found.len(), 2);
    let m = &found[0].machine;
    assert_eq!(m.platform, Platform::BareMetal);
    assert_eq!(m.ucode, Some(0xa201016));
    assert_eq!(
        m.to_string(),
        "bare metal AMD Ryzen 7 5800X 8-Core Processor ucode 0xa201016"
    );
    assert_eq!(
        (found[0].outcome, found[1].outcome),
        (Outcome::Pass, Outcome::Skip)
    );
    assert_eq!(found[0].strategy, "linux");
}

#[test]
fn json_lines_and_junit_of_a_run_read_back() {
    let mut pass = Report::new("scenarios::gd_detect", Verdict::Pass);
    pass.labels = vec!["naive".into(), "x2apic".into()];
    pass.note = "dbs=10".into();
    let mut skip = Report::new(
        "scenarios::movss_entry_db::tf",
        Verdict::Skip("hw-only".into()),
    );
    skip.labels = vec!["linux".into(), "xapic".into()];
    let lines: String = [&pass, &skip]
        .iter()
        .map(|r| {
            let mut v = crate::report::jsonlog::result_fields(r);
            v["record"] = "result".into();
            format!("{v}\n")
        })
        .collect();
    let from_json = read(&format!("{{\"record\":\"boot\"}}\n{lines}"), "json").unwrap();
    let from_junit = read(&crate::report::junit::render(&[pass, skip]), "junit").unwrap();
    for found in [from_json, from_junit] {
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].test, "scenarios::gd_detect");
        assert_eq!(found[0].strategy, "naive");
        assert_eq!(found[0].outcome, Outcome::Pass);
        assert_eq!(found[0].message, "dbs=10");
        assert_eq!(found[1].outcome, Outcome::Skip);
        assert_eq!(found[1].machine.cpu, "xapic");
    }
}

#[test]
fn a_serial_log_keeps_the_details() {
    let qr = format!(
        "IST1|cpu={}|ucode=na|door=limine|lapic=x2apic|vm=no-hypervisor|cpus=2|seed=1|strategy=linux|pass=1|fail=0|skip=0|boot::nmi_all_to_all=P",
        crate::report::platform::BOCHS_CPU_BRAND
    );
    let qr: String = testkit::protocol::qr_parts(&qr)
        .map(|part| testkit::protocol::line_of(&part).unwrap())
        .collect();
    let log = format!(
        "boot: door=limine\n\
         @istorm {{\"type\":\"hello\",\"version\":1,\"door\":\"limine\",\"machine\":\"no-hypervisor\",\"cpus\":2,\"lapic\":\"x2apic\",\"strategy\":\"linux\",\"seed\":1,\"build\":\"x\"}}\n\
         @istorm {{\"type\":\"result\",\"test\":\"boot::nmi_all_to_all\",\"strategy\":\"linux\",\"outcome\":\"pass\",\"expected\":\"survive\",\"iterations\":1,\"cycles\":1,\"cycles_per_iteration\":1,\"details\":\"sent=2\"}}\n\
         {qr}"
    );
    let found = read(&log, "log").unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].message, "sent=2");
    assert_eq!(found[0].machine.platform, Platform::Bochs);
    let err = read("hello\n", "x").unwrap_err();
    assert!(format!("{err:#}").contains("not a results file"), "{err:#}");
}

#[test]
fn findings_written_as_json_lines_read_back_the_same() {
    let found = read(QR, "qr").unwrap();
    let text: String = found.iter().map(|f| f.to_json_line() + "\n").collect();
    assert_eq!(read(&text, "saved").unwrap(), found);
}
