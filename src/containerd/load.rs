//! `load --into containerd:[NAMESPACE]`: the verified stream into containerd's
//! content store, then image records and unpacked snapshots.
//!
//! Everything runs under one lease, so containerd's garbage collector leaves
//! it alone until it is referenced: blobs go through the content service's
//! Write stream as the verifier hands them over and are committed under their
//! digest once it checked out (a blob the namespace holds already is not sent
//! again, only leased). At [`Sink::commit`], after the whole bundle verified:
//! the `containerd.io/gc.ref.*` labels that tie indexes to manifests and
//! manifests to configs and layers, an index cut down to the `--platform`s
//! asked for (so it lists only platforms whose blobs are there), the layers
//! unpacked into the snapshotter as containerd's unpacker does (Prepare on the
//! parent's chain ID, diff Apply, Commit as the layer's chain ID), and only
//! then the image records, named as the bundle records them. The lease ends
//! last. On any failure the lease is deleted and no record was made, so what
//! was written becomes garbage.
use super::client::{descriptor, Containerd, Endpoint, Upload};
use crate::bundle::read::Decryptor;
use crate::bundle::verify::{Sink, Verified};
use crate::bundle::Progress;
use crate::delta::Delta;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::have::chain_ids;
use crate::image::media_types::{ANN_CONTAINERD_NAME, ANN_REF_NAME};
use crate::image::platform::PlatformSpec;
use crate::image::{Descriptor, Manifest, PlatformFilter};
use crate::reference::ImageName;
use crate::trust::Trusted;
use crate::verified::{report, verify_into, LoadReport};
use std::collections::HashMap;
use std::io::{self, Write};

const GC_CONTENT: &str = "containerd.io/gc.ref.content";
const GC_SNAPSHOT: &str = "containerd.io/gc.ref.snapshot";
const UNCOMPRESSED: &str = "containerd.io/uncompressed";

/// `ferry load SOURCE --into containerd:NAMESPACE`.
pub fn load_into_containerd(
    bundle: &Trusted,
    decryptor: Option<Decryptor>,
    endpoint: &Endpoint,
    namespace: &str,
    platforms: &PlatformFilter,
    progress: &dyn Progress,
) -> Result<LoadReport> {
    let mut sink = ContainerdSink::new(Containerd::connect(endpoint, namespace)?, platforms.clone())?;
    let (v, c, e) = verify_into(bundle, decryptor, &mut sink, None, progress)?;
    let mut report = report(format!("containerd:{namespace}"), &v, c, e);
    report.images = sink.recorded;
    report.skipped_blobs = sink.already_there;
    Ok(report)
}

struct ContainerdSink {
    ctd: Containerd,
    platforms: PlatformFilter,
    upload: Option<Upload>,
    already_there: usize,
    recorded: Vec<String>,
}

impl ContainerdSink {
    fn new(mut ctd: Containerd, platforms: PlatformFilter) -> Result<Self> {
        ctd.begin_lease()?;
        Ok(ContainerdSink { ctd, platforms, upload: None, already_there: 0, recorded: Vec::new() })
    }

    /// Whether the namespace holds this blob with this size already.
    fn holds(&self, digest: &Digest, size: u64) -> Result<bool> {
        Ok(self.ctd.content_size(digest)? == Some(size))
    }

    /// The gc.ref labels of every index and manifest of the bundle.
    fn label_references(&self, v: &Verified) -> Result<()> {
        for (digest, index) in &v.indexes {
            let refs = index.manifests.iter().enumerate().map(|(i, m)| (format!("{GC_CONTENT}.m.{i}"), m.digest.to_string()));
            self.ctd.set_labels(digest, refs.collect())?;
        }
        for (digest, manifest) in &v.manifests {
            let mut labels: HashMap<String, String> = HashMap::from([(format!("{GC_CONTENT}.config"), manifest.config.digest.to_string())]);
            labels.extend(manifest.layers.iter().enumerate().map(|(i, l)| (format!("{GC_CONTENT}.l.{i}"), l.digest.to_string())));
            self.ctd.set_labels(digest, labels)?;
        }
        Ok(())
    }

