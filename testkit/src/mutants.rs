//! The mutant catalog of `cargo xtask mutants`: single-defect variants of the
//! entry code, compiled into the kernel only when it is built with
//! `ISTORM_MUTANT=<name>` in its environment (the kernel's `entry::mutant`
//! turns the name into a `const`, which the stubs test with GAS `.if` and the
//! Rust phases with plain `if`; the default build's machine code is the same
//! byte for byte). Each mutant names the check it removes and, where there is
//! one, the Linux bug it re-creates; its plan names the suites (strategy and
//! test filter) that must kill it.

use crate::Strategy;

/// One boot of a mutant's kill plan: `entry=STRATEGY filter=FILTER`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    pub strategy: Strategy,
    pub filter: &'static str,
    /// Run the test's own iteration count, not the catalog's cap: a sweep
    /// that reaches a one-instruction window only late in its plan.
    pub full: bool,
}

#[inline]
const fn p(strategy: Strategy, filter: &'static str) -> Probe {
    Probe {
        strategy,
        filter,
        full: false,
    }
}

/// A probe that runs every iteration the test plans (see [`Probe::full`]).
#[inline]
const fn full(strategy: Strategy, filter: &'static str) -> Probe {
    Probe {
        strategy,
        filter,
        full: true,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mutant {
    /// 1-based; 0 is the real build.
    pub id: u32,
    pub name: &'static str,
    /// The check the mutant removes (or the defect it adds).
    pub removes: &'static str,
    /// The Linux bug or CVE it re-creates ("" when none).
    pub bug: &'static str,
    /// The suites that must kill it.
    pub plan: &'static [Probe],
    /// Part of the fast subset `cargo xtask test` runs.
    pub fast: bool,
}

use Strategy::{Dr7Guard, Linux, Linux419, Naive, ShiftOnly};

#[inline]
const fn m(
    id: u32,
    name: &'static str,
    removes: &'static str,
    bug: &'static str,
    plan: &'static [Probe],
) -> Mutant {
    Mutant {
        id,
        name,
        removes,
        bug,
        plan,
        fast: false,
    }
}

#[inline]
const fn fast(mutant: Mutant) -> Mutant {
    Mutant {
        fast: true,
        ..mutant
    }
}

pub const NMI_NO_CS_TEST: u32 = 1;
pub const NMI_NO_EXECUTING_TEST: u32 = 2;
pub const NMI_NO_REPEAT_RANGE_TEST: u32 = 3;
pub const NMI_NO_RSP_TEST: u32 = 4;
pub const NMI_NO_DF_TEST: u32 = 5;
pub const NMI_EXECUTING_CLEARED_EARLY: u32 = 6;
pub const NMI_IRET_COPIED_ONCE: u32 = 7;
pub const NMI_NO_LATCH: u32 = 8;
pub const DB_NO_DR7_CLEAR: u32 = 9;
pub const NMI_NO_DR7_CLEAR: u32 = 10;
pub const NMI_DR7_NOT_RESTORED: u32 = 11;
pub const NMI_NO_DEBUG_IDT: u32 = 12;
pub const HOOK_NO_DEBUG_IDT: u32 = 13;
pub const DB_4_19_NO_SHIFT: u32 = 14;
pub const SHIFT_NO_UNSHIFT: u32 = 15;
pub const SHIFT_NO_SHIFT: u32 = 16;
pub const POP_GPRS_SWAP_R8_R9: u32 = 17;
pub const DB_USER_ON_IST: u32 = 18;
pub const DB_GATE_WITHOUT_IST: u32 = 19;
pub const CHECKER_NO_GUARD: u32 = 20;
pub const CHECKER_SIX_FIELDS: u32 = 21;
pub const MC_USER_ON_IST: u32 = 22;
pub const MC_NO_DR7_CLEAR: u32 = 23;
pub const MC_ON_NMI_IST: u32 = 24;
pub const POP_GPRS_R8_FROM_R9: u32 = 25;
pub const DR7_RESTORE_ALWAYS: u32 = 26;

const NESTING: &str = "scenarios::nmi_nesting";
const USER_LATCH: &str = "scenarios::nmi_from_user_latch";
const DB_NMI: &str = "scenarios::db_kernel_nmi_db";
const TRACE: &str = "scenarios::trace_irq_recursion";
/// NMIs aimed at every instruction of the `linux` NMI entry and exit.
const WINDOWS: &str = "scenarios::nmi_nested_windows";
/// Sweeps breakpoint-held NMIs over the whole `linux` NMI stub; its later
/// iterations aim at the exit, so it runs in full.
const PROLOGUE: &str = "scenarios::nmi_prologue_windows";
/// A nested NMI while the first one's handler runs on the #DB stack.
const OFF_STACK: &str = "scenarios::nmi_nested_off_stack";
/// Ring 3 points RSP into IST_NMI; NMIs in ring 3 and the SYSCALL gap.
const SYSCALL_GAP: &str = "scenarios::nmi_syscall_gap";
/// A ring-3 #MC: where its handler runs.
const MC_USER: &str = "scenarios::mce_user";
/// A #MC inside an NMI handler and an NMI inside a #MC handler.
const NMI_MCE: &str = "scenarios::nmi_mce";

pub const CATALOG: [Mutant; 26] = [
    fast(m(
        NMI_NO_CS_TEST,
        "linux-nmi-no-cs-test",
        "the CS test of the NMI entry: ring-3 NMIs go through the nesting tests on IST_NMI",
        "CVE-2015-5157",
        &[p(Linux, USER_LATCH), p(Linux, NESTING)],
    )),
    fast(m(
        NMI_NO_EXECUTING_TEST,
        "linux-nmi-no-executing-test",
        "the \"NMI executing\" test",
        "",
        &[p(Linux, NESTING), p(Linux, OFF_STACK), p(Linux, NMI_MCE)],
    )),
    m(
        NMI_NO_REPEAT_RANGE_TEST,
        "linux-nmi-no-repeat-range-test",
        "the repeat_nmi..end_repeat_nmi test",
        "CVE-2015-3290",
        &[p(Linux, WINDOWS), p(Linux, NESTING)],
    ),
    m(
        NMI_NO_RSP_TEST,
        "linux-nmi-no-rsp-test",
        "the interrupted-RSP-on-IST_NMI test (the window between clearing \"executing\" and IRETQ)",
        "",
        &[p(Linux, WINDOWS), p(Linux, NESTING)],
    ),
    m(
        NMI_NO_DF_TEST,
        "linux-nmi-no-df-test",
        "the DF test in the RSP-on-NMI-stack check: a ring-3 RSP in the SYSCALL gap looks nested",
        "CVE-2015-3291",
        &[p(Linux, SYSCALL_GAP), p(Linux, NESTING)],
    ),
    m(
        NMI_EXECUTING_CLEARED_EARLY,
        "linux-nmi-executing-cleared-early",
        "the order STD, then clear \"executing\": the flag is cleared before the STD/IRETQ window",
        "",
        &[full(Linux, PROLOGUE), p(Linux, WINDOWS), p(Linux, NESTING)],
    ),
    m(
        NMI_IRET_COPIED_ONCE,
        "linux-nmi-iret-copied-once",
        "the copy of \"outermost\" into \"iret\" on every repeat (done once, before repeat_nmi)",
        "",
        &[p(Linux, NESTING)],
    ),
    m(
        NMI_NO_LATCH,
        "linux-nmi-no-latch",
        "exc_nmi's nmi_state latch: an NMI body nests inside another",
        "CVE-2015-3290",
        &[p(Linux, USER_LATCH), p(Linux419, USER_LATCH)],
    ),
    m(
        DB_NO_DR7_CLEAR,
        "db-no-dr7-clear",
        "the DR7 save/clear of the kernel #DB (dr7-guard, linux)",
        "Linux 5.8-5.9 (2020): shift_ist removed, #DB saves and clears DR7",
        &[p(Linux, TRACE), p(Dr7Guard, TRACE)],
    ),
    m(
        NMI_NO_DR7_CLEAR,
        "nmi-no-dr7-clear",
        "the DR7 save/clear of the NMI body (dr7-guard, linux)",
        "Linux 5.8-5.9 (2020): NMI saves and clears DR7 (local_db_save)",
        &[p(Linux, DB_NMI), p(Dr7Guard, DB_NMI)],
    ),
    m(
        NMI_DR7_NOT_RESTORED,
        "nmi-dr7-restored-wrong",
        "the DR7 restore of the NMI body (DR7 left 0 after an NMI)",
        "",
        &[p(Linux, DB_NMI), p(Linux, "scenarios::watchpoints")],
    ),
    m(
        NMI_NO_DEBUG_IDT,
        "linux419-nmi-no-debug-idt",
        "linux-4.19's debug IDT in an NMI that interrupted the #DB stack",
        "Linux 3.3 (2011): debug_stack_set_zero in NMIs",
        &[p(Linux419, DB_NMI)],
    ),
    m(
        HOOK_NO_DEBUG_IDT,
        "linux419-hook-no-debug-idt",
        "linux-4.19's debug IDT around the #DB tracing hook (TRACE_IRQS_OFF_DEBUG)",
        "Linux 3.5 (2012): lockdep in #DB recursing on the IST",
        &[p(Linux419, TRACE)],
    ),
    m(
        DB_4_19_NO_SHIFT,
        "linux419-no-shift",
        "linux-4.19's shift_ist around the #DB body",
        "Linux 5.8 (2020): shift_ist removed (safe only with DR7 cleared)",
        &[
            p(Linux419, "scenarios::kernel_db_recursion"),
            p(Linux419, TRACE),
        ],
    ),
    m(
        SHIFT_NO_UNSHIFT,
        "shift-only-no-unshift",
        "the un-shift on #DB exit: IST1 drifts down one shift per #DB",
        "",
        &[p(ShiftOnly, DB_NMI)],
    ),
    m(
        SHIFT_NO_SHIFT,
        "shift-only-no-shift",
        "the IST1 shift of shift-only's #DB",
        "",
        &[p(ShiftOnly, DB_NMI)],
    ),
    fast(m(
        POP_GPRS_SWAP_R8_R9,
        "pop-gprs-swap-r8-r9",
        "the register restore order: POP_GPRS restores r8 into r9 and r9 into r8",
        "",
        &[
            p(Linux, "scenarios::icebp_dr6"),
            p(Naive, "scenarios::icebp_dr6"),
            p(Naive, NESTING),
            p(Linux, USER_LATCH),
            p(Naive, OFF_STACK),
            p(Linux, TRACE),
            p(Linux, "scenarios::kernel_db_recursion"),
        ],
    )),
    m(
        DB_USER_ON_IST,
        "linux-db-user-on-ist",
        "the move of a ring-3 #DB to RSP0: it runs on IST_DB with DR7 armed",
        "Linux 5.9 (2020): #DB from user mode on the task stack",
        &[
            p(Linux, "scenarios::user_db_recursion"),
            p(Linux, "scenarios::db_user_nmi_db"),
        ],
    ),
    m(
        DB_GATE_WITHOUT_IST,
        "db-gate-without-ist",
        "the IST of the #DB gate: a #DB on an entry's first instruction runs on the entry's stack",
        "CVE-2018-8897",
        &[
            p(Linux, "scenarios::sysenter_tf"),
            p(Linux, "scenarios::syscall_tf"),
        ],
    ),
    m(
        CHECKER_NO_GUARD,
        "checker-no-guard",
        "the checker's guard of an interrupted IST stack",
        "",
        &[p(Naive, DB_NMI), p(Naive, "scenarios::db_user_nmi_db")],
    ),
    m(
        CHECKER_SIX_FIELDS,
        "checker-six-fields",
        "the checker's comparison of the GPR and strategy words (back to six fields)",
        "",
        &[p(Linux, "scenarios::checker_words"), p(Naive, NESTING)],
    ),
    m(
        MC_USER_ON_IST,
        "linux-mc-user-on-ist",
        "the move of a ring-3 #MC to RSP0 (idtentry_mce_db's switch to the task stack): it runs on IST_MC",
        "",
        &[p(Linux, MC_USER), p(Linux419, MC_USER)],
    ),
    m(
        MC_NO_DR7_CLEAR,
        "mc-no-dr7-clear",
        "the DR7 save/clear of the #MC entry (dr7-guard, linux): a watchpoint the #MC handler touches fires",
        "Linux 5.8-5.9 (2020): #MC saves and clears DR7 (local_db_save)",
        // mce_user first: its #MCs land with a watchpoint armed every time;
        // db_mce_db's land with DR7 still armed only by chance (1-2 of 99).
        &[
            p(Linux, MC_USER),
            p(Linux, "scenarios::db_mce_db"),
            p(Dr7Guard, "scenarios::db_mce_db"),
        ],
    ),
    m(
        MC_ON_NMI_IST,
        "mc-on-nmi-ist",
        "#MC on its own IST stack: the #MC gate shares IST_NMI, so a #MC in an NMI handler starts on its live stack",
        "",
        &[p(Linux, NMI_MCE), p(Naive, "scenarios::mce_plain")],
    ),
    m(
        POP_GPRS_R8_FROM_R9,
        "pop-gprs-r8-from-r9",
        "the register restore: POP_GPRS skips r8's slot and restores r8 from r9's (not undone by a second pass, unlike the swap)",
        "",
        &[p(Linux, "scenarios::icebp_dr6"), p(Linux, NESTING)],
    ),
    m(
        DR7_RESTORE_ALWAYS,
        "dr7-restore-always",
        "the test in the kernel #DB's DR7 restore (dr7-guard, linux): the exit writes DR7 even when its entry found nothing armed, as local_db_restore does not",
        "",
        &[
            p(Linux, "scenarios::dr7_guard_restore"),
            p(Dr7Guard, "scenarios::dr7_guard_restore"),
        ],
    ),
];

/// The id of the mutant called `name`; 0 for none, `u32::MAX` for an unknown
/// name (the kernel refuses to build then).
#[inline]
pub const fn id(name: Option<&str>) -> u32 {
    let Some(name) = name else { return 0 };
    if name.is_empty() {
        return 0;
    }
    let mut i = 0;
    while i < CATALOG.len() {
        if str_eq(CATALOG[i].name, name) {
            return CATALOG[i].id;
        }
        i += 1;
    }
    u32::MAX
}

#[inline]
const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The mutant called `name`. (Every function here is `#[inline]`: the
/// kernel's testkit then has no new item, and its code stays byte-identical.)
#[inline]
pub fn find(name: &str) -> Option<&'static Mutant> {
    CATALOG.iter().find(|m| m.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_their_positions_and_names_unique() {
        for (i, m) in CATALOG.iter().enumerate() {
            assert_eq!(m.id as usize, i + 1, "{}", m.name);
            assert_eq!(id(Some(m.name)), m.id);
            assert!(!m.plan.is_empty(), "{}", m.name);
        }
        assert_eq!(id(None), 0);
        assert_eq!(id(Some("")), 0);
        assert_eq!(id(Some("no-such")), u32::MAX);
        assert!(CATALOG.len() >= 15);
    }
}
