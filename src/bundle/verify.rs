//! The streaming verifier: reads the artifact's tar once and checks every entry
//! as it passes — names, sizes, digests, references — handing verified bytes to
//! a [`Sink`] that only commits them once the whole stream has checked out.
//!
//! Only these entries are accepted, as regular files: `oci-layout`,
//! `index.json`, `manifest.json`, and `blobs/sha256/<hex>` whose digest was
//! announced by a document before it (so its size is known before its bytes
//! are read: no decompression bomb, no path tricks, no links).
use crate::digest::{Digest, Hasher};
use crate::error::{Error, Result};
use crate::image::media_types as mt;
use crate::image::{parse_json, Descriptor, Index, Manifest, MAX_DOCUMENT};
use super::layout::{DockerManifestEntry, ANN_FORMAT, FORMAT_VERSION};
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
}

/// A sink that keeps nothing (`ferry verify`).
pub struct NullSink;
impl Sink for NullSink {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Index,
    Manifest,
    Config,
    Layer,
    Other,
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
}

/// Bytes read from a blob at a time: small enough that hashing and writing
/// them finds them still in the L2 cache.
const COPY_BUFFER: usize = 256 << 10;

/// Trailing bytes tolerated after the end-of-archive marker (tar padding).
const MAX_TRAILING: u64 = 1 << 20;

pub fn verify_stream(reader: &mut dyn Read, sink: &mut dyn Sink) -> Result<Verified> {
    match verify_inner(reader, sink) {
        Ok(v) => Ok(v),
        Err(e) => {
            sink.abort();
            Err(e)
        }
    }
}

