//! Images in memory: which images, their descriptors, and where each blob's
//! bytes can be read from. Blob *contents* stay where they are (a file range, a
//! spool file); only small JSON documents are held in memory.
pub mod archive;
pub mod classify;
pub mod docker_archive;
pub mod files;
pub mod media_types;
pub mod oci;
pub mod platform;
mod source;

pub use platform::{Platform, PlatformFilter};
pub use source::{open_source, SourceOptions};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::reference::ImageName;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Cursor, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;

/// An OCI content descriptor. Unknown fields are kept.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Descriptor {
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Self {
        Descriptor { media_type: media_type.to_string(), digest, size, platform: None, annotations: None, extra: Default::default() }
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }
}

/// An image manifest (OCI or Docker schema 2), the fields ferry follows.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    #[serde(default)]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// An image index / manifest list.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    #[serde(default)]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// Where a blob's bytes are.
#[derive(Debug, Clone)]
pub enum BlobSource {
    /// Small documents (manifests, configs) held in memory.
    Bytes(Arc<Vec<u8>>),
    /// A byte range of a file: a blob in an OCI directory, an entry in an
    /// uncompressed archive, a range of a spool file.
    FileRange { path: PathBuf, offset: u64, len: u64 },
    /// A blob ferry compressed as it arrived (a Docker Engine export, when the
    /// bundle is zstd too): whole zstd frames at `offset..offset + stored` of a
    /// spool file, `digest` taken of the uncompressed bytes on the way in. A
    /// zstd bundle of the same `level` takes the frames as they are.
    Zstd { path: PathBuf, offset: u64, stored: u64, level: i32, digest: Digest },
    /// A blob of a `docker://` source, pulled when it is read (src/registry/prefetch.rs).
    Registry { pull: Arc<crate::registry::prefetch::Prefetch>, digest: Digest, size: u64 },
    /// A blob streamed from a service when read (containerd's content store).
    Remote(Arc<dyn OpenBlob>),
}

/// Opens a stream of a blob's bytes held by a service.
pub trait OpenBlob: Send + Sync + std::fmt::Debug {
    fn open(&self) -> io::Result<Box<dyn Read + Send>>;
}

impl BlobSource {
    pub fn open(&self) -> io::Result<Box<dyn Read + Send>> {
        match self {
            BlobSource::Bytes(b) => Ok(Box::new(Cursor::new(ArcBytes(b.clone())))),
            BlobSource::FileRange { path, offset, len } => {
                let mut f = File::open(path)?;
                f.seek(SeekFrom::Start(*offset))?;
                Ok(Box::new(f.take(*len)))
            }
            BlobSource::Zstd { .. } => {
                let frames = io::BufReader::with_capacity(1 << 20, self.open_stored()?);
                Ok(Box::new(zstd::stream::read::Decoder::with_buffer(frames)?))
            }
            BlobSource::Remote(blob) => blob.open(),
            BlobSource::Registry { pull, digest, size } => pull.open(digest, *size),
        }
    }

    /// The bytes as stored: for [`BlobSource::Zstd`] the compressed frames,
    /// for the others the same as [`BlobSource::open`].
    pub fn open_stored(&self) -> io::Result<Box<dyn Read + Send>> {
        match self {
            BlobSource::Zstd { path, offset, stored, .. } => {
                let mut f = File::open(path)?;
                f.seek(SeekFrom::Start(*offset))?;
                Ok(Box::new(f.take(*stored)))
            }
            _ => self.open(),
        }
    }

    /// The spool or archive file the bytes live in, if any.
    pub fn file(&self) -> Option<&PathBuf> {
        match self {
            BlobSource::Bytes(_) | BlobSource::Remote(_) | BlobSource::Registry { .. } => None,
            BlobSource::FileRange { path, .. } | BlobSource::Zstd { path, .. } => Some(path),
        }
    }

    /// Read it whole (only for small documents).
    pub fn read_all(&self, limit: u64) -> Result<Vec<u8>> {
        if let BlobSource::Bytes(b) = self {
            return Ok(b.as_ref().clone());
        }
        let mut buf = Vec::new();
        self.open().and_then(|r| r.take(limit + 1).read_to_end(&mut buf)).map_err(|e| Error::io("reading image metadata", e))?;
        if buf.len() as u64 > limit {
            return Err(Error::format(format!("a metadata document is larger than {limit} bytes")));
        }
        Ok(buf)
    }
}

struct ArcBytes(Arc<Vec<u8>>);
impl AsRef<[u8]> for ArcBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Largest JSON document (manifest, index, config) ferry reads into memory.
pub const MAX_DOCUMENT: u64 = 16 << 20;

/// One blob of the set.
#[derive(Debug, Clone)]
pub struct Blob {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    pub source: BlobSource,
}

/// What `manifest.json` (the docker-archive view) says about one image.
#[derive(Debug, Clone, PartialEq)]
pub struct DockerView {
    pub config: Digest,
    pub layers: Vec<Digest>,
}

/// One image reference of the set.
#[derive(Debug, Clone)]
pub struct Image {
    /// Full name, if the source gave one (docker-archive RepoTags, containerd annotation).
    pub name: Option<ImageName>,
    /// `org.opencontainers.image.ref.name` as the source had it (often only a tag).
    pub ref_name: Option<String>,
    /// Manifest or index this reference points at.
    pub descriptor: Descriptor,
    /// The single-platform manifest `docker load` gets.
    pub docker: Option<DockerView>,
}

