//! What is attached to an image: cosign-style tags (`sha256-<hex>.sig`,
//! `.att`, `.sbom`, beside the image in its repository) and OCI 1.1 referrers
//! (manifests whose `subject` names the image). A registry with the referrers
//! API indexes a referrer itself when it is pushed; for one without it (such
//! as distribution 2.8) ferry keeps the OCI tag-schema fallback: an index
//! tagged `sha256-<hex of the subject>` listing the referrers.
use super::client::Client;
use super::error::RegistryError;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::media_types::OCI_INDEX;
use crate::image::{Descriptor, MAX_DOCUMENT};

/// `sha256-<64 hex>` (the fallback index) or `sha256-<64 hex>.sig|.att|.sbom|...` (cosign).
pub fn is_referrer_tag(tag: &str) -> bool {
    let Some(rest) = tag.strip_prefix("sha256-") else { return false };
    let (hex, suffix) = rest.split_at(rest.len().min(64));
    hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) && (suffix.is_empty() || suffix.starts_with('.'))
}

/// The tag of the fallback index for `subject`.
pub fn fallback_tag(subject: &Digest) -> String {
    format!("sha256-{}", subject.hex())
}

/// A manifest that names a subject.
#[derive(Debug, Clone)]
pub struct Referrer {
    pub subject: Digest,
    /// How it is listed among the subject's referrers.
    pub descriptor: Descriptor,
}

/// The referrer a manifest is, if it names a subject.
pub fn referrer_of(digest: &Digest, media_type: &str, bytes: &[u8]) -> Option<Referrer> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let subject = Digest::parse(v.get("subject")?.get("digest")?.as_str()?).ok()?;
    let mut descriptor = Descriptor::new(media_type, digest.clone(), bytes.len() as u64);
    let artifact_type = v.get("artifactType").or_else(|| v.get("config")?.get("mediaType")).and_then(|t| t.as_str());
    if let Some(t) = artifact_type {
        descriptor.extra.insert("artifactType".into(), t.into());
    }
    if let Some(a) = v.get("annotations").and_then(|a| serde_json::from_value(a.clone()).ok()) {
        descriptor.annotations = Some(a);
    }
    Some(Referrer { subject, descriptor })
}

/// List `referrer` among its subject's referrers in `repo`: nothing to do
/// where the registry has the referrers API; else the fallback index, read,
/// extended and stored again. `true` if the fallback index was written.
///
/// `oci_subject` is the `OCI-Subject` header the registry answered the
/// referrer's PUT with (`None` when ferry did not PUT it: it was there):
/// naming the subject, the registry indexed it (distribution spec 1.1), and
/// no request more is needed. Without it the referrers API is asked, so a
/// registry that has the API but sends no header (or a referrer pushed by an
/// earlier run) gets no stray fallback tag.
pub fn attach(client: &Client, repo: &str, referrer: &Referrer, oci_subject: Option<&str>) -> Result<bool> {
    if oci_subject == Some(referrer.subject.as_str()) || client.has_referrers_api(repo, &referrer.subject)? {
        return Ok(false);
    }
    let tag = fallback_tag(&referrer.subject);
    let mut index = match client.get_manifest(repo, &tag, MAX_DOCUMENT) {
        Ok(found) => serde_json::from_slice::<serde_json::Value>(&found.bytes)
            .map_err(|e| Error::format(format!("{}/{repo}:{tag} is not a referrers index: {e}", client.registry)))?,
        Err(RegistryError::NotFound { .. }) => serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}),
        Err(e) => return Err(e.into()),
    };
    let listed = index["manifests"].as_array().is_some_and(|m| m.iter().any(|d| d["digest"] == referrer.descriptor.digest.as_str()));
    if listed {
        return Ok(false);
    }
    let entry = serde_json::to_value(&referrer.descriptor).expect("descriptors serialize");
    match index["manifests"].as_array_mut() {
        Some(m) => m.push(entry),
        None => index["manifests"] = serde_json::json!([entry]),
    }
    let bytes = serde_json::to_vec(&index).expect("json serializes");
    client.put_manifest(repo, &tag, OCI_INDEX, bytes.into())?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referrer_tags() {
        let hex = "a".repeat(64);
        for yes in [format!("sha256-{hex}"), format!("sha256-{hex}.sig"), format!("sha256-{hex}.att"), format!("sha256-{hex}.sbom")] {
            assert!(is_referrer_tag(&yes), "{yes}");
        }
        for no in ["latest".to_string(), format!("sha256-{}", &hex[..63]), format!("sha256-{hex}x"), format!("sha512-{hex}")] {
            assert!(!is_referrer_tag(&no), "{no}");
        }
    }

    #[test]
    fn a_manifest_with_a_subject_is_a_referrer() {
        let subject = Digest::of_bytes(b"image");
        let bytes = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/spdx+json","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{}","size":2}},"layers":[],"subject":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{subject}","size":5}},"annotations":{{"a":"b"}}}}"#,
            Digest::of_bytes(b"{}")
        );
        let digest = Digest::of_bytes(bytes.as_bytes());
        let r = referrer_of(&digest, "application/vnd.oci.image.manifest.v1+json", bytes.as_bytes()).unwrap();
        assert_eq!(r.subject, subject);
        assert_eq!(r.descriptor.extra["artifactType"], "application/spdx+json");
        assert_eq!(r.descriptor.annotation("a"), Some("b"));
        assert!(referrer_of(&digest, "x", br#"{"config":{}}"#).is_none());
    }
}
