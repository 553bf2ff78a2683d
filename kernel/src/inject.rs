//! Machine checks on request. Nothing in a guest can raise a real #MC, so a
//! test asks the host runner for one: it puts an `inject` event on the wire
//! naming the CPU and what that CPU is looping, keeps looping, and polls
//! COM1's receive line for the host's answer (`testkit::protocol::host`).
//! The host picks the moment, injects with QEMU's monitor (`mce`), then
//! answers `injected`; a host that cannot answers `refused`; a platform with
//! no host at all (a PC, a USB stick) never answers, and the wait times out.

use core::sync::atomic::{AtomicU32, Ordering};

use spin::Mutex;
use testkit::Context;
use testkit::protocol::host::{Reply, ReplyReader};
use testkit::protocol::{Event, Hex};

use crate::arch::{mce, serial, time};

/// How long a test waits for the host's answer. The host answers within a
/// few milliseconds; a silent host is a platform without one.
pub const ANSWER_TIMEOUT_US: u64 = 2_000_000;

/// How the request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The host injected: the #MC has been delivered by now.
    Injected,
    /// The host cannot inject here.
    Refused,
    /// No answer within the timeout: nobody is listening.
    Silent,
}

static NEXT_SEQ: AtomicU32 = AtomicU32::new(1);
static READER: Mutex<ReplyReader> = Mutex::new(ReplyReader::new());

/// Puts the request for a machine check on `cpu` on the wire; `during` says
/// what that CPU loops meanwhile ("db", "nmi", "idle"). Returns its `seq`.
pub fn request(ctx: &mut Context<'_>, cpu: usize, during: &str) -> u32 {
    let seq = NEXT_SEQ.fetch_add(1, Ordering::Relaxed);
    let test = ctx.test;
    ctx.platform().emit(&Event::Inject {
        test,
        seq,
        cpu: cpu as u32,
        bank: mce::TEST_BANK,
        status: Hex(mce::TEST_STATUS),
        mcg_status: Hex(mce::TEST_MCG_STATUS),
        during,
    });
    seq
}

/// The host's answer to `seq`, if one has arrived; answers to other requests
/// (late ones) are dropped. Never waits.
pub fn poll(seq: u32) -> Option<Answer> {
    let mut reader = READER.lock();
    while let Some(byte) = serial::read_byte() {
        match reader.push(byte) {
            Some(Reply::Injected { seq: s }) if s == seq => return Some(Answer::Injected),
            Some(Reply::Refused { seq: s }) if s == seq => return Some(Answer::Refused),
            _ => {}
        }
    }
    None
}

/// Runs `step` over and over until the host answers `seq` or the timeout
/// passes; returns the answer and how many steps ran.
pub fn loop_until_answer(seq: u32, mut step: impl FnMut()) -> (Answer, u64) {
    let mut steps = 0;
    let mut answer = Answer::Silent;
    time::wait_until(ANSWER_TIMEOUT_US, || {
        step();
        steps += 1;
        match poll(seq) {
            Some(got) => {
                answer = got;
                true
            }
            None => false,
        }
    });
    (answer, steps)
}
