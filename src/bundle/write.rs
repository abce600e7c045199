//! `ferry save`: stream an image set into a bundle at a location.
//! Pipeline: blobs → tar → compress → [encrypt] → parts (+ sha256) → transport.
use super::checksums::{ChecksumFile, ChecksumLine};
use super::in_place;
use super::layout::{self, BundleMeta};
use super::names;
use super::parts::{PartRecord, PartWriter};
use super::progress::Progress;
use super::tarstream::TarWriter;
use crate::compress::{self, Compression, FinishWrite};
use crate::digest::HashingReader;
use crate::error::{Error, Result};
use crate::image::{media_types, BlobSource, ImageSet};
use ferry_transports::{PutMode, Transport};
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Wraps the compressed stream (e.g. in age encryption) before it is split.
pub type Encryptor = Box<dyn FnOnce(PartWriter) -> Result<Box<dyn FinishWrite>>>;

/// Makes `STEM.sha256.minisig` from the bytes of `STEM.sha256`.
pub type Signer = Box<dyn FnOnce(&[u8], &BundleSummary) -> Result<Vec<u8>>>;

pub struct SaveOptions {
    pub stem: String,
    pub compression: Compression,
    pub level: i32,
    pub split: Option<u64>,
    /// `--parity N` (with `split`): N Reed-Solomon parity parts.
    pub parity: Option<usize>,
    pub created: SystemTime,
    pub flattened: bool,
    pub encryptor: Option<Encryptor>,
    pub signer: Option<Signer>,
    /// Layers left out (`save --have`): recorded in index.json, not written.
    pub delta: Option<crate::delta::Delta>,
}

impl SaveOptions {
    pub fn new(stem: impl Into<String>) -> Self {
        SaveOptions {
            stem: stem.into(),
            compression: Compression::Zstd,
            level: Compression::Zstd.default_level(),
            split: None,
            parity: None,
            created: SystemTime::now(),
            flattened: false,
            encryptor: None,
            signer: None,
            delta: None,
        }
    }
}

/// What a signature's trusted comment names.
#[derive(Debug, Clone)]
pub struct BundleSummary {
    pub stem: String,
    pub images: Vec<String>,
    pub created: String,
}

#[derive(Debug, Clone)]
pub struct SaveReport {
    pub location: String,
    pub stem: String,
    pub parts: Vec<PartRecord>,
    pub images: Vec<String>,
    pub blobs: usize,
    /// Bytes of the inner tar (before compression).
    pub tar_bytes: u64,
    pub signed: bool,
    pub encrypted: bool,
    /// What a delta left out (`None` for a full bundle).
    pub delta: Option<crate::delta::Delta>,
    /// The parity geometry (`--parity`); its parts are the last of `parts`.
    pub parity: Option<crate::parity::Geometry>,
}

/// Counts bytes going into the compressor, for progress and the report.
struct Counting<W> {
    inner: W,
    count: u64,
}
impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

