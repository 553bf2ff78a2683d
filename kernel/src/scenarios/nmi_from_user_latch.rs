//! nmi_from_user_latch: `nmi_nesting` with the first NMI interrupting ring 3,
//! and a #DB (ICEBP) inside the NMI handler.
//!
//! Setup: CPU 0 (A) spins in a ring-3 program; CPU 1 (B) is the sender.
//! Hazard: the first NMI's frame holds the user CS and RSP; the #DB's IRET
//! inside the NMI handler unblocks NMIs early, and B's second NMI lands on the
//! same IST_NMI top, overwriting the frame that would take A back to ring 3.
//! Proof: most first NMIs interrupted ring 3 (CS RPL 3 in their frame), plus
//! `nmi_nesting`'s own proof (the second NMI arrived inside the first).
//! Check: every strategy but `linux` must be caught; `linux` must run clean.

use super::nmi_nesting::{Origin, sweep};
use super::sender::NESTED_NMI;

testkit::test! {
    run: |ctx| sweep(ctx, Origin::User),
    iterations: 300,
    cpus: 2,
    timeout_ms: 60_000,
    tags: &[testkit::tags::TCG],
    expect: NESTED_NMI,
}