impl Image {
    /// How the image is shown to users.
    pub fn display_name(&self) -> String {
        match (&self.name, &self.ref_name) {
            (Some(n), _) => n.familiar(),
            (None, Some(r)) => r.clone(),
            (None, None) => format!("<untagged {}>", self.descriptor.digest.short()),
        }
    }
}

/// Images plus every blob they need, each blob once.
#[derive(Default)]
pub struct ImageSet {
    pub images: Vec<Image>,
    blobs: Vec<Blob>,
    by_digest: HashMap<Digest, usize>,
    /// Temporary files the blob sources point into; removed on drop.
    pub(crate) spools: Vec<tempfile::TempPath>,
}

impl ImageSet {
    pub fn blobs(&self) -> &[Blob] {
        &self.blobs
    }

    pub fn blob(&self, digest: &Digest) -> Option<&Blob> {
        self.by_digest.get(digest).map(|&i| &self.blobs[i])
    }

    /// Add a blob unless one with the same digest is there already.
    pub fn add_blob(&mut self, blob: Blob) {
        if !self.by_digest.contains_key(&blob.digest) {
            self.by_digest.insert(blob.digest.clone(), self.blobs.len());
            self.blobs.push(blob);
        }
    }

    /// Merge another set (several `save` sources into one bundle).
    pub fn merge(&mut self, other: ImageSet) {
        for blob in other.blobs {
            self.add_blob(blob);
        }
        self.images.extend(other.images);
        self.spools.extend(other.spools);
    }

    /// The JSON bytes of a small blob (manifest, index, config).
    pub fn document(&self, digest: &Digest) -> Result<Vec<u8>> {
        let blob = self.blob(digest).ok_or_else(|| Error::format(format!("blob {digest} is referenced but missing from the source")))?;
        blob.source.read_all(MAX_DOCUMENT)
    }

    pub fn total_size(&self) -> u64 {
        self.blobs.iter().map(|b| b.size).sum()
    }
}

/// Most JSON values (numbers, strings, arrays, ...) a document may hold.
/// Parsed, each costs some 100 bytes: a 16 MiB document of tiny values
/// would cost 900 MiB. A manifest of 100 layers holds about 500.
pub const MAX_DOCUMENT_VALUES: u64 = 1 << 16;

/// Parse a JSON document with a message naming what it is.
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    parse_document(bytes).map_err(|e| Error::format(format!("{what} is not valid: {e}")))
}

/// Parse a JSON document of at most [`MAX_DOCUMENT_VALUES`] values (and
/// serde_json's 128 levels of nesting).
pub fn parse_document<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> std::result::Result<T, serde_json::Error> {
    count_values(bytes)?;
    serde_json::from_slice(bytes)
}

/// The JSON values of the one document `bytes` are, keeping none of them;
/// an error past [`MAX_DOCUMENT_VALUES`].
pub fn count_values(bytes: &[u8]) -> std::result::Result<u64, serde_json::Error> {
    use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use std::cell::Cell;
    struct Count<'a>(&'a Cell<u64>);
    impl Count<'_> {
        fn one<E: serde::de::Error>(&self) -> std::result::Result<(), E> {
            let n = self.0.get() + 1;
            self.0.set(n);
            if n > MAX_DOCUMENT_VALUES {
                return Err(E::custom(format!("more than {MAX_DOCUMENT_VALUES} JSON values in one document")));
            }
            Ok(())
        }
    }
    impl<'de> DeserializeSeed<'de> for Count<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Count<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> std::result::Result<(), E> {
            self.one()
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> std::result::Result<(), E> {
            self.one()
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> std::result::Result<(), E> {
            self.one()
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> std::result::Result<(), E> {
            self.one()
        }
        fn visit_str<E: serde::de::Error>(self, _: &str) -> std::result::Result<(), E> {
            self.one()
        }
        fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<(), E> {
            self.one()
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
            self.one()?;
            while seq.next_element_seed(Count(self.0))?.is_some() {}
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
            self.one()?;
            while map.next_key::<IgnoredAny>()?.is_some() {
                map.next_value_seed(Count(self.0))?;
            }
            Ok(())
        }
    }
    let count = Cell::new(0);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    Count(&count).deserialize(&mut de)?;
    de.end()?;
    Ok(count.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_bounded_in_values_and_depth() {
        assert_eq!(count_values(br#"[1,[2,"x"],{"a":null,"b":{}}]"#).unwrap(), 8);
        assert!(count_values(b"[1] [2]").is_err(), "one document");
        let many = format!("[{}0]", "0,".repeat(MAX_DOCUMENT_VALUES as usize));
        assert!(count_values(many.as_bytes()).unwrap_err().to_string().starts_with("more than 65536 JSON values in one document"));
        let deep = vec![b'['; 200];
        assert!(count_values(&deep).unwrap_err().to_string().starts_with("recursion limit exceeded"));
        assert!(parse_json::<serde_json::Value>(many.as_bytes(), "x").unwrap_err().to_string().starts_with("x is not valid: more than"));
    }
}
