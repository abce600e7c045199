//! The artifact's inner layout: `oci-layout`, `index.json` (with ferry's
//! metadata as annotations), `manifest.json` (the docker-archive view), then
//! `blobs/sha256/<hex>` in an order a streaming reader can check as it goes:
//! every blob comes after the document that references it.
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::classify::{classify, Claim, Kind};
use crate::image::media_types::{self as mt, ANN_CONTAINERD_NAME, ANN_REF_NAME};
use crate::image::{parse_json, Descriptor, ImageSet, Index, Manifest};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet, VecDeque};

pub const FORMAT_VERSION: &str = "1";
pub const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// Annotations on index.json that record bundle metadata (docs/FORMAT.md).
pub const ANN_FORMAT: &str = "dev.ferry.bundle.format";
pub const ANN_CREATED: &str = "dev.ferry.bundle.created";
pub const ANN_TOOL: &str = "dev.ferry.bundle.tool";
pub const ANN_FLATTENED: &str = "dev.ferry.bundle.flattened";
pub use crate::delta::ANN_DELTA_BASE;

#[derive(Debug, Clone)]
pub struct BundleMeta {
    pub created: String,
    pub flattened: bool,
    /// The layers a delta bundle leaves out (docs/FORMAT.md "Delta bundles").
    pub delta: Option<crate::delta::Delta>,
}

/// One entry of docker's manifest.json.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct DockerManifestEntry {
    pub config: String,
    pub repo_tags: Option<Vec<String>>,
    pub layers: Vec<String>,
}

pub fn index_json(set: &ImageSet, meta: &BundleMeta) -> Vec<u8> {
    let manifests: Vec<Descriptor> = set
        .images
        .iter()
        .map(|img| {
            let mut d = img.descriptor.clone();
            // What a referrer is attached to (docs/FORMAT.md "Referrers"); other annotations are the source's.
            let mut ann: BTreeMap<String, String> = d.annotations.take().unwrap_or_default();
            ann.retain(|k, _| k.starts_with(crate::registry::pull::ANN_REFERRER_PREFIX));
            if let Some(name) = &img.name {
                ann.insert(ANN_REF_NAME.to_string(), name.tag.clone());
                ann.insert(ANN_CONTAINERD_NAME.to_string(), name.full());
            } else if let Some(r) = &img.ref_name {
                ann.insert(ANN_REF_NAME.to_string(), r.clone());
            }
            d.annotations = (!ann.is_empty()).then_some(ann);
            d
        })
        .collect();
    let mut annotations = serde_json::Map::new();
    annotations.insert(ANN_FORMAT.into(), FORMAT_VERSION.into());
    annotations.insert(ANN_CREATED.into(), meta.created.clone().into());
    annotations.insert(ANN_TOOL.into(), format!("ferry {}", env!("CARGO_PKG_VERSION")).into());
    annotations.insert(ANN_FLATTENED.into(), meta.flattened.to_string().into());
    if let Some(delta) = meta.delta.as_ref().filter(|d| !d.is_empty()) {
        for (key, value) in delta.annotations() {
            annotations.insert(key.into(), value.into());
        }
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": mt::OCI_INDEX,
        "manifests": manifests,
        "annotations": annotations,
    });
    serde_json::to_vec_pretty(&index).expect("json serializes")
}

/// manifest.json: one entry per distinct single-platform image, with all its tags.
pub fn manifest_json(set: &ImageSet) -> Vec<u8> {
    let mut entries: Vec<DockerManifestEntry> = Vec::new();
    for img in &set.images {
        let Some(view) = &img.docker else { continue };
        let config = view.config.blob_path();
        let layers: Vec<String> = view.layers.iter().map(Digest::blob_path).collect();
        let tag = img.name.as_ref().map(|n| n.familiar());
        match entries.iter_mut().find(|e| e.config == config && e.layers == layers) {
            Some(e) => {
                if let Some(t) = tag {
                    let tags = e.repo_tags.get_or_insert_with(Vec::new);
                    if !tags.contains(&t) {
                        tags.push(t);
                    }
                }
            }
            None => entries.push(DockerManifestEntry { config, repo_tags: tag.map(|t| vec![t]), layers }),
        }
    }
    serde_json::to_vec(&entries).expect("json serializes")
}

/// Blob digests in artifact order: documents breadth-first from index.json,
/// then configs, then layers; each once.
pub fn blob_order(set: &ImageSet) -> Result<Vec<Digest>> {
    let mut seen = HashSet::new();
    let mut documents = Vec::new();
    let mut configs = Vec::new();
    let mut layers = Vec::new();
    let mut queue: VecDeque<Descriptor> = set.images.iter().map(|i| i.descriptor.clone()).collect();
    while let Some(desc) = queue.pop_front() {
        if !seen.insert(desc.digest.clone()) {
            continue;
        }
        documents.push(desc.digest.clone());
        let bytes = set.document(&desc.digest)?;
        let kind = classify(Claim::of_index_entry(&desc), &bytes).map_err(|why| Error::format(format!("blob {} {why}", desc.digest)))?;
        if kind == Kind::Index {
            let index: Index = parse_json(&bytes, "index")?;
            queue.extend(index.manifests);
        } else if kind == Kind::Manifest {
            let m: Manifest = parse_json(&bytes, "manifest")?;
            if seen.insert(m.config.digest.clone()) {
                configs.push(m.config.digest);
            }
            for l in m.layers {
                if seen.insert(l.digest.clone()) {
                    layers.push(l.digest);
                }
            }
        }
    }
    let mut order = documents;
    order.extend(configs);
    order.extend(layers);
    // Anything the images do not reach (should not happen) goes last.
    for b in set.blobs() {
        if seen.insert(b.digest.clone()) {
            order.push(b.digest.clone());
        }
    }
    Ok(order)
}
