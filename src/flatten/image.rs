//! Flatten whole images of an [`ImageSet`]: every single-platform manifest
//! gets one layer (the filesystem a container sees, from
//! [`super::flatten_layers`]), a rewritten config ([`super::flatten_config`])
//! and a new OCI manifest; an index gets a new index pointing at the flattened
//! manifests. Image names stay. See docs/FLATTEN.md.
//!
//! The new layer is an *uncompressed* tar (`application/vnd.oci.image.layer.v1.tar`):
//! bundles are compressed as a whole (zstd/gzip), so compressing the layer too
//! would cost CPU for nothing and hide redundancy from the outer compressor;
//! its digest is then its diff_id, computed once while it is written.
//!
//! Resources: each source layer is read once (decompressed per its media type,
//! its digest checked as it streams); the flattened layer is written to a
//! temporary file in `tmp_dir` (next to the output) that becomes the blob's
//! [`BlobSource::FileRange`] and lives as long as the returned set.
use super::output::PartialArchive;
use super::{flatten_config, flatten_layer_inputs, FlattenError, FlattenStats, LayerInput};
use crate::bundle::Progress;
use crate::compress::{self, Compression};
use crate::digest::{Digest, Hasher};
use crate::error::{Error, Result};
use crate::image::classify::{classify, Claim, Kind};
use crate::image::media_types as mt;
use crate::image::{parse_json, Blob, BlobSource, Descriptor, DockerView, Image, ImageSet, Manifest};
use crate::reference::ImageRef;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Media type of the layer ferry writes.
pub const FLAT_LAYER_MEDIA_TYPE: &str = mt::OCI_LAYER;

/// Annotation that marks an index entry as a BuildKit attestation manifest
/// (`vnd.docker.reference.type: attestation-manifest`).
const ANN_REFERENCE_TYPE: &str = "vnd.docker.reference.type";

/// One manifest that was flattened.
#[derive(Debug, Clone, Serialize)]
pub struct FlattenedManifest {
    /// Names of the images it belongs to.
    pub images: Vec<String>,
    pub platform: Option<String>,
    pub old_manifest: Digest,
    pub new_manifest: Digest,
    pub new_config: Digest,
    pub layers_before: usize,
    /// Compressed (as stored) size of the source layers.
    pub bytes_before: u64,
    /// The new layer: digest (= diff_id), size, entries, file content bytes.
    pub layer: Digest,
    pub layer_size: u64,
    pub entries: u64,
    pub content_bytes: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct FlattenReport {
    pub manifests: Vec<FlattenedManifest>,
    /// Index entries left out (attestations of the unflattened image).
    pub dropped: Vec<String>,
    /// Manifests carried as they were (not images of tar layers).
    pub kept: Vec<Digest>,
}

impl FlattenReport {
    /// One line for users.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .manifests
            .iter()
            .map(|m| {
                format!(
                    "{}{}: {} layer(s) -> 1 ({} entries, {} bytes)",
                    m.images.join(", "),
                    m.platform.as_deref().map(|p| format!(" [{p}]")).unwrap_or_default(),
                    m.layers_before,
                    m.entries,
                    m.layer_size
                )
            })
            .collect();
        parts.join("; ")
    }
}

/// Where the flattened layers are written.
pub enum LayerStore<'a> {
    /// One temporary file per layer in the temporary directory; the set keeps
    /// it (in its spools) as long as it lives.
    TempFiles,
    /// Appended to the archive target being written (no copy later).
    Archive(&'a mut PartialArchive),
}

/// Flatten every image of `set`. Returns a new set that holds only what the
/// flattened images reference (the old layers are gone, and so are spool
/// files only they needed). The flattened layers are temporary files in
/// `tmp_dir`.
pub fn flatten_image_set(set: ImageSet, tmp_dir: &Path, progress: &dyn Progress) -> Result<(ImageSet, FlattenReport)> {
    flatten_image_set_into(set, LayerStore::TempFiles, tmp_dir, progress)
}

