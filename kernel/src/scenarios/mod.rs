//! The torture tests, one per file: setup, hazard, proof it happened, check.

pub mod nmi_all_to_all;
pub mod selftest;
