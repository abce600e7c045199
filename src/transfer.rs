//! `ferry push`, `pull` and `ls`: copy a bundle's files between locations,
//! resuming interrupted copies and checking every artifact file against
//! `STEM.sha256` before it is committed. Publishing order as in SPEC §2:
//! artifact files, then the signature, then `STEM.sha256` last.
use crate::bundle::names;
use crate::bundle::{BundleSource, Progress};
use crate::digest::Hasher;
use crate::error::{unwrap_io, Error, Result};
use ferry_transports::{partial_name, PutMode, Transport, TransportError};
use serde::Serialize;
use std::io::{self, Read, Write};

#[derive(Debug, Clone, Serialize)]
pub struct CopyReport {
    pub destination: String,
    pub stem: String,
    /// Whether the destination can continue an interrupted upload. When it cannot
    /// (HTTP/WebDAV has no append), a copy that was interrupted starts over.
    pub resume_upload: bool,
    pub files: Vec<CopiedFile>,
    /// Parts missing or damaged at the source, rebuilt at the destination from parity.
    pub rebuilt: Vec<crate::parity::BadPart>,
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
    let mut rebuilt = Vec::new();
    for (i, line) in bundle.checksums.lines.iter().enumerate() {
        match copy_file(bundle, dest, &line.name, Some(&line.hex), progress) {
            Ok(f) => files.push(f),
            // A parity bundle reads past a missing or damaged part: it is rebuilt below.
            Err(Error::Integrity(why)) if bundle.parity.is_some() => {
                let problem = if why.contains("is missing") { "missing" } else { "damaged" };
                let parity = bundle.parity.as_ref().is_some_and(|g| i >= g.data);
                rebuilt.push(crate::parity::BadPart { name: line.name.clone(), problem: problem.into(), parity });
            }
            Err(e) => return Err(e),
        }
    }
    if let Some(geometry) = &bundle.parity {
        crate::parity::check_repairable(&bundle.describe(), geometry, &rebuilt)?;
        crate::parity::rebuild::rebuild_into(dest, geometry, &bundle.checksums.lines, &rebuilt, progress)?;
    }
    if let Some(sig) = &bundle.signature {
        files.push(copy_bytes(dest, &names::signature_name(&bundle.stem), sig)?);
    }
    files.push(copy_bytes(dest, &names::checksum_name(&bundle.stem), &bundle.checksum_bytes)?);
    Ok(CopyReport {
        destination: dest.describe(),
        stem: bundle.stem.clone(),
        resume_upload: dest.capabilities().resume_upload,
        files,
        rebuilt,
    })
}

pub(crate) fn copy_bytes(dest: &dyn Transport, name: &str, data: &[u8]) -> Result<CopiedFile> {
    crate::bundle::write::put_small(dest, name, data)?;
    Ok(CopiedFile { name: name.to_string(), sent: data.len() as u64, size: data.len() as u64, resumed_from: 0 })
}

fn copy_file(
    bundle: &BundleSource,
    dest: &dyn Transport,
    name: &str,
    expect_hex: Option<&str>,
    progress: &dyn Progress,
) -> Result<CopiedFile> {
    let src = &*bundle.transport;
    let size = src.stat(name)?.ok_or_else(|| Error::integrity(format!("{}: part {name} is missing", src.describe())))?;
    // A FIFO or device planted at the final name is no copy to check: the commit replaces it.
    let there = match dest.stat(name) {
        Err(e) if e.is_not_regular() => None,
        other => other?,
    };
    if there == Some(size) {
        // Already complete there (an earlier push that stopped later): check it in place.
        if let Some(hex) = expect_hex {
            let mut h = Hasher::new();
            hash_into(&mut *dest.get(name, 0)?, &mut h, None, name, dest)?;
            if h.finish().hex() == hex {
                return Ok(CopiedFile { name: name.into(), sent: 0, size, resumed_from: size });
            }
        }
    }
    match copy_attempt(bundle, dest, name, size, expect_hex, PutMode::Resume, progress)? {
        Attempt::Done(f) => Ok(f),
        // What an earlier attempt left was damaged: start over once, from byte 0.
        Attempt::Mismatch { resumed_from, .. } if resumed_from > 0 => {
            match copy_attempt(bundle, dest, name, size, expect_hex, PutMode::Fresh, progress)? {
                Attempt::Done(f) => Ok(f),
                Attempt::Mismatch { error, .. } => Err(error),
            }
        }
        Attempt::Mismatch { error, .. } => Err(error),
    }
}

