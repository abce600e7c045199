//! Pass 1: read one layer stream once, spooling its bytes to a temporary file
//! while parsing its tar headers into a list of operations.
//!
//! Only headers (and PAX records) are kept in memory; file contents are
//! referred to by their offset in the spool file.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

use tar::EntryType;

use super::error::{FlattenError, Result};
use super::path::{self, Key};

const IO_BUF: usize = 256 * 1024;

/// Metadata of one filesystem object, as it will be written out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Meta {
    /// Permission bits including setuid, setgid and sticky (`& 0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub uname: Vec<u8>,
    pub gname: Vec<u8>,
    /// Whole seconds; a PAX `mtime` record with more precision is kept in `pax`.
    pub mtime: u64,
    pub dev_major: u32,
    pub dev_minor: u32,
    /// Content size (regular files only, 0 otherwise).
    pub size: u64,
    /// PAX records to carry over (xattrs, atime/ctime, precise mtime...),
    /// without the ones ferry regenerates (path, linkpath, size, uid, gid,
    /// uname, gname).
    pub pax: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Meta {
    /// A directory the layers imply but never describe: 0755 root:root, mtime 0.
    pub(crate) fn implied_dir() -> Meta {
        Meta {
            mode: 0o755,
            uid: 0,
            gid: 0,
            uname: Vec::new(),
            gname: Vec::new(),
            mtime: 0,
            dev_major: 0,
            dev_minor: 0,
            size: 0,
            pax: BTreeMap::new(),
        }
    }
}

/// What a (non-whiteout) entry puts at its path.
#[derive(Debug)]
pub(crate) enum PutKind {
    Dir,
    /// Regular file; its content starts at `offset` in the layer's spool file.
    File {
        offset: u64,
    },
    Symlink(Vec<u8>),
    /// Hard link to the (normalised) target path.
    Hardlink(Key),
    Char,
    Block,
    Fifo,
}

/// One operation of a layer.
#[derive(Debug)]
pub(crate) enum Op {
    /// `.wh.NAME`: hide this path (and its subtree) of the lower layers.
    Whiteout(Key),
    /// `.wh..wh..opq`: hide the lower-layer contents of this directory.
    Opaque(Key),
    /// Create or replace a path.
    Put { key: Key, kind: PutKind, meta: Meta },
}

/// Copies every byte read from `inner` into the spool file.
struct Tee<R> {
    inner: R,
    spool: BufWriter<File>,
    spool_err: Option<io::Error>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Err(e) = self.spool.write_all(&buf[..n]) {
            let msg = e.to_string();
            self.spool_err = Some(e);
            return Err(io::Error::other(msg));
        }
        Ok(n)
    }
}

/// Read one layer: returns its spool file (every byte of the stream, so that
/// entry data offsets are valid in it) and its operations in tar order.
pub(crate) fn read_layer(layer: usize, input: Box<dyn Read + Send + '_>, tmp_dir: &Path) -> Result<(File, Vec<Op>)> {
    let spool = tempfile::tempfile_in(tmp_dir).map_err(FlattenError::io("cannot create a temporary spool file"))?;
    let tee = Tee { inner: BufReader::with_capacity(IO_BUF, input), spool: BufWriter::with_capacity(IO_BUF, spool), spool_err: None };
    let mut archive = crate::bounded_tar::archive(tee);
    let parsed = parse_entries(layer, &mut archive, 0);
    let mut tee = archive.into_inner().into_inner();
    if let Some(source) = tee.spool_err.take() {
        return Err(FlattenError::Io { action: "cannot write the temporary spool file", source });
    }
    let ops = parsed?;
    // Consume the rest of the stream (end-of-archive blocks, padding) so that
    // a caller hashing the stream while we read it sees all of it.
    io::copy(&mut tee.inner, &mut io::sink()).map_err(|source| FlattenError::Tar { layer, entry: None, source })?;
    let spool =
        tee.spool.into_inner().map_err(|e| FlattenError::Io { action: "cannot write the temporary spool file", source: e.into_error() })?;
    Ok((spool, ops))
}

/// Read one layer whose exact bytes also lie at `base` in `file` (an
/// uncompressed layer stored in a file): the stream is parsed and read to its
/// end, but nothing is spooled; file contents are later read from `file`.
pub(crate) fn read_layer_in_file(layer: usize, input: Box<dyn Read + Send + '_>, file: File, base: u64) -> Result<(File, Vec<Op>)> {
    let mut archive = crate::bounded_tar::archive(BufReader::with_capacity(IO_BUF, input));
    let ops = parse_entries(layer, &mut archive, base)?;
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|source| FlattenError::Tar { layer, entry: None, source })?;
    Ok((file, ops))
}

/// Parse every entry; file content offsets are stream positions plus `base`.
fn parse_entries<R: Read>(layer: usize, archive: &mut tar::Archive<R>, base: u64) -> Result<Vec<Op>> {
    let mut ops = Vec::new();
    let entries = archive.entries().map_err(|source| FlattenError::Tar { layer, entry: None, source })?;
    for entry in entries {
        let mut entry = entry.map_err(|source| FlattenError::Tar { layer, entry: None, source })?;
        if let Some(op) = parse_entry(layer, &mut entry, base)? {
            ops.push(op);
        }
    }
    Ok(ops)
}

