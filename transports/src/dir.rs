//! Local directory backend: a mounted USB key, a DVD staging folder, an NFS drop.
use crate::{check_name, partial_name, Capabilities, Entry, PutMode, Result, Transport, TransportError, Upload};
use std::fs::{self, File, OpenOptions};
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
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(mode == PutMode::Fresh)
            .open(&temp_path)
            .map_err(|e| self.err(format!("creating {}", temp_path.display()), e))?;
        let resumed_from = file.seek(SeekFrom::End(0)).map_err(|e| self.err("seeking", e))?;
        let out = WritebackFile::new(file, resumed_from);
        Ok(Box::new(DirUpload { out, temp_path, final_path, resumed_from, location: self.describe() }))
    }

    fn get(&self, name: &str, offset: u64) -> Result<Box<dyn Read + Send>> {
        let path = self.path(name)?;
        let mut file = File::open(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                TransportError::NotFound { location: self.describe(), name: name.to_string() }
            } else {
                self.err(format!("opening {name}"), e)
            }
        })?;
        if offset > 0 {
            file.seek(SeekFrom::Start(offset)).map_err(|e| self.err(format!("seeking {name}"), e))?;
        }
        Ok(Box::new(file))
    }

    fn stat(&self, name: &str) -> Result<Option<u64>> {
        match fs::metadata(self.path(name)?) {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
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
        let handle = File::open(file).map_err(|e| self.err(format!("opening {}", file.display()), e))?;
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
