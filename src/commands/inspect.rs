//! `ferry inspect SOURCE`: what a bundle holds, from its sidecars and documents.
use super::Context;
use crate::error::Result;
use crate::inspect::BundleInfo;
use crate::trust::{Policy, TrustOptions};

pub struct InspectOptions {
    pub source: String,
    /// Identities to open an encrypted bundle's documents with (none: sidecars only).
    pub trust: TrustOptions,
}

pub fn run(opts: &InspectOptions, cx: &Context) -> Result<BundleInfo> {
    let located = cx.locate(&opts.source)?;
    // No keys: the signer is shown as claimed, not checked (verify -k checks it).
    let bundle = opts.trust.check(&located, Policy::Report)?;
    let decryptor = if opts.trust.identities.is_empty() { None } else { Some(opts.trust.decryptor()?) };
    crate::inspect::inspect(&bundle, decryptor)
}
