//! The phase tables the IST stubs walk from their one call site, each ending
//! in `None`. Every phase gets the stub's `IstFrame`.

use super::checker;
use super::frame::IstFrame;
use super::handlers;

pub type Phase = Option<extern "C" fn(&mut IstFrame)>;

/// #DB: checker in, tracing hook, body, checker out.
#[unsafe(no_mangle)]
pub static DB: [Phase; 5] = [
    Some(checker::ist_enter),
    Some(handlers::trace_hook),
    Some(handlers::db_body),
    Some(checker::ist_exit),
    None,
];

/// #DB under `linux-4.19`: the hook under the debug IDT, then the body with
/// IST1 lowered (`TRACE_IRQS_OFF_DEBUG`, then `shift_ist` around `do_debug`).
#[unsafe(no_mangle)]
pub static DB_4_19: [Phase; 7] = [
    Some(checker::ist_enter),
    Some(handlers::trace_hook_debug_idt),
    Some(handlers::shift_down),
    Some(handlers::db_body),
    Some(handlers::shift_up),
    Some(checker::ist_exit),
    None,
];

/// NMI: checker in, tracing hook, body (`exc_nmi`), checker out.
#[unsafe(no_mangle)]
pub static NMI: [Phase; 5] = [
    Some(checker::ist_enter),
    Some(handlers::trace_hook),
    Some(handlers::nmi_body),
    Some(checker::ist_exit),
    None,
];
