//! The streaming verifier: reads the artifact's tar once and checks every entry
//! as it passes — names, sizes, digests, references — handing verified bytes to
//! a [`Sink`] that only commits them once the whole stream has checked out.
//!
//! Only these entries are accepted, as regular files: `oci-layout`,
//! `index.json`, `manifest.json` (each once: one document set), and
//! `blobs/sha256/<hex>` whose digest was announced by a document before it
//! (so its size is known before its bytes are read: no decompression bomb,
//! no path tricks, no links). What a blob is comes from its descriptor and
//! its content alike ([`crate::image::classify`]); each document is at most
//! [`MAX_DOCUMENT`] bytes, [`crate::image::MAX_DOCUMENT_VALUES`] JSON values
//! and 128 levels deep, all of them at most [`MAX_DOCUMENTS_BYTES`] and
//! [`MAX_DOCUMENTS_VALUES`]; declared sizes are added up with checks; after
//! the end-of-archive marker only zeros may follow. The tar is read through
//! [`crate::bounded_tar`], and anything wrong with it is exit 3.
use super::layout::{DockerManifestEntry, ANN_FORMAT, FORMAT_VERSION};
use crate::bounded_tar::BoundedTar;
use crate::delta::Delta;
use crate::digest::{Digest, Hasher};
use crate::error::{unwrap_io, Error, Result};
use crate::image::classify::{classify, Claim, Kind};
use crate::image::{Descriptor, Index, Manifest, MAX_DOCUMENT};
use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};

/// Where verified content goes. Nothing may become visible before `commit`.
pub trait Sink {
    /// Bytes of the declared content about to arrive (check free space here).
    fn reserve(&mut self, _total: u64) -> Result<()> {
        Ok(())
    }
    /// A top-level document (`oci-layout`, `index.json`, `manifest.json`).
    fn document(&mut self, _name: &str, _bytes: &[u8]) -> Result<()> {
        Ok(())
    }
    /// Start a blob; its bytes are written to the returned writer.
    fn begin_blob(&mut self, _digest: &Digest, _size: u64) -> Result<Box<dyn Write + '_>> {
        Ok(Box::new(io::sink()))
    }
    /// The blob's digest checked out.
    fn blob_verified(&mut self, _digest: &Digest) -> Result<()> {
        Ok(())
    }
    /// Everything checked out: make it visible.
    fn commit(&mut self, _verified: &Verified) -> Result<()> {
        Ok(())
    }
    /// Something failed: remove what was staged.
    fn abort(&mut self) {}
    /// `false` stops reading at the first layer (`inspect` needs only documents).
    fn wants_layers(&self) -> bool {
        true
    }
    /// The bundle is a delta: it leaves out layers the target must hold.
    /// Called once index.json is read, before any blob: a target that
    /// cannot check it holds them refuses here, with nothing written.
    fn delta(&mut self, _delta: &Delta) -> Result<()> {
        Err(Error::MissingBase(
            "the bundle is a delta (it leaves out layers the target must already hold), and this target cannot take one".into(),
        ))
    }
}

/// A sink that keeps nothing (`ferry verify`): a delta is verified as one.
pub struct NullSink;
impl Sink for NullSink {
    fn delta(&mut self, _delta: &Delta) -> Result<()> {
        Ok(())
    }
}

/// What the verified bundle holds.
#[derive(Debug, Clone, Default)]
pub struct Verified {
    pub index: Option<Index>,
    pub index_bytes: Vec<u8>,
    pub docker_manifest: Vec<DockerManifestEntry>,
    pub blobs: usize,
    pub content_bytes: u64,
    /// Manifests with their configs' bytes (for reports and the engine).
    pub manifests: Vec<(Digest, Manifest)>,
    pub indexes: Vec<(Digest, Index)>,
    pub configs: HashMap<Digest, Vec<u8>>,
    /// Reading stopped before the layers (see [`Sink::wants_layers`]).
    pub partial: bool,
    /// What a delta bundle leaves out (checked against its manifests and configs).
    pub delta: Option<Delta>,
}

/// Bytes read from a blob at a time: small enough that hashing and writing
/// them finds them still in the L2 cache.
const COPY_BUFFER: usize = 256 << 10;

/// Zero bytes tolerated after the end-of-archive marker (tar record padding).
const MAX_TRAILING: u64 = 1 << 20;

/// The end-of-archive marker: two zero blocks.
const END_MARKER: usize = 1024;