fn verify_inner(reader: &mut dyn Read, sink: &mut dyn Sink) -> Result<Verified> {
    let mut expected: HashMap<Digest, (u64, Role)> = HashMap::new();
    let mut seen: HashSet<Digest> = HashSet::new();
    let mut verified = Verified::default();
    let mut have_layout = false;
    let mut reserved = false;
    let mut archive = crate::bounded_tar::archive(reader);
    // One copy buffer for every blob: no allocation per entry.
    let mut buf = vec![0u8; COPY_BUFFER];
    let bad = |m: String| Error::integrity(m);
    {
        let entries = archive.entries().map_err(|e| Error::io("reading the artifact", e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| Error::io("reading the artifact's tar stream", e))?;
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
            match path.as_str() {
                "oci-layout" => {
                    let bytes = read_document(&mut entry, size, &path)?;
                    let v: serde_json::Value = parse_json(&bytes, "oci-layout")?;
                    if v.get("imageLayoutVersion").and_then(|v| v.as_str()) != Some("1.0.0") {
                        return Err(bad("oci-layout has an unsupported imageLayoutVersion".into()));
                    }
                    have_layout = true;
                    sink.document(&path, &bytes)?;
                }
                "index.json" => {
                    let bytes = read_document(&mut entry, size, &path)?;
                    let index: Index = parse_json(&bytes, "index.json")?;
                    let format = index.annotations.as_ref().and_then(|a| a.get(ANN_FORMAT));
                    match format.map(String::as_str) {
                        Some(FORMAT_VERSION) => {}
                        Some(other) => {
                            return Err(Error::format(format!("bundle format {other} is newer than this ferry understands (1)")))
                        }
                        None => return Err(Error::format("the artifact is not a ferry bundle (index.json has no format annotation)")),
                    }
                    for d in &index.manifests {
                        expect(&mut expected, d, role_of_document(d))?;
                    }
                    sink.document(&path, &bytes)?;
                    verified.index = Some(index);
                    verified.index_bytes = bytes;
                }
                "manifest.json" => {
                    let bytes = read_document(&mut entry, size, &path)?;
                    let entries: Vec<DockerManifestEntry> = parse_json(&bytes, "manifest.json")?;
                    for e in &entries {
                        for p in std::iter::once(&e.config).chain(&e.layers) {
                            blob_digest(p).ok_or_else(|| bad(format!("manifest.json points at {p:?}, outside blobs/sha256/")))?;
                        }
                    }
                    sink.document(&path, &bytes)?;
                    verified.docker_manifest = entries;
                }
                _ => {
                    let digest = blob_digest(&path)
                        .ok_or_else(|| bad(format!("the artifact holds an unexpected entry {path:?}: refused")))?;
                    let (want_size, role) = *expected.get(&digest).ok_or_else(|| {
                        bad(format!("blob {digest} appears before anything references it (or is not referenced at all)"))
                    })?;
                    if !seen.insert(digest.clone()) {
                        return Err(bad(format!("blob {digest} appears twice")));
                    }
                    if size != want_size {
                        return Err(bad(format!("blob {digest} is {size} bytes but its descriptor says {want_size}")));
                    }
                    if matches!(role, Role::Layer) && !sink.wants_layers() {
                        verified.partial = true;
                        return Ok(verified);
                    }
                    if !reserved && matches!(role, Role::Layer) {
                        // Every document has been read: all sizes are known.
                        let total: u64 = expected.iter().filter(|(d, _)| !seen.contains(*d)).map(|(_, (s, _))| *s).sum();
                        sink.reserve(total + size)?;
                        reserved = true;
                    }
                    let keep = !matches!(role, Role::Layer) && size <= MAX_DOCUMENT;
                    let mut kept = Vec::new();
                    let mut hasher = Hasher::new();
                    {
                        let mut out = sink.begin_blob(&digest, size)?;
                        loop {
                            let n = entry.read(&mut buf).map_err(|e| Error::io(format!("reading blob {digest}"), e))?;
                            if n == 0 {
                                break;
                            }
                            hasher.update(&buf[..n]);
                            if keep {
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
                    verified.content_bytes += size;
                    match role {
                        Role::Index => {
                            let index: Index = parse_json(&kept, &format!("index {digest}"))?;
                            for d in &index.manifests {
                                expect(&mut expected, d, role_of_document(d))?;
                            }
                            verified.indexes.push((digest.clone(), index));
                        }
                        Role::Manifest => {
                            let m: Manifest = parse_json(&kept, &format!("manifest {digest}"))?;
                            expect(&mut expected, &m.config, Role::Config)?;
                            for l in &m.layers {
                                expect(&mut expected, l, Role::Layer)?;
                            }
                            verified.manifests.push((digest.clone(), m));
                        }
                        Role::Config => {
                            let _: serde_json::Value = parse_json(&kept, &format!("config {digest}"))?;
                            verified.configs.insert(digest.clone(), kept);
                        }
                        Role::Layer | Role::Other => {}
                    }
                }
            }
        }
    }
    // Read to the end so the outer checksums cover every byte; bounded.
    let mut rest = archive.into_inner();
    let trailing = io::copy(&mut (&mut rest).take(MAX_TRAILING + 1), &mut io::sink())
        .map_err(|e| Error::io("reading the end of the artifact", e))?;
    if trailing > MAX_TRAILING {
        return Err(bad("the artifact has unexpected data after the end of its tar archive".into()));
    }
    if !have_layout || verified.index.is_none() {
        return Err(bad("the artifact is incomplete: oci-layout or index.json is missing".into()));
    }
    if let Some((missing, _)) = expected.iter().find(|(d, _)| !seen.contains(*d)) {
        return Err(bad(format!("blob {missing} is referenced but missing from the artifact")));
    }
    for e in &verified.docker_manifest {
        for p in std::iter::once(&e.config).chain(&e.layers) {
            let d = blob_digest(p).expect("checked when read");
            if !seen.contains(&d) {
                return Err(bad(format!("manifest.json points at {p}, which is missing from the artifact")));
            }
        }
    }
    sink.commit(&verified)?;
    Ok(verified)
}

fn role_of_document(d: &Descriptor) -> Role {
    if mt::is_index(&d.media_type) {
        Role::Index
    } else if mt::is_manifest(&d.media_type) || d.media_type.is_empty() {
        Role::Manifest
    } else {
        Role::Other
    }
}

fn expect(expected: &mut HashMap<Digest, (u64, Role)>, d: &Descriptor, role: Role) -> Result<()> {
    match expected.get(&d.digest) {
        Some((size, _)) if *size != d.size => Err(Error::integrity(format!(
            "blob {} is described with two sizes ({size} and {})",
            d.digest, d.size
        ))),
        Some(_) => Ok(()),
        None => {
            expected.insert(d.digest.clone(), (d.size, role));
            Ok(())
        }
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
    entry.read_to_end(&mut buf).map_err(|e| Error::io(format!("reading {name}"), e))?;
    Ok(buf)
}
