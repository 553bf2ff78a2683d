//! `cargo xtask bench boot`: wall time of whole QEMU processes, the median of
//! several runs each, against the floor (QEMU started paused and told to quit).
//! The runs take turns (floor, empty kernel, each door, then again), so drift
//! in the host's speed during the bench reaches every row alike. Plain
//! `-accel tcg`, as the boot matrix runs.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, bail};

use super::{Args, boot_blocks, boot_split, empty_pvh, median};
use crate::media::limine::{self, Lookup};
use crate::qemu::emulator::Emulator;
use crate::qemu::exit::Exit;
use crate::qemu::machine::{self, End, Machine};
use crate::qemu::process::Echo;
use crate::runner::boot::{Artifacts, BootConfig, Door};
use crate::{media::kernel, qemu::accel};

/// PVH must stay this close to the floor to count as the fast path.
const PVH_TARGET: f64 = 1.5;

/// A filter no test name contains.
const NO_TEST: &str = "filter=boot-to-exit-only";

pub fn run(args: &Args) -> Result<ExitCode> {
    let (smp, cpu) = (args.smp, args.cpu.as_str());
    let choice = accel::choose(args.common.accel)?;
    let timeout = args.common.timeout();
    let kernel = kernel::kernel_or(args.common.kernel.as_ref())?;
    let config = |door| BootConfig {
        door,
        smp,
        cpu: cpu.into(),
        // Boot to exit: the kernel comes up on every CPU, selects no test and
        // exits (its default suite would measure the tests, not the boot).
        args: vec![NO_TEST.to_string()],
        single_step: false,
        emulator: Emulator::Qemu,
    };
    let mut doors = vec![Door::Pvh];
    let mut skipped = Vec::new();
    let limine = match limine::locate(args.common.limine_dir.as_deref())? {
        Lookup::Found(l) => Some(l),
        Lookup::Missing(why) => {
            skipped.push(format!("limine doors skipped: {why}"));
            None
        }
    };
    let artifacts = Artifacts::new(kernel).with_limine(limine);
    if artifacts.has_limine() {
        for door in [Door::LimineBios, Door::LimineUefi] {
            artifacts.prepare(&config(door))?;
            doors.push(door);
        }
    }
    eprintln!("{choice}");

    let machine = Machine {
        smp,
        cpu: cpu.into(),
        accel: choice.accel,
        single_step: false,
    };
    // One round boots each row once, the floor first: rounds interleave the
    // rows, so a host that slows down or speeds up during the bench moves
    // every row alike instead of the rows measured last.
    let bench_dir = crate::target_dir().join("bench");
    let empty_kernel = Artifacts::new(empty_pvh::write(&bench_dir)?);
    let mut floors = Vec::new();
    let mut empties = Vec::new();
    let mut by_door: Vec<Vec<Duration>> = vec![Vec::new(); doors.len()];
    for _ in 0..args.runs {
        floors.push(machine::floor(&machine, timeout)?);
        let out = empty_kernel.boot(&config(Door::Pvh), choice.accel, timeout, Echo::Quiet)?;
        if out.end != End::Exited(Exit::Success) {
            bail!("the empty PVH kernel did not exit: {}", out.end);
        }
        empties.push(out.elapsed);
        for (door, samples) in doors.iter().zip(&mut by_door) {
            let out = artifacts.boot(&config(*door), choice.accel, timeout, Echo::Quiet)?;
            if out.end != End::Exited(Exit::Success) {
                bail!("{} boot did not succeed: {}", door.label(), out.end);
            }
            samples.push(out.elapsed);
        }
    }
    let floor = median(floors);
    let empty = median(empties);
    let mut rows = vec![
        ("floor (-S, quit)".to_string(), floor),
        // The same PVH boot with an empty kernel: what no kernel can remove.
        ("empty PVH kernel".to_string(), empty),
    ];
    for (door, samples) in doors.iter().zip(by_door) {
        rows.push((format!("{} boot-to-exit", door.label()), median(samples)));
    }

    println!(
        "\nboot times, {} runs each (median), smp {smp}, cpu {cpu}, accel {}:",
        args.runs,
        choice.accel.qemu_name()
    );
    println!("{:<28} {:>9} {:>9}", "what", "seconds", "x floor");
    for (what, time) in &rows {
        let ratio = time.as_secs_f64() / floor.as_secs_f64();
        println!("{what:<28} {:>9.3} {ratio:>8.2}x", time.as_secs_f64());
    }
    for line in skipped {
        println!("{line}");
    }
    let pvh = rows[2].1.as_secs_f64() / floor.as_secs_f64();
    let split = boot_split::measure(
        &artifacts,
        &config(Door::Pvh),
        choice.accel,
        timeout,
        args.runs,
    )?;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "where a PVH boot goes (host stamps on serial lines, median): QEMU start and firmware \
         to the kernel's first line {:.1} ms (the floor alone is {:.1} ms; the guest's TSC \
         reads {:.1} ms at kernel_main: the firmware and the PVH door), kernel bring-up to \
         all CPUs online {:.1} ms (of which, by the kernel's clock, kernel_main's set-up \
         before the APs {:.1} ms and starting the APs, all at once, {:.1} ms), rest of the \
         kernel to `done` {:.1} ms, the kernel after `done` (results summary) {:.1} ms, \
         QEMU's exit {:.1} ms",
        ms(split.firmware),
        ms(floor),
        ms(split.main_at),
        ms(split.bring_up),
        ms(split.set_up),
        ms(split.ap_start),
        ms(split.kernel_rest),
        ms(split.after_done),
        ms(split.exit)
    );
    let blocks = |boots: &Artifacts, log: &str| {
        boot_blocks::count(
            boots,
            &config(Door::Pvh),
            choice.accel,
            timeout,
            &bench_dir.join(log),
        )
    };
    let pvh_blocks = blocks(&artifacts, "pvh.in_asm")?;
    let empty_blocks = blocks(&empty_kernel, "empty-pvh.in_asm")?;
    println!(
        "code QEMU translated (`-d in_asm`, one more boot each; TCG translates a block the \
         first time it runs): the empty PVH kernel's boot {} blocks, istorm's PVH boot {} \
         ({} in the kernel's higher half, {} instructions in all)",
        empty_blocks.total, pvh_blocks.total, pvh_blocks.kernel, pvh_blocks.instructions
    );
    let verdict = if pvh <= PVH_TARGET { "yes" } else { "no" };
    println!("PVH within {PVH_TARGET}x of the floor: {verdict} ({pvh:.2}x)");
    let kernel = rows[2].1.saturating_sub(empty);
    let budget = floor.mul_f64(PVH_TARGET).saturating_sub(empty);
    println!(
        "the empty PVH kernel (QEMU's machine start, the firmware, the exit, no kernel) takes \
         {:.2}x of the floor: {PVH_TARGET}x leaves {:.1} ms for a kernel; istorm's PVH boot \
         spends {:.1} ms more than the empty one",
        empty.as_secs_f64() / floor.as_secs_f64(),
        ms(budget),
        ms(kernel)
    );
    Ok(ExitCode::SUCCESS)
}
