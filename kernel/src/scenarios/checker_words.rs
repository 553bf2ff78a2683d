//! checker_words: the checker compares every word of an IST frame.
//!
//! Setup: a frame built here (vector 1, the #DB slot; interrupted RSP on this
//! CPU's kernel stack, so no guard is taken), handed to the checker's entry
//! and exit halves directly, outside any exception.
//! Hazard: between the two halves one word of the frame changes, as a nested
//! entry on the same IST stack would change it; once for each of the 23 words
//! (all but the vector, which picks the checker's slot).
//! Proof: the frame entered and left the checker once per word.
//! Check: each change is exactly one FrameMismatch naming that word, one
//! incident, and the copy is written back (recover mode). A checker that
//! compared only the hardware words (the mutant `checker-six-fields`) misses
//! the GPRs and the strategy words and fails here; none of the NMI and #DB
//! scenarios alone tells it apart, because their corruptions always hit RIP too.

use testkit::{Context, Observed, TestResult};

use crate::arch::percpu;
use crate::entry::checker::{self, EMPTY_FRAME, IstFrame, Kind};

testkit::test! {
    run: run,
    iterations: 1,
}

const NAMES: [&str; 23] = [
    "dr7",
    "applied",
    "r15",
    "r14",
    "r13",
    "r12",
    "r11",
    "r10",
    "r9",
    "r8",
    "rbp",
    "rdi",
    "rsi",
    "rdx",
    "rcx",
    "rbx",
    "rax",
    "error_code",
    "rip",
    "cs",
    "rflags",
    "rsp",
    "ss",
];

fn word<'a>(f: &'a mut IstFrame, name: &str) -> &'a mut u64 {
    let r = &mut f.regs;
    match name {
        "dr7" => &mut f.dr7,
        "applied" => &mut f.applied,
        "r15" => &mut r.r15,
        "r14" => &mut r.r14,
        "r13" => &mut r.r13,
        "r12" => &mut r.r12,
        "r11" => &mut r.r11,
        "r10" => &mut r.r10,
        "r9" => &mut r.r9,
        "r8" => &mut r.r8,
        "rbp" => &mut r.rbp,
        "rdi" => &mut r.rdi,
        "rsi" => &mut r.rsi,
        "rdx" => &mut r.rdx,
        "rcx" => &mut r.rcx,
        "rbx" => &mut r.rbx,
        "rax" => &mut r.rax,
        "error_code" => &mut r.error_code,
        "rip" => &mut r.rip,
        "cs" => &mut r.cs,
        "rflags" => &mut r.rflags,
        "rsp" => &mut r.rsp,
        _ => &mut r.ss,
    }
}

fn run(ctx: &mut Context<'_>) -> TestResult {
    let cpu = percpu::this().index();
    // Whatever an earlier test left is not this test's business.
    checker::take_report(cpu, |_| {});
    let stack_word = 0u64;
    let mut missed = heapless::Vec::<&str, 23>::new();
    let mut wrong = 0u64;
    for name in NAMES {
        let mut frame = EMPTY_FRAME;
        frame.regs.vector = 1;
        frame.regs.cs = 0x08;
        frame.regs.rsp = &raw const stack_word as u64;
        let before = frame;
        checker::ist_enter(&mut frame);
        *word(&mut frame, name) ^= 0x5a5a_0000_0000_0001;
        checker::ist_exit(&mut frame);
        let mut named = 0;
        let mut other = 0;
        let report = checker::take_report(cpu, |c| {
            if c.kind == Kind::FrameMismatch && c.field == name {
                named += 1;
            } else {
                other += 1;
            }
        });
        if named != 1 || report.incidents != 1 {
            let _ = missed.push(name);
        }
        wrong += other + u64::from(frame != before);
    }
    ctx.note(format_args!(
        "words_changed={} missed={} other_findings_or_unrepaired={wrong}",
        NAMES.len(),
        missed.len()
    ));
    if let Some(first) = missed.first() {
        testkit::fail!(
            ctx,
            "the checker missed a damaged {first} ({} of {} words missed)",
            missed.len(),
            NAMES.len()
        );
    }
    testkit::ensure!(
        ctx,
        wrong == 0,
        "{wrong} findings on other words, or frames not written back"
    );
    Ok(Observed::Survived)
}
