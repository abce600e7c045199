//! Reading a docker-archive: `manifest.json` pointing at configs and layer
//! tars, as written by `docker save` (20.10: `<id>/layer.tar`, duplicates as
//! symlinks), podman and skopeo (`<hex>.tar`). Docker 25+ archives are also OCI
//! layouts and are read by [`super::oci`] instead, which keeps manifest digests.
//! Any [`SourceFiles`] will do: an archive on disk, or a Docker Engine export
//! spooled by `crate::engine`.
use super::files::SourceFiles;
use super::media_types as mt;
use super::{parse_json, Blob, BlobSource, Descriptor, DockerView, Image, ImageSet};
use crate::compress::Compression;
use crate::digest::{Digest, HashingReader};
use crate::error::{Error, Result};
use crate::reference::{ImageName, Selector};
use serde::Deserialize;
use std::io::Read;
use std::sync::Arc;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ManifestEntry {
    pub config: String,
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    pub layers: Vec<String>,
}

#[derive(Deserialize)]
struct ConfigRootfs {
    rootfs: Rootfs,
}
#[derive(Deserialize)]
struct Rootfs {
    #[serde(default)]
    diff_ids: Vec<Digest>,
}

/// Add the images of a legacy docker-archive (all, or those `reference` selects).
pub fn read_docker_archive(archive: &dyn SourceFiles, reference: Option<&str>, set: &mut ImageSet) -> Result<()> {
    let what = format!("{}: manifest.json", archive.describe());
    let entries: Vec<ManifestEntry> = parse_json(&archive.read_small("manifest.json")?, &what)?;
    let wanted = reference.map(Selector::parse).transpose()?;
    if let Some((wanted, digest)) = wanted.as_ref().and_then(|w| Some((w, w.digest.as_ref()?))) {
        return read_by_digest(archive, &entries, wanted, digest, set);
    }
    let mut found = false;
    for entry in &entries {
        let tags: Vec<ImageName> = match &wanted {
            Some(w) => tags_of(entry).filter(|(raw, _)| w.name_matches(raw)).map(|(_, t)| t).collect(),
            None => tags_of(entry).map(|(_, t)| t).collect(),
        };
        if wanted.is_some() && tags.is_empty() {
            continue;
        }
        found = true;
        let (manifest_desc, view) = add_entry(archive, entry, set)?;
        push_images(set, tags, &manifest_desc, &view);
    }
    if let (Some(r), false) = (reference, found) {
        return Err(Error::usage(format!("{}: no image tagged \"{}\"", archive.describe(), crate::untrusted::shown(r))));
    }
    if entries.is_empty() {
        return Err(Error::format(format!("{what} lists no images")));
    }
    Ok(())
}

/// An entry's `RepoTags`, as written and parsed (tags that are no valid name are left out).
fn tags_of(entry: &ManifestEntry) -> impl Iterator<Item = (&str, ImageName)> {
    entry.repo_tags.iter().flatten().filter_map(|t| Some((t.as_str(), ImageName::parse(t)?)))
}

/// One image per tag (or one untagged image) for an added entry.
fn push_images(set: &mut ImageSet, tags: Vec<ImageName>, manifest_desc: &Descriptor, view: &DockerView) {
    if tags.is_empty() {
        set.images.push(Image { name: None, ref_name: None, descriptor: manifest_desc.clone(), docker: Some(view.clone()) });
    }
    for tag in tags {
        set.images.push(Image {
            ref_name: Some(tag.tag.clone()),
            name: Some(tag),
            descriptor: manifest_desc.clone(),
            docker: Some(view.clone()),
        });
    }
}