/// Verify, and write the verified tar to `copy` as it streams: its entries
/// as they were read and then ferry's own end-of-archive marker, nothing of
/// what came after the artifact's (an archive target is exactly the entries
/// that were checked).
pub fn verify_stream_copying(reader: &mut dyn Read, sink: &mut dyn Sink, copy: Option<&mut dyn Write>) -> Result<Verified> {
    match verify_inner(reader, sink, copy) {
        Ok(v) => Ok(v),
        Err(e) => {
            sink.abort();
            Err(e)
        }
    }
}

/// What the documents read so far declare: every blob's size and what it is.
#[derive(Default)]
struct Expected {
    blobs: HashMap<Digest, (u64, Claim)>,
    /// The sum of the declared sizes of every distinct blob.
    declared: u64,
}

impl Expected {
    fn expect(&mut self, d: &Descriptor, claim: Claim, seen: bool) -> Result<()> {
        let Some((size, have)) = self.blobs.get_mut(&d.digest) else {
            self.declared = self
                .declared
                .checked_add(d.size)
                .ok_or_else(|| Error::integrity("the artifact's documents declare more than 2^64 bytes of blobs: refused".to_string()))?;
            self.blobs.insert(d.digest.clone(), (d.size, claim));
            return Ok(());
        };
        if *size != d.size {
            return Err(Error::integrity(format!("blob {} is described with two sizes ({size} and {})", d.digest, d.size)));
        }
        // A blob already read was checked as what it was first said to be.
        match have.merge(claim) {
            Some(merged) if !seen || merged == *have => {
                *have = merged;
                Ok(())
            }
            _ => Err(Error::integrity(format!(
                "blob {} is described both as {} and as {}",
                d.digest,
                have.with_article(),
                claim.with_article()
            ))),
        }
    }
}

