//! LAVA (the engine of KernelCI's labs) job definitions for istorm, and the
//! local check that they run.
//!
//! Two jobs: one for LAVA's `qemu` device type (the Limine ISO as `-cdrom`,
//! or the PVH kernel as `-kernel`), one for an `x86` bare-metal device that
//! boots the USB image written by the device's flasher (`deploy: to:
//! flasher`, `boot: method: minimal`). Both end in the same `monitors` test
//! action: istorm's own result lines (`test NAME [strategy] ... ok`) become
//! LAVA test cases (suite `istorm`), and the `done` event's failed count
//! becomes the case `istorm-summary/failed` (pass when 0), so that the job's
//! outcome shows on LAVA's result page. `not-reproduced` maps to LAVA's
//! `skip` (LAVA has no such result); the parse-back (`lava_results.rs`)
//! recovers it from the job log's target lines.
//!
//! The boot ends at the kernel's first wire event (`hello`), the one line
//! every kernel version prints. Measured with Debian bookworm's
//! lava-dispatcher 2023.01: the offline
//! `lava-run` needs a device dictionary with a `constants` section
//! (`failure_retry`, `boot_retry`, the bootloader constants), a
//! `kernel-start-message` that the kernel prints (else it waits for Linux),
//! and QEMU's serial on stdio; the job needs `context: {arch: amd64}`.

use std::fmt::Write;
use std::path::Path;

/// What a job boots from, and where the lab fetches it.
#[derive(Clone, Debug)]
pub enum Media {
    /// The Limine ISO, booted by SeaBIOS as `-cdrom` (the real path).
    Iso { url: String },
    /// The PVH kernel ELF as `-kernel` with its command line.
    Pvh { url: String, cmdline: String },
}

/// The QEMU options a job asks for (the device's own come first).
pub const QEMU_OPTIONS: [&str; 4] = [
    "-smp 2",
    "-no-reboot",
    "-device isa-debug-exit,iobase=0xf4,iosize=0x04",
    "-cpu max",
];

/// The line of the kernel's banner LAVA waits for instead of Linux's.
pub const KERNEL_START: &str = "istorm [0-9]";

/// The `monitors` test action, shared by both jobs.
pub fn monitors(minutes: u32) -> String {
    let mut y = String::new();
    let _ = writeln!(y, "- test:");
    let _ = writeln!(y, "    timeout: {{minutes: {minutes}}}");
    y.push_str(
        "    monitors:\n\
         \x20   - name: istorm\n\
         \x20     start: '@istorm \\{\"type\":\"plan\"'\n\
         \x20     end: '@istorm \\{\"type\":\"done\"'\n\
         \x20     pattern: 'test (?P<test_case_id>\\S+ \\[[^\\]]+\\]) \\.\\.\\. (?P<result>ok|FAILED|skipped|not-reproduced)'\n\
         \x20     fixupdict: {'ok': pass, 'FAILED': fail, 'skipped': skip, 'not-reproduced': skip}\n\
         \x20   - name: istorm-summary\n\
         \x20     start: '\"passed\":[0-9]+'\n\
         \x20     end: '\"skipped\":'\n\
         \x20     pattern: '\"(?P<test_case_id>failed)\":(?P<result>[0-9])'\n\
         \x20     fixupdict: {'0': pass, '1': fail, '2': fail, '3': fail, '4': fail, '5': fail, '6': fail, '7': fail, '8': fail, '9': fail}\n",
    );
    y
}

fn header(y: &mut String, device_type: &str, name: &str, minutes: u32) {
    let _ = writeln!(y, "# istorm LAVA job (written by `cargo xtask lava`)");
    let _ = writeln!(y, "device_type: {device_type}");
    let _ = writeln!(y, "job_name: '{name}'");
    let _ = writeln!(y, "priority: medium");
    let _ = writeln!(y, "visibility: public");
    let _ = writeln!(y, "timeouts:");
    let _ = writeln!(y, "  job: {{minutes: {}}}", minutes + 4);
    let _ = writeln!(y, "  action: {{minutes: {minutes}}}");
    let _ = writeln!(y, "  connection: {{minutes: 2}}");
}

/// The job for LAVA's `qemu` device type.
pub fn qemu_job(media: &Media, minutes: u32) -> String {
    let mut y = String::new();
    header(&mut y, "qemu", "istorm on QEMU", minutes);
    y.push_str("context:\n  arch: amd64\n  extra_options:\n");
    for option in QEMU_OPTIONS {
        let _ = writeln!(y, "  - '{option}'");
    }
    y.push_str("actions:\n- deploy:\n    to: tmpfs\n    timeout: {minutes: 2}\n    images:\n");
    match media {
        Media::Iso { url } => {
            let _ = writeln!(y, "      iso:\n        image_arg: '-cdrom {{iso}}'");
            let _ = writeln!(y, "        url: '{url}'");
        }
        Media::Pvh { url, cmdline } => {
            let _ = writeln!(
                y,
                "      kernel:\n        image_arg: '-kernel {{kernel}} -append \"{cmdline}\"'"
            );
            let _ = writeln!(y, "        url: '{url}'");
        }
    }
    y.push_str(
        "- boot:\n    method: qemu\n    media: tmpfs\n    timeout: {minutes: 2}\n\
         \x20   prompts: ['@istorm .\"type\":\"hello\"']\n",
    );
    y.push_str(&monitors(minutes));
    y
}

