//! Free space on the file system a target or spool is on.
use crate::error::{Error, Result};

/// Free bytes on the filesystem holding `path`.
pub fn free_space(path: &std::path::Path) -> Option<u64> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid NUL-terminated path and st a valid out-pointer.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    (rc == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
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
