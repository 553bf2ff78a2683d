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

/// Each word the test changes, by the name the checker must report, with
/// where it lives in the frame (all but the vector).
type Word = (&'static str, fn(&mut IstFrame) -> &mut u64);
const WORDS: [Word; 23] = [
    ("dr7", |f| &mut f.dr7),
    ("applied", |f| &mut f.applied),
    ("r15", |f| &mut f.regs.r15),
    ("r14", |f| &mut f.regs.r14),
    ("r13", |f| &mut f.regs.r13),
    ("r12", |f| &mut f.regs.r12),
    ("r11", |f| &mut f.regs.r11),
    ("r10", |f| &mut f.regs.r10),
    ("r9", |f| &mut f.regs.r9),
    ("r8", |f| &mut f.regs.r8),
    ("rbp", |f| &mut f.regs.rbp),
    ("rdi", |f| &mut f.regs.rdi),
    ("rsi", |f| &mut f.regs.rsi),
    ("rdx", |f| &mut f.regs.rdx),
    ("rcx", |f| &mut f.regs.rcx),
    ("rbx", |f| &mut f.regs.rbx),
    ("rax", |f| &mut f.regs.rax),
    ("error_code", |f| &mut f.regs.error_code),
    ("rip", |f| &mut f.regs.rip),
    ("cs", |f| &mut f.regs.cs),
    ("rflags", |f| &mut f.regs.rflags),
    ("rsp", |f| &mut f.regs.rsp),
    ("ss", |f| &mut f.regs.ss),
];

fn run(ctx: &mut Context<'_>) -> TestResult {
    let cpu = percpu::this().index();
    // Whatever an earlier test left is not this test's business.
    checker::take_report(cpu, |_| {});
    let stack_word = 0u64;
    let mut missed = heapless::Vec::<&str, 23>::new();
    let mut wrong = 0u64;
    for (name, word) in WORDS {
        let mut frame = EMPTY_FRAME;
        frame.regs.vector = 1;
        frame.regs.cs = 0x08;
        frame.regs.rsp = &raw const stack_word as u64;
        let before = frame;
        checker::ist_enter(&mut frame);
        *word(&mut frame) ^= 0x5a5a_0000_0000_0001;
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
        WORDS.len(),
        missed.len()
    ));
    if let Some(first) = missed.first() {
        testkit::fail!(
            ctx,
            "the checker missed a damaged {first} ({} of {} words missed)",
            missed.len(),
            WORDS.len()
        );
    }
    testkit::ensure!(
        ctx,
        wrong == 0,
        "{wrong} findings on other words, or frames not written back"
    );
    Ok(Observed::Survived)
}
