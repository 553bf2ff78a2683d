//! Deliberate failures (`selftest=NAME` on the command line) that prove a broken
//! kernel ends with a clear report and a failing exit code, never a hang.

use crate::arch::cpu;
use crate::kprintln;

pub fn run(which: &str) {
    kprintln!("selftest: {which}");
    match which {
        "ud2" => cpu::raise_invalid_opcode(),
        "panic" => panic!("selftest: deliberate panic"),
        other => kprintln!("selftest: unknown selftest '{other}', ignored"),
    }
}
