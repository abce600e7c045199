//! `ferry have containerd:[NAMESPACE]`: every blob the namespace's images
//! hold (indexes, manifests, configs, layers present in the content store)
//! and the layer chain IDs of every image whose layers are all there.
use super::client::{Containerd, Endpoint};
use crate::digest::Digest;
use crate::error::Result;
use crate::have::HaveList;
use crate::image::classify::{classify, Claim, Kind};
use crate::image::{parse_json, Index, Manifest, MAX_DOCUMENT};
use std::io::Read;

pub fn held(endpoint: &Endpoint, namespace: &str) -> Result<HaveList> {
    let ctd = Containerd::connect(endpoint, namespace)?;
    let mut list = HaveList::default();
    for image in ctd.images()? {
        let Some(target) = image.target else { continue };
        let Ok(digest) = Digest::parse(&target.digest) else { continue };
        walk(&ctd, &digest, 0, &mut list)?;
    }
    Ok(list)
}

/// Add a manifest or index and what it references, as far as it is present.
fn walk(ctd: &Containerd, digest: &Digest, depth: usize, list: &mut HaveList) -> Result<()> {
    if depth > 4 || list.blobs.contains(digest) {
        return Ok(());
    }
    let Some(bytes) = read_document(ctd, digest)? else { return Ok(()) };
    list.blobs.insert(digest.clone());
    match classify(Claim::Document, &bytes) {
        Ok(Kind::Index) => {
            let index: Index = parse_json(&bytes, &format!("the index {digest}"))?;
            for child in &index.manifests {
                walk(ctd, &child.digest, depth + 1, list)?;
            }
        }
        Ok(Kind::Manifest) => {
            let manifest: Manifest = parse_json(&bytes, &format!("the manifest {digest}"))?;
            let Some(config) = read_document(ctd, &manifest.config.digest)? else { return Ok(()) };
            list.blobs.insert(manifest.config.digest.clone());
            let mut complete = true;
            for layer in &manifest.layers {
                if ctd.content_size(&layer.digest)? == Some(layer.size) {
                    list.blobs.insert(layer.digest.clone());
                } else {
                    complete = false;
                }
            }
            if complete {
                list.add_chains(&crate::delta::config_diff_ids(&config, &manifest.config.digest)?);
            }
        }
        _ => {}
    }
    Ok(())
}

/// A small document from the content store, if present.
fn read_document(ctd: &Containerd, digest: &Digest) -> Result<Option<Vec<u8>>> {
    match ctd.content_size(digest)? {
        Some(size) if size <= MAX_DOCUMENT => {}
        _ => return Ok(None),
    }
    let mut bytes = Vec::new();
    ctd.read(digest).take(MAX_DOCUMENT).read_to_end(&mut bytes).map_err(|e| crate::error::Error::io(format!("reading {digest}"), e))?;
    if Digest::of_bytes(&bytes) != *digest {
        return Ok(None);
    }
    Ok(Some(bytes))
}
