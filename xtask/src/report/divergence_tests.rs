use super::*;
use crate::report::evidence::evidence;

fn machine(platform: Platform, cpu: &str) -> Machine {
    Machine {
        platform,
        cpu: cpu.into(),
        ucode: None,
    }
}

fn finding(test: &str, strategy: &str, outcome: Outcome, message: &str, m: &Machine) -> Finding {
    Finding {
        test: test.into(),
        strategy: strategy.into(),
        outcome,
        message: message.into(),
        machine: m.clone(),
    }
}

const TF: &str = "scenarios::movss_entry_db::tf";
const GD: &str = "scenarios::gd_detect";

fn sample() -> Vec<Finding> {
    let tcg = machine(Platform::QemuTcg, "max");
    let bochs = machine(Platform::Bochs, "corei7_skylake_x");
    vec![
        finding(GD, "naive", Outcome::Pass, "dbs=10", &tcg),
        finding(GD, "linux", Outcome::Pass, "dbs=10", &tcg),
        finding(
            TF,
            "naive",
            Outcome::Skip,
            "hw-only: QEMU TCG does not model this timing",
            &tcg,
        ),
        finding(GD, "naive", Outcome::Pass, "dbs=10", &bochs),
        finding(GD, "linux", Outcome::Fail, "no #DB with DR6.BD", &bochs),
        finding(
            TF,
            "naive",
            Outcome::NotReproduced,
            "0 #DBs at the #BP entry",
            &bochs,
        ),
        finding("scenarios::brand_new", "naive", Outcome::Pass, "", &bochs),
    ]
}

#[test]
fn departures_are_divergences_only_when_explained() {
    let table = build(&sample(), vec!["KVM: not available here".into()]);
    assert_eq!(table.columns.len(), 2);
    let row = |t: &str| table.rows.iter().find(|r| r.test == t).unwrap();
    let gd = row(GD);
    assert_eq!(gd.cells[0].as_ref().unwrap().status, Status::Agrees);
    assert_eq!(gd.cells[0].as_ref().unwrap().outcome, "pass 2/2");
    let broken = gd.cells[1].as_ref().unwrap();
    assert_eq!(broken.outcome, "pass 1/2, fail 1/2");
    assert!(matches!(&broken.status, Status::Unexplained(w) if w.contains("under linux")));
    let tf = row(TF);
    for c in &tf.cells {
        assert!(matches!(c.as_ref().unwrap().status, Status::Divergence(_)));
    }
    // A test without a reference still gets its row, and says so.
    assert_eq!(row("scenarios::brand_new").silicon, "?");
    assert!(row("scenarios::brand_new").cells[0].is_none());
    assert_eq!(table.unexplained(), 1);
}

#[test]
fn the_three_renderings_carry_the_same_verdicts() {
    let table = build(&sample(), vec!["KVM: not available here".into()]);
    let text = table.render_text();
    assert!(text.contains("skip 1/1 DIVERGES[2]"), "{text}");
    assert!(text.contains("UNEXPLAINED[1]"), "{text}");
    assert!(
        text.contains("[2] scenarios::movss_entry_db::tf on QEMU TCG max: platform divergence"),
        "{text}"
    );
    assert!(text.ends_with("KVM: not available here\n"), "{text}");
    let md = table.render_markdown();
    assert!(md.starts_with("| hazard | test | silicon | QEMU TCG max | Bochs corei7_skylake_x |\n|---|---|---|---|---|\n"), "{md}");
    assert!(md.contains("**unexplained**"), "{md}");
    let json = table.to_json();
    assert_eq!(json["rows"][0]["test"], GD);
    assert_eq!(json["rows"][0]["cells"][1]["status"], "unexplained");
    assert_eq!(json["columns"][1]["platform"], "bochs");
}

#[test]
fn one_note_per_test_and_reason_names_every_machine() {
    let mut found = sample();
    let xapic = machine(Platform::QemuTcg, "qemu64");
    found.push(finding(
        TF,
        "naive",
        Outcome::Skip,
        "hw-only: QEMU TCG does not model this timing",
        &xapic,
    ));
    let text = build(&found, Vec::new()).render_text();
    assert!(
        text.contains("[2] scenarios::movss_entry_db::tf on QEMU TCG max, QEMU TCG qemu64: platform divergence"),
        "{text}"
    );
    assert_eq!(text.matches("DIVERGES[2]").count(), 2, "{text}");
    assert!(text.contains("DIVERGES[3]"), "{text}");
}

#[test]
fn the_key_evidence_of_a_sweep_is_picked_out() {
    let m = "corruption detected as expected; nmi_in_db=7056 nested_db=10000 suppressed=0 \
             lost_nmis=0 db_span=415cyc window_coverage=28/57 (49%)";
    assert_eq!(
        evidence("scenarios::db_kernel_nmi_db", m),
        "nmi_in_db=7056 nested_db=10000 window_coverage=28/57 (49%)"
    );
    assert_eq!(
        evidence("scenarios::gd_detect", "caught; db_bd=200 db_other=0"),
        "db_bd=200 db_other=0"
    );
    assert_eq!(evidence("scenarios::x", "no words"), "no words");
}

#[test]
fn a_skip_the_expectation_asks_for_is_no_departure() {
    let tcg = machine(Platform::QemuTcg, "max");
    let found = vec![
        finding(GD, "linux", Outcome::Pass, "", &tcg),
        finding(GD, "naive", Outcome::Skip, "naive: not meaningful", &tcg),
    ];
    let table = build(&found, Vec::new());
    let cell = table.rows[0].cells[0].as_ref().unwrap();
    assert_eq!(cell.status, Status::Agrees);
    assert_eq!(cell.outcome, "pass 1/2, skip 1/2");
}