enum Attempt {
    Done(CopiedFile),
    /// The bytes copied do not match `STEM.sha256`; the temporary file was discarded
    /// where the destination allows it.
    Mismatch {
        resumed_from: u64,
        error: Error,
    },
}

fn copy_attempt(
    bundle: &BundleSource,
    dest: &dyn Transport,
    name: &str,
    size: u64,
    expect_hex: Option<&str>,
    mode: PutMode,
    progress: &dyn Progress,
) -> Result<Attempt> {
    let src = &*bundle.transport;
    let temp = partial_name(name);
    // Hash what an earlier attempt left *before* the upload is opened: a server may lock
    // a file while it is being appended to (vsftpd's lock_upload_files), so reading it
    // during the upload would wait for ever.
    let mut hasher = Hasher::new();
    let mut hashed = 0u64;
    if mode == PutMode::Resume && dest.capabilities().resume_upload {
        if let Some(there) = dest.stat(&temp)?.filter(|&n| n > 0 && n <= size) {
            hashed = hash_into(&mut dest.get(&temp, 0)?.take(there), &mut hasher, None, name, dest)?;
        }
    }
    let mut upload = dest.put(name, mode)?;
    let mut offset = upload.resumed_from();
    if offset != hashed {
        // The temporary file changed since it was hashed, is longer than the file, or the
        // destination cannot append: start over.
        drop(upload);
        upload = dest.put(name, PutMode::Fresh)?;
        offset = 0;
        hasher = Hasher::new();
    }
    progress.start(&format!("copying {name}"), Some(size));
    progress.advance(offset);
    // `offset` is at most `size`: it is what was hashed above, at most `size` bytes.
    let reader = Box::new(Announced {
        inner: src.get(name, offset)?,
        left: size.saturating_sub(offset),
        size,
        name: name.to_string(),
        source: src.describe(),
    });
    let (sent, hasher) = match pipe(reader, hasher, &mut *upload, progress, src, dest, name) {
        Ok(done) => done,
        Err(e) => {
            if matches!(e, Error::Integrity(_)) {
                // A body longer than announced: what was written is nothing to resume from.
                drop(upload);
                let _ = dest.delete(&temp);
            }
            return Err(e);
        }
    };
    progress.finish();
    if let Some(hex) = expect_hex {
        let actual = hasher.finish();
        if actual.hex() != hex {
            drop(upload);
            let _ = dest.delete(&temp);
            let error = Error::integrity(format!(
                "{name}: checksum mismatch after copying from {} (the source is damaged or changed during the copy); the copy was discarded",
                src.describe()
            ));
            return Ok(Attempt::Mismatch { resumed_from: offset, error });
        }
    }
    upload.commit()?;
    Ok(Attempt::Done(CopiedFile { name: name.into(), sent, size, resumed_from: offset }))
}

/// A file's body as its source announced it (`stat`): a body longer than `size`
/// fails as soon as its first extra byte arrives, so a hostile or broken server
/// cannot fill the destination's disk; the checksum catches a shorter one.
struct Announced {
    inner: Box<dyn Read + Send>,
    /// Bytes still expected.
    left: u64,
    size: u64,
    name: String,
    source: String,
}

impl Read for Announced {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            // Only the end may follow: one byte more is one too many.
            let mut extra = [0u8; 1];
            return match self.inner.read(&mut extra)? {
                0 => Ok(0),
                _ => Err(Error::integrity(format!(
                    "{}: the source sent more than the {} bytes it announced for it at {}; the copy was discarded",
                    self.name, self.size, self.source
                ))
                .into_io()),
            };
        }
        let want = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// Size of the blocks a copy moves.
const BLOCK: usize = 1 << 20;

