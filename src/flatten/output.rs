//! Writing an [`ImageSet`] to an image target (`ferry flatten`'s TARGET_IMAGE):
//!
//! - `docker-archive:PATH[:NAME]` and `oci-archive:PATH[:REF]`: one tar that
//!   is at the same time an OCI image layout and a docker-archive (the layout
//!   of a bundle's artifact, without ferry's bundle annotations), written
//!   under a temporary name next to PATH ([`PartialArchive`]) and renamed into
//!   place. `ferry flatten` appends each flattened layer to it as it is made,
//!   so the layer is written once; the documents and any other blob follow
//!   (consumers of archives do not depend on entry order).
//! - `oci:DIR[:REF]`: blobs staged next to DIR, then moved in; index.json is
//!   replaced last (a new or an existing layout; the same code as
//!   `ferry load --into oci:`).
//! - `docker-daemon:[NAME[:TAG]]`: through the engine's verified load (an
//!   uncompressed temporary bundle in the spool directory).
//!
//! A REF/NAME renames the one image written (skopeo's rule); with several
//! images it is a usage error.
use crate::bundle::layout::{self, BundleMeta};
use crate::bundle::tarstream::TarWriter;
use crate::bundle::verify::{Sink, Verified};
use crate::bundle::{Progress, SaveOptions};
use crate::compress::Compression;
use crate::digest::Digest;
use crate::digest::HashingReader;
use crate::error::{Error, Result};
use crate::image::{parse_json, ImageSet, Index};
use crate::load::OciDirSink;
use crate::reference::{ImageName, ImageRef};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::io::{BufWriter, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const BLOCK: usize = 512;

/// The directory temporary files for `target` go to: next to the output.
pub fn spool_dir_for_target(target: &ImageRef) -> PathBuf {
    let parent_of = |p: &Path| match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    match target {
        ImageRef::DockerArchive { path, .. } | ImageRef::OciArchive { path, .. } | ImageRef::OciDir { path, .. } => parent_of(path),
        ImageRef::DockerDaemon(_) | ImageRef::Containerd { .. } | ImageRef::Registry(_) => std::env::temp_dir(),
    }
}

/// How the target is named for messages.
pub fn describe_target(target: &ImageRef) -> String {
    match target {
        ImageRef::DockerArchive { path, .. } => format!("docker-archive:{}", path.display()),
        ImageRef::OciArchive { path, .. } => format!("oci-archive:{}", path.display()),
        ImageRef::OciDir { path, .. } => format!("oci:{}", path.display()),
        ImageRef::DockerDaemon(_) => "docker-daemon:".to_string(),
        ImageRef::Containerd { namespace, .. } => format!("containerd:{namespace}"),
        ImageRef::Registry(r) => r.display(),
    }
}

/// The archive file an archive target names (`None` for other targets).
pub fn archive_path(target: &ImageRef) -> Option<&Path> {
    match target {
        ImageRef::DockerArchive { path, .. } | ImageRef::OciArchive { path, .. } => Some(path),
        _ => None,
    }
}

/// Apply an archive target's NAME/REF to the set's one image.
pub fn name_for_archive(set: &mut ImageSet, target: &ImageRef) -> Result<()> {
    match target {
        ImageRef::DockerArchive { path, reference: Some(r) } => {
            let name = ImageName::parse(r)
                .ok_or_else(|| Error::usage(format!("docker-archive:{}:{r}: {r:?} is not an image name", path.display())))?;
            rename_one(set, r, Some(name), None)
        }
        ImageRef::OciArchive { reference: Some(r), .. } => rename_oci(set, r),
        _ => Ok(()),
    }
}

/// Write `set` to `target`.
pub fn write_image_set(set: &mut ImageSet, target: &ImageRef, progress: &dyn Progress) -> Result<()> {
    match target {
        ImageRef::DockerArchive { path, .. } | ImageRef::OciArchive { path, .. } => {
            name_for_archive(set, target)?;
            PartialArchive::create(path)?.finish(set, progress)
        }
        ImageRef::OciDir { path, reference } => write_oci_dir(set, path, reference.clone(), progress),
        ImageRef::DockerDaemon(name) => {
            if !name.is_empty() {
                let parsed =
                    ImageName::parse(name).ok_or_else(|| Error::usage(format!("docker-daemon:{name}: {name:?} is not an image name")))?;
                rename_one(set, name, Some(parsed), None)?;
            }
            write_daemon(set, progress)
        }
        ImageRef::Containerd { .. } => {
            Err(Error::usage("flatten cannot write to containerd: yet; flatten into oci-archive:FILE, save and load that"))
        }
        ImageRef::Registry(r) => Err(Error::usage(format!(
            "{}: flatten writes to oci:, oci-archive:, docker-archive: or docker-daemon:; load the result into a registry with `ferry save` + `ferry load --into docker://`",
            crate::untrusted::shown(&r.display())
        ))),
    }
}

fn rename_one(set: &mut ImageSet, r: &str, name: Option<ImageName>, ref_name: Option<String>) -> Result<()> {
    if set.images.len() != 1 {
        return Err(Error::usage(format!(
            "the target names one image ({r}) but there are {} images; choose one with SOURCE:REF or leave the target unnamed",
            set.images.len()
        )));
    }
    let img = &mut set.images[0];
    img.ref_name = ref_name.or_else(|| name.as_ref().map(|n| n.tag.clone()));
    img.name = name;
    Ok(())
}

/// `oci:` / `oci-archive:` REF: a full name (with `/` or `:`) names the image;
/// anything else is only the `org.opencontainers.image.ref.name`.
fn rename_oci(set: &mut ImageSet, r: &str) -> Result<()> {
    match ImageName::parse(r).filter(|_| r.contains('/') || r.contains(':')) {
        Some(name) => rename_one(set, r, Some(name), None),
        None => rename_one(set, r, None, Some(r.to_string())),
    }
}

/// index.json without the bundle annotations (a plain image layout).
fn plain_index_json(set: &ImageSet) -> Vec<u8> {
    let meta = BundleMeta { created: String::new(), flattened: false, delta: None };
    let mut v: serde_json::Value = serde_json::from_slice(&layout::index_json(set, &meta)).expect("ferry's own json");
    if let Some(o) = v.as_object_mut() {
        o.remove("annotations");
    }
    serde_json::to_vec_pretty(&v).expect("json serializes")
}

/// The layout tar (oci-layout, index.json, manifest.json, blobs) into `out`,
/// leaving out the blobs in `skip` (already in the archive). Every blob is
/// checked against its digest as it is copied.
pub fn write_layout_tar<W: Write>(set: &ImageSet, out: W, skip: &HashMap<Digest, u64>, progress: &dyn Progress) -> Result<W> {
    let io_err = |e: io::Error| Error::io("writing the image archive", e);
    let mut tar = TarWriter::new(out, 0);
    tar.add_bytes("oci-layout", layout::OCI_LAYOUT).map_err(io_err)?;
    tar.add_bytes("index.json", &plain_index_json(set)).map_err(io_err)?;
    tar.add_bytes("manifest.json", &layout::manifest_json(set)).map_err(io_err)?;
    tar.add_dir("blobs/").map_err(io_err)?;
    tar.add_dir("blobs/sha256/").map_err(io_err)?;
    for digest in layout::blob_order(set)? {
        if skip.contains_key(&digest) {
            continue;
        }
        let blob = set.blob(&digest).expect("ordered from the set");
        let source = blob.source.open().map_err(|e| Error::io(format!("reading blob {digest}"), e))?;
        let mut reader = HashingReader::new(Counted { inner: source, progress });
        tar.add_reader(&digest.blob_path(), blob.size, &mut reader).map_err(io_err)?;
        let (actual, _, _) = reader.finish();
        if actual != digest {
            return Err(Error::integrity(format!("blob {digest} does not match its digest (it hashes to {actual})")));
        }
    }
    tar.finish().map_err(io_err)
}

/// An archive target being written under a temporary name next to it.
/// Blobs of unknown size (flattened layers) can be appended while they are
/// made: a header placeholder, the data, then the header filled in. On drop
/// without [`PartialArchive::finish`] the temporary file is removed.
pub struct PartialArchive {
    target: PathBuf,
    temp: tempfile::TempPath,
    file: File,
    /// Blobs in the archive so far: digest → offset of their data.
    blobs: HashMap<Digest, u64>,
    /// Offset of the header of the blob being appended.
    header_at: Option<u64>,
    end: u64,
}

impl PartialArchive {
    pub fn create(target: &Path) -> Result<PartialArchive> {
        if target.is_dir() {
            return Err(Error::usage(format!(
                "{} is a directory; an archive target is a file path (oci:DIR is the directory form)",
                target.display()
            )));
        }
        let name = target.file_name().ok_or_else(|| Error::usage(format!("{}: not a file path", target.display())))?;
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let (file, temp) = tempfile::Builder::new()
            .prefix(&format!(".{}.", name.to_string_lossy()))
            .suffix(".partial")
            .tempfile_in(&dir)
            .map_err(|e| Error::io(format!("creating a temporary file in {}", dir.display()), e))?
            .into_parts();
        Ok(PartialArchive { target: target.to_path_buf(), temp, file, blobs: HashMap::new(), header_at: None, end: 0 })
    }

    /// The temporary file (blob sources may point into it).
    pub fn path(&self) -> &Path {
        &self.temp
    }

    /// Start appending a blob of yet unknown size: returns the file,
    /// positioned where the data goes, and that offset.
    pub fn begin_blob(&mut self) -> Result<(&mut File, u64)> {
        let at = self.end;
        self.file
            .seek(SeekFrom::Start(at))
            .and_then(|_| self.file.write_all(&[0u8; BLOCK]))
            .map_err(|e| Error::io(format!("writing {}", self.temp.display()), e))?;
        self.header_at = Some(at);
        Ok((&mut self.file, at + BLOCK as u64))
    }

    /// The blob's `size` bytes are written after its header placeholder: fill
    /// in the header and pad. Returns the offset of the blob's data (an
    /// earlier copy's if the same blob was appended before: this one is cut).
    pub fn finish_blob(&mut self, digest: &Digest, size: u64) -> Result<u64> {
        let at = self.header_at.take().expect("begin_blob first");
        let ctx = |e: io::Error| Error::io(format!("writing {}", self.temp.display()), e);
        if let Some(&existing) = self.blobs.get(digest) {
            self.file.set_len(at).map_err(ctx)?;
            return Ok(existing);
        }
        let data = at + BLOCK as u64;
        let pad = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
        self.file.write_all_at(&[0u8; BLOCK][..pad as usize], data + size).map_err(ctx)?;
        self.file.write_all_at(blob_header(digest, size).map_err(ctx)?.as_bytes(), at).map_err(ctx)?;
        self.end = data + size + pad;
        self.blobs.insert(digest.clone(), data);
        Ok(data)
    }

    /// Appending failed: cut what was written of that blob.
    pub fn abandon_blob(&mut self) {
        if let Some(at) = self.header_at.take() {
            let _ = self.file.set_len(at);
        }
    }

    /// Add everything else `set` needs (documents, blobs not in the archive
    /// yet), the end-of-archive marker, sync, and rename into place.
    pub fn finish(mut self, set: &ImageSet, progress: &dyn Progress) -> Result<()> {
        let ctx = |e: io::Error| Error::io(format!("writing {}", self.target.display()), e);
        self.file.set_len(self.end).and_then(|_| self.file.seek(SeekFrom::Start(self.end)).map(|_| ())).map_err(ctx)?;
        let rest: u64 = set.blobs().iter().filter(|b| !self.blobs.contains_key(&b.digest)).map(|b| b.size).sum();
        progress.start(&format!("writing {}", self.target.display()), Some(rest));
        let out = write_layout_tar(set, BufWriter::with_capacity(1 << 20, &mut self.file), &self.blobs, progress)?;
        out.into_inner().map_err(|e| ctx(e.into_error()))?;
        progress.finish();
        self.file.sync_all().map_err(ctx)?;
        self.temp.persist(&self.target).map_err(|e| ctx(e.error))?;
        Ok(())
    }
}

fn blob_header(digest: &Digest, size: u64) -> io::Result<tar::Header> {
    crate::bundle::tarstream::entry_header(&digest.blob_path(), size, 0o644, 0, tar::EntryType::Regular)
}

fn write_oci_dir(set: &ImageSet, dir: &Path, reference: Option<String>, progress: &dyn Progress) -> Result<()> {
    let mut sink = OciDirSink::new(dir, reference)?;
    let result = (|| -> Result<()> {
        sink.reserve(set.total_size())?;
        progress.start(&format!("writing {}", dir.display()), Some(set.total_size()));
        let mut content_bytes = 0;
        let order = layout::blob_order(set)?;
        for digest in &order {
            let blob = set.blob(digest).expect("ordered from the set");
            let mut reader = HashingReader::new(Counted {
                inner: blob.source.open().map_err(|e| Error::io(format!("reading blob {digest}"), e))?,
                progress,
            });
            let mut w = sink.begin_blob(digest, blob.size)?;
            io::copy(&mut reader, &mut w).map_err(|e| Error::io(format!("writing blob {digest} to {}", dir.display()), e))?;
            w.flush().map_err(|e| Error::io(format!("writing blob {digest} to {}", dir.display()), e))?;
            drop(w);
            let (actual, n, _) = reader.finish();
            if &actual != digest || n != blob.size {
                return Err(Error::integrity(format!("blob {digest} does not match its digest (it hashes to {actual})")));
            }
            content_bytes += n;
        }
        progress.finish();
        let index_bytes = plain_index_json(set);
        let index: Index = parse_json(&index_bytes, "index.json")?;
        let verified = Verified { index: Some(index), index_bytes, blobs: order.len(), content_bytes, ..Default::default() };
        sink.commit(&verified)
    })();
    if result.is_err() {
        sink.abort();
    }
    result
}

/// docker-daemon: the engine loads verified bundles, so the set is written as
/// an uncompressed bundle in a temporary directory and loaded from there.
fn write_daemon(set: &ImageSet, progress: &dyn Progress) -> Result<()> {
    let tmp = tempfile::Builder::new()
        .prefix(".ferry-flatten-load-")
        .tempdir_in(std::env::temp_dir())
        .map_err(|e| Error::io("creating a temporary directory", e))?;
    let transport = std::sync::Arc::new(ferry_transports::DirTransport::new(tmp.path()));
    let mut opts = SaveOptions::new("flattened");
    opts.compression = Compression::None;
    opts.level = 0;
    opts.flattened = true;
    crate::bundle::write_bundle(set, transport, opts, progress)?;
    let source = format!("{}/flattened", tmp.path().display());
    let open = |loc: &str| -> Result<Box<dyn ferry_transports::Transport>> { Ok(Box::new(ferry_transports::DirTransport::new(loc))) };
    let bundle = crate::bundle::locate(&source, &open)?;
    // ferry's own bundle, written just now: unsigned, loaded as such.
    let own = crate::trust::TrustOptions { allow_unsigned: true, ..Default::default() };
    let trusted = own.check(&bundle, crate::trust::Policy::RequireSignature)?;
    crate::engine::load_into_daemon(&trusted, None, progress)?;
    Ok(())
}

struct Counted<'a, R> {
    inner: R,
    progress: &'a dyn Progress,
}
impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}
