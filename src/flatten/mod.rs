//! Flatten: squash a layer stack into one layer, and rewrite the image config
//! to match.
//!
//! # Semantics
//!
//! The output layer is the filesystem a container sees when the layers
//! (uncompressed tar streams, lowest first) are applied in order:
//!
//! - Paths are taken literally (as overlayfs takes the layer's paths): a
//!   leading `/` and `./`, empty and `.` components are tar conventions and
//!   dropped; `..` anywhere is refused; symlinks are never followed. Entries
//!   for the root directory itself are ignored (as Docker does).
//! - `.wh.NAME` hides `NAME` (and its subtree) of the *lower* layers;
//!   `.wh..wh..opq` hides the lower-layer contents of its directory. Entries of
//!   the same layer are never hidden, whatever their order in the tar. Whiteouts
//!   only delete (they do not create their parent directory). AUFS metadata
//!   (`.wh..wh.*` other than the opaque marker) is ignored. No whiteout is
//!   written out.
//! - An entry replaces whatever was at its path (a whole subtree when that was a
//!   directory), except a directory over a directory, which keeps the contents
//!   and takes the new metadata. An entry whose parent is missing, or is not a
//!   directory, gets an implied parent directory (0755 root:root, mtime 0),
//!   written out unless a later entry describes it.
//! - A hard link shares the object its target is when the link is applied (the
//!   target must exist then: lower layer or earlier in the same layer, and not
//!   be a directory). If the target is later deleted or replaced, the link
//!   keeps that object (so it becomes a regular file with the content the
//!   target had). Hard-link groups are written as: the first path in output
//!   order carries the object, the others are hard links to it; the object's
//!   metadata is the one of the entry that created it.
//! - Kept exactly: symlink targets, uid/gid, uname/gname, mode bits (setuid,
//!   setgid, sticky), mtimes, device numbers, fifos, PAX records (xattrs as
//!   `SCHILY.xattr.*`, precise times...). Long names and link names are written
//!   with PAX records, everything else in ustar.
//! - Output: each path once, sorted component by component (a directory right
//!   before its subtree), so parents come before children and the same input
//!   always gives the same bytes.
//!
//! # Resources
//!
//! Each layer stream is read once and spooled to an unnamed temporary file in
//! `tmp_dir` (so disk use is at most the layers' total size; spools no longer
//! needed are dropped before writing) — unless the caller says where the same
//! bytes are stored uncompressed ([`LayerInput::file`]): then file contents
//! are read from there and nothing is spooled. Only tar headers are held in memory;
//! the output is written by copying file contents out of the spools.

mod config;
mod error;
pub mod image;
mod layer;
pub mod output;
mod path;
mod tree;
mod writer;

#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

pub use config::{flatten_config, HISTORY_COMMENT, HISTORY_CREATED_BY};
pub use error::{FlattenError, Result};

/// What [`flatten_layers`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlattenStats {
    /// Number of tar entries written (PAX extended headers not counted).
    pub entries: u64,
    /// Total size of the regular files' contents.
    pub content_bytes: u64,
    /// `sha256:<hex>` of the output tar: the diff_id of the flattened layer.
    pub diff_id: String,
    /// Size in bytes of the output tar.
    pub size: u64,
}

/// Flatten `layers` (uncompressed tar streams, lowest first) into one
/// uncompressed tar written to `out`. Temporary spool files go to `tmp_dir`.
///
/// Each input stream is read to its end. `out` is written sequentially, never
/// seeked; wrap it (or pass `&mut w`) as needed. On error, `out` may hold a
/// partial tar: the caller must discard it.
pub fn flatten_layers<W: Write>(layers: Vec<Box<dyn Read + Send>>, out: W, tmp_dir: &Path) -> Result<FlattenStats> {
    let inputs = layers.into_iter().map(|stream| LayerInput { stream, file: None }).collect();
    flatten_layer_inputs(inputs, out, tmp_dir)
}

/// One layer for [`flatten_layer_inputs`].
pub struct LayerInput {
    /// The layer's uncompressed tar stream; read once, to its end.
    pub stream: Box<dyn Read + Send>,
    /// The same bytes, stored at this offset of this file (an uncompressed
    /// layer kept in a file): file contents are then read from there and the
    /// layer is not spooled. The caller guarantees that the file holds exactly
    /// the bytes the stream yields (e.g. by hashing the stream).
    pub file: Option<(File, u64)>,
}

/// [`flatten_layers`], where a layer already stored uncompressed in a file
/// needs no temporary copy.
pub fn flatten_layer_inputs<W: Write>(layers: Vec<LayerInput>, out: W, tmp_dir: &Path) -> Result<FlattenStats> {
    let n = layers.len();
    let mut tree = tree::Tree::default();
    let mut spools = Vec::with_capacity(n);
    for (i, input) in layers.into_iter().enumerate() {
        let (spool, ops) = match input.file {
            Some((file, base)) => layer::read_layer_in_file(i, input.stream, file, base)?,
            None => layer::read_layer(i, input.stream, tmp_dir)?,
        };
        spools.push(Some(spool));
        tree.apply_layer(i, ops)?;
    }
    // Free the disk of layers whose contents are all gone.
    for (spool, used) in spools.iter_mut().zip(tree.layers_in_use(n)) {
        if !used {
            *spool = None;
        }
    }
    let written = tree.write(&mut spools, out).map_err(error::FlattenError::io("cannot write the flattened layer"))?;
    Ok(FlattenStats {
        entries: written.entries,
        content_bytes: written.content_bytes,
        diff_id: format!("sha256:{}", written.sha256_hex),
        size: written.size,
    })
}