/// [`flatten_image_set`], writing the flattened layers to `store`.
pub fn flatten_image_set_into(
    set: ImageSet,
    store: LayerStore<'_>,
    tmp_dir: &Path,
    progress: &dyn Progress,
) -> Result<(ImageSet, FlattenReport)> {
    let mut f = Flattener {
        old: &set,
        new: ImageSet::default(),
        store,
        tmp_dir: tmp_dir.to_path_buf(),
        memo: HashMap::new(),
        views: Vec::new(),
        report: FlattenReport::default(),
        progress,
    };
    let mut images = Vec::new();
    for img in &set.images {
        let name = img.display_name();
        let descriptor = f.flatten_top(&img.descriptor, &name)?;
        let docker = match &img.docker {
            Some(view) => Some(f.views.iter().find(|(old, _)| old == view).map(|(_, new)| new.clone()).unwrap_or_else(|| view.clone())),
            None => None,
        };
        images.push(Image { name: img.name.clone(), ref_name: img.ref_name.clone(), descriptor, docker });
    }
    let Flattener { mut new, report, .. } = f;
    new.images = images;
    // Keep the old spool files (a decompressed source archive) only if a kept
    // blob still reads from them.
    let mut old = set;
    let used: HashSet<PathBuf> = new.blobs().iter().filter_map(|b| b.source.file().cloned()).collect();
    for spool in std::mem::take(&mut old.spools) {
        if used.contains(&spool.to_path_buf()) {
            new.spools.push(spool);
        }
    }
    Ok((new, report))
}

struct Flattener<'a, 's> {
    old: &'a ImageSet,
    new: ImageSet,
    store: LayerStore<'s>,
    tmp_dir: PathBuf,
    /// Old descriptor digest → new descriptor (shared manifests once).
    memo: HashMap<Digest, Descriptor>,
    /// Old docker view → new docker view.
    views: Vec<(DockerView, DockerView)>,
    report: FlattenReport,
    progress: &'a dyn Progress,
}

/// Layer media types ferry flattens: OCI and Docker (non-)distributable tar
/// layers, uncompressed, gzip or zstd.
pub fn is_tar_layer(media_type: &str) -> bool {
    media_type.starts_with("application/vnd.oci.image.layer.") || media_type.starts_with("application/vnd.docker.image.rootfs.")
}

impl Flattener<'_, '_> {
    fn copy_blob(&mut self, digest: &Digest) -> Result<()> {
        let blob =
            self.old.blob(digest).ok_or_else(|| Error::format(format!("blob {digest} is referenced but missing from the source")))?;
        self.new.add_blob(blob.clone());
        Ok(())
    }

    fn add_document(&mut self, media_type: &str, bytes: Vec<u8>) -> Descriptor {
        let desc = Descriptor::new(media_type, Digest::of_bytes(&bytes), bytes.len() as u64);
        self.new.add_blob(Blob {
            digest: desc.digest.clone(),
            size: desc.size,
            media_type: media_type.to_string(),
            source: BlobSource::Bytes(Arc::new(bytes)),
        });
        desc
    }

    /// A small document of the source, checked against its digest.
    fn document(&self, digest: &Digest) -> Result<Vec<u8>> {
        let bytes = self.old.document(digest)?;
        let actual = Digest::of_bytes(&bytes);
        if &actual != digest {
            return Err(Error::damaged_source(digest, &actual));
        }
        Ok(bytes)
    }

    /// The new descriptor for an image reference's top descriptor.
    fn flatten_top(&mut self, desc: &Descriptor, name: &str) -> Result<Descriptor> {
        let mut new = self.flatten_desc(desc, name, None)?;
        new.platform = None;
        new.annotations = None;
        Ok(new)
    }

