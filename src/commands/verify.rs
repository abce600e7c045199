//! `ferry verify SOURCE`: every check a load makes, nothing written.
use super::Context;
use crate::error::Result;
use crate::trust::{Policy, TrustOptions};
use serde::Serialize;

pub struct VerifyOptions {
    pub source: String,
    pub trust: TrustOptions,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub bundle: String,
    /// What the signature check found (`signed by trusted key …`, `unsigned`).
    pub signature: String,
    /// Only the checksums were checked: the content is encrypted and no identity was given.
    pub checksums_only: bool,
    /// Artifact files checked against STEM.sha256.
    pub files: usize,
    /// Artifact bytes read (checksums-only) or content bytes verified.
    pub bytes: u64,
    /// Blobs verified (0 when only checksums were checked).
    pub blobs: usize,
    pub images: Vec<String>,
    /// A delta bundle's left-out layers: what a target must hold to load it (empty for a full bundle).
    pub left_out: Vec<crate::delta::LeftOut>,
    /// Parts found missing or damaged; data parts among them were rebuilt from parity.
    pub bad_parts: Vec<crate::parity::BadPart>,
}

pub fn run(opts: &VerifyOptions, cx: &Context) -> Result<VerifyReport> {
    let located = cx.locate(&opts.source)?;
    let bundle = opts.trust.check(&located, Policy::Report)?;
    let signature = bundle.signature();
    let files = bundle.checksums.lines.len();
    if bundle.is_encrypted_by_name() && opts.trust.identities.is_empty() {
        let bytes = crate::verified::verify_checksums(&bundle, cx.progress)?;
        return Ok(VerifyReport {
            bundle: bundle.describe(),
            signature: signature.describe(),
            checksums_only: true,
            files,
            bytes,
            blobs: 0,
            images: Vec::new(),
            left_out: Vec::new(),
            bad_parts: bundle.rebuilt_parts(),
        });
    }
    let decryptor = if bundle.is_encrypted_by_name() { Some(opts.trust.decryptor()?) } else { None };
    let (verified, compression, encrypted) =
        crate::verified::verify_into(&bundle, decryptor, &mut crate::bundle::verify::NullSink, None, cx.progress)?;
    let left_out = verified.delta.as_ref().map(|d| d.left_out.clone()).unwrap_or_default();
    let report = crate::verified::report(bundle.describe(), &verified, compression, encrypted);
    Ok(VerifyReport {
        bundle: bundle.describe(),
        signature: signature.describe(),
        checksums_only: false,
        files,
        bytes: report.content_bytes,
        blobs: report.blobs,
        images: report.images,
        left_out,
        bad_parts: bundle.rebuilt_parts(),
    })
}
