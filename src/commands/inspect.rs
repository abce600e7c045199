//! `ferry inspect SOURCE`: what a bundle holds, from its sidecars and documents.
use super::Context;
use crate::error::Result;
use crate::inspect::BundleInfo;
use crate::trust::TrustOptions;

pub struct InspectOptions {
    pub source: String,
    /// Identities to open an encrypted bundle's documents with (none: sidecars only).
    pub trust: TrustOptions,
}

pub fn run(opts: &InspectOptions, cx: &Context) -> Result<BundleInfo> {
    let bundle = cx.locate(&opts.source)?;
    let decryptor = if opts.trust.identities.is_empty() { None } else { Some(opts.trust.decryptor()?) };
    crate::inspect::inspect(&bundle, decryptor)
}