pub fn write_bundle(set: &ImageSet, transport: Arc<dyn Transport>, mut opts: SaveOptions, progress: &dyn Progress) -> Result<SaveReport> {
    names::check_stem(&opts.stem)?;
    if set.images.is_empty() {
        return Err(Error::usage("no images to save"));
    }
    let created = humantime::format_rfc3339_seconds(opts.created).to_string();
    let encrypted = opts.encryptor.is_some();
    let artifact = names::artifact_name(&opts.stem, opts.compression, encrypted);
    let delta = opts.delta.take().filter(|d| !d.is_empty());
    let meta = BundleMeta { created: created.clone(), flattened: opts.flattened, delta: delta.clone() };
    let mtime = opts.created.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let mut order = layout::blob_order(set)?;
    if let Some(delta) = &delta {
        // The target holds these: manifest.json and the manifests still name them.
        order.retain(|d| !delta.contains(d));
    }
    let total: u64 = order.iter().filter_map(|d| set.blob(d)).map(|b| b.size).sum();
    // Layers a Docker export left compressed in a spool next to the output: build the artifact around them there.
    // Not for a delta: the spool still holds the left-out layers, which would travel inside the artifact's padding.
    if let Some(plan) = in_place::plan(set, &order, &opts, &*transport).filter(|_| delta.is_none()) {
        if let Some((record, tar_bytes)) = in_place::write(plan, set, &meta, mtime, &artifact, &*transport, progress)? {
            let written = Written { records: vec![record], tar_bytes, encrypted, delta, parity: None };
            return publish(set, &*transport, opts, created, written, None);
        }
    }
    let parts = PartWriter::new(transport.clone(), artifact.clone(), opts.split);
    let parts = match opts.parity {
        Some(n) => parts.with_parity(&opts.stem, n)?,
        None => parts,
    };
    let encryptor = opts.encryptor.take();

    let result = (|| -> Result<Written> {
        let sealed: Box<dyn FinishWrite> = match encryptor {
            Some(encrypt) => encrypt(parts.clone())?,
            None => compress::plain(parts.clone()),
        };
        let level = opts.level;
        let encoder = compress::encoder(opts.compression, level, sealed)
            .map_err(|e| Error::io(format!("starting {} compression", opts.compression.name()), e))?;
        let mut tar = TarWriter::new(Counting { inner: encoder, count: 0 }, mtime);
        let io_err = |e: std::io::Error| Error::io(format!("writing {artifact} to {}", transport.describe()), e);

        write_head(&mut tar, set, &meta).map_err(io_err)?;

        progress.start(&format!("writing {artifact}"), Some(total));
        for digest in order {
            let blob = set.blob(&digest).expect("ordered from the set");
            let reading = |e| Error::io(format!("reading blob {digest}"), e);
            let actual = match &blob.source {
                // Compressed and hashed as it arrived, at this level: the frames go in as they are.
                BlobSource::Zstd { level: spooled, digest: hashed, .. } if *spooled == level && opts.compression == Compression::Zstd => {
                    let mut frames = blob.source.open_stored().map_err(reading)?;
                    tar.add_with(&digest.blob_path(), blob.size, |out| {
                        let spliced = out.inner.splice_zstd_frames(level, &mut frames)?;
                        assert!(spliced, "a zstd encoder at the level of the spooled frames takes them");
                        out.count += blob.size;
                        Ok(())
                    })
                    .map_err(io_err)?;
                    progress.advance(blob.size);
                    hashed.clone()
                }
                _ => {
                    let source = blob.source.open().map_err(reading)?;
                    let mut reader = HashingReader::new(ProgressReader { inner: source, progress });
                    let declared = media_types::layer_compression(&blob.media_type);
                    if opts.compression == Compression::Zstd && declared != Compression::None {
                        add_compressed(&mut tar, &digest.blob_path(), blob.size, declared, &mut reader).map_err(io_err)?;
                    } else {
                        tar.add_reader(&digest.blob_path(), blob.size, &mut reader).map_err(io_err)?;
                    }
                    reader.finish().0
                }
            };
            if actual != digest {
                return Err(Error::damaged_source(&digest, &actual));
            }
        }
        let counting = tar.finish().map_err(io_err)?;
        let tar_bytes = counting.count;
        counting.inner.finish_box().map_err(io_err)?;
        progress.finish();
        let mut records = parts.finish()?;
        let parity = parts.finish_parity()?.map(|(geometry, parity_records)| {
            records.extend(parity_records);
            geometry
        });
        Ok(Written { records, tar_bytes, encrypted, delta: None, parity })
    })();

    match result.map(|w| Written { delta, ..w }) {
        Ok(written) => publish(set, &*transport, opts, created, written, Some(&parts)),
        Err(e) => {
            parts.abort();
            Err(e)
        }
    }
}