    fn flatten_desc(&mut self, desc: &Descriptor, name: &str, platform: Option<String>) -> Result<Descriptor> {
        if let Some(done) = self.memo.get(&desc.digest) {
            // Same manifest under another name: record the name too.
            for m in &mut self.report.manifests {
                if m.new_manifest == done.digest && !m.images.iter().any(|n| n == name) {
                    m.images.push(name.to_string());
                }
            }
            return Ok(with_target(desc, done));
        }
        let bytes = self.document(&desc.digest)?;
        let kind =
            classify(Claim::of_index_entry(desc), &bytes).map_err(|why| Error::format(format!("{name}: blob {} {why}", desc.digest)))?;
        let value = || -> Result<serde_json::Value> { parse_json(&bytes, &format!("{name}: {}", desc.digest)) };
        let new = match kind {
            Kind::Index => self.flatten_index(desc, value()?, name)?,
            Kind::Manifest => {
                let manifest: Manifest = parse_json(&bytes, &format!("{name}: manifest {}", desc.digest))?;
                if manifest.layers.iter().all(|l| is_tar_layer(&l.media_type)) {
                    self.flatten_manifest(desc, &manifest, value()?, name, platform)?
                } else {
                    // Not a container image (an artifact): carried as it is.
                    self.copy_blob(&desc.digest)?;
                    self.copy_blob(&manifest.config.digest)?;
                    for l in &manifest.layers {
                        self.copy_blob(&l.digest)?;
                    }
                    self.report.kept.push(desc.digest.clone());
                    desc.clone()
                }
            }
            _ => {
                self.copy_blob(&desc.digest)?;
                desc.clone()
            }
        };
        self.memo.insert(desc.digest.clone(), new.clone());
        Ok(with_target(desc, &new))
    }

    fn flatten_index(&mut self, desc: &Descriptor, mut value: serde_json::Value, name: &str) -> Result<Descriptor> {
        let children: Vec<Descriptor> = serde_json::from_value(value["manifests"].take())
            .map_err(|e| Error::format(format!("{name}: index {} is not valid: {e}", desc.digest)))?;
        let mut kept = Vec::new();
        for child in children {
            if child.annotation(ANN_REFERENCE_TYPE) == Some("attestation-manifest") {
                // It describes the unflattened image; its reference would dangle.
                self.report.dropped.push(format!("{name}: attestation {}", child.digest));
                continue;
            }
            if self.old.blob(&child.digest).is_none() {
                return Err(Error::format(format!("{name}: index {} lists {} but the source lacks it", desc.digest, child.digest)));
            }
            let platform = child.platform.as_ref().map(|p| p.to_string());
            kept.push(self.flatten_desc(&child, name, platform)?);
        }
        if kept.is_empty() {
            return Err(Error::format(format!("{name}: index {} has no image manifest to flatten", desc.digest)));
        }
        value["manifests"] = serde_json::to_value(&kept).expect("descriptors serialize");
        if value.get("mediaType").is_some() {
            value["mediaType"] = mt::OCI_INDEX.into();
        }
        let bytes = serde_json::to_vec(&value).expect("json serializes");
        Ok(self.add_document(mt::OCI_INDEX, bytes))
    }