    /// What an index.json entry becomes in containerd: itself, or (with
    /// `--platform`) a new index listing only the platforms asked for.
    fn target_of(&self, entry: &Descriptor, v: &Verified) -> Result<Descriptor> {
        let mut target = entry.clone();
        target.platform = None;
        let Some((_, index)) = v.indexes.iter().find(|(d, _)| *d == entry.digest) else { return Ok(target) };
        if self.platforms.is_all() {
            return Ok(target);
        }
        let kept: Vec<&Descriptor> = index.manifests.iter().filter(|m| self.platforms.keeps(m.platform.as_ref())).collect();
        if kept.is_empty() {
            return Err(Error::usage(format!(
                "image {} has no manifest for the platform(s) asked for (it has {})",
                name_of(entry).unwrap_or_else(|| entry.digest.to_string()),
                index.manifests.iter().filter_map(|m| m.platform.as_ref()).map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
            )));
        }
        if kept.len() == index.manifests.len() {
            return Ok(target);
        }
        // The original bytes, cut down: every other field stays as it was.
        let mut bytes = Vec::new();
        io::copy(&mut self.ctd.read(&entry.digest), &mut bytes).map_err(|e| Error::io(format!("reading {}", entry.digest), e))?;
        let mut doc: serde_json::Value = crate::image::parse_json(&bytes, &format!("the index {}", entry.digest))?;
        let list: Vec<serde_json::Value> = kept.iter().map(|d| serde_json::to_value(d).expect("descriptors serialize")).collect();
        doc["manifests"] = serde_json::Value::Array(list);
        let cut = serde_json::to_vec(&doc).expect("json serializes");
        let digest = Digest::of_bytes(&cut);
        self.ctd.put(&digest, &cut)?;
        let refs = kept.iter().enumerate().map(|(i, m)| (format!("{GC_CONTENT}.m.{i}"), m.digest.to_string()));
        self.ctd.set_labels(&digest, refs.collect())?;
        target.digest = digest;
        target.size = cut.len() as u64;
        Ok(target)
    }

    /// The manifests of an index.json entry to unpack: the `--platform`s asked for, else the host's.
    fn to_unpack<'v>(&self, entry: &Descriptor, v: &'v Verified) -> Vec<&'v (Digest, Manifest)> {
        let manifest = |d: &Digest| v.manifests.iter().find(|(m, _)| m == d);
        let Some((_, index)) = v.indexes.iter().find(|(d, _)| *d == entry.digest) else {
            return manifest(&entry.digest).into_iter().collect();
        };
        let host = PlatformFilter(vec![PlatformSpec::host()]);
        let wanted = if self.platforms.is_all() { &host } else { &self.platforms };
        index.manifests.iter().filter(|c| wanted.keeps(c.platform.as_ref())).filter_map(|c| manifest(&c.digest)).collect()
    }

    /// Unpack one manifest's layers into the snapshotter, as containerd's
    /// unpacker does; each layer is applied on its parent's chain ID and
    /// committed as its own, and a chain that is there already is kept.
    fn unpack(&self, manifest_digest: &Digest, manifest: &Manifest, v: &Verified) -> Result<()> {
        let config = v.configs.get(&manifest.config.digest).ok_or_else(|| {
            Error::integrity(format!("the config {} of manifest {manifest_digest} is not in the bundle", manifest.config.digest))
        })?;
        let diff_ids = crate::delta::config_diff_ids(config, &manifest.config.digest)?;
        if diff_ids.len() != manifest.layers.len() {
            return Err(Error::integrity(format!(
                "manifest {manifest_digest} has {} layers but its config lists {} diff_ids",
                manifest.layers.len(),
                diff_ids.len()
            )));
        }
        let chains = chain_ids(&diff_ids);
        let mut parent = String::new();
        for ((layer, diff_id), chain) in manifest.layers.iter().zip(&diff_ids).zip(&chains) {
            let name = chain.to_string();
            if !self.ctd.has_snapshot(&name)? {
                self.apply_layer(layer, diff_id, &parent, &name)?;
            }
            self.ctd.set_labels(&layer.digest, HashMap::from([(UNCOMPRESSED.to_string(), diff_id.to_string())]))?;
            parent = name;
        }
        if !parent.is_empty() {
            let label = format!("{GC_SNAPSHOT}.{}", self.ctd.endpoint.snapshotter);
            self.ctd.set_labels(&manifest.config.digest, HashMap::from([(label, parent)]))?;
        }
        Ok(())
    }

    fn apply_layer(&self, layer: &Descriptor, diff_id: &Digest, parent: &str, name: &str) -> Result<()> {
        let key = format!("extract-ferry-{}-{}", std::process::id(), name);
        let mounts = self.ctd.prepare(&key, parent)?;
        let mut plain = layer.clone();
        plain.annotations = None;
        let applied = self.ctd.apply(descriptor(&plain), mounts);
        match applied {
            Ok(got) if got == diff_id.to_string() => {
                if !self.ctd.commit_snapshot(&key, name)? {
                    self.ctd.remove_snapshot(&key);
                }
                Ok(())
            }
            Ok(got) => {
                self.ctd.remove_snapshot(&key);
                Err(Error::integrity(format!("layer {} unpacks to {got}, but its config says {diff_id}", layer.digest)))
            }
            Err(e) => {
                self.ctd.remove_snapshot(&key);
                Err(e)
            }
        }
    }
}

