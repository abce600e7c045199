//! Shared helpers for ferry's integration tests (std and tempfile; oci_api also reqwest and serde_json).
//! Use from a test crate with `mod support;`.
#![allow(dead_code)]

pub mod containerd;
pub mod dockerd;
pub mod ferro;
pub mod oci_api;
pub mod podman;
pub mod registry;
pub mod token;

use std::path::{Path, PathBuf};

/// Path of the repository root (where Cargo.toml, scripts/ and fixtures/ live).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where `bin` resolves: itself when it contains a `/`, else the first
/// executable match on PATH.
pub fn which(bin: &str) -> Option<PathBuf> {
    fn is_exec(p: &Path) -> bool {
        use std::os::unix::fs::PermissionsExt;
        p.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
    }
    if bin.contains('/') {
        let p = PathBuf::from(bin);
        return is_exec(&p).then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(bin)).find(|p| is_exec(p))
}

/// Panics (never skips) when a command the test needs is not installed.
pub fn require(bin: &str) {
    if which(bin).is_none() {
        panic!("missing {bin}: run scripts/install-deps.sh");
    }
}