    fn flatten_manifest(
        &mut self,
        desc: &Descriptor,
        manifest: &Manifest,
        mut value: serde_json::Value,
        name: &str,
        platform: Option<String>,
    ) -> Result<Descriptor> {
        let config = self.document(&manifest.config.digest)?;
        let label = match &platform {
            Some(p) => format!("flattening {name} [{p}] ({} layers)", manifest.layers.len()),
            None => format!("flattening {name} ({} layers)", manifest.layers.len()),
        };
        let (stats, source, spool) = self.flatten_layers_of(manifest, name, &label)?;
        let layer_digest = Digest::parse(&stats.diff_id)?;

        let new_config = flatten_config(&config, &stats.diff_id)
            .map_err(|e| Error::format(format!("{name}: config {}: {e}", manifest.config.digest)))?;
        let config_desc = self.add_document(mt::OCI_CONFIG, new_config);
        let layer_desc = Descriptor::new(FLAT_LAYER_MEDIA_TYPE, layer_digest.clone(), stats.size);
        if self.new.blob(&layer_digest).is_none() {
            self.new.add_blob(Blob { digest: layer_digest.clone(), size: stats.size, media_type: FLAT_LAYER_MEDIA_TYPE.into(), source });
            self.new.spools.extend(spool);
        }

        let obj = value.as_object_mut().ok_or_else(|| Error::format(format!("{name}: manifest {} is not a JSON object", desc.digest)))?;
        obj.insert("schemaVersion".into(), 2.into());
        obj.insert("mediaType".into(), mt::OCI_MANIFEST.into());
        obj.insert("config".into(), serde_json::to_value(&config_desc).expect("descriptor serializes"));
        obj.insert("layers".into(), serde_json::to_value([&layer_desc]).expect("descriptor serializes"));
        let bytes = serde_json::to_vec(&value).expect("json serializes");
        let manifest_desc = self.add_document(mt::OCI_MANIFEST, bytes);

        self.views.push((
            DockerView { config: manifest.config.digest.clone(), layers: manifest.layers.iter().map(|l| l.digest.clone()).collect() },
            DockerView { config: config_desc.digest.clone(), layers: vec![layer_digest.clone()] },
        ));
        self.report.manifests.push(FlattenedManifest {
            images: vec![name.to_string()],
            platform,
            old_manifest: desc.digest.clone(),
            new_manifest: manifest_desc.digest.clone(),
            new_config: config_desc.digest,
            layers_before: manifest.layers.len(),
            bytes_before: manifest.layers.iter().map(|l| l.size).sum(),
            layer: layer_digest,
            layer_size: stats.size,
            entries: stats.entries,
            content_bytes: stats.content_bytes,
        });
        Ok(manifest_desc)
    }