/// The full name an index.json entry records, as containerd names images.
fn name_of(entry: &Descriptor) -> Option<String> {
    let recorded = entry.annotation(ANN_CONTAINERD_NAME).or_else(|| entry.annotation(ANN_REF_NAME))?;
    ImageName::parse(recorded).map(|n| n.full())
}

impl Sink for ContainerdSink {
    fn begin_blob(&mut self, digest: &Digest, size: u64) -> Result<Box<dyn Write + '_>> {
        if self.holds(digest, size)? {
            self.ctd.lease_content(digest)?;
            self.already_there += 1;
            return Ok(Box::new(io::sink()));
        }
        Ok(Box::new(self.upload.insert(self.ctd.upload(digest, size))))
    }

    fn blob_verified(&mut self, _digest: &Digest) -> Result<()> {
        match self.upload.take() {
            Some(upload) => upload.commit(),
            None => Ok(()),
        }
    }

    fn commit(&mut self, v: &Verified) -> Result<()> {
        self.label_references(v)?;
        let entries = v.index.iter().flat_map(|i| &i.manifests);
        let mut records = Vec::new();
        for entry in entries {
            let Some(name) = name_of(entry) else { continue };
            let target = self.target_of(entry, v)?;
            for (digest, manifest) in self.to_unpack(entry, v) {
                self.unpack(digest, manifest, v)?;
            }
            records.push((name, target));
        }
        for (name, target) in &records {
            self.ctd.put_image(name, descriptor(target))?;
            self.recorded.push(ImageName::parse(name).map(|n| n.familiar()).unwrap_or_else(|| name.clone()));
        }
        self.ctd.end_lease()
    }

    fn abort(&mut self) {
        self.upload = None;
        let _ = self.ctd.end_lease();
    }

    /// A delta's left-out layers must be in the namespace's content store;
    /// they are leased like the rest, and unpacked from there.
    fn delta(&mut self, delta: &Delta) -> Result<()> {
        let target = format!("containerd namespace {} at {}", self.ctd.namespace, self.ctd.endpoint.describe());
        crate::delta::check_target(delta, &target, |l| self.holds(&l.digest, l.size))?;
        for l in &delta.left_out {
            self.ctd.lease_content(&l.digest)?;
        }
        Ok(())
    }
}
