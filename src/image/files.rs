//! Uniform access to the files of an image source: an OCI directory, or an
//! archive read through its table of contents.
use super::archive::ArchiveIndex;
use super::BlobSource;
use crate::error::{Error, Result};
use std::path::{Component, Path, PathBuf};

pub trait SourceFiles {
    /// For messages.
    fn describe(&self) -> String;
    fn exists(&self, path: &str) -> bool;
    /// Where the file's bytes are, and its size.
    fn locate(&self, path: &str) -> Result<(BlobSource, u64)>;
    /// Read a small file (JSON document) whole.
    fn read_small(&self, path: &str) -> Result<Vec<u8>> {
        let (source, _) = self.locate(path)?;
        source.read_all(super::MAX_DOCUMENT)
    }
}

/// An OCI image layout directory.
pub struct DirFiles {
    pub root: PathBuf,
}

impl DirFiles {
    fn path(&self, rel: &str) -> Result<PathBuf> {
        let rel = Path::new(rel);
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(Error::format(format!("{}: refusing path {rel:?}", self.root.display())));
        }
        Ok(self.root.join(rel))
    }
}

impl SourceFiles for DirFiles {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }
    fn exists(&self, path: &str) -> bool {
        self.path(path).map(|p| p.is_file()).unwrap_or(false)
    }
    fn locate(&self, path: &str) -> Result<(BlobSource, u64)> {
        let full = self.path(path)?;
        let meta = std::fs::metadata(&full).map_err(|e| Error::io(format!("reading {}", full.display()), e))?;
        Ok((BlobSource::FileRange { path: full, offset: 0, len: meta.len() }, meta.len()))
    }
}

impl SourceFiles for ArchiveIndex {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }
    fn exists(&self, path: &str) -> bool {
        self.contains(path)
    }
    fn locate(&self, path: &str) -> Result<(BlobSource, u64)> {
        let entry = self.file(path)?;
        Ok((BlobSource::FileRange { path: self.path.clone(), offset: entry.offset, len: entry.size }, entry.size))
    }
}
