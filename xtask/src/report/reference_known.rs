//! The departures from the reference measured on the emulators: which
//! platform gives which outcome instead of silicon's, and why.

use super::Known;
use crate::report::platform::Platform;

/// Departures measured on the emulators (docs/emulators.md).
pub const KNOWN: &[Known] = &[
    Known {
        test: "scenarios::movss_entry_db::",
        platform: Platform::QemuTcg,
        outcomes: &["skip"],
        reason: "QEMU 10 TCG does not hold a MOV SS #DB for one instruction, and \
                 drops the pending single-step when INT3 follows (0 of 100 #DBs at \
                 the #BP entry): hw-only, skipped on TCG",
    },
    Known {
        test: "scenarios::movss_user::",
        platform: Platform::QemuTcg,
        outcomes: &["skip"],
        reason: "QEMU 10 TCG does not hold a data-watchpoint #DB after MOV SS: \
                 hw-only, skipped on TCG",
    },
    Known {
        test: "scenarios::movss_user::int3",
        platform: Platform::Bochs,
        outcomes: &["not-reproduced"],
        reason: "Bochs 2.7 drops the #DB held by MOV SS when INT3 follows",
    },
    Known {
        test: "scenarios::movss_user::int_n",
        platform: Platform::Bochs,
        outcomes: &["not-reproduced"],
        reason: "Bochs 2.7 drops the #DB held by MOV SS when INT n follows",
    },
    Known {
        test: "scenarios::movss_entry_db::",
        platform: Platform::Bochs,
        outcomes: &["not-reproduced", "fail"],
        reason: "Bochs 2.7 holds the MOV SS #DB for one instruction but drops it \
                 when that instruction is INT3 or INT n: 0 of 100 #DBs at the #BP \
                 entry (cargo xtask test --emulator bochs --filter movss)",
    },
    Known {
        test: "scenarios::syscall_tf",
        platform: Platform::Bochs,
        outcomes: &["fail"],
        reason: "Bochs 2.7 takes the single-step from TF before SYSCALL masks it: \
                 with TF in SFMASK a #DB on the entry's first instruction on 100 of \
                 100 calls (the XSA-204 bug); silicon and QEMU raise none \
                 (cargo xtask test --emulator bochs --filter syscall_tf)",
    },
    Known {
        test: "scenarios::mce_plain",
        platform: Platform::Bochs,
        outcomes: &["not-reproduced"],
        reason: "Bochs 2.7's corei7_skylake_x reports no machine-check banks \
                 (MCG_CAP.Count = 0: TooFewBanks(0)) and has no monitor to inject \
                 one; the host injects #MC through QEMU's monitor only",
    },
    Known {
        test: "scenarios::db_mce_db",
        platform: Platform::Bochs,
        outcomes: &["not-reproduced"],
        reason: "as mce_plain: no machine-check banks and no monitor under Bochs 2.7",
    },
];

/// The measured departure of `platform` for `test`, if one is known.
pub fn known(test: &str, platform: Platform) -> Option<&'static Known> {
    KNOWN.iter().find(|k| {
        k.platform == platform
            && (k.test == test || (k.test.ends_with("::") && test.starts_with(k.test)))
    })
}
