//! Local directory backend: a mounted USB key, a DVD staging folder, an NFS drop.
use crate::{
    check_name, local_file, partial_name, Capabilities, Entry, PutMode, Result, Transport, TransportError, Upload, PARTIAL_SUFFIX,
};
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub struct DirTransport {
    root: PathBuf,
}

impl DirTransport {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirTransport { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, name: &str) -> Result<PathBuf> {
        check_name(name)?;
        Ok(self.root.join(name))
    }

    fn err(&self, context: impl Into<String>, e: io::Error) -> TransportError {
        TransportError::io(self.describe(), context, e)
    }

    fn not_regular(&self, name: &str, kind: local_file::NotRegular) -> TransportError {
        TransportError::NotRegular { location: self.describe(), name: name.to_string(), kind }
    }
}

/// An upload's temporary name: ferry's own file, never an input to follow.
fn is_temporary(name: &str) -> bool {
    name.ends_with(PARTIAL_SUFFIX)
}

impl Transport for DirTransport {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::ALL
    }

    fn put(&self, name: &str, mode: PutMode) -> Result<Box<dyn Upload>> {
        let final_path = self.path(name)?;
        let temp_path = self.path(&partial_name(name))?;
        fs::create_dir_all(&self.root).map_err(|e| self.err("creating directory", e))?;
        // An interrupted upload is resumed only from a regular file of ours with no other
        // name. Anything else at the temporary name (a planted symlink, FIFO or hard link,
        // another user's file) is unlinked, which never touches what it points at, and the
        // upload starts over in a file created exclusively.
        let resumed = match mode {
            PutMode::Resume => {
                local_file::open_own(&temp_path, true).map_err(|e| self.err(format!("opening {}", temp_path.display()), e))?
            }
            PutMode::Fresh => None,
        };
        let mut file = match resumed {
            Some(file) => file,
            None => local_file::create_replacing(&temp_path).map_err(|e| self.err(format!("creating {}", temp_path.display()), e))?,
        };
        let resumed_from = file.seek(SeekFrom::End(0)).map_err(|e| self.err("seeking", e))?;
        let out = WritebackFile::new(file, resumed_from);
        Ok(Box::new(DirUpload { out, temp_path, final_path, resumed_from, location: self.describe() }))
    }

    fn get(&self, name: &str, offset: u64) -> Result<Box<dyn Read + Send>> {
        let path = self.path(name)?;
        let not_found = || TransportError::NotFound { location: self.describe(), name: name.to_string() };
        let opening = |e: io::Error| if e.kind() == io::ErrorKind::NotFound { not_found() } else { self.err(format!("opening {name}"), e) };
        let mut file = if is_temporary(name) {
            local_file::open_own(&path, false).map_err(opening)?.ok_or_else(not_found)?
        } else {
            local_file::open_regular(&path).map_err(opening)?.map_err(|kind| self.not_regular(name, kind))?
        };
        if offset > 0 {
            file.seek(SeekFrom::Start(offset)).map_err(|e| self.err(format!("seeking {name}"), e))?;
        }
        Ok(Box::new(file))
    }

    fn stat(&self, name: &str) -> Result<Option<u64>> {
        let path = self.path(name)?;
        if is_temporary(name) {
            // What is not ours to resume counts as absent (put replaces it).
            let own = local_file::open_own(&path, false).map_err(|e| self.err(format!("stat {name}"), e))?;
            return own.map(|f| f.metadata().map(|m| m.len())).transpose().map_err(|e| self.err(format!("stat {name}"), e));
        }
        match fs::metadata(&path) {
            Ok(m) => match local_file::NotRegular::of(&m) {
                None => Ok(Some(m.len())),
                Some(kind) => Err(self.not_regular(name, kind)),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.err(format!("stat {name}"), e)),
        }
    }

    fn list(&self) -> Result<Vec<Entry>> {
        let mut entries = Vec::new();
        for item in fs::read_dir(&self.root).map_err(|e| self.err("listing", e))? {
            let item = item.map_err(|e| self.err("listing", e))?;
            let meta = item.metadata().map_err(|e| self.err("listing", e))?;
            if meta.is_file() {
                if let Some(name) = item.file_name().to_str() {
                    entries.push(Entry { name: name.to_string(), size: meta.len() });
                }
            }
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    fn local_dir(&self) -> Option<&Path> {
        Some(&self.root)
    }

    fn adopt(&self, file: &Path, name: &str) -> Result<()> {
        let final_path = self.path(name)?;
        if file.parent() != Some(self.root.as_path()) {
            return Err(self.err(format!("publishing {}", file.display()), io::Error::other(format!("not in {}", self.root.display()))));
        }
        // The file is one ferry made there: never follow a link swapped in for it.
        let handle =
            local_file::open_own(file, false).map_err(|e| self.err(format!("opening {}", file.display()), e))?.ok_or_else(|| {
                self.err(format!("publishing {}", file.display()), io::Error::other("it is no longer a regular file of ours"))
            })?;
        publish(handle, file, &final_path, &self.describe())
    }

    fn delete(&self, name: &str) -> Result<()> {
        fs::remove_file(self.path(name)?).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                TransportError::NotFound { location: self.describe(), name: name.to_string() }
            } else {
                self.err(format!("deleting {name}"), e)
            }
        })
    }

    fn move_to(&self, name: &str, dir: &str) -> Result<()> {
        self.move_file(name, dir)
    }
}

