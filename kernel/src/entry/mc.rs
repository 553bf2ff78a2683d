//! The #MC stub, shared by every strategy; strategy bits tested at run time.
//!
//! Reentrancy rules:
//! - #MC runs on IST_MC and is masked by nothing: not IF, not an NMI, not a
//!   #DB. It lands on any instruction, inside any handler, on any stack. Its
//!   frame's interrupted RSP says where (`Landing`).
//! - A second #MC while MCG_STATUS.MCIP is set shuts the machine down
//!   (architected; QEMU models it). The body clears MCIP last; from then to
//!   the IRETQ a new #MC would start at the same IST_MC top: the hardware
//!   protects the handler, not its exit.
//! - An NMI can interrupt it (own stack); the NMI's guard copies this
//!   stack's live part. A #DB can be raised inside it by a breakpoint the
//!   handler touches: `naive`, `shift-only` and `linux-4.19` leave DR7 armed
//!   (Linux 4.19's `do_machine_check` does nothing about DR7), so that #DB
//!   starts at the #DB IST top, which is live if the #MC interrupted a #DB
//!   handler. `dr7-guard` and `linux` save and clear DR7 right after the
//!   pushes (Linux 6.6: `local_db_save()` in `DEFINE_IDTENTRY_MCE
//!   (exc_machine_check)`, around `exc_machine_check_kernel`, which treats
//!   the #MC like an NMI: `irqentry_nmi_enter`).
//! - `linux` and `linux-4.19` (USER_SWITCH): a #MC from ring 3 saves its
//!   registers on IST_MC, then moves the whole frame to RSP0 and runs there
//!   (Linux 6.6 `idtentry_mce_db`: `.Lfrom_usermode_switch_stack` ->
//!   `idtentry_body noist_exc_machine_check`, i.e. `error_entry` + `sync_regs`;
//!   4.19's `idtentry machine_check ... paranoid=1` does the same). `linux`
//!   still saves and clears DR7 there (6.6's `DEFINE_IDTENTRY_MCE_USER` wraps
//!   `exc_machine_check_user` in `local_db_save`/`local_db_restore`).
//! - Nothing here takes a lock or prints.
//!
//! Stack (IST_MC top, or RSP0 top after the ring-3 move):
//!
//!   top    -> +---------------------+
//!             | SS RSP RFLAGS CS RIP |  hardware frame, 5 words
//!             | error (0), vector 18 |  pushed here
//!             | rax .. r15           |  PUSH_GPRS
//!             | applied, dr7         |  the strategy state the exit undoes
//!   rsp    -> +---------------------+  = IstFrame, handed to every phase

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::checker;
use super::frame::{IstFrame, ist_stub_asm};
use super::mutant::{self, catalog};
use super::phases::Phase;
use crate::arch::MAX_CPUS;
use crate::arch::mce::{self, Found};
use crate::arch::percpu::{self, IST_MC, IST_NMI};

const MACHINE_CHECK: u8 = 18;

ist_stub_asm!(
    r#"
    STUB mc_stub
    W cld                                /* the interrupted code may have set DF */
    ENTER_FRAME {vector}                 /* #MC pushes no error code */
    W movzx r12d, byte ptr [rip + {flags}]
    W and r12d, {dr7_guard} | {user_switch} /* the bits #MC applies */
    W xor r13d, r13d                     /* saved DR7: none yet */
    /* From ring 3: move everything pushed so far to RSP0 and run there. */
    USER_TO_RSP0 1f, {m_user_on_ist}     /* mutant: it stays on IST_MC */
1:
    DR7_SAVE {dr7_guard}, {m_no_dr7_clear}
    PUSH_STATE                           /* IstFrame.applied, .dr7 */
    W lea r15, [rip + {phases}]
    RUN_PHASES                           /* one call site, as in the #DB stub */
    POP_STATE
    DR7_RESTORE {dr7_guard}
    LEAVE_FRAME
    W iretq
    STUB_END mc_stub_end
"#,
    vector = const MACHINE_CHECK,
    phases = sym MC_PHASES,
    m_user_on_ist = const mutant::flag(catalog::MC_USER_ON_IST),
    m_no_dr7_clear = const mutant::flag(catalog::MC_NO_DR7_CLEAR),
);

