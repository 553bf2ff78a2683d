//! Entry strategies, the machines a run can land on, and what a test expects
//! under each strategy.

use serde::{Deserialize, Serialize};

/// An entry-code strategy, chosen at boot with `entry=NAME` (what each one
/// survives: the README's strategy table; how results are judged: docs/verdicts.md).
/// The wire and the command line spell them the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// IST for #DB, NMI, #DF, #MC and nothing else: the checker must catch it.
    Naive,
    /// Only the IST shift: lower the #DB IST pointer while a #DB runs. The
    /// idea of pre-5.8 Linux alone, without the rest of what 4.19 did.
    ShiftOnly,
    /// The #DB and NMI entry of Linux 4.19: the IST shift, the tracing hook
    /// under a debug IDT whose #DB gate has no IST (`TRACE_IRQS_OFF_DEBUG`),
    /// an NMI that finds the #DB stack in use swapping to that IDT
    /// (`debug_stack_set_zero`), the nested-NMI asm, and no DR7 handling.
    #[serde(rename = "linux-4.19")]
    Linux419,
    /// Only the DR7 guard: save and clear DR7 on #DB and NMI entry.
    Dr7Guard,
    /// The #DB and NMI entry of Linux 6.6 (`arch/x86/entry/entry_64.S`):
    /// user-mode NMI and #DB on the kernel stack, the nested-NMI asm for kernel
    /// mode, DR7 saved and cleared in the C part (`local_db_save`).
    Linux,
}

impl Strategy {
    pub const ALL: [Strategy; 5] = [
        Self::Naive,
        Self::ShiftOnly,
        Self::Linux419,
        Self::Dr7Guard,
        Self::Linux,
    ];

    /// The name used on the command line and on the wire.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Naive => "naive",
            Self::ShiftOnly => "shift-only",
            Self::Linux419 => "linux-4.19",
            Self::Dr7Guard => "dr7-guard",
            Self::Linux => "linux",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl core::fmt::Display for Strategy {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// What the kernel found itself running on. Only TCG changes what a test may
/// expect (tests tagged `hw-only` need silicon timing TCG does not model);
/// the rest is reported so results can be compared across machines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Machine {
    /// QEMU's TCG: CPUID hypervisor vendor "TCGTCGTCGTCG".
    Tcg,
    /// KVM: vendor "KVMKVMKVM".
    Kvm,
    /// Some other hypervisor announced itself.
    OtherVm,
    /// No hypervisor leaf: real hardware, or an emulator that hides (Bochs).
    NoHypervisor,
}

/// What one test expects under one strategy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Runs clean: any corruption is a failure.
    Survive,
    /// Corrupts, and the checker must say so: silence is a failure.
    Detect,
    /// Corrupts or not depending on where in the handler the second event
    /// lands (e.g. `shift-only` against an NMI before its IST shift). The test
    /// predicts, per landing, whether it must corrupt; any landing where the
    /// checker disagrees with the prediction fails the test.
    Timing,
    /// Not meaningful under this strategy; the reason is reported.
    Skip(&'static str),
}

/// A test's expectation under every strategy. One field per strategy, so adding
/// a strategy breaks every `Expectations` literal instead of defaulting quietly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expectations {
    pub naive: Expect,
    pub shift_only: Expect,
    pub linux_4_19: Expect,
    pub dr7_guard: Expect,
    pub linux: Expect,
}

impl Expectations {
    /// The same expectation under every strategy.
    pub const fn all(expect: Expect) -> Self {
        Self {
            naive: expect,
            shift_only: expect,
            linux_4_19: expect,
            dr7_guard: expect,
            linux: expect,
        }
    }

    /// A copy with one strategy's expectation replaced; usable in `static`s:
    /// `Expectations::all(Expect::Survive).with(Strategy::Naive, Expect::Detect)`.
    pub const fn with(mut self, strategy: Strategy, expect: Expect) -> Self {
        match strategy {
            Strategy::Naive => self.naive = expect,
            Strategy::ShiftOnly => self.shift_only = expect,
            Strategy::Linux419 => self.linux_4_19 = expect,
            Strategy::Dr7Guard => self.dr7_guard = expect,
            Strategy::Linux => self.linux = expect,
        }
        self
    }

    pub const fn get(&self, strategy: Strategy) -> Expect {
        match strategy {
            Strategy::Naive => self.naive,
            Strategy::ShiftOnly => self.shift_only,
            Strategy::Linux419 => self.linux_4_19,
            Strategy::Dr7Guard => self.dr7_guard,
            Strategy::Linux => self.linux,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategy_names_round_trip() {
        for s in Strategy::ALL {
            assert_eq!(Strategy::from_name(s.name()), Some(s));
        }
        assert_eq!(Strategy::from_name("shift_only"), None);
        assert_eq!(Strategy::from_name("linux-4.19"), Some(Strategy::Linux419));
        assert_eq!(Strategy::from_name(""), None);
    }

    #[test]
    fn with_replaces_one_strategy_only() {
        const E: Expectations = Expectations::all(Expect::Survive)
            .with(Strategy::Naive, Expect::Detect)
            .with(Strategy::ShiftOnly, Expect::Skip("no nested NMI handling"))
            .with(Strategy::Dr7Guard, Expect::Timing);
        assert_eq!(E.get(Strategy::Naive), Expect::Detect);
        assert_eq!(
            E.get(Strategy::ShiftOnly),
            Expect::Skip("no nested NMI handling")
        );
        assert_eq!(E.get(Strategy::Dr7Guard), Expect::Timing);
        assert_eq!(E.get(Strategy::Linux), Expect::Survive);
    }
}
