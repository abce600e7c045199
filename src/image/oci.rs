//! Reading an OCI image layout (a directory, an oci-archive, or a Docker 25+
//! docker-archive, which is an OCI layout too).
use super::classify::{classify, Claim, Kind};
use super::files::SourceFiles;
use super::media_types::{self as mt, ANN_CONTAINERD_NAME, ANN_REF_NAME};
use super::{parse_json, Blob, BlobSource, Descriptor, DockerView, Image, ImageSet, Index, Manifest, PlatformFilter};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::reference::{ImageName, Selector};
use std::sync::Arc;

/// Add the images of the layout (all, or the one named `reference`) to `set`.
pub fn read_layout(files: &dyn SourceFiles, reference: Option<&str>, filter: &PlatformFilter, set: &mut ImageSet) -> Result<()> {
    let index: Index = parse_json(&files.read_small("index.json")?, &format!("{}: index.json", files.describe()))?;
    let selected = match reference {
        Some(wanted) => select(files, index.manifests, &Selector::parse(wanted)?)?,
        None => index.manifests,
    };
    if selected.is_empty() {
        return Err(Error::format(format!("{}: index.json lists no images", files.describe())));
    }
    for desc in selected {
        let ref_name = desc.annotation(ANN_REF_NAME).map(str::to_string);
        let name = image_name(&desc);
        let mut top = desc.clone();
        top.annotations = None;
        top.platform = None;
        let top = add_tree(files, &top, filter, set)?.ok_or_else(|| {
            Error::usage(format!(
                "{}: image {} has no manifest for the requested platform(s)",
                files.describe(),
                ref_name.as_deref().unwrap_or(desc.digest.as_str())
            ))
        })?;
        let docker = docker_view(set, &top, filter)?;
        set.images.push(Image { name, ref_name, descriptor: top, docker });
    }
    Ok(())
}

/// The full name of an index.json entry, if it has one.
fn image_name(desc: &Descriptor) -> Option<ImageName> {
    if let Some(full) = desc.annotation(ANN_CONTAINERD_NAME) {
        return ImageName::parse(full);
    }
    // podman and ferry write full names into ref.name; skopeo often only a tag.
    let r = desc.annotation(ANN_REF_NAME)?;
    if r.contains('/') || r.contains(':') {
        ImageName::parse(r)
    } else {
        None
    }
}

/// The names an index.json entry records.
fn names_of(desc: &Descriptor) -> impl Iterator<Item = &str> {
    [desc.annotation(ANN_REF_NAME), desc.annotation(ANN_CONTAINERD_NAME)].into_iter().flatten()
}

/// The index.json entries `wanted` selects. A digest selects the entry with
/// that digest, else a platform manifest of an entry's index (as `docker pull
/// NAME@DIGEST` does), which keeps that entry's names; a name beside a digest
/// must be one of the selected entry's names.
fn select(files: &dyn SourceFiles, entries: Vec<Descriptor>, wanted: &Selector) -> Result<Vec<Descriptor>> {
    let named = |d: &Descriptor| names_of(d).any(|n| wanted.name_matches(n));
    let Some(digest) = &wanted.digest else {
        let selected: Vec<Descriptor> = entries.into_iter().filter(|d| named(d)).collect();
        if selected.is_empty() {
            let name = wanted.name.as_deref().unwrap_or_default();
            return Err(Error::usage(format!("{}: no image named \"{}\"", files.describe(), crate::untrusted::shown(name))));
        }
        return Ok(selected);
    };
    let mut by_digest: Vec<Descriptor> = entries.iter().filter(|d| &d.digest == digest).cloned().collect();
    if by_digest.is_empty() {
        for entry in entries.iter().filter(|e| !mt::is_manifest(&e.media_type)) {
            let bytes = read_document(files, entry)?;
            if kind_of(files, entry, &bytes)? != Kind::Index {
                continue;
            }
            let index: Index = parse_json(&bytes, &format!("{}: index {}", files.describe(), entry.digest))?;
            if let Some(child) = index.manifests.into_iter().find(|c| &c.digest == digest) {
                by_digest.push(Descriptor { annotations: entry.annotations.clone(), ..child });
            }
        }
    }
    if by_digest.is_empty() {
        return Err(Error::ImageNotFound(format!(
            "{}: no image with digest {digest} (index.json lists {})",
            files.describe(),
            listing(&entries)
        )));
    }
    if wanted.name.is_none() {
        return Ok(by_digest);
    }
    let both: Vec<Descriptor> = by_digest.iter().filter(|d| named(d)).cloned().collect();
    if both.is_empty() {
        return Err(Error::ImageNotFound(format!(
            "{}: image {digest} is not named \"{}\" (it is {})",
            files.describe(),
            crate::untrusted::shown(wanted.name.as_deref().unwrap_or_default()),
            listing(&by_digest)
        )));
    }
    Ok(both)
}

