//! The merged filesystem: the layers' operations applied in order, as a map
//! from path to node. Holds metadata only, never file contents.
//!
//! Invariant: every key's ancestors are present as directories.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::ops::Bound;

use tar::EntryType;

use super::error::{FlattenError, Result};
use super::layer::{Meta, Op, PutKind};
use super::path::{self, Key};
use super::writer::{Data, TarOut, Written};

/// A non-directory object; several paths share one when hard-linked.
#[derive(Debug)]
struct Inode {
    kind: ObjKind,
    meta: Meta,
    /// The layer whose spool file holds the content (regular files).
    layer: usize,
}

#[derive(Debug)]
enum ObjKind {
    File { offset: u64 },
    Symlink(Vec<u8>),
    Char,
    Block,
    Fifo,
}

#[derive(Debug)]
enum Node {
    /// A directory; `None` when implied by its children but never described.
    Dir(Option<Box<Meta>>),
    /// Index into `Tree::inodes`.
    Obj(usize),
}

#[derive(Debug, Default)]
pub(crate) struct Tree {
    nodes: BTreeMap<Key, Node>,
    inodes: Vec<Inode>,
}

impl Tree {
    /// Apply one layer on top of the current tree.
    ///
    /// Whiteouts and opaque markers hide lower layers only, wherever they
    /// appear in the layer's tar order, so they are applied first (they only
    /// delete, so their own order does not matter); then the layer's entries
    /// are applied in tar order.
    pub(crate) fn apply_layer(&mut self, layer: usize, ops: Vec<Op>) -> Result<()> {
        for op in &ops {
            match op {
                Op::Whiteout(key) => self.remove(key),
                Op::Opaque(dir) if dir.is_empty() => self.nodes.clear(),
                Op::Opaque(dir) => {
                    if let Some(Node::Dir(_)) = self.nodes.get(dir) {
                        self.remove_children(dir);
                    }
                }
                Op::Put { .. } => {}
            }
        }
        for op in ops {
            if let Op::Put { key, kind, meta } = op {
                self.put(layer, key, kind, meta)?;
            }
        }
        Ok(())
    }

    fn put(&mut self, layer: usize, key: Key, kind: PutKind, meta: Meta) -> Result<()> {
        self.ensure_parents(&key);
        let kind = match kind {
            PutKind::Dir => {
                match self.nodes.get_mut(&key) {
                    // A directory over a directory keeps the lower contents and
                    // takes the new metadata.
                    Some(Node::Dir(m)) => *m = Some(Box::new(meta)),
                    _ => {
                        self.remove(&key);
                        self.nodes.insert(key, Node::Dir(Some(Box::new(meta))));
                    }
                }
                return Ok(());
            }
            PutKind::Hardlink(target) => {
                // As an extractor does: the path is removed first, then linked.
                self.remove(&key);
                let bad = |reason: &str| FlattenError::BadHardlink {
                    layer,
                    entry: path::display(&key),
                    target: path::display(&target),
                    reason: reason.to_string(),
                };
                return match self.nodes.get(&target) {
                    Some(Node::Obj(ino)) => {
                        let ino = *ino;
                        self.nodes.insert(key, Node::Obj(ino));
                        Ok(())
                    }
                    Some(Node::Dir(_)) => Err(bad("the target is a directory")),
                    None => Err(bad("the target does not exist (it must be in a lower layer or earlier in the same layer)")),
                };
            }
            PutKind::File { offset } => ObjKind::File { offset },
            PutKind::Symlink(t) => ObjKind::Symlink(t),
            PutKind::Char => ObjKind::Char,
            PutKind::Block => ObjKind::Block,
            PutKind::Fifo => ObjKind::Fifo,
        };
        self.remove(&key);
        self.inodes.push(Inode { kind, meta, layer });
        self.nodes.insert(key, Node::Obj(self.inodes.len() - 1));
        Ok(())
    }

