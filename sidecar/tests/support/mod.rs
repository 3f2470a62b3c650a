//! What several of the sidecar's test files need: children reaped whatever
//! the outcome, and the checks for what a test depends on (root, a package),
//! which fail in CI (it installs everything) and skip with a reason elsewhere.

// Each test file includes this module and uses part of it.
#![allow(dead_code)]

use std::process::{Child, Command, Output};

/// A child process killed when the test ends, passed or failed: a workload
/// left waiting for a supervisor must not outlive its test.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Reaped {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Reaped {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

/// Missing in CI is a failure; elsewhere the test says so and passes
/// without running.
fn missing(msg: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
}

/// Root, for the tests that run a workload as another user (`why` says
/// what the test does with it).
pub fn require_root(why: &str) -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        missing(&format!("this test {why}: run it as root"));
    }
    root
}

/// A program from a Debian package.
pub fn require(program: &str, package: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        missing(&format!(
            "{program} is not installed: apt-get install {package} (scripts/setup does)"
        ));
    }
    found
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
