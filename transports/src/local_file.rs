//! Opening and creating local files so that nothing planted at a name — a
//! symlink, a FIFO, a device, a hard link to someone else's file — is ever
//! written through, read for ever, or taken for ferry's own file.
//!
//! - Files ferry creates are created exclusively (`O_CREAT|O_EXCL|O_NOFOLLOW`):
//!   whatever stood at the name is unlinked first (unlinking a link never
//!   touches its target).
//! - A temporary file is reused (resumed) only when it is a regular file with
//!   one name, owned by the effective user.
//! - Files ferry reads as input may be symlinked, but what they reach must be
//!   a regular file: opened with `O_NONBLOCK` (a FIFO does not block the open),
//!   checked with `fstat`, and only then read.
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Create `path` exclusively, never through a link; fails if anything is there.
pub fn create_new(path: &Path) -> io::Result<File> {
    OpenOptions::new().write(true).create_new(true).custom_flags(libc::O_NOFOLLOW).open(path)
}

/// Create `path` afresh: whatever is there (a stale file, a planted symlink
/// or FIFO) is unlinked, then the file is created exclusively. If something
/// reappears in between, that is an error, not a file to write through.
pub fn create_replacing(path: &Path) -> io::Result<File> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    create_new(path)
}

/// Open `path`, a temporary file ferry may have left, for reading (`write`
/// false) or appending (`write` true) — only if it is a regular file, not a
/// link, with no other name, owned by us. `Ok(None)`: nothing there, or
/// something ferry must not reuse (the caller replaces it).
pub fn open_own(path: &Path, write: bool) -> io::Result<Option<File>> {
    let before = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if !is_own_file(&before) {
        return Ok(None);
    }
    // Checked before it is opened (a FIFO or device is never opened); O_NOFOLLOW
    // and the same inode after opening close the window between the two.
    let file = match OpenOptions::new().read(!write).write(write).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path) {
        Ok(f) => f,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ELOOP | libc::ENXIO)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let after = file.metadata()?;
    if after.dev() != before.dev() || after.ino() != before.ino() || !is_own_file(&after) {
        return Ok(None);
    }
    clear_nonblocking(&file)?;
    Ok(Some(file))
}

fn is_own_file(m: &Metadata) -> bool {
    // SAFETY: geteuid cannot fail.
    m.file_type().is_file() && m.nlink() == 1 && m.uid() == unsafe { libc::geteuid() }
}

/// What stands at a path where a regular file was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotRegular {
    /// Only from [`std::fs::symlink_metadata`] or [`open_regular_here`].
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
    Directory,
    Other,
}

impl NotRegular {
    /// `None` for a regular file.
    pub fn of(m: &Metadata) -> Option<NotRegular> {
        let t = m.file_type();
        Some(match () {
            _ if t.is_file() => return None,
            _ if t.is_symlink() => NotRegular::Symlink,
            _ if t.is_fifo() => NotRegular::Fifo,
            _ if t.is_socket() => NotRegular::Socket,
            _ if t.is_char_device() => NotRegular::CharDevice,
            _ if t.is_block_device() => NotRegular::BlockDevice,
            _ if t.is_dir() => NotRegular::Directory,
            _ => NotRegular::Other,
        })
    }
}

impl std::fmt::Display for NotRegular {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NotRegular::Symlink => "a symbolic link",
            NotRegular::Fifo => "a FIFO",
            NotRegular::Socket => "a socket",
            NotRegular::CharDevice => "a character device",
            NotRegular::BlockDevice => "a block device",
            NotRegular::Directory => "a directory",
            NotRegular::Other => "not a file",
        })
    }
}

/// An input file, opened for reading: `path` may be a symlink, but what it
/// reaches must be a regular file. A FIFO, socket or device is refused at once
/// (`Ok(Err(kind))`) instead of being read for ever.
pub fn open_regular(path: &Path) -> io::Result<Result<File, NotRegular>> {
    open_checked(path, 0)
}

/// [`open_regular`] for a file that must be the regular file itself, not a
/// link to one (an entry of a directory ferry writes into).
pub fn open_regular_here(path: &Path) -> io::Result<Result<File, NotRegular>> {
    open_checked(path, libc::O_NOFOLLOW)
}

fn open_checked(path: &Path, flags: i32) -> io::Result<Result<File, NotRegular>> {
    let file = match OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | flags).open(path) {
        Ok(f) => f,
        Err(e) if flags & libc::O_NOFOLLOW != 0 && e.raw_os_error() == Some(libc::ELOOP) => return Ok(Err(NotRegular::Symlink)),
        // A socket cannot be opened at all: say what it is.
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
            return match std::fs::metadata(path).ok().as_ref().and_then(NotRegular::of) {
                Some(kind) => Ok(Err(kind)),
                None => Err(e),
            }
        }
        Err(e) => return Err(e),
    };
    if let Some(kind) = NotRegular::of(&file.metadata()?) {
        return Ok(Err(kind));
    }
    clear_nonblocking(&file)?;
    Ok(Ok(file))
}

fn clear_nonblocking(file: &File) -> io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own; F_GETFL/F_SETFL take no pointers.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn mkfifo(path: &Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    }

    #[test]
    fn creating_replaces_a_symlink_and_leaves_its_target_alone() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"mine").unwrap();
        let link = dir.path().join("x.partial");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        assert!(create_new(&link).is_err(), "create_new never reuses a name");
        create_replacing(&link).unwrap().write_all(b"new").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"mine");
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_file());
        assert_eq!(std::fs::read(&link).unwrap(), b"new");
    }

    #[test]
    fn only_our_own_single_named_regular_file_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let own = dir.path().join("own");
        std::fs::write(&own, b"half").unwrap();
        let mut s = String::new();
        open_own(&own, false).unwrap().unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "half");
        assert!(open_own(&dir.path().join("absent"), true).unwrap().is_none());
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&own, &link).unwrap();
        assert!(open_own(&link, true).unwrap().is_none(), "a symlink");
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        assert!(open_own(&fifo, true).unwrap().is_none(), "a FIFO (and the call did not block)");
        let linked = dir.path().join("linked");
        std::fs::hard_link(&own, &linked).unwrap();
        assert!(open_own(&linked, true).unwrap().is_none(), "a file with two names");
    }

    #[test]
    fn inputs_may_be_symlinked_but_must_reach_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"data").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let mut s = String::new();
        open_regular(&link).unwrap().unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "data");
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        assert_eq!(open_regular(&fifo).unwrap().unwrap_err(), NotRegular::Fifo);
        assert_eq!(open_regular(Path::new("/dev/zero")).unwrap().unwrap_err(), NotRegular::CharDevice);
        assert_eq!(open_regular(dir.path()).unwrap().unwrap_err(), NotRegular::Directory);
        assert_eq!(open_regular_here(&link).unwrap().unwrap_err(), NotRegular::Symlink);
        assert!(open_regular_here(&file).unwrap().is_ok());
        let sock = dir.path().join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        assert_eq!(open_regular(&sock).unwrap().unwrap_err(), NotRegular::Socket);
    }
}
