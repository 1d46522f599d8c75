//! The console at `/ui/`, in a real headless Chromium against the real binary: the
//! browser script (`tests/console/console.test.mjs`, Playwright) signs in, watches the
//! charts fill, pages the inbox, acks and deletes, tails live events with a filter,
//! tests, pauses and rotates a subscription, and manages tenants and keys with the
//! admin token, checking every effect through the API; then it checks a phone's width.
//!
//! Needs Node.js, `npm ci` in `tests/console` and Chromium: `scripts/test` installs both.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{Server, ADMIN_TOKEN};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn chromium() -> String {
    if let Ok(path) = std::env::var("CHROMIUM") {
        return path;
    }
    for candidate in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if std::path::Path::new(candidate).exists() {
            return candidate.into();
        }
    }
    panic!("no Chromium found: run scripts/test (it installs it), or set CHROMIUM");
}

#[test]
fn the_console_works_in_a_real_browser() {
    let dir = repo().join("tests/console");
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "playwright-core is not installed: run `npm ci --prefix tests/console` (scripts/test does)"
    );
    let s = Server::start(&["--allow-private-targets"]);
    let mut cmd = Command::new("node");
    cmd.arg("console.test.mjs")
        .current_dir(&dir)
        .env("SLUICE_URL", s.url(""))
        .env("SLUICE_KEY", s.key())
        .env("SLUICE_ADMIN", ADMIN_TOKEN)
        .env("CHROMIUM", chromium());
    if let Ok(shots) = std::env::var("SLUICE_SCREENSHOTS") {
        cmd.env("SCREENSHOTS", shots);
    }
    let out = common::run_to_exit(&mut cmd, std::time::Duration::from_secs(240));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the browser test failed:\n{text}");
    assert!(text.contains("every step passed"), "{text}");
}