/// A blob whose media type says `declared` (gzip, zstd): if its first bytes
/// say so too, its bytes go into the zstd stream (mostly) stored, not
/// compressed again (see [`FinishWrite::store`]); otherwise as any blob.
fn add_compressed(
    tar: &mut TarWriter<Counting<Box<dyn FinishWrite>>>,
    path: &str,
    size: u64,
    declared: Compression,
    data: &mut dyn Read,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(4);
    data.take(4.min(size)).read_to_end(&mut head)?;
    let mut rest = std::io::Cursor::new(&head[..]).chain(data).take(size);
    if Compression::detect(&head) != declared {
        return tar.add_reader(path, size, &mut rest);
    }
    tar.add_with(path, size, |out| {
        let stored = match out.inner.store(&mut rest)? {
            Some(n) => n,
            None => compress::copy_with_buffer(&mut vec![0u8; 256 << 10], &mut rest, &mut out.inner)?,
        };
        if stored < size {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{path}: source ended {} bytes early", size - stored),
            ));
        }
        out.count += size;
        Ok(())
    })
}

/// The oci-layout, index.json, manifest.json and blob directories that open the tar.
pub(super) fn write_head<W: Write>(tar: &mut TarWriter<W>, set: &ImageSet, meta: &BundleMeta) -> std::io::Result<()> {
    tar.add_bytes("oci-layout", layout::OCI_LAYOUT)?;
    tar.add_bytes("index.json", &layout::index_json(set, meta))?;
    tar.add_bytes("manifest.json", &layout::manifest_json(set))?;
    tar.add_dir("blobs/")?;
    tar.add_dir("blobs/sha256/")
}

/// The artifact as written.
struct Written {
    records: Vec<PartRecord>,
    /// Bytes of the inner tar.
    tar_bytes: u64,
    encrypted: bool,
    delta: Option<crate::delta::Delta>,
    parity: Option<crate::parity::Geometry>,
}

/// After the artifact: the signature, then `STEM.sha256` (its presence means
/// the bundle is complete). On failure the artifact's `parts` are removed.
fn publish(
    set: &ImageSet,
    transport: &dyn Transport,
    opts: SaveOptions,
    created: String,
    Written { records, tar_bytes, encrypted, delta, parity }: Written,
    parts: Option<&PartWriter>,
) -> Result<SaveReport> {
    let images: Vec<String> = set.images.iter().map(|i| i.display_name()).collect();
    let checksums = ChecksumFile {
        comments: parity.iter().map(|g| g.render()).collect(),
        lines: records.iter().map(|p| ChecksumLine { hex: p.digest.hex().to_string(), name: p.name.clone() }).collect(),
    };
    let checksum_text = checksums.render();
    let summary = BundleSummary { stem: opts.stem.clone(), images: images.clone(), created };
    let signed = opts.signer.is_some();
    let write_sidecars = || -> Result<()> {
        if let Some(sign) = opts.signer {
            let sig = sign(checksum_text.as_bytes(), &summary)?;
            put_small(transport, &names::signature_name(&opts.stem), &sig)?;
        }
        // Last: its presence means the bundle is complete.
        put_small(transport, &names::checksum_name(&opts.stem), checksum_text.as_bytes())
    };
    if let Err(e) = write_sidecars() {
        if let Some(parts) = parts {
            parts.abort();
        }
        // The data parts again (when built in place) and the parity parts.
        records.iter().for_each(|r| drop(transport.delete(&r.name)));
        return Err(e);
    }
    Ok(SaveReport {
        location: transport.describe(),
        stem: opts.stem,
        parts: records,
        images,
        blobs: set.blobs().len() - delta.as_ref().map_or(0, |d| d.left_out.len()),
        tar_bytes,
        signed,
        encrypted,
        delta,
        parity,
    })
}

/// Write a small file atomically (temporary name, then rename).
pub fn put_small(transport: &dyn Transport, name: &str, data: &[u8]) -> Result<()> {
    let mut upload = transport.put(name, PutMode::Fresh)?;
    upload.write_all(data).map_err(|e| Error::io(format!("writing {name} to {}", transport.describe()), e))?;
    upload.commit()?;
    Ok(())
}

struct ProgressReader<'a, R> {
    inner: R,
    progress: &'a dyn Progress,
}
impl<R: std::io::Read> std::io::Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}
