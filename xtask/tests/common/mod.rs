//! Helpers shared by the CLI tests: a scratch directory, running the binary, success checks.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// A scratch directory under the system temp dir, removed on drop.
pub struct Tmp(pub PathBuf);

impl Tmp {
    pub fn new(name: &str) -> Self {
        let d = std::env::temp_dir().join(format!("sgm-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Tmp(d)
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the xtask binary with `args`.
pub fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .expect("xtask runs")
}

/// Asserts a failure whose stderr holds every needle and no panic.
pub fn fails_with(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected a failure, stderr: {err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks `{n}`:\n{err}");
    }
    assert!(
        !err.contains("panicked"),
        "a panic instead of an error:\n{err}"
    );
}

/// Asserts success, printing both streams otherwise.
pub fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "xtask failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
