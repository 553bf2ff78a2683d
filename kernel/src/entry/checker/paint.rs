//! Stack paint (high-water marks) and canaries at the bottom of IST stacks.

use crate::arch::percpu::StackBounds;

const PAINT: u64 = 0x5a5a_5a5a_5a5a_5a5a;
pub(super) const CANARY: u64 = 0xc0ff_ee00_dead_beef;
pub(super) const CANARY_WORDS: u64 = 4;

fn read(addr: u64) -> u64 {
    // SAFETY: callers pass addresses inside a stack mapped for the whole run.
    unsafe { core::ptr::read_volatile(addr as *const u64) }
}

/// Fills an idle stack with paint and puts canaries at its bottom.
pub fn paint(stack: StackBounds) {
    for addr in (stack.bottom..stack.top).step_by(8) {
        let value = if addr < stack.bottom + CANARY_WORDS * 8 {
            CANARY
        } else {
            PAINT
        };
        // SAFETY: the stack is mapped and idle (not started, or between tests).
        unsafe { core::ptr::write_volatile(addr as *mut u64, value) };
    }
}

/// How deep `stack` has ever been used (bytes below its top), and whether its
/// canaries are intact.
pub fn stack_usage(stack: StackBounds) -> (u64, bool) {
    let first_used = (stack.bottom + CANARY_WORDS * 8..stack.top)
        .step_by(8)
        .find(|&a| read(a) != PAINT);
    (
        first_used.map_or(0, |a| stack.top - a),
        damaged_canary(stack).is_none(),
    )
}

/// The first damaged canary word: its address and what it holds.
pub(super) fn damaged_canary(stack: StackBounds) -> Option<(u64, u64)> {
    (0..CANARY_WORDS)
        .map(|i| stack.bottom + i * 8)
        .find(|&a| read(a) != CANARY)
        .map(|a| (a, read(a)))
}

/// Puts the canaries back after a damaged one was reported, so it counts once.
pub(super) fn restore_canaries(stack: StackBounds) {
    for i in 0..CANARY_WORDS {
        // SAFETY: the canary words of a mapped stack; nothing else lives there.
        unsafe { core::ptr::write_volatile((stack.bottom + i * 8) as *mut u64, CANARY) };
    }
}
