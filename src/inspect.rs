//! `ferry inspect`: what a bundle holds, read from its sidecars and the
//! documents at the start of its artifact (layers are not read).
use crate::bundle::layout::{ANN_CREATED, ANN_DELTA_BASE, ANN_FLATTENED, ANN_FORMAT, ANN_TOOL};
use crate::bundle::read::Decryptor;
use crate::bundle::verify::{Sink, Verified};
use crate::bundle::NoProgress;
use crate::digest::Digest;
use crate::error::Result;
use crate::image::media_types::{ANN_CONTAINERD_NAME, ANN_REF_NAME};
use crate::registry::pull::{ANN_REFERRER_KIND, ANN_REFERRER_SUBJECT};
use crate::seal::limits::MAX_HEADER_BYTES;
use crate::trust::Trusted;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct BundleInfo {
    pub bundle: String,
    pub parts: Vec<PartInfo>,
    pub compression: String,
    pub encrypted: bool,
    pub signed: bool,
    /// Key id that claims the signature (checked only by `verify -k`/`load -k`).
    pub signer: Option<String>,
    /// The signature's trusted comment, as written (not verified here).
    pub trusted_comment: Option<String>,
    /// age recipients, read from the header without any key.
    pub recipients: Option<String>,
    pub format: Option<String>,
    pub created: Option<String>,
    pub tool: Option<String>,
    pub flattened: Option<bool>,
    pub delta_base: Option<String>,
    /// A delta bundle's left-out layers: what the target must already hold (empty for a full bundle).
    pub left_out: Vec<crate::delta::LeftOut>,
    /// Parity parts (`save --parity`): the redundancy, and what is missing now.
    pub parity: Option<ParityInfo>,
    /// `None` when the content could not be opened (encrypted, no identity).
    pub images: Option<Vec<ImageInfo>>,
    pub notes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ParityInfo {
    pub data_parts: usize,
    pub parity_parts: usize,
    /// How many parts may be lost or damaged with the bundle still readable.
    pub may_lose: usize,
    pub part_size: u64,
    pub code: &'static str,
    /// Parts bad now: by size, and in a local directory where one is, by checksum too.
    pub bad_parts: Vec<crate::parity::BadPart>,
}

#[derive(Debug, Serialize)]
pub struct PartInfo {
    pub name: String,
    pub size: Option<u64>,
    pub sha256: String,
}

#[derive(Debug, Serialize)]
pub struct ImageInfo {
    pub name: Option<String>,
    pub ref_name: Option<String>,
    pub digest: Digest,
    pub media_type: String,
    pub manifests: Vec<ManifestInfo>,
    /// A signature, attestation, SBOM or other referrer: the image it is attached to, and what it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referrer: Option<ReferrerInfo>,
}

#[derive(Debug, Serialize)]
pub struct ReferrerInfo {
    pub subject: String,
    pub kind: String,
}

#[derive(Debug, Serialize)]
pub struct ManifestInfo {
    pub digest: Digest,
    pub platform: Option<String>,
    pub config: Digest,
    pub layers: Vec<LayerInfo>,
    pub size: u64,
}

#[derive(Debug, Serialize)]
pub struct LayerInfo {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    /// Not carried: a delta left it out (the target must hold it).
    pub left_out: bool,
}

struct DocumentsOnly;
impl Sink for DocumentsOnly {
    fn wants_layers(&self) -> bool {
        false
    }
    fn delta(&mut self, _delta: &crate::delta::Delta) -> Result<()> {
        Ok(())
    }
}

pub fn inspect(bundle: &Trusted, decryptor: Option<Decryptor>) -> Result<BundleInfo> {
    let parts = bundle
        .checksums
        .lines
        .iter()
        .map(|l| PartInfo { name: l.name.clone(), size: bundle.transport.stat(&l.name).ok().flatten(), sha256: l.hex.clone() })
        .collect();
    let mut info = BundleInfo {
        bundle: bundle.describe(),
        parts,
        compression: "unknown".into(),
        encrypted: bundle.is_encrypted_by_name(),
        signed: bundle.signature.is_some(),
        signer: None,
        trusted_comment: None,
        recipients: None,
        format: None,
        created: None,
        tool: None,
        flattened: None,
        delta_base: None,
        left_out: Vec::new(),
        parity: None,
        images: None,
        notes: Vec::new(),
    };
    if let Some(g) = &bundle.parity {
        // Sizes only (inspect reads no more than the documents), unless a part is bad: then a
        // rebuild must not draw on a damaged part, so a local bundle's parts are hashed too.
        use crate::parity::survey::{survey, Depth};
        let (transport, lines) = (&*bundle.transport, &bundle.checksums.lines);
        let mut bad = survey(transport, g, lines, Depth::Sizes, &NoProgress)?;
        if !bad.is_empty() && transport.local_dir().is_some() {
            bad = survey(transport, g, lines, Depth::Hashes, &NoProgress)?;
        }
        let _ = bundle.bad_parts.set(bad.clone());
        info.parity = Some(ParityInfo {
            data_parts: g.data,
            parity_parts: g.parity,
            may_lose: g.parity,
            part_size: g.part_size,
            code: "Reed-Solomon (Cauchy, GF(2^8))",
            bad_parts: bad,
        });
    }
    if let Some(sig) = &bundle.signature {
        if let Ok(u) = crate::seal::read_unverified(sig) {
            info.signer = Some(u.key_id.to_string());
            info.trusted_comment = Some(u.trusted_comment);
        }
    }
    if let Some(first) = bundle.data_lines().first().filter(|l| !bundle.rebuilt_parts().iter().any(|b| b.name == l.name)) {
        // The header is read within its bound (one byte more tells "too long").
        let mut head = Vec::new();
        if let Ok(r) = bundle.transport.get(&first.name, 0) {
            let _ = std::io::Read::read_to_end(&mut std::io::Read::take(r, MAX_HEADER_BYTES as u64 + 1), &mut head);
        }
        if crate::seal::is_age(&head) || crate::seal::is_armored_age(&head) {
            info.encrypted = true;
            match crate::seal::describe_recipients(&head) {
                Ok(h) => info.recipients = Some(h.to_string()),
                Err(e) => info.notes.push(format!("{}: {e}", first.name)),
            }
        }
    }
    if info.encrypted && decryptor.is_none() {
        info.notes.push("the content is encrypted: give -i IDENTITY to list its images".into());
        return Ok(info);
    }
    let (v, compression, encrypted) = crate::verified::verify_into(bundle, decryptor, &mut DocumentsOnly, None, &NoProgress)?;
    info.compression = compression.name().into();
    info.encrypted = encrypted;
    fill_from(&mut info, &v);
    Ok(info)
}

fn fill_from(info: &mut BundleInfo, v: &Verified) {
    let Some(index) = &v.index else { return };
    let ann = |k: &str| index.annotations.as_ref().and_then(|a| a.get(k)).cloned();
    info.format = ann(ANN_FORMAT);
    info.created = ann(ANN_CREATED);
    info.tool = ann(ANN_TOOL);
    info.flattened = ann(ANN_FLATTENED).map(|f| f == "true");
    info.delta_base = ann(ANN_DELTA_BASE);
    info.left_out = v.delta.as_ref().map(|d| d.left_out.clone()).unwrap_or_default();
    let left_out = |d: &Digest| v.delta.as_ref().is_some_and(|delta| delta.contains(d));
    let manifest_info = |digest: &Digest, platform: Option<String>| -> Option<ManifestInfo> {
        let (_, m) = v.manifests.iter().find(|(d, _)| d == digest)?;
        let layers: Vec<LayerInfo> = m
            .layers
            .iter()
            .map(|l| LayerInfo { digest: l.digest.clone(), size: l.size, media_type: l.media_type.clone(), left_out: left_out(&l.digest) })
            .collect();
        let platform = platform.or_else(|| {
            let cfg: serde_json::Value = crate::image::parse_document(v.configs.get(&m.config.digest)?).ok()?;
            Some(format!("{}/{}", cfg["os"].as_str()?, cfg["architecture"].as_str()?))
        });
        Some(ManifestInfo {
            digest: digest.clone(),
            platform,
            config: m.config.digest.clone(),
            size: layers.iter().map(|l| l.size).sum(),
            layers,
        })
    };
    let mut images = Vec::new();
    for d in &index.manifests {
        let mut manifests = Vec::new();
        if let Some(m) = manifest_info(&d.digest, None) {
            manifests.push(m);
        } else {
            // An index: its platform manifests, as far as the bundle has them.
            collect_platforms(v, &d.digest, &mut |digest, platform| {
                if let Some(m) = manifest_info(digest, platform) {
                    manifests.push(m);
                }
            });
        }
        images.push(ImageInfo {
            name: d.annotation(ANN_CONTAINERD_NAME).map(str::to_string),
            ref_name: d.annotation(ANN_REF_NAME).map(str::to_string),
            digest: d.digest.clone(),
            media_type: d.media_type.clone(),
            manifests,
            referrer: d.annotation(ANN_REFERRER_SUBJECT).map(|subject| ReferrerInfo {
                subject: subject.to_string(),
                kind: d.annotation(ANN_REFERRER_KIND).unwrap_or("referrer").to_string(),
            }),
        });
    }
    info.images = Some(images);
}

/// The platform manifests below an index, with their platforms.
fn collect_platforms(v: &Verified, index: &Digest, f: &mut dyn FnMut(&Digest, Option<String>)) {
    let Some((_, idx)) = v.indexes.iter().find(|(d, _)| d == index) else { return };
    for child in &idx.manifests {
        if v.indexes.iter().any(|(d, _)| d == &child.digest) {
            collect_platforms(v, &child.digest, f);
        } else {
            f(&child.digest, child.platform.as_ref().map(|p| p.to_string()));
        }
    }
}
