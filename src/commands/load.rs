//! `ferry load SOURCE --into TARGET`: the signature first, then one verified
//! stream into the target, committed only when everything checked out.
use super::Context;
use crate::error::Result;
use crate::reference::ImageRef;
use crate::trust::{Policy, TrustOptions};
use serde::Serialize;

pub struct LoadOptions {
    pub source: String,
    pub into: String,
    pub trust: TrustOptions,
    /// `--deep`: a delta's left-out layers in an `oci:` target are hashed, not only sized.
    pub deep: bool,
    /// `--platform`: what a containerd target keeps of multi-platform images.
    pub platforms: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadSummary {
    pub bundle: String,
    pub target: String,
    pub images: Vec<String>,
    pub blobs: usize,
    pub content_bytes: u64,
    pub signature: String,
    pub compression: &'static str,
    pub encrypted: bool,
    /// Parts found missing or damaged; data parts among them were rebuilt from parity.
    pub bad_parts: Vec<crate::parity::BadPart>,
    /// Blobs the target held already, not written again (containerd).
    pub skipped_blobs: usize,
    /// A `docker://` target: what was uploaded, skipped, mounted and tagged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<crate::registry::push::PushReport>,
}

pub fn run(opts: &LoadOptions, cx: &Context) -> Result<LoadSummary> {
    let into = ImageRef::parse_target(&opts.into)?;
    let located = cx.locate(&opts.source)?;
    // The signature over STEM.sha256 is checked before any artifact byte is read.
    let bundle = opts.trust.check(&located, Policy::RequireSignature)?;
    let decryptor = Some(opts.trust.decryptor()?);
    let options = crate::targets::TargetOptions {
        deep: opts.deep,
        platforms: crate::image::PlatformFilter::parse(&opts.platforms)?,
        containerd: cx.containerd.clone(),
        registry: cx.registry.clone(),
    };
    let report = crate::targets::load_with(&bundle, &into, decryptor, &options, cx.progress)?;
    Ok(LoadSummary {
        bundle: bundle.describe(),
        target: report.target,
        images: report.images,
        blobs: report.blobs,
        content_bytes: report.content_bytes,
        signature: bundle.signature().describe(),
        compression: report.compression.name(),
        encrypted: report.encrypted,
        bad_parts: bundle.rebuilt_parts(),
        skipped_blobs: report.skipped_blobs,
        registry: report.registry,
    })
}
