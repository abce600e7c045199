//! `ferry repair SOURCE -o DIR`: write a parity bundle's missing or damaged
//! parts back, rebuilt from its good parts, so that `sha256sum -c STEM.sha256`
//! passes again. Into the bundle's own directory only the bad parts are
//! written; into another directory the whole bundle is copied (good parts
//! checked as they are copied, bad ones rebuilt there), sidecars last.
use super::Context;
use crate::error::{Error, Result};
use crate::parity::survey::{survey, Depth};
use crate::parity::BadPart;
use crate::trust::{Policy, TrustOptions};
use ferry_transports::{DirTransport, Transport};
use serde::Serialize;
use std::path::{Path, PathBuf};

pub struct RepairOptions {
    pub source: String,
    pub output: PathBuf,
    /// `-k`: check the signature first (optional; the checksums are checked either way).
    pub trust: TrustOptions,
}

#[derive(Debug, Clone, Serialize)]
pub struct RepairReport {
    pub bundle: String,
    pub output: String,
    pub signature: String,
    /// The parts that were missing or damaged, now rewritten.
    pub rebuilt: Vec<BadPart>,
    /// Files written into `output` (all of the bundle's when it is another directory).
    pub written: usize,
}

pub fn run(opts: &RepairOptions, cx: &Context) -> Result<RepairReport> {
    let located = cx.locate(&opts.source)?;
    let bundle = opts.trust.check(&located, Policy::Report)?;
    let geometry = bundle.parity.clone().ok_or_else(|| {
        Error::usage(format!("{} has no parity parts (save it with --split SIZE --parity N): nothing to rebuild from", bundle.describe()))
    })?;
    std::fs::create_dir_all(&opts.output).map_err(|e| Error::io(format!("creating {}", opts.output.display()), e))?;
    let dest = DirTransport::new(&opts.output);
    let (rebuilt, written) = if same_dir(bundle.transport.local_dir(), &opts.output) {
        let bad = survey(&dest, &geometry, &bundle.checksums.lines, Depth::Hashes, cx.progress)?;
        crate::parity::check_repairable(&bundle.describe(), &geometry, &bad)?;
        crate::parity::rebuild::rebuild_into(&dest, &geometry, &bundle.checksums.lines, &bad, cx.progress)?;
        let n = bad.len();
        (bad, n)
    } else {
        let copy = crate::transfer::copy_bundle(&bundle, &dest, cx.progress)?;
        (copy.rebuilt, copy.files.len())
    };
    Ok(RepairReport { bundle: bundle.describe(), output: dest.describe(), signature: bundle.signature().describe(), rebuilt, written })
}

fn same_dir(source: Option<&Path>, output: &Path) -> bool {
    let canon = |p: &Path| std::fs::canonicalize(p).ok();
    source.is_some_and(|s| canon(s).is_some() && canon(s) == canon(output))
}
