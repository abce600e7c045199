//! `oci-archive:PATH` and `docker-archive:PATH` targets: the artifact's inner
//! tar is both already, so its verified bytes are written as they are, under a
//! temporary name renamed into place at the end.
use crate::error::{Error, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub struct ArchiveFileSink {
    path: PathBuf,
    temp: PathBuf,
    file: Option<BufWriter<File>>,
}

impl ArchiveFileSink {
    pub fn new(path: &Path) -> Result<Self> {
        let name = path.file_name().ok_or_else(|| Error::usage(format!("{}: not a file path", path.display())))?;
        let temp = path.with_file_name(format!(".{}.partial", name.to_string_lossy()));
        // Whatever stands at the temporary name (a stale file, a planted symlink or FIFO)
        // is unlinked, never written through; the file is then created exclusively.
        let file =
            ferry_transports::local_file::create_replacing(&temp).map_err(|e| Error::io(format!("creating {}", temp.display()), e))?;
        Ok(ArchiveFileSink { path: path.to_path_buf(), temp, file: Some(BufWriter::with_capacity(1 << 20, file)) })
    }

    pub fn take_file(&mut self) -> BufWriter<File> {
        self.file.take().expect("taken once")
    }

    pub fn commit_file(&mut self, file: BufWriter<File>) -> Result<()> {
        let ctx = || format!("writing {}", self.path.display());
        let file = file.into_inner().map_err(|e| Error::io(ctx(), e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(ctx(), e))?;
        std::fs::rename(&self.temp, &self.path).map_err(|e| Error::io(ctx(), e))
    }

    pub fn abort(&mut self) {
        let _ = std::fs::remove_file(&self.temp);
    }
}

impl Drop for ArchiveFileSink {
    fn drop(&mut self) {
        // Never leave the temporary file behind; after commit it no longer exists.
        let _ = std::fs::remove_file(&self.temp);
        let _ = self.file.as_mut().map(|f| f.flush());
    }
}