    /// Run the flatten library over the manifest's layers into the layer
    /// store: the stats, where the new layer's bytes are, and its temporary
    /// file if it has its own.
    fn flatten_layers_of(
        &mut self,
        manifest: &Manifest,
        name: &str,
        label: &str,
    ) -> Result<(FlattenStats, BlobSource, Option<tempfile::TempPath>)> {
        let counter = Arc::new(AtomicU64::new(0));
        let mut inputs: Vec<LayerInput> = Vec::new();
        let mut checks = Vec::new();
        for layer in &manifest.layers {
            let blob = self
                .old
                .blob(&layer.digest)
                .ok_or_else(|| Error::format(format!("{name}: layer {} is missing from the source", layer.digest)))?;
            let raw = blob.source.open().map_err(|e| Error::io(format!("reading layer {}", layer.digest), e))?;
            let check = Arc::new(LayerCheck::default());
            let checked = CheckedReader {
                inner: raw,
                hasher: Some(Hasher::new()),
                count: 0,
                expect: (layer.digest.clone(), layer.size),
                check: check.clone(),
                progress: counter.clone(),
            };
            let mut buffered = BufReader::with_capacity(1 << 20, checked);
            // The media type says how the layer is compressed; an "uncompressed"
            // one that is compressed after all is decompressed (as Docker does).
            let compression = match mt::layer_compression(&layer.media_type) {
                Compression::None => Compression::detect(
                    &compress::peek(&mut buffered).map_err(|e| Error::io(format!("reading layer {}", layer.digest), e))?,
                ),
                declared => declared,
            };
            let decoder = compress::decoder(compression, buffered).map_err(|e| Error::io(format!("reading layer {}", layer.digest), e))?;
            // An uncompressed layer stored in a file (docker save's layer.tar,
            // an OCI blob): file contents are read from there, not spooled.
            let file = match (&blob.source, compression) {
                (BlobSource::FileRange { path, offset, .. }, Compression::None) => {
                    Some((std::fs::File::open(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?, *offset))
                }
                _ => None,
            };
            inputs.push(LayerInput { stream: decoder, file });
            checks.push((layer.clone(), check));
        }

        std::fs::create_dir_all(&self.tmp_dir).map_err(|e| Error::io(format!("creating {}", self.tmp_dir.display()), e))?;
        let tmp_dir = self.tmp_dir.clone();
        let progress = self.progress;
        // The output: a temporary file of its own, or the end of the archive being written.
        let mut own: Option<(std::fs::File, tempfile::TempPath)> = None;
        let (out_file, out_path, out_offset): (&mut std::fs::File, PathBuf, u64) = match &mut self.store {
            LayerStore::TempFiles => {
                let spool = tempfile::Builder::new()
                    .prefix(".ferry-flatten-")
                    .suffix(".tar")
                    .tempfile_in(&tmp_dir)
                    .map_err(|e| Error::io(format!("creating a temporary file in {}", tmp_dir.display()), e))?;
                let (file, path) = spool.into_parts();
                let (file, path) = own.insert((file, path));
                (file, path.to_path_buf(), 0)
            }
            LayerStore::Archive(archive) => {
                let path = archive.path().to_path_buf();
                let (file, offset) = archive.begin_blob()?;
                (file, path, offset)
            }
        };
        let total: u64 = manifest.layers.iter().map(|l| l.size).sum();
        progress.start(label, Some(total));
        let result = std::thread::scope(|s| {
            let worker = s.spawn(move || -> std::result::Result<FlattenStats, FlattenError> {
                let mut out = BufWriter::with_capacity(1 << 20, out_file);
                let stats = flatten_layer_inputs(inputs, &mut out, &tmp_dir)?;
                out.flush().map_err(|source| FlattenError::Io { action: "cannot write the flattened layer", source })?;
                Ok(stats)
            });
            let mut reported = 0;
            while !worker.is_finished() {
                std::thread::sleep(std::time::Duration::from_millis(100));
                let now = counter.load(Ordering::Relaxed);
                progress.advance(now - reported);
                reported = now;
            }
            progress.advance(counter.load(Ordering::Relaxed) - reported);
            worker.join().expect("the flatten thread does not panic")
        });
        progress.finish();
        let result = self.check_layers(result, &checks, name);
        match (&mut self.store, result) {
            (LayerStore::Archive(archive), Ok(stats)) => {
                let digest = Digest::parse(&stats.diff_id)?;
                let offset = archive.finish_blob(&digest, stats.size)?;
                let source = BlobSource::FileRange { path: out_path, offset, len: stats.size };
                Ok((stats, source, None))
            }
            (LayerStore::Archive(archive), Err(e)) => {
                archive.abandon_blob();
                Err(e)
            }
            (LayerStore::TempFiles, Ok(stats)) => {
                let spool = own.map(|(_, path)| path);
                let source = BlobSource::FileRange { path: out_path, offset: out_offset, len: stats.size };
                Ok((stats, source, spool))
            }
            (LayerStore::TempFiles, Err(e)) => Err(e),
        }
    }

    /// Turn the library's result into ferry's, checking every source layer's digest.
    fn check_layers(
        &self,
        result: std::result::Result<FlattenStats, FlattenError>,
        checks: &[(Descriptor, Arc<LayerCheck>)],
        name: &str,
    ) -> Result<FlattenStats> {
        // A layer whose bytes do not match their digest is the first thing to report.
        for (i, (layer, check)) in checks.iter().enumerate() {
            if let Some(msg) = check.mismatch.lock().unwrap().take() {
                return Err(Error::integrity(format!("{name}: layer {i} ({}): {msg}: the source image is damaged", layer.digest)));
            }
        }
        let stats = match result {
            Ok(stats) => stats,
            Err(e) => {
                // A layer that cannot be decompressed or parsed may simply be
                // damaged: say so if its digest does not check out.
                if let FlattenError::Tar { layer, .. } = &e {
                    if let Some((desc, _)) = checks.get(*layer) {
                        verify_blob(self.old, desc).map_err(|d| Error::integrity(format!("{name}: {d}")))?;
                    }
                }
                return Err(flatten_error(e, name, checks));
            }
        };
        // A decoder that stopped before the end of its input (trailing bytes):
        // check the digest by reading the blob whole.
        for (layer, check) in checks {
            if !check.verified.load(Ordering::Relaxed) {
                verify_blob(self.old, layer)?;
            }
        }
        Ok(stats)
    }
}

/// `desc`'s place in its parent (platform, annotations) with `new`'s content.
fn with_target(desc: &Descriptor, new: &Descriptor) -> Descriptor {
    let mut d = desc.clone();
    d.media_type = new.media_type.clone();
    d.digest = new.digest.clone();
    d.size = new.size;
    d
}

fn flatten_error(e: FlattenError, name: &str, checks: &[(Descriptor, Arc<LayerCheck>)]) -> Error {
    let which = |layer: usize| {
        checks
            .get(layer)
            .map(|(d, _)| format!(" (layer {layer} of {}, counting from 0 = the lowest, is {})", checks.len(), d.digest))
            .unwrap_or_default()
    };
    if let FlattenError::Io { action, source } = e {
        return Error::io(format!("flattening {name}: {action}"), source);
    }
    match &e {
        FlattenError::UnsafePath { layer, .. } | FlattenError::BadHardlink { layer, .. } => {
            Error::UnsafeImage(format!("refusing to flatten {name}: {e}{}: the image holds a hostile or corrupt layer", which(*layer)))
        }
        FlattenError::Unsupported { layer, .. } | FlattenError::Tar { layer, .. } => {
            Error::format(format!("cannot flatten {name}: {e}{}", which(*layer)))
        }
        _ => Error::format(format!("cannot flatten {name}: {e}")),
    }
}

fn verify_blob(set: &ImageSet, layer: &Descriptor) -> Result<()> {
    let blob = set.blob(&layer.digest).expect("checked before");
    let mut r = crate::digest::HashingReader::new(blob.source.open().map_err(|e| Error::io(format!("reading layer {}", layer.digest), e))?);
    io::copy(&mut r, &mut io::sink()).map_err(|e| Error::io(format!("reading layer {}", layer.digest), e))?;
    let (digest, size, _) = r.finish();
    if digest != layer.digest || size != layer.size {
        return Err(Error::integrity(format!("layer {} does not match its digest or size: the source image is damaged", layer.digest)));
    }
    Ok(())
}

#[derive(Default)]
struct LayerCheck {
    verified: AtomicBool,
    mismatch: Mutex<Option<String>>,
}

/// Hashes a layer's stored bytes as they stream; at the end compares them
/// with the descriptor and fails the read on a mismatch.
struct CheckedReader {
    inner: Box<dyn Read + Send>,
    hasher: Option<Hasher>,
    count: u64,
    expect: (Digest, u64),
    check: Arc<LayerCheck>,
    progress: Arc<AtomicU64>,
}

impl Read for CheckedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.fetch_add(n as u64, Ordering::Relaxed);
        self.count += n as u64;
        if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n]);
        }
        if self.count > self.expect.1 || (n == 0 && !buf.is_empty()) {
            if let Some(h) = self.hasher.take() {
                let digest = h.finish();
                if self.count != self.expect.1 || digest != self.expect.0 {
                    let msg = format!("its {} bytes hash to {digest} (expected {} bytes)", self.count, self.expect.1);
                    *self.check.mismatch.lock().unwrap() = Some(msg.clone());
                    return Err(io::Error::new(io::ErrorKind::InvalidData, msg));
                }
                self.check.verified.store(true, Ordering::Relaxed);
            }
        }
        Ok(n)
    }
}

