//! The fake platform the runner tests run on.

use std::cell::Cell;
use testkit::protocol::Event;
use testkit::{Corruption, Job, Platform, RunError};

pub struct Fake {
    pub cpus: usize,
    pub clock: Cell<u64>,
    pub results: Vec<Option<u64>>,
    pub events: Vec<Event<String>>,
}

impl Fake {
    pub fn new(cpus: usize) -> Self {
        Self {
            cpus,
            clock: Cell::new(0),
            results: vec![None; cpus],
            events: Vec::new(),
        }
    }

    pub fn results(&self) -> Vec<&Event<String>> {
        self.events
            .iter()
            .filter(|e| matches!(e, Event::Result { .. }))
            .collect()
    }
}

impl Platform for Fake {
    fn cpu_count(&self) -> usize {
        self.cpus
    }
    fn current_cpu(&self) -> usize {
        0
    }
    fn cycles(&self) -> u64 {
        self.clock.set(self.clock.get() + 10);
        self.clock.get()
    }
    fn start_on(&mut self, cpu: usize, job: Job, arg: u64) -> Result<(), RunError> {
        let slot = self.results.get_mut(cpu).ok_or(RunError::NoSuchCpu(cpu))?;
        *slot = Some(job(arg));
        Ok(())
    }
    fn join(&mut self, cpu: usize, _timeout_ms: u32) -> Result<u64, RunError> {
        let slot = self.results.get_mut(cpu).ok_or(RunError::NoSuchCpu(cpu))?;
        slot.take().ok_or(RunError::NotStarted(cpu))
    }
    fn emit(&mut self, event: &Event<&str>) {
        self.events.push(event.clone().map_str(String::from));
    }
    fn drain_checker(&mut self, each: &mut dyn FnMut(Corruption<'static>)) -> u64 {
        let found = HIDDEN.swap(0, std::sync::atomic::Ordering::SeqCst);
        let (cpu, vector, field) = (Some(1), 2, "stack");
        let c = Corruption {
            cpu,
            iteration: 0,
            vector,
            field,
            expected: 0,
            seen: 1,
        };
        (0..found).for_each(|_| each(c));
        found
    }
}

/// Findings a test leaves in the fake checker without collecting them.
pub static HIDDEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