fn verify_inner(reader: &mut dyn Read, sink: &mut dyn Sink, copy: Option<&mut dyn Write>) -> Result<Verified> {
    let mut expected = Expected::default();
    let mut seen: HashSet<Digest> = HashSet::new();
    let mut seen_bytes = 0u64;
    let mut verified = Verified::default();
    let mut documents_read: HashSet<&'static str> = HashSet::new();
    let mut budget = DocumentBudget::default();
    let mut reserved = false;
    let mut copy = copy;
    let bounded = BoundedTar::new(FromBelow(reader));
    let bounded = match copy.as_deref_mut() {
        Some(out) => bounded.copying_to(out),
        None => bounded,
    };
    let mut archive = tar::Archive::new(bounded);
    // One copy buffer for every blob: no allocation per entry.
    let mut buf = vec![0u8; COPY_BUFFER];
    let bad = |m: String| Error::integrity(m);
    {
        let entries = archive.entries().map_err(tar_error)?;
        for entry in entries {
            let mut entry = entry.map_err(tar_error)?;
            let path = String::from_utf8(entry.path_bytes().into_owned())
                .map_err(|_| bad("the artifact holds an entry whose name is not UTF-8".into()))?;
            let kind = entry.header().entry_type();
            let size = entry.size();
            if kind.is_dir() && (path == "blobs/" || path == "blobs/sha256/" || path == "blobs" || path == "blobs/sha256") {
                continue;
            }
            if !kind.is_file() {
                return Err(bad(format!("the artifact holds {path:?}, which is not a regular file: refused")));
            }
            if let Some(name) = ["oci-layout", "index.json", "manifest.json"].into_iter().find(|n| *n == path) {
                if !documents_read.insert(name) {
                    return Err(bad(format!("the artifact holds a second {name}: refused (a bundle has one document set)")));
                }
            }
            match path.as_str() {
                "oci-layout" => {
                    let bytes = read_document(&mut entry, size, &path)?;
                    let v: serde_json::Value = budget.parse(&bytes, "oci-layout in the artifact")?;
                    if v.get("imageLayoutVersion").and_then(|v| v.as_str()) != Some("1.0.0") {
                        return Err(bad("oci-layout has an unsupported imageLayoutVersion".into()));
                    }
                    sink.document(&path, &bytes)?;
                }
                "index.json" => {
                    let bytes = read_document(&mut entry, size, &path)?;
                    classify(Claim::Index, &bytes).map_err(|why| bad(format!("index.json in the artifact {why}")))?;
                    let index: Index = budget.parse(&bytes, "index.json in the artifact")?;
                    let format = index.annotations.as_ref().and_then(|a| a.get(ANN_FORMAT));
                    match format.map(String::as_str) {
                        Some(FORMAT_VERSION) => {}
                        Some(other) => return Err(Error::newer_format(other)),
                        None => return Err(Error::format("the artifact is not a ferry bundle (index.json has no format annotation)")),
                    }
                    for d in &index.manifests {
                        expected.expect(d, Claim::of_index_entry(d), seen.contains(&d.digest))?;
                    }
                    verified.delta = Delta::from_annotations(index.annotations.as_ref())?;
                    if let Some(delta) = &verified.delta {
                        sink.delta(delta)?;
                    }
                    sink.document(&path, &bytes)?;
                    verified.index = Some(index);
                    verified.index_bytes = bytes;
                }
                "manifest.json" => {
                    let bytes = read_document(&mut entry, size, &path)?;
                    let entries: Vec<DockerManifestEntry> = budget.parse(&bytes, "manifest.json in the artifact")?;
                    for e in &entries {
                        for p in std::iter::once(&e.config).chain(&e.layers) {
                            blob_digest(p).ok_or_else(|| bad(format!("manifest.json points at {p:?}, outside blobs/sha256/")))?;
                        }
                    }
                    sink.document(&path, &bytes)?;
                    verified.docker_manifest = entries;
                }
                _ => {
                    let digest =
                        blob_digest(&path).ok_or_else(|| bad(format!("the artifact holds an unexpected entry {path:?}: refused")))?;
                    let (want_size, claim) = *expected
                        .blobs
                        .get(&digest)
                        .ok_or_else(|| bad(format!("blob {digest} appears before anything references it (or is not referenced at all)")))?;
                    if !seen.insert(digest.clone()) {
                        return Err(bad(format!("blob {digest} appears twice")));
                    }
                    if size != want_size {
                        return Err(bad(format!("blob {digest} is {size} bytes but its descriptor says {want_size}")));
                    }
                    let document = claim.is_document();
                    if document && size > MAX_DOCUMENT {
                        return Err(bad(format!(
                            "blob {digest} is {} but {size} bytes, more than a metadata document may be",
                            claim.with_article()
                        )));
                    }
                    if claim == Claim::Layer && !sink.wants_layers() {
                        verified.partial = true;
                        return Ok(verified);
                    }
                    if !reserved && claim == Claim::Layer {
                        // Every document has been read: all sizes are known (left-out layers take no room).
                        // Their sizes are the documents' own, not the delta record's: the record is
                        // only checked at the end, and must not be able to switch this check off.
                        let left_out: u64 = verified.delta.as_ref().map_or(0, |d| {
                            d.left_out.iter().filter_map(|l| expected.blobs.get(&l.digest)).fold(0u64, |sum, (s, _)| sum.saturating_add(*s))
                        });
                        sink.reserve(expected.declared.saturating_sub(seen_bytes).saturating_sub(left_out))?;
                        reserved = true;
                    }
                    seen_bytes += size;
                    let mut kept = Vec::new();
                    let mut hasher = Hasher::new();
                    {
                        let mut out = sink.begin_blob(&digest, size)?;
                        loop {
                            let n = entry.read(&mut buf).map_err(tar_error)?;
                            if n == 0 {
                                break;
                            }
                            hasher.update(&buf[..n]);
                            if document {
                                kept.extend_from_slice(&buf[..n]);
                            }
                            out.write_all(&buf[..n]).map_err(|e| Error::io(format!("writing blob {digest}"), e))?;
                        }
                        out.flush().map_err(|e| Error::io(format!("writing blob {digest}"), e))?;
                    }
                    let actual = hasher.finish();
                    if actual != digest {
                        return Err(bad(format!("blob {digest} is corrupt: its content hashes to {actual}")));
                    }
                    sink.blob_verified(&digest)?;
                    verified.blobs += 1;
                    verified.content_bytes =
                        verified.content_bytes.checked_add(size).ok_or_else(|| bad("the artifact holds more than 2^64 bytes".into()))?;
                    let kind = classify(claim, &kept).map_err(|why| bad(format!("blob {digest} {why}")))?;
                    if let Some((_, have)) = expected.blobs.get_mut(&digest) {
                        *have = Claim::settled(kind);
                    }
                    match kind {
                        Kind::Index => {
                            let index: Index = budget.parse(&kept, &format!("index {digest}"))?;
                            for d in &index.manifests {
                                expected.expect(d, Claim::of_index_entry(d), seen.contains(&d.digest))?;
                            }
                            verified.indexes.push((digest.clone(), index));
                        }
                        Kind::Manifest => {
                            let m: Manifest = budget.parse(&kept, &format!("manifest {digest}"))?;
                            // Readers of the manifest add its sizes up (inspect, engines).
                            m.layers
                                .iter()
                                .try_fold(m.config.size, |sum, l| sum.checked_add(l.size))
                                .ok_or_else(|| bad(format!("manifest {digest} declares more than 2^64 bytes of blobs: refused")))?;
                            expected.expect(&m.config, Claim::Config, seen.contains(&m.config.digest))?;
                            for l in &m.layers {
                                expected.expect(l, Claim::Layer, seen.contains(&l.digest))?;
                            }
                            verified.manifests.push((digest.clone(), m));
                        }
                        Kind::Config => {
                            // Kept, and parsed by its readers (inspect): bounded like the others.
                            budget.spend(&kept, &format!("config {digest}"))?;
                            verified.configs.insert(digest.clone(), kept);
                        }
                        Kind::Layer | Kind::Other => {}
                    }
                }
            }
        }
    }
    let mut rest = archive.into_inner();
    if rest.end_of_entries().is_none() {
        return Err(bad("the artifact's tar stream ends without its end-of-archive marker".into()));
    }
    // Read to the end so the outer checksums cover every byte: the rest of
    // the marker and padding, zeros only; bounded.
    let (trailing, only_zeros) = read_trailing(&mut rest)?;
    if !only_zeros {
        return Err(bad("the artifact has data after the end of its tar archive: refused".into()));
    }
    if trailing > MAX_TRAILING {
        return Err(bad(format!("the artifact has more than {MAX_TRAILING} bytes of padding after the end of its tar archive: refused")));
    }
    if trailing + 512 < END_MARKER as u64 {
        return Err(bad("the artifact's tar stream ends without its end-of-archive marker".into()));
    }
    if !documents_read.contains("oci-layout") || verified.index.is_none() {
        return Err(bad("the artifact is incomplete: oci-layout or index.json is missing".into()));
    }
    // Exactly the layers a delta records may be absent, and they must be.
    let left_out = |d: &Digest| verified.delta.as_ref().is_some_and(|delta| delta.contains(d));
    if let Some((missing, _)) = expected.blobs.iter().find(|(d, _)| !seen.contains(*d) && !left_out(d)) {
        return Err(bad(format!("blob {missing} is referenced but missing from the artifact")));
    }
    if let Some(delta) = &verified.delta {
        for l in &delta.left_out {
            if seen.contains(&l.digest) {
                return Err(bad(format!("blob {} is recorded as left out, but the artifact holds it", l.digest)));
            }
            match expected.blobs.get(&l.digest) {
                Some((size, Claim::Layer)) if *size == l.size => {}
                _ => {
                    return Err(bad(format!(
                        "blob {} is recorded as a left-out layer, but no manifest has it as one of {} bytes",
                        l.digest, l.size
                    )))
                }
            }
        }
        crate::delta::check_record(delta, verified.manifests.iter().map(|(_, m)| (m, verified.configs.get(&m.config.digest))))?;
    }
    for e in &verified.docker_manifest {
        for p in std::iter::once(&e.config).chain(&e.layers) {
            let d = blob_digest(p).ok_or_else(|| bad(format!("manifest.json points at {p:?}, outside blobs/sha256/")))?;
            if !seen.contains(&d) && !left_out(&d) {
                return Err(bad(format!("manifest.json points at {p}, which is missing from the artifact")));
            }
        }
    }
    if let Some(out) = copy {
        out.write_all(&[0u8; END_MARKER]).map_err(|e| Error::io("writing the verified tar", e))?;
    }
    sink.commit(&verified)?;
    Ok(verified)
}

