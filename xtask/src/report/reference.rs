//! What silicon does for each hazard: the reference every platform's result
//! is compared against (`cargo xtask matrix`), with the source that says so.
//!
//! One entry per registered kernel test (framework selftests and benchmarks
//! excepted: they are no hazard). A test without an entry fails the host test
//! `every_registered_test_has_a_reference`: whoever adds a scenario states here what real
//! hardware does for it, and where that is written down.
//!
//! The expectation is istorm's own outcome on silicon: `pass` means the
//! hazard happens on real hardware and every strategy's verdict holds. A
//! platform that reports anything else departs from the architecture; the
//! departures measured so far are [`KNOWN`], each with its evidence. Any
//! other departure is unexplained: an istorm bug until shown otherwise.

use crate::report::platform::Platform;

/// What silicon does for one test's hazard.
#[derive(Clone, Copy, Debug)]
pub struct Reference {
    /// The kernel test's name.
    pub test: &'static str,
    /// The hazard in a few words (the row of the divergence table).
    pub hazard: &'static str,
    /// What the architecture says happens.
    pub silicon: &'static str,
    /// Where it is written down.
    pub sources: &'static [&'static str],
    /// istorm's outcome on silicon, as JSON records write it (`pass`).
    pub outcome: &'static str,
}

/// A departure from the reference measured on a platform.
#[derive(Clone, Copy, Debug)]
pub struct Known {
    /// The test, or a prefix ending in `::` for a family.
    pub test: &'static str,
    pub platform: Platform,
    /// The outcomes the platform gives instead (a test that cannot tell
    /// "never happened" from "broke" yet reports `fail` where its telltale
    /// will say `not-reproduced`).
    pub outcomes: &'static [&'static str],
    /// Why, and how it was measured.
    pub reason: &'static str,
}

/// Tests that are no hazard: the framework's own checks.
pub const EXEMPT: [&str; 2] = ["selftest::", "bench::"];

const SDM_NMI: &str = "Intel SDM Vol. 3A 6.7.1 Handling Multiple NMIs";
const SDM_IST: &str = "Intel SDM Vol. 3A 6.14.5 Interrupt Stack Table";
const SDM_DR6: &str = "Intel SDM Vol. 3B 17.2.3 Debug Status Register (DR6)";
const SDM_DR7: &str = "Intel SDM Vol. 3B 17.2.4 Debug Control Register (DR7)";
const SDM_MOVSS: &str =
    "Intel SDM Vol. 3A 6.8.3 Masking Exceptions and Interrupts When Switching Stacks";
const SDM_INT: &str = "Intel SDM Vol. 2A INT n/INTO/INT3/INT1 (privilege checks)";
const APM_DB: &str = "AMD APM Vol. 2 13.1 Software-Debug Resources";
const LINUX_NMI: &str = "Linux arch/x86/entry/entry_64.S, nested-NMI comment (v3.3+)";
const CVE_MOVSS: &str = "CVE-2018-8897 / Xen XSA-260 (POP SS/MOV SS then INT3/SYSCALL)";