/// A legacy archive records no manifest digests: `@DIGEST` selects the image
/// whose ID (config digest) it is, else the one whose manifest, as ferry
/// synthesizes it, has that digest (the digest `ferry inspect` shows once it
/// is saved). A name beside the digest must be one of the image's tags.
fn read_by_digest(
    archive: &dyn SourceFiles,
    entries: &[ManifestEntry],
    wanted: &Selector,
    digest: &Digest,
    set: &mut ImageSet,
) -> Result<()> {
    let mut chosen = None;
    for entry in entries {
        if Digest::of_bytes(&archive.read_small(&entry.config)?) == *digest {
            chosen = Some((entry, None));
            break;
        }
    }
    if chosen.is_none() {
        // Synthesizing a manifest hashes compressed layers: only when no ID matched.
        for entry in entries {
            let mut scratch = ImageSet::default();
            let (manifest_desc, view) = add_entry(archive, entry, &mut scratch)?;
            if manifest_desc.digest == *digest {
                chosen = Some((entry, Some((scratch, manifest_desc, view))));
                break;
            }
        }
    }
    let Some((entry, added)) = chosen else {
        return Err(Error::ImageNotFound(format!(
            "{}: no image with ID or manifest digest {digest} ({} image(s) in manifest.json)",
            archive.describe(),
            entries.len()
        )));
    };
    let tags: Vec<ImageName> = tags_of(entry).filter(|(raw, _)| wanted.name_matches(raw)).map(|(_, t)| t).collect();
    if let (Some(name), true) = (&wanted.name, tags.is_empty()) {
        let has: Vec<String> = tags_of(entry).map(|(raw, _)| crate::untrusted::shown(raw).into_owned()).collect();
        return Err(Error::ImageNotFound(format!(
            "{}: image {digest} is not tagged \"{}\" (its tags: {})",
            archive.describe(),
            crate::untrusted::shown(name),
            if has.is_empty() { "none".to_string() } else { has.join(", ") }
        )));
    }
    let (manifest_desc, view) = match added {
        Some((scratch, manifest_desc, view)) => {
            set.merge(scratch);
            (manifest_desc, view)
        }
        None => add_entry(archive, entry, set)?,
    };
    push_images(set, tags, &manifest_desc, &view);
    Ok(())
}

/// Add one image's config and layers, and a synthesized OCI manifest for it.
fn add_entry(archive: &dyn SourceFiles, entry: &ManifestEntry, set: &mut ImageSet) -> Result<(Descriptor, DockerView)> {
    let config_bytes = archive.read_small(&entry.config)?;
    let config_digest = Digest::of_bytes(&config_bytes);
    let rootfs: ConfigRootfs = parse_json(&config_bytes, &format!("{}: config {}", archive.describe(), entry.config))?;
    if rootfs.rootfs.diff_ids.len() != entry.layers.len() {
        return Err(Error::format(format!(
            "{}: config {} lists {} layers but manifest.json {}",
            archive.describe(),
            entry.config,
            rootfs.rootfs.diff_ids.len(),
            entry.layers.len()
        )));
    }
    let config_desc = Descriptor::new(mt::OCI_CONFIG, config_digest.clone(), config_bytes.len() as u64);
    set.add_blob(Blob {
        digest: config_digest.clone(),
        size: config_bytes.len() as u64,
        media_type: mt::OCI_CONFIG.into(),
        source: BlobSource::Bytes(Arc::new(config_bytes)),
    });

    let mut layers = Vec::new();
    for (path, diff_id) in entry.layers.iter().zip(&rootfs.rootfs.diff_ids) {
        let (source, size) = archive.locate(path)?;
        let mut head = [0u8; 8];
        let n = source.open().and_then(|mut r| read_up_to(&mut r, &mut head)).map_err(|e| Error::io(format!("reading {path}"), e))?;
        let compression = Compression::detect(&head[..n]);
        let (digest, media_type) = match compression {
            // An uncompressed layer's digest is its diff_id; the writer checks it as it copies.
            Compression::None => (diff_id.clone(), mt::OCI_LAYER),
            Compression::Gzip => (hash_source(&source, path)?, mt::OCI_LAYER_GZIP),
            Compression::Zstd => (hash_source(&source, path)?, mt::OCI_LAYER_ZSTD),
        };
        set.add_blob(Blob { digest: digest.clone(), size, media_type: media_type.into(), source });
        layers.push(Descriptor::new(media_type, digest, size));
    }

    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": mt::OCI_MANIFEST,
        "config": config_desc,
        "layers": layers,
    });
    let bytes = serde_json::to_vec(&manifest).expect("json serializes");
    let manifest_desc = Descriptor::new(mt::OCI_MANIFEST, Digest::of_bytes(&bytes), bytes.len() as u64);
    set.add_blob(Blob {
        digest: manifest_desc.digest.clone(),
        size: bytes.len() as u64,
        media_type: mt::OCI_MANIFEST.into(),
        source: BlobSource::Bytes(Arc::new(bytes)),
    });
    let view = DockerView { config: config_digest, layers: layers.into_iter().map(|l| l.digest).collect() };
    Ok((manifest_desc, view))
}

fn read_up_to(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Digest of a compressed layer (its diff_id is of the uncompressed bytes).
fn hash_source(source: &BlobSource, path: &str) -> Result<Digest> {
    let mut reader = HashingReader::new(source.open().map_err(|e| Error::io(format!("reading {path}"), e))?);
    std::io::copy(&mut reader, &mut std::io::sink()).map_err(|e| Error::io(format!("reading {path}"), e))?;
    Ok(reader.finish().0)
}