/// Bytes after the first end-of-archive block (at most [`MAX_TRAILING`] + 1
/// are read) and whether they are all zero.
fn read_trailing(rest: &mut dyn Read) -> Result<(u64, bool)> {
    let mut buf = [0u8; 64 << 10];
    let mut total = 0u64;
    let mut zeros = true;
    while total <= MAX_TRAILING {
        let n = match rest.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(tar_error(e)),
        };
        zeros &= buf[..n].iter().all(|&b| b == 0);
        total += n as u64;
        if !zeros {
            break;
        }
    }
    Ok((total, zeros))
}

/// Errors of the stream below the tar reader, carried as ferry errors so
/// that what the tar reader says itself is told apart from them.
struct FromBelow<'a>(&'a mut dyn Read);

impl Read for FromBelow<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|e| Error::io("reading the artifact", e).into_io())
    }
}

/// An error of the tar stream: the tar reader's own complaints are about
/// bytes that travelled (exit 3); errors from below keep what they are.
fn tar_error(e: io::Error) -> Error {
    match unwrap_io(e) {
        Ok(ours) => ours,
        Err(e) => Error::integrity(format!("the artifact's tar stream is invalid: {e}")),
    }
}

/// What the documents of one bundle may hold in all: they are kept in
/// memory (a bundle of many small manifests is no way around [`MAX_DOCUMENT`]).
pub const MAX_DOCUMENTS_BYTES: u64 = 32 << 20;
pub const MAX_DOCUMENTS_VALUES: u64 = 1 << 17;

