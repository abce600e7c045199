//! `ferry have TARGET... -o FILE`: a have-list of what a consumer holds
//! (SPEC §6), for `ferry save --have` on the sending side.
//!
//! - `oci:DIR[:REF]`: every blob reachable from its index.json;
//! - `docker-daemon:[NAME]`: the layer chain IDs of every image (or of NAME);
//! - `containerd:[NAMESPACE]`: the blobs and layer chain IDs of every image;
//! - `docker://HOST[/PREFIX]`: every blob of the registry's repositories under PREFIX;
//! - a bundle (`LOCATION/STEM`, a `.sha256`, ...): the blobs it carried and the
//!   chain IDs of its images, for a delta against an earlier release. Its
//!   content is read, so it is checked first as `load` checks it.
use super::Context;
use crate::bundle::verify::{NullSink, Verified};
use crate::error::{Error, Result};
use crate::have::HaveList;
use crate::image::{open_source, SourceOptions};
use crate::reference::ImageRef;
use crate::trust::{Policy, TrustOptions};
use serde::Serialize;
use std::path::PathBuf;

pub struct HaveOptions {
    pub targets: Vec<String>,
    /// Where the have-list goes; `-` is stdout.
    pub output: PathBuf,
    /// For bundle targets.
    pub trust: TrustOptions,
}

#[derive(Debug, Clone, Serialize)]
pub struct HaveReport {
    pub output: String,
    /// Distinct blob digests in the list.
    pub blobs: usize,
    /// Distinct layer chain IDs in the list.
    pub chains: usize,
    pub targets: Vec<HaveTarget>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HaveTarget {
    pub target: String,
    pub blobs: usize,
    pub chains: usize,
}

pub fn run(opts: &HaveOptions, cx: &Context) -> Result<HaveReport> {
    let mut list = HaveList::default();
    let mut targets = Vec::with_capacity(opts.targets.len());
    for target in &opts.targets {
        let held = held_by(target, opts, cx)?;
        targets.push(HaveTarget { target: target.clone(), blobs: held.blobs.len(), chains: held.chains.len() });
        list.merge(held);
    }
    let comments: Vec<String> = std::iter::once(format!("written by ferry {}", env!("CARGO_PKG_VERSION")))
        .chain(targets.iter().map(|t| format!("{}: {} blob(s), {} layer chain(s)", t.target, t.blobs, t.chains)))
        .collect();
    write_list(&list, &comments, &opts.output)?;
    Ok(HaveReport { output: opts.output.display().to_string(), blobs: list.blobs.len(), chains: list.chains.len(), targets })
}

fn held_by(target: &str, opts: &HaveOptions, cx: &Context) -> Result<HaveList> {
    if target == "docker-daemon:" || target == "docker-daemon" {
        return held_by_daemon(None);
    }
    if let Some(name) = target.strip_prefix("docker-daemon:") {
        return held_by_daemon(Some(name));
    }
    if target.starts_with("oci:") {
        return held_by_layout(&ImageRef::parse(target)?);
    }
    if let Some(namespace) = target.strip_prefix("containerd:") {
        let namespace = crate::reference::containerd_namespace(Some(namespace))?;
        return crate::containerd::held::held(&cx.containerd, &namespace);
    }
    if let Some(rest) = target.strip_prefix("docker://") {
        return crate::registry::held::held_by_registry(&crate::registry::RegistryRef::parse(rest)?, &cx.registry);
    }
    if ["docker-archive:", "oci-archive:"].iter().any(|p| target.starts_with(p)) {
        return Err(Error::usage(format!(
            "ferry have cannot read {} yet: give oci:DIR, docker-daemon:, docker://HOST[/PREFIX] or a bundle (LOCATION/STEM)",
            crate::untrusted::shown(target)
        )));
    }
    held_by_bundle(target, &opts.trust, cx)
}

fn held_by_daemon(name: Option<&str>) -> Result<HaveList> {
    let engine = crate::engine::Engine::connect()?;
    let stacks = match name {
        Some(name) => vec![crate::engine::held::layer_stack(&engine, name)?],
        None => crate::engine::held::layer_stacks(&engine)?,
    };
    let mut list = HaveList::default();
    for stack in &stacks {
        list.add_chains(stack);
    }
    Ok(list)
}

/// Every blob the layout's index.json reaches (all platforms): its blob
/// reader checks they are there.
fn held_by_layout(layout: &ImageRef) -> Result<HaveList> {
    let set = open_source(layout, &SourceOptions::default())?;
    Ok(HaveList { blobs: set.blobs().iter().map(|b| b.digest.clone()).collect(), ..Default::default() })
}

/// What a bundle carried: every blob, and the chain IDs of its configs'
/// diff_ids. The bundle is verified completely first (nothing is written).
fn held_by_bundle(source: &str, trust: &TrustOptions, cx: &Context) -> Result<HaveList> {
    let located = cx.locate(source)?;
    let bundle = trust.check(&located, Policy::RequireSignature)?;
    let decryptor = if bundle.is_encrypted_by_name() { Some(trust.decryptor()?) } else { None };
    let (verified, _, _) = crate::verified::verify_into(&bundle, decryptor, &mut NullSink, None, cx.progress)?;
    carried(&verified)
}

fn carried(v: &Verified) -> Result<HaveList> {
    let mut list = HaveList::default();
    list.blobs.extend(v.indexes.iter().map(|(d, _)| d.clone()));
    for (digest, manifest) in &v.manifests {
        list.blobs.insert(digest.clone());
        list.blobs.insert(manifest.config.digest.clone());
        list.blobs.extend(manifest.layers.iter().map(|l| l.digest.clone()));
        if let Some(config) = v.configs.get(&manifest.config.digest) {
            list.add_chains(&crate::delta::config_diff_ids(config, &manifest.config.digest)?);
        }
    }
    Ok(list)
}

/// Write the list next to its final name and rename it into place, so a
/// failure leaves no half-written have-list.
fn write_list(list: &HaveList, comments: &[String], output: &std::path::Path) -> Result<()> {
    if output.as_os_str() == "-" {
        let mut out = std::io::stdout().lock();
        return list.write_to(&mut out, comments).map_err(|e| Error::io("writing the have-list to stdout", e));
    }
    let ctx = |e| Error::io(format!("writing the have-list {}", output.display()), e);
    let dir = output.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let mut temp = tempfile::Builder::new().prefix(".ferry-have-").tempfile_in(dir).map_err(ctx)?;
    let mut out = std::io::BufWriter::new(temp.as_file_mut());
    list.write_to(&mut out, comments).map_err(ctx)?;
    drop(out);
    temp.persist(output).map_err(|e| ctx(e.error))?;
    Ok(())
}
