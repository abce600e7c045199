//! A directory held open, so that the names ferry writes inside it are
//! resolved against it: a symlink swapped in for `blobs/` or `blobs/sha256/`
//! after the target was checked cannot redirect a rename elsewhere.
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub struct DirHandle(OwnedFd);

fn c_name(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a path holds a NUL byte"))
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

impl DirHandle {
    /// The directory at `path` (which the user named: it may be a symlink).
    pub fn open(path: &Path) -> io::Result<Self> {
        let c = c_name(path.as_os_str().as_bytes())?;
        // SAFETY: a NUL-terminated path; the descriptor returned is owned here.
        let fd = check(unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) })?;
        Ok(DirHandle(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// The directory `name` in this one, made if missing; a symlink or a
    /// non-directory there is an error (ENOTDIR or ELOOP), never followed.
    pub fn subdir(&self, name: &str) -> io::Result<Self> {
        let c = c_name(name.as_bytes())?;
        // SAFETY: a valid directory descriptor and a NUL-terminated name.
        if let Err(e) = check(unsafe { libc::mkdirat(self.0.as_raw_fd(), c.as_ptr(), 0o777) }) {
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(e);
            }
        }
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: as above; the descriptor returned is owned here.
        let fd = check(unsafe { libc::openat(self.0.as_raw_fd(), c.as_ptr(), flags) })?;
        Ok(DirHandle(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Whether `name` here is a regular file itself (a symlink is not).
    pub fn has_regular_file(&self, name: &str) -> io::Result<bool> {
        Ok(self.regular_file_size(name)?.is_some())
    }

    /// The size of `name` here if it is a regular file (not followed if a link).
    pub fn regular_file_size(&self, name: &str) -> io::Result<Option<u64>> {
        let c = c_name(name.as_bytes())?;
        // SAFETY: a zeroed stat the call fills in; valid descriptor and name.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        match check(unsafe { libc::fstatat(self.0.as_raw_fd(), c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) }) {
            Ok(_) => Ok((st.st_mode & libc::S_IFMT == libc::S_IFREG).then_some(st.st_size as u64)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Move `from` to `name` here. What stands at `name` (a symlink too) is
    /// replaced, never followed.
    pub fn rename_into(&self, from: &Path, name: &str) -> io::Result<()> {
        let (from, to) = (c_name(from.as_os_str().as_bytes())?, c_name(name.as_bytes())?);
        // SAFETY: NUL-terminated names; AT_FDCWD resolves `from` as a path.
        check(unsafe { libc::renameat(libc::AT_FDCWD, from.as_ptr(), self.0.as_raw_fd(), to.as_ptr()) })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlinked_subdir_is_refused_and_renames_replace_links() {
        let (dir, outside) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::os::unix::fs::symlink(outside.path(), dir.path().join("blobs")).unwrap();
        let root = DirHandle::open(dir.path()).unwrap();
        let refused = root.subdir("blobs").err().and_then(|e| e.raw_os_error());
        assert!(matches!(refused, Some(libc::ELOOP | libc::ENOTDIR)), "{refused:?}");
        let made = root.subdir("made").unwrap();
        let victim = outside.path().join("victim");
        std::fs::write(&victim, b"mine").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("made/x")).unwrap();
        assert!(!made.has_regular_file("x").unwrap(), "a symlink is not a regular file");
        let new = dir.path().join("new");
        std::fs::write(&new, b"ours").unwrap();
        made.rename_into(&new, "x").unwrap();
        assert!(made.has_regular_file("x").unwrap());
        assert_eq!(std::fs::read(dir.path().join("made/x")).unwrap(), b"ours");
        assert_eq!(std::fs::read(&victim).unwrap(), b"mine");
    }
}