/// The documents read so far, against [`MAX_DOCUMENTS_BYTES`] and [`MAX_DOCUMENTS_VALUES`].
#[derive(Default)]
struct DocumentBudget {
    bytes: u64,
    values: u64,
}

impl DocumentBudget {
    /// Count a document in. Not valid JSON, more than 128 levels deep (serde_json's
    /// limit) or more than [`crate::image::MAX_DOCUMENT_VALUES`] values: damaged or hostile bytes.
    fn spend(&mut self, bytes: &[u8], what: &str) -> Result<()> {
        let values = crate::image::count_values(bytes).map_err(|e| Error::integrity(format!("{what} is not valid JSON: {e}")))?;
        self.bytes += bytes.len() as u64;
        self.values += values;
        if self.bytes > MAX_DOCUMENTS_BYTES || self.values > MAX_DOCUMENTS_VALUES {
            return Err(Error::integrity(format!(
                "the artifact's documents hold more than {} MiB or {MAX_DOCUMENTS_VALUES} JSON values in all (reached at {what}): refused",
                MAX_DOCUMENTS_BYTES >> 20
            )));
        }
        Ok(())
    }

    fn parse<T: serde::de::DeserializeOwned>(&mut self, bytes: &[u8], what: &str) -> Result<T> {
        self.spend(bytes, what)?;
        serde_json::from_slice(bytes).map_err(|e| Error::integrity(format!("{what} is not valid JSON: {e}")))
    }
}

fn blob_digest(path: &str) -> Option<Digest> {
    Digest::from_hex(path.strip_prefix("blobs/sha256/")?).ok()
}

fn read_document(entry: &mut dyn Read, size: u64, name: &str) -> Result<Vec<u8>> {
    if size > MAX_DOCUMENT {
        return Err(Error::integrity(format!("{name} is {size} bytes, more than a metadata document may be")));
    }
    let mut buf = Vec::with_capacity(size as usize);
    entry.read_to_end(&mut buf).map_err(tar_error)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(n: u8, size: u64) -> Descriptor {
        Descriptor::new("application/vnd.oci.image.layer.v1.tar", Digest::of_bytes(&[n]), size)
    }

    #[test]
    fn declared_sizes_are_added_up_with_checks() {
        let mut e = Expected::default();
        e.expect(&desc(1, u64::MAX / 2), Claim::Layer, false).unwrap();
        // The same blob again is counted once.
        e.expect(&desc(1, u64::MAX / 2), Claim::Layer, false).unwrap();
        e.expect(&desc(2, u64::MAX / 2), Claim::Layer, false).unwrap();
        let err = e.expect(&desc(3, 2), Claim::Layer, false).unwrap_err();
        assert_eq!(err.kind(), crate::error::ErrorKind::Integrity);
        assert!(err.to_string().contains("declare more than 2^64 bytes of blobs"), "{err}");
        assert!(e.expect(&desc(1, 7), Claim::Layer, false).unwrap_err().to_string().contains("two sizes"));
    }

    #[test]
    fn a_blob_read_as_one_thing_is_not_another() {
        let mut e = Expected::default();
        e.expect(&desc(1, 2), Claim::Config, false).unwrap();
        e.expect(&desc(1, 2), Claim::Layer, true).unwrap();
        e.expect(&desc(2, 2), Claim::Layer, false).unwrap();
        let err = e.expect(&desc(2, 2), Claim::Config, true).unwrap_err();
        assert!(err.to_string().ends_with("is described both as a layer and as a config"), "{err}");
        e.expect(&desc(3, 2), Claim::Manifest, false).unwrap();
        assert!(e.expect(&desc(3, 2), Claim::Index, false).is_err());
    }
}
