//! `docker://HOST/REPO[:TAG|@DIGEST]` as a `save` (and `flatten`) source. The
//! registry is read as an OCI layout whose index.json names the one image
//! (image/oci.rs walks it: platforms, nested indexes, the docker view), so a
//! registry source fits the same bundle writer as every other source.
//! Manifests and indexes are fetched whole (bounded) and kept byte for byte;
//! configs and layers are pulled only when the writer reads them
//! ([`Prefetch`]). Attached signatures, attestations and SBOMs (cosign's
//! `sha256-HEX.sig/.att/.sbom` tags, OCI 1.1 referrers) come along as extra
//! index.json entries (docs/FORMAT.md "Referrers").
use super::client::{Client, FetchedManifest};
use super::prefetch::Prefetch;
use super::{RegistryError, RegistryRef};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::files::SourceFiles;
use crate::image::media_types::{self as mt, ANN_REF_NAME};
use crate::image::{oci, BlobSource, Descriptor, Image, ImageSet, PlatformFilter, SourceOptions, MAX_DOCUMENT};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Annotations of an index.json entry that is attached to another image (docs/FORMAT.md).
pub const ANN_REFERRER_SUBJECT: &str = "dev.ferry.referrer.subject";
pub const ANN_REFERRER_KIND: &str = "dev.ferry.referrer.kind";
/// What index.json keeps of an entry's own annotations.
pub const ANN_REFERRER_PREFIX: &str = "dev.ferry.referrer.";

const SCHEMA1: [&str; 3] = [
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/json",
];

/// Add the image `r` names (and what is attached to it) to `set`.
pub fn read_registry(r: &RegistryRef, opts: &SourceOptions, set: &mut ImageSet) -> Result<()> {
    let reg = &opts.registry;
    let client = Arc::new(Client::connect(&r.registry, reg)?);
    let fetched = client.get_manifest(&r.repository, &r.reference(), MAX_DOCUMENT)?;
    let top = checked(r, &r.reference(), fetched)?;
    let spool_dir = opts.spool_dir.clone().unwrap_or_else(std::env::temp_dir);
    let pull = Arc::new(Prefetch::new(client.clone(), &r.repository, spool_dir, reg.jobs, reg.retries));
    let name = match (&r.tag, &r.digest) {
        (Some(tag), _) => format!("{}:{tag}", r.repository_name()),
        (None, Some(digest)) => format!("{}@{digest}", r.repository_name()),
        (None, None) => unreachable!("a source has a tag or a digest"),
    };
    let mut entry = top.descriptor.clone();
    entry.annotations = Some(BTreeMap::from([(ANN_REF_NAME.to_string(), name)]));
    let index = serde_json::json!({ "schemaVersion": 2, "mediaType": mt::OCI_INDEX, "manifests": [entry] });
    let files = RegistryFiles {
        client: client.clone(),
        source: r.clone(),
        index_json: serde_json::to_vec(&index).expect("json serializes"),
        documents: RefCell::new(HashMap::from([(top.descriptor.digest.clone(), top.bytes)])),
        sizes: RefCell::new(HashMap::new()),
        pull: pull.clone(),
    };
    oci::read_layout(&files, None, &opts.platforms, set)?;
    if !reg.no_referrers {
        add_referrers(&files, set)?;
    }
    let order = crate::bundle::layout::blob_order(set)?
        .into_iter()
        .filter_map(|d| set.blob(&d).filter(|b| matches!(b.source, BlobSource::Registry { .. })).map(|b| (d, b.size)))
        .collect();
    pull.plan(order);
    Ok(())
}

/// A manifest as fetched, its digest taken of its bytes.
struct Document {
    descriptor: Descriptor,
    bytes: Vec<u8>,
}

/// Hash what the registry sent, check it against a pinned digest, and refuse schema 1.
fn checked(r: &RegistryRef, reference: &str, fetched: FetchedManifest) -> Result<Document> {
    let digest = Digest::of_bytes(&fetched.bytes);
    let where_ = format!("{}/{}", r.registry, r.repository);
    if let Ok(pinned) = Digest::parse(reference) {
        if pinned != digest {
            return Err(Error::integrity(format!(
                "{where_}: the registry served manifest {pinned} with bytes that hash to {digest}: nothing was written"
            ))
            .with_hint("the registry's copy is damaged or it is not the registry you meant: check the digest and the host"));
        }
    }
    let value: serde_json::Value = crate::image::parse_json(&fetched.bytes, &format!("{where_}: manifest {reference}"))?;
    let declared = value.get("mediaType").and_then(|m| m.as_str()).map(str::to_string);
    let media_type = fetched.media_type.map(|m| m.split(';').next().unwrap_or_default().trim().to_string()).filter(|m| !m.is_empty());
    let schema1 =
        value.get("schemaVersion").and_then(|v| v.as_u64()) == Some(1) || media_type.as_deref().is_some_and(|m| SCHEMA1[..2].contains(&m));
    if schema1 {
        return Err(Error::format(format!(
            "{where_}: manifest {reference} is Docker image manifest schema 1, which ferry does not read (it has no content-addressed config)"
        ))
        .with_hint("convert it first, e.g. skopeo copy --format v2s2 docker://... docker://..., or push the image again with a current client"));
    }
    // The document's own mediaType, else what the registry said it serves.
    let media_type = declared.or(media_type.filter(|m| !SCHEMA1.contains(&m.as_str()))).unwrap_or_default();
    let descriptor = Descriptor::new(&media_type, digest, fetched.bytes.len() as u64);
    Ok(Document { descriptor, bytes: fetched.bytes })
}

