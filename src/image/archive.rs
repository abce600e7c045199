//! A table of contents of an uncompressed tar file, made by reading its headers
//! only (data is skipped by seeking), so that entries can then be read in any
//! order straight from the file.
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct ArchiveEntry {
    pub offset: u64,
    pub size: u64,
    pub kind: EntryKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    /// Symlink with its target as written.
    Symlink(String),
    /// Hard link to another entry of the archive.
    Hardlink(String),
    Other,
}

#[derive(Debug)]
pub struct ArchiveIndex {
    pub path: PathBuf,
    entries: HashMap<String, ArchiveEntry>,
}

/// `./a//b/` → `a/b`
pub fn normalize(path: &str) -> String {
    path.split('/').filter(|c| !c.is_empty() && *c != ".").collect::<Vec<_>>().join("/")
}

impl ArchiveIndex {
    pub fn scan(path: &Path) -> Result<ArchiveIndex> {
        let ctx = || format!("reading archive {}", path.display());
        let file = File::open(path).map_err(|e| Error::io(ctx(), e))?;
        let mut archive = crate::bounded_tar::archive(file);
        let mut entries = HashMap::new();
        for entry in archive.entries_with_seek().map_err(|e| Error::io(ctx(), e))? {
            let entry = entry.map_err(|e| Error::format(format!("{} is not a valid tar archive: {e}", path.display())))?;
            let name = normalize(&String::from_utf8_lossy(&entry.path_bytes()));
            let header = entry.header();
            let link = || entry.link_name_bytes().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
            let kind = match header.entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => EntryKind::File,
                tar::EntryType::Directory => EntryKind::Dir,
                tar::EntryType::Symlink => EntryKind::Symlink(link()),
                tar::EntryType::Link => EntryKind::Hardlink(normalize(&link())),
                _ => EntryKind::Other,
            };
            entries.insert(name, ArchiveEntry { offset: entry.raw_file_position(), size: entry.size(), kind });
        }
        Ok(ArchiveIndex { path: path.to_path_buf(), entries })
    }

    /// The regular file at `path`, following symlinks (relative to the link's
    /// directory, as Docker 20.10 writes duplicate layers) and hard links.
    pub fn file(&self, path: &str) -> Result<&ArchiveEntry> {
        let mut current = normalize(path);
        for _ in 0..16 {
            let entry = self
                .entries
                .get(&current)
                .ok_or_else(|| Error::format(format!("{}: no entry {current:?} in the archive", self.path.display())))?;
            match &entry.kind {
                EntryKind::File => return Ok(entry),
                EntryKind::Hardlink(target) => current = target.clone(),
                EntryKind::Symlink(target) => {
                    let base = current.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("");
                    current = resolve_relative(base, target)
                        .ok_or_else(|| Error::format(format!("{}: link {current:?} points outside the archive", self.path.display())))?;
                }
                _ => return Err(Error::format(format!("{}: {current:?} is not a file", self.path.display()))),
            }
        }
        Err(Error::format(format!("{}: too many links at {path:?}", self.path.display())))
    }

    pub fn contains(&self, path: &str) -> bool {
        self.file(path).is_ok()
    }
}

/// Join a link target to its directory, refusing to climb above the root.
pub fn resolve_relative(base: &str, target: &str) -> Option<String> {
    let mut parts: Vec<&str> = if target.starts_with('/') { Vec::new() } else { base.split('/').filter(|s| !s.is_empty()).collect() };
    for comp in target.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn resolves_docker_duplicate_layer_links() {
        assert_eq!(resolve_relative("abc", "../def/layer.tar").as_deref(), Some("def/layer.tar"));
        assert_eq!(resolve_relative("", "../x"), None);
        assert_eq!(normalize("./blobs//sha256/"), "blobs/sha256");
    }
}