/// `sha256:… (name), …` for messages; names come from the source, so they are escaped.
fn listing(entries: &[Descriptor]) -> String {
    const SHOWN: usize = 8;
    let mut items: Vec<String> = entries
        .iter()
        .take(SHOWN)
        .map(|d| match d.annotation(ANN_CONTAINERD_NAME).or(d.annotation(ANN_REF_NAME)) {
            Some(name) => format!("{} ({})", d.digest, crate::untrusted::shown(name)),
            None => format!("{} (untagged)", d.digest),
        })
        .collect();
    if entries.len() > SHOWN {
        items.push(format!("and {} more", entries.len() - SHOWN));
    }
    if items.is_empty() {
        return "no images".to_string();
    }
    items.join(", ")
}

/// Read a small blob and check it against its descriptor.
fn read_document(files: &dyn SourceFiles, desc: &Descriptor) -> Result<Vec<u8>> {
    let bytes = files.read_small(&desc.digest.blob_path())?;
    if Digest::of_bytes(&bytes) != desc.digest || bytes.len() as u64 != desc.size {
        return Err(Error::integrity(format!("{}: {} does not match its digest or size", files.describe(), desc.digest.blob_path())));
    }
    Ok(bytes)
}

fn add_large(files: &dyn SourceFiles, desc: &Descriptor, set: &mut ImageSet) -> Result<()> {
    if set.blob(&desc.digest).is_some() {
        return Ok(());
    }
    let path = desc.digest.blob_path();
    if !files.exists(&path) {
        return Err(Error::format(format!("{}: blob {path} is referenced but missing", files.describe())));
    }
    let (source, size) = files.locate(&path)?;
    if size != desc.size {
        return Err(Error::integrity(format!("{}: {path} is {size} bytes but its descriptor says {}", files.describe(), desc.size)));
    }
    set.add_blob(Blob { digest: desc.digest.clone(), size, media_type: desc.media_type.clone(), source });
    Ok(())
}

fn add_document(set: &mut ImageSet, desc: &Descriptor, media_type: &str, bytes: Vec<u8>) {
    set.add_blob(Blob {
        digest: desc.digest.clone(),
        size: bytes.len() as u64,
        media_type: media_type.to_string(),
        source: BlobSource::Bytes(Arc::new(bytes)),
    });
}

/// What a document an index lists is (see [`classify`]).
fn kind_of(files: &dyn SourceFiles, desc: &Descriptor, bytes: &[u8]) -> Result<Kind> {
    classify(Claim::of_index_entry(desc), bytes).map_err(|why| Error::format(format!("{}: blob {} {why}", files.describe(), desc.digest)))
}