/// One repository of a registry, as the files of an OCI layout.
struct RegistryFiles {
    client: Arc<Client>,
    source: RegistryRef,
    index_json: Vec<u8>,
    /// Manifests fetched already (by tag, or as referrers).
    documents: RefCell<HashMap<Digest, Vec<u8>>>,
    /// The sizes the manifests read so far give their configs and layers.
    sizes: RefCell<HashMap<Digest, u64>>,
    pull: Arc<Prefetch>,
}

impl RegistryFiles {
    fn digest_of(&self, path: &str) -> Result<Digest> {
        let hex = path.strip_prefix("blobs/sha256/").ok_or_else(|| Error::format(format!("{}: no file {path}", self.describe())))?;
        Digest::from_hex(hex)
    }

    fn record_sizes(&self, bytes: &[u8]) {
        let Ok(m) = crate::image::parse_document::<crate::image::Manifest>(bytes) else { return };
        let mut sizes = self.sizes.borrow_mut();
        for d in std::iter::once(&m.config).chain(&m.layers) {
            sizes.insert(d.digest.clone(), d.size);
        }
    }

    /// Fetch a manifest by tag or digest and remember its bytes.
    fn fetch(&self, reference: &str) -> Result<Document> {
        self.fetch_if_there(reference)?.ok_or_else(|| {
            RegistryError::NotFound {
                registry: self.source.registry.clone(),
                what: format!("manifest {}:{reference}", self.source.repository),
            }
            .into()
        })
    }

