//! The torture tests, one per file: setup, hazard, proof it happened, check.

mod aim;
mod bench;
pub mod bench_phases;
pub mod checker_words;
mod common;
pub mod db_kernel_nmi_db;
pub mod db_user_nmi_db;
pub mod entry_deny_list;
pub mod gd_detect;
pub mod icebp_dr6;
pub mod int3_forms;
pub mod ist_overflow_df;
pub mod kernel_db_recursion;
pub mod kernel_text_breakpoints;
pub mod kernel_tf_leak;
pub mod mce_plain;
pub mod movss_entry_db;
pub mod movss_user;
pub mod nmi_all_to_all;
pub mod nmi_from_user_latch;
pub mod nmi_nesting;
pub mod selftest;
pub mod syscall_tf;
pub mod sysenter_tf;
pub mod trace_irq_recursion;
pub mod user_db_recursion;
pub mod watchpoints;