/// Add the blobs reachable from `desc`, keeping the platforms `filter` keeps.
/// Returns the descriptor to record (a filtered index may collapse to one
/// manifest, keeping its digest), or `None` if nothing is left.
pub fn add_tree(files: &dyn SourceFiles, desc: &Descriptor, filter: &PlatformFilter, set: &mut ImageSet) -> Result<Option<Descriptor>> {
    let bytes = read_document(files, desc)?;
    match kind_of(files, desc, &bytes)? {
        Kind::Index => {
            let what = format!("{}: index {}", files.describe(), desc.digest);
            let index: Index = parse_json(&bytes, &what)?;
            let mut kept = Vec::new();
            let mut changed = false;
            for child in &index.manifests {
                let is_nested_index = mt::is_index(&child.media_type);
                if !is_nested_index && !filter.keeps(child.platform.as_ref()) {
                    changed = true;
                    continue;
                }
                match add_tree(files, child, filter, set)? {
                    Some(d) if &d == child => kept.push(d),
                    Some(d) => {
                        changed = true;
                        kept.push(d)
                    }
                    None => changed = true,
                }
            }
            if kept.is_empty() {
                return Ok(None);
            }
            let media_type = if desc.media_type.is_empty() { mt::OCI_INDEX } else { desc.media_type.as_str() };
            if !changed {
                add_document(set, desc, media_type, bytes);
                return Ok(Some(desc.clone()));
            }
            if kept.len() == 1 && !mt::is_index(&kept[0].media_type) {
                // One platform left: point at its manifest, whose digest survives.
                let mut only = kept.remove(0);
                only.platform = None;
                return Ok(Some(only));
            }
            // Several platforms kept out of more: a new index (new digest).
            let mut value: serde_json::Value = parse_json(&bytes, &what)?;
            value["manifests"] = serde_json::to_value(&kept).expect("descriptors serialize");
            let new_bytes = serde_json::to_vec(&value).expect("json serializes");
            let new_desc = Descriptor::new(media_type, Digest::of_bytes(&new_bytes), new_bytes.len() as u64);
            add_document(set, &new_desc, media_type, new_bytes);
            Ok(Some(new_desc))
        }
        Kind::Manifest => {
            let manifest: Manifest = parse_json(&bytes, &format!("{}: manifest {}", files.describe(), desc.digest))?;
            add_large(files, &manifest.config, set)?;
            for layer in &manifest.layers {
                add_large(files, layer, set)?;
            }
            let media_type = if !desc.media_type.is_empty() {
                desc.media_type.clone()
            } else {
                manifest.media_type.clone().unwrap_or_else(|| mt::OCI_MANIFEST.to_string())
            };
            add_document(set, desc, &media_type, bytes);
            Ok(Some(desc.clone()))
        }
        _ => {
            // An artifact ferry does not interpret: carry it as it is.
            add_document(set, desc, &desc.media_type, bytes);
            Ok(Some(desc.clone()))
        }
    }
}

/// The single-platform manifest that `manifest.json` (docker load) describes.
pub fn docker_view(set: &ImageSet, top: &Descriptor, filter: &PlatformFilter) -> Result<Option<DockerView>> {
    let bytes = set.document(&top.digest)?;
    let kind = classify(Claim::of_index_entry(top), &bytes).map_err(|why| Error::format(format!("blob {} {why}", top.digest)))?;
    match kind {
        Kind::Manifest => {
            let m: Manifest = parse_json(&bytes, "manifest")?;
            Ok(Some(DockerView { config: m.config.digest, layers: m.layers.into_iter().map(|l| l.digest).collect() }))
        }
        Kind::Index => {
            let index: Index = parse_json(&bytes, "index")?;
            let preferred = filter.preferred();
            let candidates: Vec<&Descriptor> = index.manifests.iter().filter(|d| set.blob(&d.digest).is_some()).collect();
            let chosen = candidates
                .iter()
                .find(|d| d.platform.as_ref().map(|p| preferred.matches(p)).unwrap_or(false))
                .or_else(|| candidates.iter().find(|d| d.platform.as_ref().map(|p| p.os != "unknown").unwrap_or(true)));
            match chosen {
                Some(d) => docker_view(set, d, filter),
                None => Ok(None),
            }
        }
        _ => Ok(None),
    }
}
