//! `ferry save IMAGE... -o LOCATION`: read the images, write one sealed bundle.
use super::Context;
use crate::bundle::SaveOptions;
use crate::compress::Compression;
use crate::error::{Error, Result};
use crate::image::{PlatformFilter, SourceOptions};
use crate::reference::ImageRef;
use crate::save::SealOptions;
use ferry_transports::Transport;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;

pub struct SaveCommand {
    pub images: Vec<String>,
    /// `--images-from`: one reference per line, `#` comments.
    pub images_from: Option<PathBuf>,
    pub output: String,
    pub stem: Option<String>,
    /// `zstd`, `gzip` or `none`.
    pub compression: String,
    pub level: Option<i32>,
    pub platforms: Vec<String>,
    /// `--split SIZE|fat32`.
    pub split: Option<String>,
    /// `--parity N`: N Reed-Solomon parity parts (with `--split`).
    pub parity: Option<usize>,
    pub seal: SealOptions,
    pub flatten: bool,
    /// `--have FILE`: have-lists of the target; what they prove it holds is left out.
    pub have: Vec<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SaveSummary {
    pub location: String,
    pub stem: String,
    pub images: Vec<String>,
    pub blobs: usize,
    /// The artifact's files (one, or numbered parts), as listed in STEM.sha256.
    pub files: Vec<SavedFile>,
    /// Bytes of all artifact files.
    pub size: u64,
    /// Bytes of the inner tar (before compression).
    pub tar_bytes: u64,
    pub signed: bool,
    pub encrypted: bool,
    /// Have-lists given (`--have`): the bundle is a delta against them when it leaves anything out.
    pub have_lists: usize,
    /// Layers left out because the have-lists prove the target holds them (0: a full bundle).
    pub left_out: usize,
    /// Their bytes (as stored at the source).
    pub saved_bytes: u64,
    /// The left-out layers, as recorded in the bundle.
    pub left_out_layers: Vec<crate::delta::LeftOut>,
    /// `--parity`: data and parity parts (the parity parts are the last of `files`).
    pub parity: Option<crate::parity::Geometry>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SavedFile {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

pub fn run(cmd: &SaveCommand, cx: &Context) -> Result<SaveSummary> {
    let mut names = cmd.images.clone();
    if let Some(list) = &cmd.images_from {
        let listed = crate::reference::read_image_list(list)?;
        if listed.is_empty() {
            return Err(Error::usage(format!("{}: lists no images", list.display())));
        }
        names.extend(listed);
    }
    if names.is_empty() {
        return Err(Error::usage("no images to save: name them, or list them in a file given with --images-from"));
    }
    let images = names.iter().map(|s| ImageRef::parse(s)).collect::<Result<Vec<_>>>()?;
    let compression = Compression::parse(&cmd.compression)?;
    let level = cmd.level.unwrap_or(compression.default_level());
    if compression == Compression::Zstd && !(1..=22).contains(&level) || compression == Compression::Gzip && !(0..=9).contains(&level) {
        return Err(Error::usage(format!("--level {level} is out of range for {}", compression.name())));
    }
    let split = cmd.split.as_deref().map(crate::size::parse_size).transpose()?;
    check_parity(cmd.parity, split)?;
    // Before any long work: a have-list comes from another machine and is read strictly.
    let bases = crate::delta::read_bases(&cmd.have)?;
    let seal = SealOptions { prompt_allowed: cx.prompt_allowed, ..cmd.seal.clone() };
    let (encryptor, signer) = seal.prepare()?;
    // Flattening reads the layers again; keep them uncompressed for it.
    let spool_zstd_level = (compression == Compression::Zstd && !cmd.flatten).then_some(level);
    let spool_dir = crate::save::spool_dir_for(&cmd.output);
    let source = SourceOptions {
        platforms: PlatformFilter::parse(&cmd.platforms)?,
        spool_in_place: spool_zstd_level.is_some() && spool_dir.is_some() && split.is_none() && encryptor.is_none(),
        spool_dir,
        spool_zstd_level,
        containerd: cx.containerd.clone(),
        registry: cx.registry.clone(),
    };
    let output: Arc<dyn Transport> = Arc::from(cx.open(&cmd.output)?);
    let flattened = cmd.flatten;
    let report = crate::save::save(
        &images,
        output,
        cmd.stem.clone(),
        &source,
        |stem| {
            let mut o = SaveOptions::new(stem);
            o.compression = compression;
            o.level = level;
            o.split = split;
            o.parity = cmd.parity;
            o.encryptor = encryptor;
            o.signer = signer;
            o.flattened = flattened;
            o
        },
        &bases,
        cx.progress,
    )?;
    let delta = report.delta.clone().unwrap_or_default();
    Ok(SaveSummary {
        location: report.location.trim_end_matches('/').to_string(),
        stem: report.stem,
        images: report.images,
        blobs: report.blobs,
        size: report.parts.iter().map(|p| p.size).sum(),
        files: report.parts.into_iter().map(|p| SavedFile { name: p.name, size: p.size, sha256: p.digest.hex().to_string() }).collect(),
        tar_bytes: report.tar_bytes,
        signed: report.signed,
        encrypted: report.encrypted,
        have_lists: bases.len(),
        left_out: delta.left_out.len(),
        saved_bytes: delta.saved_bytes(),
        left_out_layers: delta.left_out,
        parity: report.parity,
    })
}

/// `--parity N` needs `--split`, and N parity parts need N data parts at least (256 parts in all).
fn check_parity(parity: Option<usize>, split: Option<u64>) -> Result<()> {
    let Some(n) = parity else { return Ok(()) };
    if split.is_none() {
        return Err(Error::usage("--parity needs --split SIZE: parity parts protect the parts of a split artifact"));
    }
    let most = crate::parity::code::MAX_PARTS / 2;
    if !(1..=most).contains(&n) {
        return Err(Error::usage(format!("--parity {n} is out of range: 1 to {most}")));
    }
    Ok(())
}
