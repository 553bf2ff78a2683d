//! The machine-check rows of the reference (`mce_plain`, `db_mce_db`,
//! `nmi_mce`, `mce_user`, `mce_nesting`): what silicon does when a #MC lands,
//! kept apart so that `reference.rs` stays within the line limit.

use super::{LINUX_NMI, Reference, SDM_IST, SDM_NMI};

const SDM_MC: &str = "Intel SDM Vol. 3A 6.15 Interrupt 18 Machine-Check Exception";
const SDM_MCIP: &str = "Intel SDM Vol. 3B 16.3.1.2 IA32_MCG_STATUS MSR";

pub const PLAIN: Reference = Reference {
    test: "scenarios::mce_plain",
    hazard: "#MC on its IST, MCIP cleared",
    silicon: "a machine check is delivered through its gate with MCG_STATUS.MCIP \
              set; a second #MC while MCIP is set shuts the processor down",
    sources: &[SDM_MC, SDM_MCIP, "AMD APM Vol. 2 9.3 Machine-Check Errors"],
    outcome: "pass",
};

pub const DB_MCE_DB: Reference = Reference {
    test: "scenarios::db_mce_db",
    hazard: "#MC inside a #DB handler, its handler touching a watchpoint",
    silicon: "#MC is masked by nothing and lands inside the #DB handler; a \
              breakpoint hit in the #MC handler raises #DB through its IST gate, \
              at the #DB IST top unless DR7 was cleared (Linux 6.6 local_db_save)",
    sources: &[
        SDM_MC,
        SDM_IST,
        "Linux arch/x86/kernel/cpu/mce/core.c exc_machine_check (v5.8+: local_db_save)",
    ],
    outcome: "pass",
};

pub const NMI_MCE: Reference = Reference {
    test: "scenarios::nmi_mce",
    hazard: "#MC inside an NMI handler, then the next NMI; an NMI inside a #MC handler",
    silicon: "#MC is masked by nothing and lands inside the NMI handler; its IRET \
              ends NMI blocking, so the next NMI starts at the NMI IST top while the \
              first handler runs; an NMI is not blocked by a running #MC handler",
    sources: &[SDM_MC, SDM_NMI, SDM_IST, LINUX_NMI],
    outcome: "pass",
};

pub const USER: Reference = Reference {
    test: "scenarios::mce_user",
    hazard: "#MC from ring 3: which stack its handler runs on",
    silicon: "a #MC through an IST gate lands on the IST stack from any ring; the \
              entry code decides where the handler runs (Linux 6.6 idtentry_mce_db \
              moves a ring-3 #MC to the task stack)",
    sources: &[
        SDM_MC,
        SDM_IST,
        "Linux arch/x86/entry/entry_64.S idtentry_mce_db (v5.8+)",
    ],
    outcome: "pass",
};

pub const NESTING: Reference = Reference {
    test: "scenarios::mce_nesting",
    hazard: "second #MC while MCG_STATUS.MCIP is set",
    silicon: "the processor enters shutdown (a triple fault to the platform)",
    sources: &[
        "Intel SDM Vol. 3B 16.3.1.2 IA32_MCG_STATUS MSR (MCIP)",
        SDM_MC,
    ],
    outcome: "pass",
};
