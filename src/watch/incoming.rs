//! `STATE/incoming/`: bundles being pulled. It keeps only what a later poll may
//! resume: a settled bundle's files go, and so do those of a bundle that left the location.
use crate::bundle::names;
use std::path::Path;

/// Remove what was pulled of `stem` (done with: loaded or refused).
pub fn remove_local(incoming: &Path, stem: &str) {
    remove_pulled(incoming, |s| s == stem);
}

/// Remove what was pulled of bundles no longer at the location (a failed one the
/// sender took back): `incoming/` holds only what a later poll may resume.
pub fn forget_vanished(incoming: &Path, listed: &[&str]) {
    remove_pulled(incoming, |s| !listed.contains(&s));
}

fn remove_pulled(incoming: &Path, of: impl Fn(&str) -> bool) {
    let Ok(entries) = std::fs::read_dir(incoming) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let base = name.strip_suffix(ferry_transports::PARTIAL_SUFFIX).unwrap_or(name);
        if of(names::stem_of(base).unwrap_or(base)) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
