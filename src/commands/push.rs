//! `ferry push BUNDLE LOCATION`: copy a bundle's files, atomic and resumable.
use super::Context;
use crate::error::Result;
use crate::transfer::CopyReport;

pub struct PushOptions {
    pub bundle: String,
    pub location: String,
}

pub fn run(opts: &PushOptions, cx: &Context) -> Result<CopyReport> {
    let bundle = cx.locate(&opts.bundle)?;
    let dest = cx.open(&opts.location)?;
    crate::transfer::copy_bundle(&bundle, &*dest, cx.progress)
}