    /// [`Self::fetch`], `None` when the registry does not have it.
    fn fetch_if_there(&self, reference: &str) -> Result<Option<Document>> {
        let fetched = match self.client.get_manifest(&self.source.repository, reference, MAX_DOCUMENT) {
            Ok(fetched) => fetched,
            Err(RegistryError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let doc = checked(&self.source, reference, fetched)?;
        self.documents.borrow_mut().insert(doc.descriptor.digest.clone(), doc.bytes.clone());
        Ok(Some(doc))
    }
}

impl SourceFiles for RegistryFiles {
    fn describe(&self) -> String {
        format!("docker://{}/{}", self.source.registry, self.source.repository)
    }
    fn exists(&self, path: &str) -> bool {
        path == "index.json" || path.starts_with("blobs/sha256/")
    }
    fn locate(&self, path: &str) -> Result<(BlobSource, u64)> {
        let digest = self.digest_of(path)?;
        let size = self.sizes.borrow().get(&digest).copied();
        let size = match size {
            Some(size) => size,
            None => return Err(Error::format(format!("{}: blob {digest} is not listed by a manifest read", self.describe()))),
        };
        Ok((BlobSource::Registry { pull: self.pull.clone(), digest, size }, size))
    }
    fn read_small(&self, path: &str) -> Result<Vec<u8>> {
        if path == "index.json" {
            return Ok(self.index_json.clone());
        }
        let digest = self.digest_of(path)?;
        let known = self.documents.borrow().get(&digest).cloned();
        let bytes = match known {
            Some(bytes) => bytes,
            None => self.fetch(digest.as_str())?.bytes,
        };
        self.record_sizes(&bytes);
        Ok(bytes)
    }
}

/// The tag-schema suffixes cosign writes, and what they hold.
const TAG_KINDS: [(&str, &str); 3] = [(".sig", "signature"), (".att", "attestation"), (".sbom", "sbom")];

/// Every manifest attached to a manifest or index of the image: OCI 1.1
/// referrers from the API, or from the tag-schema fallback index where the
/// registry has no API; and the cosign tag schema.
fn add_referrers(files: &RegistryFiles, set: &mut ImageSet) -> Result<()> {
    let subjects: Vec<Digest> = set.blobs().iter().filter(|b| matches!(b.source, BlobSource::Bytes(_))).map(|b| b.digest.clone()).collect();
    let repo = &files.source.repository;
    let mut attached: Vec<(Digest, Option<String>, String, Descriptor)> = Vec::new();
    let mut api = true;
    for subject in &subjects {
        if !api {
            break;
        }
        match files.client.referrers(repo, subject)? {
            Some(found) => {
                for d in found {
                    let kind = d.extra.get("artifactType").and_then(|a| a.as_str()).unwrap_or("referrer").to_string();
                    attached.push((subject.clone(), None, kind, d));
                }
            }
            None => api = false,
        }
    }
    let tags = files.client.list_tags(repo)?;
    if !api {
        for subject in &subjects {
            for (kind, descriptor) in fallback_referrers(files, subject, &tags)? {
                if !attached.iter().any(|(_, _, _, d)| d.digest == descriptor.digest) {
                    attached.push((subject.clone(), None, kind, descriptor));
                }
            }
        }
    }
    for subject in &subjects {
        for (suffix, kind) in TAG_KINDS {
            let tag = format!("sha256-{}{suffix}", subject.hex());
            if !tags.contains(&tag) {
                continue;
            }
            let doc = files.fetch(&tag)?;
            if !attached.iter().any(|(_, _, _, d)| d.digest == doc.descriptor.digest) {
                attached.push((subject.clone(), Some(tag), kind.to_string(), doc.descriptor));
            }
        }
    }
    for (subject, tag, kind, mut descriptor) in attached {
        descriptor.annotations = None;
        descriptor.platform = None;
        descriptor.extra.clear();
        let Some(mut descriptor) = oci::add_tree(files, &descriptor, &PlatformFilter::default(), set)? else { continue };
        descriptor.annotations =
            Some(BTreeMap::from([(ANN_REFERRER_SUBJECT.to_string(), subject.to_string()), (ANN_REFERRER_KIND.to_string(), kind)]));
        set.images.push(Image { name: None, ref_name: tag, descriptor, docker: None });
    }
    Ok(())
}

/// The referrers the fallback index `sha256-<subject hex>` lists (OCI
/// distribution spec 1.1, "Referrers tag schema"), each with its kind (its
/// `artifactType`). The index is what clients keep, not the registry, so it is
/// trusted no further than it checks out: an entry the registry no longer has
/// (a deleted referrer) or whose manifest names another subject is passed over.
fn fallback_referrers(files: &RegistryFiles, subject: &Digest, tags: &[String]) -> Result<Vec<(String, Descriptor)>> {
    let tag = super::referrers::fallback_tag(subject);
    if !tags.contains(&tag) {
        return Ok(Vec::new());
    }
    let Some(index) = files.fetch_if_there(&tag)? else { return Ok(Vec::new()) };
    let listed: crate::image::Index = crate::image::parse_document(&index.bytes)
        .map_err(|e| Error::format(format!("{}:{tag} is not a referrers index: {e}", files.describe())))?;
    let mut found = Vec::new();
    for entry in listed.manifests {
        let Some(doc) = files.fetch_if_there(entry.digest.as_str())? else { continue };
        let Some(referrer) = super::referrers::referrer_of(&doc.descriptor.digest, &doc.descriptor.media_type, &doc.bytes) else {
            continue;
        };
        if referrer.subject != *subject {
            continue;
        }
        let kind = referrer.descriptor.extra.get("artifactType").and_then(|a| a.as_str()).unwrap_or("referrer").to_string();
        found.push((kind, doc.descriptor));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetched(bytes: &str, media_type: Option<&str>) -> FetchedManifest {
        FetchedManifest { bytes: bytes.as_bytes().to_vec(), media_type: media_type.map(str::to_string), digest: None }
    }

    #[test]
    fn manifests_are_hashed_checked_and_schema1_refused() {
        let r = RegistryRef::parse_source("127.0.0.1:5000/team/app:v1").unwrap();
        let doc = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":2},"layers":[]}"#;
        let got = checked(&r, "v1", fetched(doc, Some("application/vnd.oci.image.manifest.v1+json; charset=utf-8"))).unwrap();
        assert_eq!(got.descriptor.digest, Digest::of_bytes(doc.as_bytes()));
        assert_eq!(got.descriptor.media_type, mt::OCI_MANIFEST);
        assert_eq!(got.bytes, doc.as_bytes(), "kept byte for byte");

        let other = format!("sha256:{}", "1".repeat(64));
        let e = checked(&r, &other, fetched(doc, None)).err().expect("a pinned digest is checked");
        assert_eq!(e.kind(), crate::error::ErrorKind::Integrity);

        let schema1 = r#"{"schemaVersion":1,"name":"team/app","tag":"v1","fsLayers":[]}"#;
        for media_type in [None, Some("application/vnd.docker.distribution.manifest.v1+prettyjws")] {
            let e = checked(&r, "v1", fetched(schema1, media_type)).err().expect("schema 1 is refused");
            assert!(e.to_string().contains("schema 1"), "{e}");
        }
    }
}
