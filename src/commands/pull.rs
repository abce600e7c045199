//! `ferry pull LOCATION/STEM -o DIR`: download a bundle, resumable, checksums verified.
use super::Context;
use crate::error::{Error, Result};
use crate::transfer::CopyReport;

pub struct PullOptions {
    pub source: String,
    pub output: String,
}

pub fn run(opts: &PullOptions, cx: &Context) -> Result<CopyReport> {
    let bundle = cx.locate(&opts.source)?;
    std::fs::create_dir_all(&opts.output).map_err(|e| Error::io(format!("creating {}", opts.output), e))?;
    let dest = ferry_transports::DirTransport::new(&opts.output);
    crate::transfer::copy_bundle(&bundle, &dest, cx.progress)
}
