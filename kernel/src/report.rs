//! The wire writer and the fatal paths: every event goes to COM1 as one
//! `@istorm {json}` line; a result also gets a line for humans
//! (`test NAME ... ok`). A panic, an unexpected exception or a hang is
//! reported here, naming the running test, and ends the run.
//!
//! Below `entry` and `watchdog` (they report through it) and below `harness`
//! (which runs the suite and hands its events to [`emit`]).

use core::fmt::Write;

use spin::Mutex;
use testkit::protocol::{self, Event};

use crate::arch::exit::{ExitCode, exit};
use crate::arch::percpu;
use crate::arch::vectors::{self, TrapFrame};
use crate::{console, kprintln};

/// The test running now, for fatal reports (copied: events borrow their text).
static CURRENT_TEST: Mutex<heapless::String<96>> = Mutex::new(heapless::String::new());

/// Writes one event on the wire, plus a human line for results, and keeps
/// track of the running test.
pub fn emit(event: &Event<&str>) {
    console::results::record(event);
    match event {
        Event::Start { test, .. } => {
            let mut current = CURRENT_TEST.lock();
            current.clear();
            let _ = current.push_str(test);
        }
        Event::Result {
            test,
            strategy,
            outcome,
            details,
            ..
        } => {
            let word = outcome.word();
            kprintln!(
                "test {test} [{strategy}] ... {word}{}{details}",
                if details.is_empty() { "" } else { ": " }
            );
            CURRENT_TEST.lock().clear();
        }
        _ => {}
    }
    write_event(event, false);
}

fn write_event(event: &Event<&str>, fatal: bool) {
    let mut line = [0u8; protocol::LINE_MAX];
    let encoded = protocol::encode_line(event, &mut line)
        .ok()
        .and_then(|len| core::str::from_utf8(&line[..len]).ok());
    let print = |args| {
        if fatal {
            console::print_fatal(args);
        } else {
            console::print_fmt(args);
        }
    };
    match encoded {
        Some(text) => print(format_args!("{text}")),
        // Said, never dropped silently: the host then misses the event and
        // says what it missed.
        None => print(format_args!(
            "wire: a `{}` event does not fit a line\n",
            event.kind()
        )),
    }
}

/// Sends the run's summary (the QR code's text) as `qr` events, in parts
/// that each fit a line.
pub fn summary(text: &str) {
    for part in protocol::qr_parts(text) {
        emit(&part);
    }
}

/// Under `hold=1`: says so (a line for people, the `hold` event for the
/// host, which then takes its screenshot and stops the machine) and halts
/// with the results on screen. A PC without the exit device halts anyway.
pub fn hold() -> ! {
    kprintln!("hold: halted with results on screen");
    emit(&Event::Hold);
    crate::arch::cpu::halt_forever()
}

/// The running test's name; empty when none runs or its lock is held (the
/// holder may be the CPU that died, so this never waits for it).
fn current_test() -> heapless::String<96> {
    let mut name = heapless::String::new();
    if let Some(current) = CURRENT_TEST.try_lock() {
        let _ = name.push_str(&current);
    }
    name
}

/// Reports a panic or an unexpected exception on the wire, naming the running
/// test. Called on the dying CPU; never blocks on the test-name lock.
pub fn fatal(message: &str, rip: Option<u64>, vector: Option<u8>) {
    let name = current_test();
    let cpu = percpu::try_index().unwrap_or(0) as u32;
    let event = Event::Panic {
        test: (!name.is_empty()).then_some(name.as_str()),
        cpu,
        message,
        rip: rip.map(protocol::Hex),
        vector,
    };
    write_event(&event, true);
}

/// Reports a hung test (from the watchdog CPU) and names it.
pub fn hang(cpu: usize, rip: u64) {
    let name = current_test();
    console::print_fatal(format_args!(
        "hang: test {} on cpu {cpu} at rip {rip:#x}\n",
        name.as_str()
    ));
    let event = Event::Hang {
        test: (!name.is_empty()).then_some(name.as_str()),
        cpu: cpu as u32,
        rip: protocol::Hex(rip),
    };
    write_event(&event, true);
}

/// An exception nothing expected: print the frame, report it, end the run.
pub fn exception(frame: &TrapFrame) -> ! {
    let name = vectors::name(frame.vector);
    let cpu = percpu::try_index().map_or(-1, |i| i as i64);
    let cr2 = if frame.vector == u64::from(vectors::PAGE_FAULT) {
        crate::arch::cpu::read_cr2()
    } else {
        0
    };
    console::print_fatal(format_args!(
        "exception: vector={} ({}) error={:#x} rip={:#x} cs={:#x} rflags={:#x} rsp={:#x} cr2={:#x} cpu={}\n",
        frame.vector,
        name,
        frame.error_code,
        frame.rip,
        frame.cs,
        frame.rflags,
        frame.rsp,
        cr2,
        cpu
    ));
    let mut text: heapless::String<64> = heapless::String::new();
    let _ = text.write_fmt(format_args!("unexpected exception {name}"));
    fatal(&text, Some(frame.rip), Some(frame.vector as u8));
    exit(ExitCode::Failure)
}

/// The panic handler's body: print, report, end the run.
pub fn panic(info: &core::panic::PanicInfo) -> ! {
    let cpu = percpu::try_index().map_or(-1, |i| i as i64);
    console::print_fatal(format_args!("panic: cpu={cpu} {info}\n"));
    let mut text: heapless::String<256> = heapless::String::new();
    let _ = text.write_fmt(format_args!("{}", info.message()));
    fatal(&text, None, None);
    exit(ExitCode::Failure)
}
