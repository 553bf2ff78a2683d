use super::*;

#[test]
fn the_qemu_job_boots_what_it_is_given_and_monitors_the_results() {
    let iso = qemu_job(
        &Media::Iso {
            url: "https://lab.example/istorm.iso".into(),
        },
        5,
    );
    assert!(iso.contains("device_type: qemu\n"), "{iso}");
    assert!(iso.contains("image_arg: '-cdrom {iso}'"), "{iso}");
    assert!(iso.contains("context:\n  arch: amd64\n"), "{iso}");
    let pvh = qemu_job(
        &Media::Pvh {
            url: "file:///k".into(),
            cmdline: "entry=linux filter=boot::".into(),
        },
        5,
    );
    assert!(
        pvh.contains("image_arg: '-kernel {kernel} -append \"entry=linux filter=boot::\"'"),
        "{pvh}"
    );
    for job in [&iso, &pvh, &x86_job("https://lab.example/istorm.img", 5)] {
        assert!(job.contains("    - name: istorm\n"), "{job}");
        assert!(
            job.contains("(?P<test_case_id>\\S+ \\[[^\\]]+\\])"),
            "{job}"
        );
        assert!(job.contains("'not-reproduced': skip"), "{job}");
        assert!(job.contains("    - name: istorm-summary\n"), "{job}");
        // YAML single-quoted scalars: no stray single quote inside.
        for line in job.lines().filter(|l| l.contains(": '")) {
            let value = line.split_once(": '").unwrap().1;
            assert!(!value.trim_end_matches('\'').contains('\''), "{line}");
        }
    }
}

#[test]
fn the_x86_job_flashes_the_usb_image_and_power_cycles() {
    let job = x86_job("https://lab.example/istorm.img", 5);
    assert!(job.contains("device_type: x86\n"));
    assert!(job.contains("    to: flasher\n"));
    assert!(job.contains("    method: minimal\n    reset: true\n"));
}

#[test]
fn the_local_device_runs_qemu_with_the_jobs_options() {
    let dev = qemu_device();
    assert!(dev.contains("  kernel-start-message: 'istorm [0-9]'\n"));
    assert!(dev.contains("          - '-serial stdio'\n"));
    assert!(dev.contains("          extra:\n          - '-smp 2'\n"));
    assert!(dev.contains("  failure_retry: 1\n  boot_retry: 1\n"));
}