/// `ferry flatten SOURCE_IMAGE TARGET_IMAGE`: read the source (any image
/// reference, `docker-daemon:` included), flatten every image it holds, and
/// write the result to the target. Temporary files go next to the target.
pub fn flatten_command(
    source: &ImageRef,
    target: &ImageRef,
    platforms: crate::image::PlatformFilter,
    registry: &crate::registry::RegistryOptions,
    progress: &dyn Progress,
) -> Result<FlattenReport> {
    let tmp_dir = super::output::spool_dir_for_target(target);
    std::fs::create_dir_all(&tmp_dir).map_err(|e| Error::io(format!("creating {}", tmp_dir.display()), e))?;
    let opts = crate::image::SourceOptions {
        platforms,
        spool_dir: Some(tmp_dir.clone()),
        spool_zstd_level: None,
        spool_in_place: false,
        registry: registry.clone(),
        ..Default::default()
    };
    let set = crate::sources::collect_images(std::slice::from_ref(source), &opts, progress)?;
    if set.images.is_empty() {
        return Err(Error::usage("the source holds no image"));
    }
    // A target that names the image takes one image: say so before the work.
    let named = match target {
        ImageRef::DockerArchive { reference, .. } | ImageRef::OciArchive { reference, .. } | ImageRef::OciDir { reference, .. } => {
            reference.clone()
        }
        ImageRef::DockerDaemon(name) => Some(name.clone()).filter(|n| !n.is_empty()),
        ImageRef::Containerd { .. } => None,
        ImageRef::Registry(r) => r.tag.clone(),
    };
    if let (Some(n), true) = (named, set.images.len() > 1) {
        return Err(Error::usage(format!(
            "the target names one image ({n}) but the source holds {}; pick one with SOURCE:REF or leave the target unnamed",
            set.images.len()
        )));
    }
    if let Some(path) = super::output::archive_path(target) {
        // Archive targets: each flattened layer is written once, into the archive.
        let mut archive = PartialArchive::create(path)?;
        let (mut set, report) = flatten_image_set_into(set, LayerStore::Archive(&mut archive), &tmp_dir, progress)?;
        super::output::name_for_archive(&mut set, target)?;
        archive.finish(&set, progress)?;
        return Ok(report);
    }
    let (mut set, report) = flatten_image_set(set, &tmp_dir, progress)?;
    super::output::write_image_set(&mut set, target, progress)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::super::{flatten_layer_inputs, flatten_layers, LayerInput};
    use std::io::{Read, Seek, SeekFrom, Write};

    fn layer(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in entries {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(if path.ends_with('/') { tar::EntryType::Directory } else { tar::EntryType::Regular });
            h.set_cksum();
            b.append_data(&mut h, path, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    /// Layers read in place from a file give the same bytes as spooled ones.
    #[test]
    fn layers_in_a_file_flatten_like_streams() {
        let big = vec![7u8; 300_000];
        let layers = [
            layer(&[("a/", b""), ("a/x", b"one"), ("a/big", &big), ("d/big", &big), ("b", b"bee")]),
            layer(&[("a/.wh.x", b""), ("a/y", b"two"), ("c", &big[..1000])]),
            layer(&[("b", b"bee2"), ("a/.wh..wh..opq", b""), ("a/z", b"zed")]),
        ];
        let dir = tempfile::tempdir().unwrap();
        let mut file = tempfile::tempfile_in(dir.path()).unwrap();
        file.write_all(b"some prefix bytes").unwrap();
        let mut offsets = Vec::new();
        for l in &layers {
            offsets.push(file.stream_position().unwrap());
            file.write_all(l).unwrap();
            file.write_all(b"junk between").unwrap();
        }
        let streams: Vec<Box<dyn Read + Send>> = layers.iter().map(|l| Box::new(std::io::Cursor::new(l.clone())) as _).collect();
        let mut expected = Vec::new();
        let want = flatten_layers(streams, &mut expected, dir.path()).unwrap();

        let inputs = layers
            .iter()
            .zip(&offsets)
            .map(|(l, &off)| {
                let mut f = file.try_clone().unwrap();
                f.seek(SeekFrom::Start(0)).unwrap();
                LayerInput { stream: Box::new(std::io::Cursor::new(l.clone())), file: Some((f, off)) }
            })
            .collect();
        let mut actual = Vec::new();
        let got = flatten_layer_inputs(inputs, &mut actual, dir.path()).unwrap();
        assert_eq!(got, want);
        assert!(actual == expected, "same output bytes");
        assert!(want.content_bytes > 300_000);
    }
}