/// Like Go's archive/tar (and so Docker): an empty numeric field reads as 0.
fn num(field: &[u8], parse: impl FnOnce() -> io::Result<u64>) -> io::Result<u64> {
    if field.iter().all(|&b| b == 0 || b == b' ') {
        Ok(0)
    } else {
        parse()
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn parse_entry<R: Read>(layer: usize, entry: &mut tar::Entry<'_, R>, base: u64) -> Result<Option<Op>> {
    let raw_path = entry.path_bytes().into_owned();
    let name = lossy(&raw_path);
    let ty = entry.header().entry_type();
    let tar_err = |source: io::Error| FlattenError::Tar { layer, entry: Some(name.clone()), source };
    let unsafe_path = |reason: &str| FlattenError::UnsafePath { layer, entry: name.clone(), reason: reason.to_string() };
    let unsupported = |what: String| FlattenError::Unsupported { layer, entry: name.clone(), what };

    match ty {
        // Global PAX headers carry no file; Docker ignores them too.
        EntryType::XGlobalHeader => return Ok(None),
        EntryType::GNUSparse => return Err(unsupported("a GNU sparse file".into())),
        _ => {}
    }

    let key = path::normalize(&raw_path).map_err(unsafe_path)?;
    let is_dir = ty == EntryType::Directory || (matches!(ty, EntryType::Regular) && raw_path.ends_with(b"/"));

    if key.is_empty() {
        // The root directory itself: like Docker's layer apply, ignore it.
        return if is_dir { Ok(None) } else { Err(unsafe_path("the image root can only be a directory")) };
    }

    let comps: Vec<&[u8]> = path::components(&key).collect();
    // AUFS metadata (`.wh..wh.plnk`, `.wh..wh.aufs`...) at the root: skipped.
    if comps[0].starts_with(b".wh..wh.") && !(comps.len() == 1 && comps[0] == b".wh..wh..opq") {
        return Ok(None);
    }
    if comps[..comps.len() - 1].iter().any(|c| c.starts_with(b".wh.")) {
        return Err(unsafe_path("a directory name starts with the whiteout prefix `.wh.`"));
    }
    let (parent, last) = path::split_last(&key);
    if let Some(hidden) = last.strip_prefix(b".wh.") {
        if last == b".wh..wh..opq" {
            return Ok(Some(Op::Opaque(parent.to_vec())));
        }
        if hidden.starts_with(b".wh.") {
            // Other AUFS metadata names: not part of the filesystem.
            return Ok(None);
        }
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Err(unsafe_path("whiteout of `.`, `..` or of an empty name"));
        }
        return Ok(Some(Op::Whiteout(path::join(parent, hidden))));
    }

    // PAX records of the entry.
    let mut pax = BTreeMap::new();
    let mut pax_uname = None;
    let mut pax_gname = None;
    let mut pax_mtime = None;
    if let Some(exts) = entry.pax_extensions().map_err(tar_err)? {
        for ext in exts {
            let ext = ext.map_err(tar_err)?;
            let (k, v) = (ext.key_bytes(), ext.value_bytes());
            match k {
                b"path" | b"linkpath" | b"size" | b"uid" | b"gid" => {}
                b"uname" => pax_uname = Some(v.to_vec()),
                b"gname" => pax_gname = Some(v.to_vec()),
                k if k.starts_with(b"GNU.sparse.") => return Err(unsupported("a PAX sparse file".into())),
                _ => {
                    if k == b"mtime" {
                        pax_mtime = std::str::from_utf8(v).ok().and_then(|s| s.split('.').next()?.parse::<u64>().ok());
                    }
                    pax.insert(k.to_vec(), v.to_vec());
                }
            }
        }
    }

    let h = entry.header();
    let old = h.as_old();
    let mode = num(&old.mode, || h.mode().map(u64::from)).map_err(tar_err)? as u32 & 0o7777;
    // The tar crate already applied PAX uid/gid to the header.
    let uid = num(&old.uid, || h.uid()).map_err(tar_err)?;
    let gid = num(&old.gid, || h.gid()).map_err(tar_err)?;
    let uname = pax_uname.unwrap_or_else(|| h.username_bytes().unwrap_or_default().to_vec());
    let gname = pax_gname.unwrap_or_else(|| h.groupname_bytes().unwrap_or_default().to_vec());
    let mtime = match pax_mtime {
        Some(m) => m,
        None => num(&old.mtime, || h.mtime()).map_err(tar_err)?,
    };
    let mut meta = Meta { mode, uid, gid, uname, gname, mtime, dev_major: 0, dev_minor: 0, size: 0, pax };

    let link_target = || entry.link_name_bytes().map(|c| c.into_owned()).unwrap_or_default();
    let kind = match ty {
        _ if is_dir => PutKind::Dir,
        EntryType::Regular | EntryType::Continuous => {
            meta.size = entry.size();
            PutKind::File { offset: base + entry.raw_file_position() }
        }
        EntryType::Symlink => PutKind::Symlink(link_target()),
        EntryType::Link => {
            let raw = link_target();
            let bad =
                |reason: &str| FlattenError::BadHardlink { layer, entry: name.clone(), target: lossy(&raw), reason: reason.to_string() };
            let target = path::normalize(&raw).map_err(bad)?;
            if target.is_empty() {
                return Err(bad("the target is the image root"));
            }
            PutKind::Hardlink(target)
        }
        EntryType::Char | EntryType::Block => {
            meta.dev_major = h.device_major().map_err(tar_err)?.unwrap_or(0);
            meta.dev_minor = h.device_minor().map_err(tar_err)?.unwrap_or(0);
            if ty == EntryType::Char {
                PutKind::Char
            } else {
                PutKind::Block
            }
        }
        EntryType::Fifo => PutKind::Fifo,
        other => return Err(unsupported(format!("tar entry type {:?}", other.as_byte() as char))),
    };
    Ok(Some(Op::Put { key, kind, meta }))
}