impl DirTransport {
    fn move_file(&self, name: &str, dir: &str) -> Result<()> {
        let from = self.path(name)?;
        let to_dir = crate::subdir_parts(dir)?.iter().fold(self.root.clone(), |p, part| p.join(part));
        fs::create_dir_all(&to_dir).map_err(|e| self.err(format!("creating directory {}", to_dir.display()), e))?;
        fs::rename(&from, to_dir.join(name)).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                TransportError::NotFound { location: self.describe(), name: name.to_string() }
            } else {
                self.err(format!("moving {name} into {dir}"), e)
            }
        })?;
        // Both directories changed: make the move durable.
        for d in [&to_dir, &self.root] {
            if let Ok(d) = File::open(d) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

struct DirUpload {
    out: WritebackFile,
    temp_path: PathBuf,
    final_path: PathBuf,
    resumed_from: u64,
    location: String,
}

impl Write for DirUpload {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// A file that starts the kernel writing each finished stretch of it to disk
/// while the rest is still being written (see [`Writeback`]): the upload's
/// temporary file, or a spool a caller may [`Transport::adopt`] later.
pub struct WritebackFile {
    file: File,
    writeback: Writeback,
}

impl WritebackFile {
    /// For `file`, whose next write lands at `offset`.
    pub fn new(file: File, offset: u64) -> Self {
        WritebackFile { file, writeback: Writeback::new(offset) }
    }

    pub fn into_file(self) -> File {
        self.file
    }
}

impl Write for WritebackFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.writeback.wrote(&self.file, n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Starts the kernel writing each finished stretch of the file to disk while
/// the rest is still being produced, so the `fsync` before the rename finds
/// little left to write (on Linux; elsewhere the fsync does it all).
struct Writeback {
    /// Offset up to which writeback was requested, and the write position.
    started: u64,
    end: u64,
}

/// Bytes written before their writeback is started.
const WRITEBACK_STEP: u64 = 8 << 20;

impl Writeback {
    /// For a file whose next write lands at `offset`.
    fn new(offset: u64) -> Self {
        Writeback { started: offset, end: offset }
    }

    /// `n` more bytes were written to `file`.
    fn wrote(&mut self, file: &File, n: u64) {
        self.end += n;
        if self.end - self.started < WRITEBACK_STEP {
            return;
        }
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: a valid open descriptor and a range inside the file.
            // Only a hint: on failure the fsync at commit still does the work.
            unsafe {
                libc::sync_file_range(
                    file.as_raw_fd(),
                    self.started as libc::off64_t,
                    (self.end - self.started) as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = file;
        self.started = self.end;
    }
}

impl Upload for DirUpload {
    fn resumed_from(&self) -> u64 {
        self.resumed_from
    }

    fn commit(self: Box<Self>) -> Result<()> {
        let DirUpload { out, temp_path, final_path, location, .. } = *self;
        publish(out.into_file(), &temp_path, &final_path, &location)
    }
}

/// Durable before visible: a USB key pulled right after ferry exits must hold the data.
fn publish(file: File, temp_path: &Path, final_path: &Path, location: &str) -> Result<()> {
    file.sync_all().map_err(|e| TransportError::io(location, format!("syncing {}", temp_path.display()), e))?;
    drop(file);
    fs::rename(temp_path, final_path).map_err(|e| TransportError::io(location, format!("renaming to {}", final_path.display()), e))?;
    if let Some(parent) = final_path.parent() {
        // Make the rename itself durable.
        if let Ok(d) = File::open(parent) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}
