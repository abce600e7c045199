//! `ferry push`, `pull` and `ls`: copy a bundle's files between locations,
//! resuming interrupted copies and checking every artifact file against
//! `STEM.sha256` before it is committed. Publishing order as in SPEC §2:
//! artifact files, then the signature, then `STEM.sha256` last.
use crate::bundle::names;
use crate::bundle::{BundleSource, Progress};
use crate::digest::Hasher;
use crate::error::{Error, Result};
use ferry_transports::{partial_name, PutMode, Transport};
use serde::Serialize;
use std::io::{Read, Write};

#[derive(Debug, Clone, Serialize)]
pub struct CopyReport {
    pub destination: String,
    pub stem: String,
    pub files: Vec<CopiedFile>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CopiedFile {
    pub name: String,
    /// Bytes sent this time (less than the size when resumed or already there).
    pub sent: u64,
    pub size: u64,
    pub resumed_from: u64,
}

/// Copy `bundle` to `dest`.
pub fn copy_bundle(bundle: &BundleSource, dest: &dyn Transport, progress: &dyn Progress) -> Result<CopyReport> {
    let mut files = Vec::new();
    for line in &bundle.checksums.lines {
        files.push(copy_file(bundle, dest, &line.name, Some(&line.hex), progress)?);
    }
    if let Some(sig) = &bundle.signature {
        files.push(copy_bytes(dest, &names::signature_name(&bundle.stem), sig)?);
    }
    files.push(copy_bytes(dest, &names::checksum_name(&bundle.stem), &bundle.checksum_bytes)?);
    Ok(CopyReport { destination: dest.describe(), stem: bundle.stem.clone(), files })
}

fn copy_bytes(dest: &dyn Transport, name: &str, data: &[u8]) -> Result<CopiedFile> {
    crate::bundle::write::put_small(dest, name, data)?;
    Ok(CopiedFile { name: name.to_string(), sent: data.len() as u64, size: data.len() as u64, resumed_from: 0 })
}

fn copy_file(bundle: &BundleSource, dest: &dyn Transport, name: &str, expect_hex: Option<&str>, progress: &dyn Progress) -> Result<CopiedFile> {
    let src = &*bundle.transport;
    let size = src.stat(name)?.ok_or_else(|| Error::integrity(format!("{}: part {name} is missing", src.describe())))?;
    if dest.stat(name)? == Some(size) {
        // Already complete there (an earlier push that stopped later): check it in place.
        if let Some(hex) = expect_hex {
            let mut h = Hasher::new();
            hash_into(&mut *dest.get(name, 0)?, &mut h, None, name)?;
            if h.finish().hex() == hex {
                return Ok(CopiedFile { name: name.into(), sent: 0, size, resumed_from: size });
            }
        }
    }
    let mut upload = dest.put(name, PutMode::Resume)?;
    let mut offset = upload.resumed_from();
    let mut hasher = Hasher::new();
    if offset > size {
        drop(upload);
        upload = dest.put(name, PutMode::Fresh)?;
        offset = 0;
    }
    if offset > 0 {
        // Hash what is already there so the whole file is checked before commit.
        let mut there = dest.get(&partial_name(name), 0)?.take(offset);
        hash_into(&mut there, &mut hasher, None, name)?;
    }
    progress.start(&format!("copying {name}"), Some(size));
    progress.advance(offset);
    let mut reader = src.get(name, offset)?;
    let sent = {
        let mut buf = vec![0u8; 1 << 20];
        let mut sent = 0u64;
        loop {
            let n = reader.read(&mut buf).map_err(|e| Error::io(format!("reading {name} from {}", src.describe()), e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            upload.write_all(&buf[..n]).map_err(|e| Error::io(format!("writing {name} to {}", dest.describe()), e))?;
            sent += n as u64;
            progress.advance(n as u64);
        }
        sent
    };
    progress.finish();
    if let Some(hex) = expect_hex {
        let actual = hasher.finish();
        if actual.hex() != hex {
            drop(upload);
            let _ = dest.delete(&partial_name(name));
            return Err(Error::integrity(format!(
                "{name}: checksum mismatch after copying from {} (the source is damaged or changed during the copy); the copy was discarded",
                src.describe()
            )));
        }
    }
    upload.commit()?;
    Ok(CopiedFile { name: name.into(), sent, size, resumed_from: offset })
}

fn hash_into(r: &mut dyn Read, h: &mut Hasher, progress: Option<&dyn Progress>, name: &str) -> Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf).map_err(|e| Error::io(format!("reading {name}"), e))?;
        if n == 0 {
            return Ok(());
        }
        h.update(&buf[..n]);
        if let Some(p) = progress {
            p.advance(n as u64);
        }
    }
}

/// A complete bundle at a location.
#[derive(Debug, Clone, Serialize)]
pub struct ListedBundle {
    pub stem: String,
    pub files: Vec<String>,
    pub size: u64,
    pub signed: bool,
    pub encrypted: bool,
}

/// Complete bundles (those whose `STEM.sha256` exists) at a location.
pub fn list_bundles(transport: &dyn Transport) -> Result<Vec<ListedBundle>> {
    let entries = transport.list()?;
    let mut out = Vec::new();
    for e in &entries {
        let Some(stem) = e.name.strip_suffix(names::CHECKSUM_SUFFIX) else { continue };
        let prefix = format!("{stem}.tar");
        let parts: Vec<_> = entries
            .iter()
            .filter(|p| p.name.starts_with(&prefix) && !p.name.ends_with(ferry_transports::PARTIAL_SUFFIX))
            .collect();
        out.push(ListedBundle {
            stem: stem.to_string(),
            files: parts.iter().map(|p| p.name.clone()).collect(),
            size: parts.iter().map(|p| p.size).sum(),
            signed: entries.iter().any(|s| s.name == names::signature_name(stem)),
            encrypted: parts.iter().any(|p| p.name.contains(".age")),
        });
    }
    Ok(out)
}
