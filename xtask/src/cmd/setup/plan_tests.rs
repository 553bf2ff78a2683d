use std::collections::BTreeMap;

use super::*;

/// A machine made of answers.
#[derive(Default)]
pub struct Fake {
    pub programs: Vec<&'static str>,
    pub qemu: Option<(u32, u32)>,
    pub files: Vec<&'static str>,
    pub targets: Vec<&'static str>,
    pub root: bool,
    pub codename: Option<&'static str>,
    pub texts: BTreeMap<&'static str, &'static str>,
}

impl Probe for Fake {
    fn program(&self, name: &str) -> bool {
        self.programs.contains(&name)
    }
    fn qemu_version(&self) -> Option<(u32, u32)> {
        self.qemu
    }
    fn file(&self, path: &str) -> bool {
        self.files.contains(&path)
    }
    fn rust_target(&self, target: &str) -> bool {
        self.targets.contains(&target)
    }
    fn root(&self) -> bool {
        self.root
    }
    fn codename(&self) -> Option<String> {
        self.codename.map(String::from)
    }
    fn read(&self, path: &str) -> Option<String> {
        self.texts.get(path).map(|t| t.to_string())
    }
    fn apt_sources(&self) -> Vec<String> {
        self.texts.values().map(|t| t.to_string()).collect()
    }
}

const SOURCES: &str = "Types: deb\nURIs: http://archive.example/debian\nSuites: bookworm\n\
                       Components: main\n";

/// A fresh bookworm machine: Rust (with rustup) and git, nothing else.
pub fn fresh() -> Fake {
    Fake {
        programs: vec!["rustup", "git"],
        codename: Some("bookworm"),
        texts: BTreeMap::from([(sources::DEB822_SOURCE, SOURCES)]),
        ..Fake::default()
    }
}

/// A machine with everything.
pub fn complete() -> Fake {
    Fake {
        programs: vec![
            "rustup",
            "xorriso",
            "cc",
            "chromium",
            "chromedriver",
            "bochs",
            "lava-run",
        ],
        qemu: Some((10, 0)),
        files: vec![
            OVMF_CODE,
            "/usr/share/bochs/BIOS-bochs-latest",
            "/usr/share/vgabios/vgabios.bin",
            "/usr/lib/x86_64-linux-gnu/bochs/plugins/libbx_term_gui.so",
        ],
        targets: vec![KERNEL_TARGET],
        root: true,
        codename: Some("bookworm"),
        texts: BTreeMap::from([(sources::DEB822_DEST, "Suites: bookworm-backports\n")]),
    }
}

fn installs(steps: &[Step]) -> Vec<(Option<String>, Vec<String>)> {
    steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::AptInstall {
                suite, packages, ..
            } => Some((suite.clone(), packages.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_complete_machine_needs_nothing() {
    assert_eq!(plan(&complete(), Purpose::Test), []);
    assert_eq!(plan(&complete(), Purpose::Run), []);
}

#[test]
fn a_fresh_bookworm_machine_gets_everything_in_order() {
    let steps = plan(&fresh(), Purpose::Test);
    let kinds: Vec<&str> = steps
        .iter()
        .map(|s| match &s.action {
            Action::RustTarget(_) => "target",
            Action::EnableSuite { .. } => "suite",
            Action::AptUpdate => "update",
            Action::AptInstall { .. } => "install",
            Action::Manual(_) => "manual",
        })
        .collect();
    assert_eq!(
        kinds,
        ["target", "suite", "update", "install", "install", "install"]
    );
    let Action::EnableSuite { dest, entry, .. } = &steps[1].action else {
        unreachable!()
    };
    assert_eq!(dest, sources::DEB822_DEST);
    assert!(entry.contains("Suites: bookworm-backports\n"), "{entry}");
    assert_eq!(
        installs(&steps),
        [
            (
                Some("bookworm-backports".into()),
                vec!["qemu-system-x86".into()]
            ),
            (
                None,
                [
                    "ovmf",
                    "xorriso",
                    "gcc",
                    "chromium",
                    "chromium-driver",
                    "bochs",
                    "bochsbios",
                    "vgabios",
                    "bochs-term"
                ]
                .map(String::from)
                .to_vec()
            ),
            (None, vec!["lava-dispatcher".into()]),
        ]
    );
    // Every step says why.
    assert!(steps.iter().all(|s| !s.why.is_empty()));
}

#[test]
fn run_does_not_need_the_browser() {
    let steps = plan(&fresh(), Purpose::Run);
    let all: Vec<String> = installs(&steps).into_iter().flat_map(|(_, p)| p).collect();
    assert!(!all.iter().any(|p| p.starts_with("chromium")), "{all:?}");
    assert!(!all.iter().any(|p| p.starts_with("bochs")), "{all:?}");
    assert!(all.contains(&"xorriso".to_string()));
}

#[test]
fn an_old_qemu_is_replaced_and_enabled_backports_are_not_enabled_again() {
    let mut machine = complete();
    machine.qemu = Some((7, 2));
    let steps = plan(&machine, Purpose::Run);
    assert!(
        steps[1].why.contains("QEMU 7.2 is too old"),
        "{:?}",
        steps[1]
    );
    assert_eq!(
        installs(&steps),
        [(
            Some("bookworm-backports".into()),
            vec!["qemu-system-x86".into()]
        )]
    );
    assert!(
        !steps
            .iter()
            .any(|s| matches!(s.action, Action::EnableSuite { .. }))
    );
}

#[test]
fn later_releases_install_qemu_from_their_own_suite() {
    let mut machine = complete();
    machine.qemu = None;
    machine.codename = Some("trixie");
    assert_eq!(
        installs(&plan(&machine, Purpose::Run)),
        [(None, vec!["qemu-system-x86".into()])]
    );
}

#[test]
fn one_line_sources_are_copied_when_there_is_no_deb822_file() {
    let mut machine = fresh();
    machine.texts = BTreeMap::from([(
        sources::ONE_LINE_SOURCE,
        "deb http://archive.example/debian bookworm main\n",
    )]);
    let steps = plan(&machine, Purpose::Run);
    let Some(Action::EnableSuite { dest, entry, .. }) = steps
        .iter()
        .map(|s| &s.action)
        .find(|a| matches!(a, Action::EnableSuite { .. }))
    else {
        panic!("no suite step: {steps:?}")
    };
    assert_eq!(dest, sources::ONE_LINE_DEST);
    assert_eq!(
        entry,
        "deb http://archive.example/debian bookworm-backports main\n"
    );
}

#[test]
fn what_cannot_be_planned_is_said_by_hand() {
    let mut machine = fresh();
    machine.texts.clear();
    machine.programs.retain(|p| *p != "rustup");
    let steps = plan(&machine, Purpose::Run);
    let manual: Vec<&String> = steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::Manual(text) => Some(text),
            _ => None,
        })
        .collect();
    assert_eq!(manual.len(), 2, "{steps:?}");
    assert!(manual[0].contains("no rustup"));
    assert!(manual[1].contains("bookworm-backports"));
}
