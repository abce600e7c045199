//! Free space on the file system a target or spool is on.
use crate::error::{Error, Result};

/// Free bytes on the filesystem holding `path`.
pub fn free_space(path: &std::path::Path) -> Option<u64> {
    let st = rustix::fs::statvfs(path).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Refuse content that cannot fit (a decompression bomb declares what it will write).
pub fn check_space(dir: &std::path::Path, total: u64) -> Result<()> {
    if let Some(free) = free_space(dir) {
        if total > free {
            return Err(Error::NoSpace { what: "the bundle's content".into(), needed: total, free, path: dir.to_path_buf() });
        }
    }
    Ok(())
}