/// #MC: checker in, body (`do_machine_check`: record, hook, clear MCIP),
/// checker out. Walked by the stub from its one call site.
#[unsafe(no_mangle)]
static MC_PHASES: [Phase; 4] = [
    Some(checker::ist_enter),
    Some(mc_body),
    Some(checker::ist_exit),
    None,
];

unsafe extern "C" {
    fn mc_stub();
    fn mc_stub_end();
}

/// The stub's code, as [start, end).
pub fn range() -> (u64, u64) {
    (mc_stub as *const () as u64, mc_stub_end as *const () as u64)
}

/// Points the #MC gate at the stub on IST_MC. BSP, before the APs start.
pub(super) fn install() {
    // Mutant mc-on-nmi-ist: the #MC gate shares the NMI's IST stack.
    let ist = if mutant::is(catalog::MC_ON_NMI_IST) {
        IST_NMI
    } else {
        IST_MC
    };
    crate::arch::idt::set_gate(MACHINE_CHECK, range().0, ist);
}

/// Where one #MC landed, as its body recorded it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Landing {
    /// #MCs taken on this CPU so far.
    pub count: u64,
    pub rip: u64,
    pub cs: u64,
    /// The interrupted RSP: which stack the #MC came in on.
    pub rsp: u64,
    pub rflags: u64,
    pub found: Found,
    /// DR7 as the handler's own code saw it (0 when the strategy cleared it).
    pub live_dr7: u64,
    /// Where the body's `IstFrame` lay: the stack the handler ran on.
    pub frame_at: u64,
}

/// Per CPU: count, rip, cs, rsp, rflags, mcg_status, bank, status, live DR7,
/// frame address.
static LANDINGS: [[AtomicU64; 10]; MAX_CPUS] =
    [const { [const { AtomicU64::new(0) }; 10] }; MAX_CPUS];

/// Called inside the #MC body after the landing is recorded and before MCIP
/// is cleared: a scenario's hazard inside #MC (e.g. touching a watchpoint).
pub type McHook = fn(&Landing);
static HOOK: AtomicUsize = AtomicUsize::new(0);

/// Hooks are set before the hazard is armed and cleared after it is disarmed.
pub fn set_hook(hook: Option<McHook>) {
    HOOK.store(hook.map_or(0, |f| f as usize), Ordering::SeqCst);
}

/// The last #MC on `cpu` (with `count` of them so far).
pub fn landing(cpu: usize) -> Landing {
    let slot = &LANDINGS[cpu];
    let at = |i: usize| slot[i].load(Ordering::SeqCst);
    Landing {
        count: at(0),
        rip: at(1),
        cs: at(2),
        rsp: at(3),
        rflags: at(4),
        found: Found {
            mcg_status: at(5),
            bank: at(6) as u32,
            status: at(7),
        },
        live_dr7: at(8),
        frame_at: at(9),
    }
}

/// The body (`do_machine_check`, reduced to what the tests need): record,
/// run the hook, release the bank, clear MCIP.
pub extern "C" fn mc_body(frame: &mut IstFrame) {
    let found = mce::read();
    let cpu = percpu::this().index();
    let slot = &LANDINGS[cpu];
    let frame_at = frame as *const IstFrame as u64;
    let regs = &frame.regs;
    for (i, value) in [
        regs.rip,
        regs.cs,
        regs.rsp,
        regs.rflags,
        found.mcg_status,
        u64::from(found.bank),
        found.status,
        crate::arch::debugreg::read_dr7(),
        frame_at,
    ]
    .into_iter()
    .enumerate()
    {
        slot[i + 1].store(value, Ordering::SeqCst);
    }
    // The count last: a reader that sees it move sees the fields above.
    slot[0].fetch_add(1, Ordering::SeqCst);
    let hook = HOOK.load(Ordering::SeqCst);
    if hook != 0 {
        // SAFETY: HOOK only ever holds 0 or an `McHook` stored by set_hook.
        let hook: McHook = unsafe { core::mem::transmute::<usize, McHook>(hook) };
        hook(&landing(cpu));
    }
    mce::clear(found.bank);
}
