//! The packaging: the systemd unit under `deploy/` passes `systemd-analyze verify`
//! (scripts/test installs systemd's tools when they are missing), and the shell
//! completions come out of the binary.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{binary, run_to_exit};

#[test]
fn the_systemd_unit_verifies_clean() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/sluice.service"
    ))
    .expect("deploy/sluice.service");
    assert!(unit.contains("ExecStart=/usr/local/bin/sluice serve"));
    // verify checks that ExecStart's binary exists: point it at the one under test.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sluice.service");
    let bin = std::fs::canonicalize(binary()).expect("binary");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/sluice", &bin.display().to_string()),
    )
    .expect("write");
    let out = run_to_exit(
        Command::new("systemd-analyze").arg("verify").arg(&path),
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed: {stderr}"
    );
    // Unknown keys are only warnings to verify: any output at all is a failure here.
    assert!(
        stderr.trim().is_empty(),
        "systemd-analyze verify warned: {stderr}"
    );
}

#[test]
fn shell_completions_come_from_the_binary() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run_to_exit(
            Command::new(binary()).args(["completions", shell]),
            Duration::from_secs(30),
        );
        assert!(
            out.status.success(),
            "{shell}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("serve") && text.contains("bench"),
            "{shell}: {text}"
        );
    }
    let out = run_to_exit(
        Command::new(binary()).args(["completions", "tcsh"]),
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
}