    /// Make every ancestor of `key` a directory: missing ones are implied, and
    /// a non-directory in the way is replaced by an implied directory (paths
    /// are taken literally; a symlink is never followed).
    fn ensure_parents(&mut self, key: &[u8]) {
        let seps: Vec<usize> = key.iter().enumerate().filter(|(_, &b)| b == path::SEP).map(|(i, _)| i).collect();
        // Fast path: the parent is a directory, so all ancestors are.
        match seps.last() {
            None => return,
            Some(&i) => {
                if let Some(Node::Dir(_)) = self.nodes.get(&key[..i]) {
                    return;
                }
            }
        }
        for i in seps {
            let anc = &key[..i];
            match self.nodes.get(anc) {
                Some(Node::Dir(_)) => {}
                Some(Node::Obj(_)) | None => {
                    self.nodes.insert(anc.to_vec(), Node::Dir(None));
                }
            }
        }
    }

    /// Remove a path and, for a directory, its whole subtree.
    fn remove(&mut self, key: &[u8]) {
        if let Some(Node::Dir(_)) = self.nodes.remove(key) {
            self.remove_children(key);
        }
    }

    fn remove_children(&mut self, dir: &[u8]) {
        let (lo, hi) = path::children_range(dir);
        let doomed: Vec<Key> =
            self.nodes.range::<[u8], _>((Bound::Included(&lo[..]), Bound::Excluded(&hi[..]))).map(|(k, _)| k.clone()).collect();
        for k in doomed {
            self.nodes.remove(&k);
        }
    }

    /// Which layers still hold content that will be written.
    pub(crate) fn layers_in_use(&self, n_layers: usize) -> Vec<bool> {
        let mut used = vec![false; n_layers];
        for node in self.nodes.values() {
            if let Node::Obj(i) = node {
                let ino = &self.inodes[*i];
                if matches!(ino.kind, ObjKind::File { .. }) && ino.meta.size > 0 {
                    used[ino.layer] = true;
                }
            }
        }
        used
    }

    /// Pass 2: write the tree as one tar, in key order (parents before
    /// children, each path once). The first path of a hard-link group carries
    /// the object; the others are hard links to it, so a link always follows
    /// its target.
    pub(crate) fn write<W: Write>(&self, spools: &mut [Option<File>], out: W) -> std::io::Result<Written> {
        let mut tar = TarOut::new(out);
        let mut first_path: Vec<Option<&Key>> = vec![None; self.inodes.len()];
        let implied = Meta::implied_dir();
        for (key, node) in &self.nodes {
            let tar_path = path::to_tar(key);
            match node {
                Node::Dir(meta) => {
                    let meta = meta.as_deref().unwrap_or(&implied);
                    tar.entry(&tar_path, EntryType::Directory, meta, None, None)?;
                }
                Node::Obj(i) => {
                    let ino = &self.inodes[*i];
                    if let Some(first) = first_path[*i] {
                        let target = path::to_tar(first);
                        tar.entry(&tar_path, EntryType::Link, &ino.meta, Some(&target), None)?;
                        continue;
                    }
                    first_path[*i] = Some(key);
                    match &ino.kind {
                        ObjKind::File { offset } => {
                            // A layer's spool is only dropped when no live
                            // non-empty file needs it.
                            let data = spools[ino.layer].as_mut().map(|file| Data { file, offset: *offset });
                            debug_assert!(data.is_some() || ino.meta.size == 0);
                            tar.entry(&tar_path, EntryType::Regular, &ino.meta, None, data)?;
                        }
                        ObjKind::Symlink(t) => tar.entry(&tar_path, EntryType::Symlink, &ino.meta, Some(t), None)?,
                        ObjKind::Char => tar.entry(&tar_path, EntryType::Char, &ino.meta, None, None)?,
                        ObjKind::Block => tar.entry(&tar_path, EntryType::Block, &ino.meta, None, None)?,
                        ObjKind::Fifo => tar.entry(&tar_path, EntryType::Fifo, &ino.meta, None, None)?,
                    }
                }
            }
        }
        tar.finish()
    }
}
