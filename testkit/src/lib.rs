//! testkit: the no_std test framework of istorm and its wire protocol.
//!
//! The kernel registers its tests with [`test!`] (a `linkme` linker section, so
//! there is no hand-kept list), picks them with a [`Selection`] parsed from its
//! command line, runs them through [`run::run_tests`] behind a [`Platform`] it
//! implements, and reports every step as a [`protocol::Event`]. The host runner
//! (xtask) decodes the same events with the `std` feature. Nothing here needs a
//! heap: strings are borrowed or `heapless`.
#![no_std]
// No unsafe of its own: unsafe and asm live in the kernel (`arch/`, `entry/`).
#![deny(unsafe_code)]

#[cfg(any(feature = "std", test))]
extern crate std;

mod context;
mod desc;
pub mod exit;
mod expect;
mod message;
pub mod mutants;
pub mod protocol;
mod rng;
pub mod run;
mod select;
pub mod summary;
mod verdict;

pub use context::{
    Context, Corruption, Evidence, Failure, Job, Observed, Platform, RunError, TestFn, TestResult,
};
pub use desc::{TESTS, TestDesc, tags};
pub use expect::{Expect, Expectations, Machine, Strategy};
pub use message::{MESSAGE_LEN, Message, message};
pub use rng::Rng;
pub use select::{Selection, SelectionError};
pub use verdict::{Judgement, SkipReason, Tally, judge, skip_reason};

/// What the [`test!`] macro expands to needs these paths without the caller
/// depending on `linkme` itself.
#[doc(hidden)]
pub mod __private {
    pub use linkme;
    pub use linkme::distributed_slice;
}
