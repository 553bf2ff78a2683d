//! The host's cores as a budget shared by jobs that run side by side.
//!
//! A kernel suite keeps two vCPUs busy at once (its NMI sweeps aim one CPU
//! at another), and under TCG every vCPU is a host thread: a suite costs
//! [`SUITE_CORES`] cores, a boot check one. Jobs wait until their cores are
//! free, so suites run side by side only where the cores allow (measured on 2
//! cores: a suite boot takes ~2 s alone and 80-166 s next to another suite),
//! and a suite never shares its cores with a check.

use std::sync::{Condvar, Mutex};

/// Cores one kernel suite keeps busy.
pub const SUITE_CORES: usize = 2;

pub struct Budget {
    free: Mutex<usize>,
    freed: Condvar,
    total: usize,
}

/// Cores held until dropped.
pub struct Held<'a> {
    budget: &'a Budget,
    cores: usize,
}

impl Budget {
    pub fn new(total: usize) -> Budget {
        let total = total.max(1);
        Budget {
            free: Mutex::new(total),
            freed: Condvar::new(),
            total,
        }
    }

    /// How many suites can run side by side.
    pub fn suites_at_once(&self) -> usize {
        (self.total / SUITE_CORES).max(1)
    }

    /// Waits for `cores` (at most the whole budget) and holds them.
    pub fn take(&self, cores: usize) -> Held<'_> {
        let cores = cores.clamp(1, self.total);
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free < cores {
            free = self.freed.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= cores;
        Held {
            budget: self,
            cores,
        }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let mut free = self.budget.free.lock().unwrap_or_else(|p| p.into_inner());
        *free += self.cores;
        self.budget.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn suites_side_by_side_only_where_cores_allow() {
        assert_eq!(Budget::new(2).suites_at_once(), 1);
        assert_eq!(Budget::new(3).suites_at_once(), 1);
        assert_eq!(Budget::new(8).suites_at_once(), 4);
        assert_eq!(Budget::new(0).suites_at_once(), 1);
    }

    #[test]
    fn holders_never_exceed_the_budget() {
        for total in [1, 2, 5, 8] {
            let budget = Budget::new(total);
            let (now, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
            std::thread::scope(|s| {
                for i in 0..12 {
                    let (budget, now, peak) = (&budget, &now, &peak);
                    s.spawn(move || {
                        let cores = if i % 3 == 0 { 1 } else { SUITE_CORES };
                        let held = budget.take(cores);
                        let used = now.fetch_add(held.cores, Ordering::SeqCst) + held.cores;
                        peak.fetch_max(used, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(2));
                        now.fetch_sub(held.cores, Ordering::SeqCst);
                    });
                }
            });
            assert!(peak.load(Ordering::SeqCst) <= total, "total {total}");
            assert!(peak.load(Ordering::SeqCst) >= 1);
        }
    }
}
