//! Transports move named files between this machine and a *location*: a local
//! directory (a mounted USB key), an in-memory store (tests), or — in their own
//! modules — FTP/FTPS, SFTP and HTTP(S)/WebDAV servers.
//!
//! This crate knows nothing about images or bundles: it moves bytes under names.
//!
//! Contract shared by every backend (checked by the conformance suite in
//! `tests/conformance.rs`):
//! - `put` streams bytes of unknown length under a *temporary* name
//!   ([`partial_name`]); `Upload::commit` renames it into place. A reader never
//!   sees a half-written file under its final name.
//! - An interrupted upload leaves its temporary file; `put` with
//!   [`PutMode::Resume`] reports how many bytes are already there
//!   ([`Upload::resumed_from`]) and appends the rest.
//! - `get` reads from an offset, so downloads resume.

mod dir;
mod error;
mod ftp;
mod http;
pub mod local_file;
mod location;
mod memory;
mod options;
mod remote;
mod sftp;
mod silence;

pub use dir::{DirTransport, WritebackFile};
pub use error::{Result, TransportError};
pub use ftp::FtpTransport;
pub use http::HttpTransport;
pub use location::{open, open_with, Location};
pub use memory::MemoryTransport;
pub use options::{FtpPassive, SshAgent, TransportOptions};
/// A location as it may be shown: any password in it replaced by `***`.
pub use remote::redact as redact_location;
/// A library's or the OS's text without raw errno numbers (` (os error 28)`).
pub use remote::without_errno;
pub use sftp::SftpTransport;

use std::io::{Read, Write};

/// Suffix of the temporary name an upload is written under before commit.
pub const PARTIAL_SUFFIX: &str = ".partial";

/// Most entries a listing may hold (`ls`, `watch`, pulls that look for parts): a
/// hostile or runaway server cannot make a listing cost unbounded memory. A drop
/// has a few files per bundle; 100 000 is far beyond any real one.
pub const MAX_LISTING_ENTRIES: usize = 100_000;
/// Most bytes of a listing's text (an FTP `LIST` reply, an HTTP directory index).
pub const MAX_LISTING_BYTES: u64 = 16 << 20;

/// The error of a listing past [`MAX_LISTING_ENTRIES`].
pub(crate) fn too_many_entries(remote: &remote::Remote, context: &str) -> TransportError {
    remote.protocol_error(context, format!("the directory holds more than {MAX_LISTING_ENTRIES} entries (ferry's listing limit)"))
}

/// The error of a listing past [`MAX_LISTING_BYTES`].
pub(crate) fn listing_too_large(remote: &remote::Remote, context: &str) -> TransportError {
    remote.protocol_error(context, format!("the directory listing is larger than {} MiB (ferry's listing limit)", MAX_LISTING_BYTES >> 20))
}

/// The temporary name under which `name` is uploaded before it is committed.
pub fn partial_name(name: &str) -> String {
    format!("{name}{PARTIAL_SUFFIX}")
}

/// What a backend (or the server behind it) can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Commit may replace an existing file of the same name.
    pub overwrite: bool,
    /// Files can be deleted.
    pub delete: bool,
    /// Names in the location can be listed.
    pub list: bool,
    /// An interrupted upload can be continued (append at an offset).
    pub resume_upload: bool,
    /// Reads can start at an offset.
    pub resume_download: bool,
}

impl Capabilities {
    pub const ALL: Capabilities = Capabilities { overwrite: true, delete: true, list: true, resume_upload: true, resume_download: true };
}

/// One file at a location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub size: u64,
}

/// How `put` treats an earlier, interrupted upload of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutMode {
    /// Start from byte 0, discarding any partial upload.
    Fresh,
    /// Continue a partial upload if there is one: the caller must skip the
    /// first [`Upload::resumed_from`] bytes of what it writes.
    Resume,
}

/// A file being uploaded under its temporary name.
pub trait Upload: Write + Send {
    /// Bytes already present from an earlier attempt (0 for a fresh upload).
    fn resumed_from(&self) -> u64;
    /// Flush, make durable where the backend can, and rename into place.
    fn commit(self: Box<Self>) -> Result<()>;
}

/// A place bundles are stored: one flat folder of named files.
///
/// Names are plain file names (no `/`); the location itself may be nested.
pub trait Transport: Send + Sync {
    /// The location, fit for messages: never contains a password.
    fn describe(&self) -> String;
    fn capabilities(&self) -> Capabilities;
    /// Start uploading `name` (under its temporary name).
    fn put(&self, name: &str, mode: PutMode) -> Result<Box<dyn Upload>>;
    /// Read `name` from byte `offset`.
    fn get(&self, name: &str, offset: u64) -> Result<Box<dyn Read + Send>>;
    /// Size of `name`, or `None` if it does not exist.
    fn stat(&self, name: &str) -> Result<Option<u64>>;
    /// Files at the location (temporary upload names included; callers filter).
    fn list(&self) -> Result<Vec<Entry>>;
    fn delete(&self, name: &str) -> Result<()>;
    /// Move `name` into the sub-folder `dir` of the location (a relative
    /// `/`-separated path, created when missing), keeping its name: how a
    /// consumer sets a file aside (`ferry watch --after move:DIR`).
    fn move_to(&self, name: &str, dir: &str) -> Result<()> {
        let _ = (name, dir);
        Err(TransportError::Unsupported { location: self.describe(), operation: "moving files" })
    }
    /// The local directory this location is, if it is one: a caller may then
    /// build a file there itself and publish it with [`Transport::adopt`].
    fn local_dir(&self) -> Option<&std::path::Path> {
        None
    }
    /// Publish `file`, complete and inside [`Transport::local_dir`], as `name`:
    /// made durable, then renamed into place (atomic, like a commit).
    fn adopt(&self, file: &std::path::Path, name: &str) -> Result<()> {
        let _ = (file, name);
        Err(TransportError::Unsupported { location: self.describe(), operation: "publishing a local file" })
    }
}

/// The components of a sub-folder path for [`Transport::move_to`]: relative,
/// none of them empty, `.` or `..`, so the folder stays inside the location.
pub fn subdir_parts(dir: &str) -> Result<Vec<&str>> {
    let parts: Vec<&str> = dir.trim_end_matches('/').split('/').collect();
    if dir.starts_with('/') || parts.iter().any(|p| check_name(p).is_err()) {
        return Err(TransportError::InvalidName(dir.to_string()));
    }
    Ok(parts)
}

/// Refuse names that could leave the location.
pub(crate) fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\\') || name.contains('\0') {
        return Err(TransportError::InvalidName(name.to_string()));
    }
    Ok(())
}