/// Copy `reader` into `upload`, hashing every byte. Reading, hashing and writing each run
/// on their own thread (blocks pass from one to the next), so that SHA-256 (about 0.6 s
/// of CPU per GiB) overlaps with the network instead of adding to it
/// (docs/PERFORMANCE.md, "Transports").
fn pipe(
    mut reader: Box<dyn Read + Send>,
    mut hasher: Hasher,
    upload: &mut dyn Write,
    progress: &dyn Progress,
    src: &dyn Transport,
    dest: &dyn Transport,
    name: &str,
) -> Result<(u64, Hasher)> {
    use std::sync::mpsc::sync_channel;
    type Block = io::Result<(Vec<u8>, usize)>;
    std::thread::scope(|scope| {
        let (read_tx, read_rx) = sync_channel::<Block>(2);
        let (hashed_tx, hashed_rx) = sync_channel::<Block>(2);
        let (empty_tx, empty_rx) = sync_channel::<Vec<u8>>(6);
        scope.spawn(move || loop {
            let mut buf = empty_rx.try_recv().unwrap_or_else(|_| vec![0u8; BLOCK]);
            let item = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => Ok((buf, n)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
            };
            let failed = item.is_err();
            // The next stage gone (the copy failed) or a read error: stop.
            if read_tx.send(item).is_err() || failed {
                break;
            }
        });
        let hash_side = scope.spawn(move || {
            for item in read_rx.iter() {
                if let Ok((buf, n)) = &item {
                    hasher.update(&buf[..*n]);
                }
                if hashed_tx.send(item).is_err() {
                    break;
                }
            }
            hasher
        });
        let mut sent = 0u64;
        let mut failure = None;
        for item in hashed_rx.iter() {
            match item {
                Ok((buf, n)) => {
                    if let Err(e) = upload.write_all(&buf[..n]) {
                        failure = Some(transfer_error(dest, format!("writing {name}"), e));
                        break;
                    }
                    sent += n as u64;
                    progress.advance(n as u64);
                    let _ = empty_tx.try_send(buf);
                }
                Err(e) => {
                    failure = Some(transfer_error(src, format!("reading {name}"), e));
                    break;
                }
            }
        }
        drop(hashed_rx);
        let hasher = hash_side.join().expect("the hashing thread does not panic");
        match failure {
            Some(e) => Err(e),
            None => Ok((sent, hasher)),
        }
    })
}

/// Hash `r` to its end; returns the number of bytes read.
fn hash_into(r: &mut dyn Read, h: &mut Hasher, progress: Option<&dyn Progress>, name: &str, from: &dyn Transport) -> Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf).map_err(|e| transfer_error(from, format!("reading {name}"), e))?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
        h.update(&buf[..n]);
        if let Some(p) = progress {
            p.advance(n as u64);
        }
    }
}

/// A read or write of a file at a location failed mid-transfer (connection lost, server
/// gone): a transport failure (exit 4). A full local disk keeps its own error and hint;
/// an error ferry carried through `io::Error` keeps its kind.
fn transfer_error(at: &dyn Transport, context: String, e: io::Error) -> Error {
    let e = match unwrap_io(e) {
        Ok(ours) => return ours,
        Err(e) => e,
    };
    if e.raw_os_error() == Some(libc::ENOSPC) {
        return Error::io(format!("{context} at {}", at.describe()), e);
    }
    let location = at.describe();
    // Backends prefix their I/O errors with the location already: say it once.
    let e = match e.to_string().strip_prefix(&format!("{location}: ")) {
        Some(rest) => io::Error::new(e.kind(), rest.to_string()),
        None => e,
    };
    Error::Transport(TransportError::io(location, context, e))
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

/// What `ls` found at a location.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Listing {
    pub bundles: Vec<ListedBundle>,
    /// Checksum files whose stem is not a valid bundle name (shown escaped): skipped.
    pub skipped: Vec<String>,
}

/// Complete bundles (those whose `STEM.sha256` exists) at a location. Names are
/// the server's: a `STEM.sha256` whose stem is not a valid bundle name (control
/// characters, slashes, a leading dot or dash) is skipped and noted, never shown raw.
pub fn list_bundles(transport: &dyn Transport) -> Result<Listing> {
    let entries = transport.list()?;
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for e in &entries {
        let Some(stem) = e.name.strip_suffix(names::CHECKSUM_SUFFIX) else { continue };
        if names::check_stem(stem).is_err() {
            skipped.push(crate::untrusted::shown(&e.name).into_owned());
            continue;
        }
        let parts: Vec<_> = entries.iter().filter(|p| names::is_part_of(stem, &p.name) && names::is_plain_name(&p.name)).collect();
        out.push(ListedBundle {
            stem: stem.to_string(),
            files: parts.iter().map(|p| p.name.clone()).collect(),
            size: parts.iter().map(|p| p.size).sum(),
            signed: entries.iter().any(|s| s.name == names::signature_name(stem)),
            encrypted: parts.iter().any(|p| names::parse_artifact_name(&p.name).is_some_and(|a| a.encrypted)),
        });
    }
    Ok(Listing { bundles: out, skipped })
}