/// The job for an `x86` bare-metal device: its flasher writes the USB image
/// (`cargo xtask image`) to the stick the PC boots from, then a power cycle.
pub fn x86_job(image_url: &str, minutes: u32) -> String {
    let mut y = String::new();
    header(
        &mut y,
        "x86",
        "istorm on an x86 PC from its USB stick",
        minutes,
    );
    y.push_str("actions:\n- deploy:\n    to: flasher\n    timeout: {minutes: 10}\n    images:\n");
    let _ = writeln!(y, "      image:\n        url: '{image_url}'");
    y.push_str(
        "- boot:\n    method: minimal\n    reset: true\n    timeout: {minutes: 5}\n\
         \x20   prompts: ['@istorm .\"type\":\"hello\"']\n",
    );
    y.push_str(&monitors(minutes));
    y
}

/// The local device dictionary for LAVA's `qemu` type, as a lab's template
/// would render it (`-nographic` there; here the serial on stdio), plus the
/// constants the offline dispatcher needs.
pub fn qemu_device() -> String {
    let mut y = format!(
        "# A local LAVA device dictionary for the qemu type (written by cargo xtask lava)\n\
         constants:\n  kernel-start-message: '{KERNEL_START}'\n"
    );
    y.push_str(
        "\x20 shutdown-message: 'The system is going down for reboot NOW'\n\
         \x20 default-shell-prompt: 'lava-test: # '\n\
         \x20 posix: {lava_test_sh_cmd: /bin/sh, lava_test_results_dir: /lava-%s, lava_test_shell_file: ~/.bashrc}\n\
         \x20 barebox: {interrupt-prompt: x, interrupt-character: x, final-message: x, error-messages: []}\n\
         \x20 u-boot: {interrupt-prompt: x, interrupt-character: x, interrupt_ctrl_list: [], final-message: x, error-messages: [], dfu-download: x}\n\
         \x20 grub: {interrupt-prompt: x, interrupt-character: x, error-messages: []}\n\
         \x20 grub-efi: {interrupt-prompt: x, error-messages: []}\n\
         \x20 ipxe: {interrupt-prompt: x, interrupt-character: x, error-messages: []}\n\
         \x20 cyclone: {interrupt-prompt: x, interrupt-character: x, error-messages: []}\n\
         \x20 kexec-message: x\n\
         \x20 failure_retry: 1\n\
         \x20 boot_retry: 1\n\
         available_architectures: [amd64]\n\
         actions:\n\
         \x20 deploy:\n    methods:\n      image:\n        parameters: {}\n\
         \x20 boot:\n    connections:\n      serial:\n    methods:\n      qemu:\n        parameters:\n\
         \x20         command: qemu-system-x86_64\n\
         \x20         boot_options: {}\n\
         \x20         options:\n\
         \x20         - '-machine q35'\n\
         \x20         - '-m 256M'\n\
         \x20         - '-display none'\n\
         \x20         - '-serial stdio'\n",
    );
    // A lab's device template renders the job's `context: extra_options`
    // into `extra`; the offline dispatcher reads the dictionary as it is.
    y.push_str("          extra:\n");
    for option in QEMU_OPTIONS {
        let _ = writeln!(y, "          - '{option}'");
    }
    y.push_str("timeouts:\n  actions: {}\n  connections: {}\n");
    y
}

/// A device dictionary for an `x86` PC as a lab would describe it: power
/// commands, the serial console, and the flasher that writes the image to
/// the PC's USB stick (a USB-SD-mux or a switched hub). The placeholders are
/// the lab's; here they let `lava-run --validate` check the job.
pub fn x86_device(flash: &str, connect: &str) -> String {
    let constants = qemu_device();
    let constants = constants
        .split("available_architectures:")
        .next()
        .unwrap_or_default()
        .to_string();
    format!(
        "{constants}commands:\n  connect: '{connect}'\n  hard_reset: /bin/true\n\
         \x20 power_off: /bin/true\n  power_on: /bin/true\n\
         actions:\n  deploy:\n    methods:\n      flasher:\n        commands: ['{flash}']\n\
         \x20 boot:\n    connections:\n      serial:\n    methods:\n      minimal:\n\
         timeouts:\n  actions: {{}}\n  connections: {{}}\n"
    )
}

/// A file URL for a local path (what the offline dispatcher downloads).
pub fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

#[cfg(test)]
#[path = "lava_tests.rs"]
mod tests;