pub const REFERENCES: &[Reference] = &[
    Reference {
        test: "boot::nmi_all_to_all",
        hazard: "NMI IPI delivery",
        silicon: "an NMI sent through the local APIC ICR is delivered; one more \
                  waits while the target handles an NMI",
        sources: &[
            "Intel SDM Vol. 3A 11.6 Issuing Interprocessor Interrupts",
            SDM_NMI,
        ],
        outcome: "pass",
    },
    Reference {
        test: "scenarios::db_kernel_nmi_db",
        hazard: "NMI inside #DB, nested #DB",
        silicon: "an NMI is not blocked by #DB delivery, and a #DB raised in the NMI \
                  handler switches to the same IST top again, overwriting the outer frame",
        sources: &[
            SDM_NMI,
            SDM_IST,
            "Linux Documentation/arch/x86/kernel-stacks.rst",
        ],
        outcome: "pass",
    },
    Reference {
        test: "scenarios::db_user_nmi_db",
        hazard: "NMI inside user #DB",
        silicon: "as for the kernel #DB: the outer frame (user CS/RSP) is overwritten \
                  on the shared IST top",
        sources: &[SDM_NMI, SDM_IST],
        outcome: "pass",
    },
    Reference {
        test: "scenarios::entry_deny_list",
        hazard: "breakpoints on what entry touches",
        silicon: "an enabled data or instruction breakpoint fires at any privilege, \
                  inside entry code too: only software can refuse to place one",
        sources: &[
            SDM_DR7,
            "Linux arch/x86/kernel/hw_breakpoint.c within_cpu_entry() (v5.10+)",
        ],
        outcome: "pass",
    },
    Reference {
        test: "scenarios::gd_detect",
        hazard: "DR7.GD general detect",
        silicon: "a debug-register access with GD set raises a fault-like #DB with \
                  DR6.BD; the CPU clears GD on delivery",
        sources: &[SDM_DR7, SDM_DR6, APM_DB],
        outcome: "pass",
    },
    Reference {
        test: "scenarios::dr7_guard_restore",
        hazard: "DR7 written back by a #DB that found it empty",
        silicon: "#DB delivery leaves DR7's enables as they were (only GD is cleared), so \
                  a breakpoint armed inside a #DB stays armed unless the handler writes \
                  DR7 on its way out; Linux's local_db_restore writes only what \
                  local_db_save found armed",
        sources: &[
            SDM_DR7,
            "Linux v6.6 arch/x86/include/asm/debugreg.h local_db_save()",
        ],
        outcome: "pass",
    },
    Reference {
        test: "scenarios::icebp_dr6",
        hazard: "ICEBP/INT 1 and stale DR6",
        silicon: "ICEBP and INT 1 raise #DB without setting B0-B3/BS; the CPU never \
                  clears DR6, the handler must",
        sources: &[SDM_DR6, SDM_INT],
        outcome: "pass",
    },
    Reference {
        test: "scenarios::int3_forms",
        hazard: "INT3/INT 3/ICEBP/INT 1 vs gate DPL",
        silicon: "INT3 and INT n check the gate DPL (#GP with the IDT error code); \
                  ICEBP (0xF1) does not",
        sources: &[SDM_INT, "AMD APM Vol. 3 INT/INT3 instruction reference"],
        outcome: "pass",
    },
    Reference {
        test: "scenarios::ist_overflow_df",
        hazard: "IST overflow into guard page",
        silicon: "a #PF while the #PF cannot be pushed escalates to #DF, delivered on \
                  its own IST stack",
        sources: &[
            "Intel SDM Vol. 3A 6.15 Interrupt 8 Double Fault, Table 6-5",
            SDM_IST,
        ],
        outcome: "pass",
    },
    Reference {
        test: "scenarios::kernel_text_breakpoints",
        hazard: "instruction breakpoints and RF",
        silicon: "an instruction breakpoint is fault-like; RF=1 in the IRET image \
                  suppresses it for one instruction",
        sources: &[
            "Intel SDM Vol. 3B 17.3.1.1 Instruction-Breakpoint Exception Condition",
            SDM_DR7,
        ],
        outcome: "pass",
    },
    mce::PLAIN,
    Reference {
        test: "scenarios::movss_entry_db::tf",
        hazard: "MOV SS + TF, then INT3",
        silicon: "the single-step #DB held by MOV SS is delivered after INT3 has \
                  entered the kernel, on the #BP handler's first instruction",
        sources: &[SDM_MOVSS, CVE_MOVSS],
        outcome: "pass",
    },
    Reference {
        test: "scenarios::movss_entry_db::watchpoint",
        hazard: "MOV SS watchpoint, then INT3",
        silicon: "the data-breakpoint #DB of MOV SS is held for one instruction and \
                  delivered on the #BP handler's first instruction",
        sources: &[SDM_MOVSS, CVE_MOVSS],
        outcome: "pass",
    },
    Reference {
        test: "scenarios::movss_user::int3",
        hazard: "ring 3 MOV SS watchpoint, then INT3",
        silicon: "the #DB held by MOV SS is delivered on the #BP handler's first \
                  instruction, in ring 0, where the entry expects none",
        sources: &[SDM_MOVSS, CVE_MOVSS],
        outcome: "pass",
    },
    Reference {
        test: "scenarios::movss_user::int_n",
        hazard: "ring 3 MOV SS watchpoint, then INT 3",
        silicon: "as after INT3: the held #DB lands on the gate's handler's first \
                  instruction in ring 0",
        sources: &[SDM_MOVSS, CVE_MOVSS],
        outcome: "pass",
    },
    Reference {
        test: "scenarios::movss_user::syscall",
        hazard: "ring 3 MOV SS watchpoint, then SYSCALL",
        silicon: "the held #DB lands on the SYSCALL entry's first instruction, in \
                  ring 0 with the user's RSP (the 2018 Linux and Xen bug)",
        sources: &[SDM_MOVSS, CVE_MOVSS, "Intel SDM Vol. 2B SYSCALL"],
        outcome: "pass",
    },
    Reference {
        test: "scenarios::nmi_from_user_latch",
        hazard: "NMI from ring 3, #DB IRET unblocks NMI",
        silicon: "any IRET, also a nested #DB's, ends NMI blocking: a second NMI \
                  lands on the same IST top while the first runs",
        sources: &[SDM_NMI, LINUX_NMI],
        outcome: "pass",
    },
    Reference {
        test: "scenarios::nmi_nested_off_stack",
        hazard: "#BP IRET in #DB inside NMI, nested NMI on the #DB stack",
        silicon: "any IRET ends NMI blocking, also one on another IST stack: the next \
                  NMI starts at the IST_NMI top while the first one runs on IST_DB",
        sources: &[SDM_NMI, SDM_IST, LINUX_NMI],
        outcome: "pass",
    },
    Reference {
        test: "scenarios::nmi_nested_windows",
        hazard: "#BP IRET inside NMI, NMIs aimed at the NMI entry and exit",
        silicon: "NMIs stay blocked from delivery to the next IRET; after an early IRET \
                  a nested NMI can land on any instruction that runs with them open",
        sources: &[SDM_NMI, LINUX_NMI],
        outcome: "pass",
    },
    Reference {
        test: "scenarios::nmi_prologue_windows",
        hazard: "#DB IRET inside the NMI prologue, second NMI on each instruction",
        silicon: "a #DB's IRET ends NMI blocking wherever it returns to: before the \
                  stub marks itself executing a nested NMI cannot tell it is nested",
        sources: &[SDM_NMI, LINUX_NMI],
        outcome: "pass",
    },
    Reference {
        test: "scenarios::nmi_nesting",
        hazard: "#BP IRET inside NMI, nested NMI",
        silicon: "the #BP's IRET ends NMI blocking; the next NMI nests on the same \
                  IST top unless the entry repeats",
        sources: &[SDM_NMI, LINUX_NMI],
        outcome: "pass",
    },
    Reference {
        test: "scenarios::nmi_syscall_gap",
        hazard: "NMI in ring 3 / the SYSCALL gap with RSP on the NMI stack",
        silicon: "SYSCALL does not switch stacks and clears the SFMASK bits (DF): an \
                  NMI in the gap sees a ring-0 CS and a user-chosen RSP, which may lie \
                  on IST_NMI",
        sources: &["Intel SDM Vol. 2B SYSCALL", SDM_NMI, "CVE-2015-3291"],
        outcome: "pass",
    },
    Reference {
        test: "scenarios::syscall_tf",
        hazard: "SYSCALL with TF set",
        silicon: "SYSCALL masks RFLAGS with IA32_FMASK before the single-step is \
                  decided: with TF in FMASK no #DB in the entry",
        sources: &[
            "Intel SDM Vol. 2B SYSCALL",
            "Xen XSA-204 (CVE-2016-10013)",
            "kvm-unit-tests x86/syscall.c",
        ],
        outcome: "pass",
    },
    mce::DB_MCE_DB,
    mce::NMI_MCE,
    mce::USER,
    mce::NESTING,
    Reference {
        test: "scenarios::sysenter_tf",
        hazard: "SYSENTER with TF set",
        silicon: "SYSENTER clears only IF, VM and RF: the single-step #DB is delivered \
                  on the entry's first instruction, in ring 0, on the SYSENTER stack; \
                  in 64-bit mode SYSENTER exists only on Intel (AMD: #UD)",
        sources: &[
            "Intel SDM Vol. 2B SYSENTER",
            "AMD APM Vol. 3 SYSENTER (invalid in long mode)",
            "Linux arch/x86/entry/entry_64_compat.S, entry_SYSENTER_compat (TF handling)",
        ],
        outcome: "pass",
    },
    Reference {
        test: "scenarios::kernel_tf_leak",
        hazard: "TF set in ring 3, kernel entered and left",
        silicon: "delivery through an interrupt gate clears TF, IRET restores the \
                  frame's RFLAGS: TF is live in ring 3 and never in ring 0 unless a \
                  kernel path restores the user's flags",
        sources: &[
            "Intel SDM Vol. 3A 6.12.1.3 Flag Usage By Exception- or Interrupt-Handler Procedure",
            "Intel SDM Vol. 3B 17.3.1.4 Single-Step Exception Condition",
        ],
        outcome: "pass",
    },
    Reference {
        test: "scenarios::user_db_recursion",
        hazard: "user #DB whose handler raises a kernel #DB",
        silicon: "both #DBs are delivered; a second #DB through an IST gate starts at \
                  the same IST top (one nested level is what Linux 5.8+ allows, with \
                  the user #DB off the IST)",
        sources: &[
            SDM_IST,
            "Linux arch/x86/kernel/traps.c exc_debug_user (v5.8+, recursive #DB comment)",
        ],
        outcome: "pass",
    },
    Reference {
        test: "scenarios::kernel_db_recursion",
        hazard: "kernel #DB whose body raises a second #DB",
        silicon: "#DB delivery clears only DR7.GD: a watchpoint touched in a #DB \
                  handler fires again, and through an IST gate the second #DB starts \
                  at the same IST top",
        sources: &[
            SDM_DR7,
            SDM_IST,
            "Linux v4.19 arch/x86/kernel/traps.c do_debug (debug_stack_usage_inc / shift_ist)",
        ],
        outcome: "pass",
    },
    Reference {
        test: "scenarios::checker_words",
        hazard: "one word of an IST frame changed between entry and exit",
        silicon: "no hardware hazard: a check of istorm's own checker, the same on every \
                  platform (it compares words in memory)",
        sources: &["istorm kernel/src/entry/checker/shadow.rs"],
        outcome: "pass",
    },
    Reference {
        test: "scenarios::trace_irq_recursion",
        hazard: "breakpoint on #DB entry's hook",
        silicon: "#DB delivery clears only DR7.GD: a breakpoint on code #DB entry \
                  calls fires again inside #DB, on the same IST stack",
        sources: &[
            SDM_DR7,
            "Linux v5.8 arch/x86/include/asm/debugreg.h local_db_save()",
        ],
        outcome: "pass",
    },
    Reference {
        test: "scenarios::watchpoints",
        hazard: "watchpoint LEN/RW encodings",
        silicon: "data breakpoints match any access overlapping the aligned range \
                  of LEN; R/W=01 writes only, 11 reads or writes",
        sources: &[SDM_DR7, SDM_DR6, APM_DB],
        outcome: "pass",
    },
];

#[path = "reference_known.rs"]
mod departures;
#[path = "reference_mce.rs"]
mod mce;
#[cfg(test)]
pub use departures::KNOWN;
pub use departures::known;

/// The reference of `test`, if it has one.
pub fn of(test: &str) -> Option<&'static Reference> {
    REFERENCES.iter().find(|r| r.test == test)
}

/// Whether `test` needs a reference (it is not a framework check).
pub fn needed(test: &str) -> bool {
    !EXEMPT.iter().any(|prefix| test.starts_with(prefix))
}

/// The tests among `names` that need a reference and have none.
#[cfg(test)]
pub fn missing<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    names
        .into_iter()
        .filter(|n| needed(n) && of(n).is_none())
        .collect()
}

#[cfg(test)]
#[path = "reference_tests.rs"]
mod tests;
