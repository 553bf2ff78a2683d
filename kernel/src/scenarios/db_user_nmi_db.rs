//! db_user_nmi_db: `db_kernel_nmi_db` with the first #DB raised from ring 3.
//!
//! Setup: the watched word lives in the ring-3 sandbox; a user program writes
//! it and returns through `int 0x80`.
//! Hazard: the outer #DB interrupts ring 3 (its frame holds the user CS and
//! RSP); another CPU's NMI lands inside it and its handler writes the watched
//! word, raising a second #DB on the same IST stack under `naive`.
//! Proof: every outer #DB came from ring 3 (CS RPL 3 in its frame), plus the
//! sweep's own proof (NMIs counted inside the #DB handler, nested or
//! suppressed #DBs).
//! Check: as for the kernel variant, per strategy.

use super::db_kernel_nmi_db::{EXPECT, Origin, sweep};

testkit::test! {
    run: |ctx| sweep(ctx, Origin::User),
    iterations: 5_000,
    cpus: 2,
    timeout_ms: 120_000,
    tags: &[testkit::tags::TCG],
    expect: EXPECT,
}
