//! Property test: flattening a random layer stack gives the same filesystem as
//! applying the layers one by one to a real directory.
//!
//! The reference applier below works on disk and follows the OCI rules:
//! whiteouts and opaque markers hide lower layers only (they are applied
//! before the layer's own entries), an entry replaces what was at its path
//! (except a directory over a directory), missing or non-directory parents
//! become 0755 directories, hard links need an existing non-directory target,
//! and paths are taken literally (symlinks are never followed).
//! ferry's output is extracted with the same applier and the trees compared:
//! path, type, mode bits, content, symlink target, hard-link groups.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::io::{Cursor, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use ferry::flatten::{flatten_layers, FlattenError};
use proptest::prelude::*;
use sha2::{Digest, Sha256};
use tar::{Builder, EntryType, Header};

const FILE_MODES: &[u32] = &[0o644, 0o755, 0o4755, 0o2755, 0o1644, 0o600, 0o400];
const DIR_MODES: &[u32] = &[0o755, 0o700, 0o1777, 0o2775, 0o750, 0o3755];
const LINK_TARGETS: &[&str] = &["a", "b/c", "/abs/x", "../up", "."];

#[derive(Debug, Clone)]
enum Op {
    File {
        path: String,
        content: Vec<u8>,
        mode: u32,
    },
    Dir {
        path: String,
        mode: u32,
    },
    Symlink {
        path: String,
        target: String,
    },
    Hardlink {
        path: String,
        target: String,
    },
    /// Hide `path` of the lower layers (written as `parent/.wh.name`).
    Whiteout {
        path: String,
    },
    /// Opaque marker in `dir` ("" = the root).
    Opaque {
        dir: String,
    },
}

fn name_path(min: usize, max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), min..=max).prop_map(|v| v.join("/"))
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (name_path(1, 3), prop::collection::vec(any::<u8>(), 0..700), prop::sample::select(FILE_MODES))
            .prop_map(|(path, content, mode)| Op::File { path, content, mode }),
        3 => (name_path(1, 3), prop::sample::select(DIR_MODES)).prop_map(|(path, mode)| Op::Dir { path, mode }),
        2 => (name_path(1, 3), prop::sample::select(LINK_TARGETS))
            .prop_map(|(path, t)| Op::Symlink { path, target: t.to_string() }),
        // Target: mostly an earlier file or symlink (resolved in `stack`), so
        // that most links are valid; sometimes any path.
        3 => (name_path(1, 3), prop_oneof![3 => any::<u8>().prop_map(|i| format!("#{i}")), 1 => name_path(1, 3)])
            .prop_map(|(path, target)| Op::Hardlink { path, target }),
        2 => name_path(1, 3).prop_map(|path| Op::Whiteout { path }),
        1 => name_path(0, 2).prop_map(|dir| Op::Opaque { dir }),
    ]
}

fn stack() -> impl Strategy<Value = Vec<Vec<Op>>> {
    prop::collection::vec(prop::collection::vec(op(), 0..10), 1..=4).prop_map(|mut layers| {
        // Resolve "#i" hard link targets to one of the last few earlier files
        // or symlinks that is neither the link itself nor on its path.
        let mut made: Vec<String> = Vec::new();
        for op in layers.iter_mut().flatten() {
            match op {
                Op::File { path, .. } | Op::Symlink { path, .. } => made.push(path.clone()),
                Op::Hardlink { path, target } => {
                    if let Some(i) = target.strip_prefix('#') {
                        let i: usize = i.parse().unwrap();
                        let related = |t: &String| t == path || path.starts_with(&format!("{t}/")) || t.starts_with(&format!("{path}/"));
                        let ok: Vec<&String> = made.iter().rev().filter(|t| !related(t)).take(4).collect();
                        *target = match ok.len() {
                            0 => "a".to_string(),
                            n => ok[i % n].clone(),
                        };
                    }
                    made.push(path.clone());
                }
                _ => {}
            }
        }
        layers
    })
}

// ----- building layer tars -------------------------------------------------------------

fn hdr(ty: EntryType, mode: u32, size: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(ty);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_600_000_000);
    h.set_size(size);
    h
}

fn in_dir(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

fn build_tar(ops: &[Op]) -> Vec<u8> {
    let mut b = Builder::new(Vec::new());
    for op in ops {
        match op {
            Op::File { path, content, mode } => {
                let mut h = hdr(EntryType::Regular, *mode, content.len() as u64);
                b.append_data(&mut h, path, &content[..]).unwrap();
            }
            Op::Dir { path, mode } => {
                let mut h = hdr(EntryType::Directory, *mode, 0);
                b.append_data(&mut h, format!("{path}/"), &b""[..]).unwrap();
            }
            Op::Symlink { path, target } => {
                let mut h = hdr(EntryType::Symlink, 0o777, 0);
                b.append_link(&mut h, path, target).unwrap();
            }
            Op::Hardlink { path, target } => {
                let mut h = hdr(EntryType::Link, 0o644, 0);
                b.append_link(&mut h, path, target).unwrap();
            }
            Op::Whiteout { path } => {
                let (dir, name) = split(path);
                let mut h = hdr(EntryType::Regular, 0o644, 0);
                b.append_data(&mut h, in_dir(dir, &format!(".wh.{name}")), &b""[..]).unwrap();
            }
            Op::Opaque { dir } => {
                let mut h = hdr(EntryType::Regular, 0o644, 0);
                b.append_data(&mut h, in_dir(dir, ".wh..wh..opq"), &b""[..]).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

// ----- the reference: apply layers to a real directory ------------------------------------

/// Look a path up literally: every ancestor must be a real directory (never a
/// symlink). Returns the metadata of the path itself (not followed).
fn lookup(root: &Path, rel: &str) -> Option<fs::Metadata> {
    let mut p = root.to_path_buf();
    let comps: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
    for (i, c) in comps.iter().enumerate() {
        p.push(c);
        let md = fs::symlink_metadata(&p).ok()?;
        if i + 1 < comps.len() && !md.is_dir() {
            return None;
        }
        if i + 1 == comps.len() {
            return Some(md);
        }
    }
    fs::symlink_metadata(root).ok()
}

fn remove_existing(p: &Path) {
    match fs::symlink_metadata(p) {
        Ok(md) if md.is_dir() => fs::remove_dir_all(p).unwrap(),
        Ok(_) => fs::remove_file(p).unwrap(),
        Err(_) => {}
    }
}

fn mkdir_mode(p: &Path, mode: u32) {
    fs::create_dir(p).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

fn ensure_parents(root: &Path, rel: &str) {
    let comps: Vec<&str> = rel.split('/').collect();
    let mut p = root.to_path_buf();
    for c in &comps[..comps.len() - 1] {
        p.push(c);
        match fs::symlink_metadata(&p) {
            Ok(md) if md.is_dir() => {}
            Ok(_) => {
                fs::remove_file(&p).unwrap();
                mkdir_mode(&p, 0o755);
            }
            Err(_) => mkdir_mode(&p, 0o755),
        }
    }
}

/// Apply one layer; on a refused entry, its index in `ops` and why.
fn apply_layer(root: &Path, ops: &[Op]) -> Result<(), (usize, String)> {
    // Whiteouts and opaque markers: lower layers only, so before the entries.
    for op in ops {
        match op {
            Op::Whiteout { path } if lookup(root, path).is_some() => {
                remove_existing(&root.join(path));
            }
            Op::Opaque { dir } if lookup(root, dir).is_some_and(|md| md.is_dir()) => {
                for child in fs::read_dir(root.join(dir)).unwrap() {
                    remove_existing(&child.unwrap().path());
                }
            }
            _ => {}
        }
    }
    for (i, op) in ops.iter().enumerate() {
        match op {
            Op::File { path, content, mode } => {
                ensure_parents(root, path);
                let p = root.join(path);
                remove_existing(&p);
                fs::write(&p, content).unwrap();
                fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).unwrap();
            }
            Op::Dir { path, mode } => {
                ensure_parents(root, path);
                let p = root.join(path);
                match fs::symlink_metadata(&p) {
                    Ok(md) if md.is_dir() => fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).unwrap(),
                    _ => {
                        remove_existing(&p);
                        mkdir_mode(&p, *mode);
                    }
                }
            }
            Op::Symlink { path, target } => {
                ensure_parents(root, path);
                let p = root.join(path);
                remove_existing(&p);
                std::os::unix::fs::symlink(target, &p).unwrap();
            }
            Op::Hardlink { path, target } => {
                ensure_parents(root, path);
                let p = root.join(path);
                remove_existing(&p);
                match lookup(root, target) {
                    None => return Err((i, format!("hard link {path} -> missing {target}"))),
                    Some(md) if md.is_dir() => return Err((i, format!("hard link {path} -> directory {target}"))),
                    // linkat without AT_SYMLINK_FOLLOW: a symlink is linked itself.
                    Some(_) => fs::hard_link(root.join(target), &p).unwrap(),
                }
            }
            Op::Whiteout { .. } | Op::Opaque { .. } => {}
        }
    }
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
enum Node {
    Dir { mode: u32 },
    File { mode: u32, sha256: String },
    Symlink { target: String },
}

#[derive(Debug, PartialEq, Eq)]
struct Tree {
    nodes: BTreeMap<String, Node>,
    /// Sets of paths sharing one inode (two or more).
    link_groups: BTreeSet<Vec<String>>,
}

fn snapshot(root: &Path) -> Tree {
    let mut nodes = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), Vec<String>> = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(root).unwrap().to_str().unwrap().to_string();
        let md = e.path().symlink_metadata().unwrap();
        let mode = md.permissions().mode() & 0o7777;
        let node = if md.is_dir() {
            Node::Dir { mode }
        } else if md.file_type().is_symlink() {
            Node::Symlink { target: fs::read_link(e.path()).unwrap().to_str().unwrap().to_string() }
        } else {
            Node::File { mode, sha256: hex::encode(Sha256::digest(fs::read(e.path()).unwrap())) }
        };
        if !md.is_dir() {
            inodes.entry((md.dev(), md.ino())).or_default().push(rel.clone());
        }
        nodes.insert(rel, node);
    }
    let link_groups = inodes.into_values().filter(|g| g.len() > 1).collect();
    Tree { nodes, link_groups }
}

// ----- reading ferry's output ---------------------------------------------------------------

/// Check the output's structure and turn it back into ops (one layer).
fn output_ops(tar_bytes: &[u8]) -> Vec<Op> {
    let mut ar = tar::Archive::new(tar_bytes);
    let mut ops = Vec::new();
    let mut seen = HashSet::new();
    let mut dirs = HashSet::new();
    let mut last: Option<Vec<String>> = None;
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let raw = String::from_utf8(e.path_bytes().into_owned()).unwrap();
        let path = raw.trim_end_matches('/').to_string();
        assert!(!path.is_empty() && !path.starts_with('/') && !path.split('/').any(|c| c == ".." || c == "."));
        assert!(seen.insert(path.clone()), "{path} written twice");
        assert!(!path.split('/').any(|c| c.starts_with(".wh.")), "whiteout {path} in output");
        if let Some((parent, _)) = path.rsplit_once('/') {
            assert!(dirs.contains(parent), "{path} written before its parent directory");
        }
        let comps: Vec<String> = path.split('/').map(str::to_string).collect();
        if let Some(prev) = &last {
            assert!(prev < &comps, "{path} out of order");
        }
        last = Some(comps);
        let h = e.header().clone();
        let mode = h.mode().unwrap() & 0o7777;
        let link = e.link_name_bytes().map(|l| String::from_utf8(l.into_owned()).unwrap());
        match h.entry_type() {
            EntryType::Regular => {
                let mut content = Vec::new();
                e.read_to_end(&mut content).unwrap();
                ops.push(Op::File { path, content, mode });
            }
            EntryType::Directory => {
                dirs.insert(path.clone());
                ops.push(Op::Dir { path, mode });
            }
            EntryType::Symlink => ops.push(Op::Symlink { path, target: link.unwrap() }),
            EntryType::Link => {
                let target = link.unwrap();
                assert!(seen.contains(&target) && target != path, "link {path} -> {target} before its target");
                assert!(!dirs.contains(&target), "link {path} -> directory {target}");
                ops.push(Op::Hardlink { path, target });
            }
            other => panic!("unexpected entry type {other:?} for {path}"),
        }
    }
    ops
}

fn ferry_flatten(tars: &[Vec<u8>]) -> Result<(Vec<u8>, String), FlattenError> {
    let tmp = tempfile::tempdir().unwrap();
    let mut out = Vec::new();
    let layers = tars.iter().map(|t| Box::new(Cursor::new(t.clone())) as Box<dyn Read + Send>).collect();
    let stats = flatten_layers(layers, &mut out, tmp.path())?;
    assert_eq!(stats.size, out.len() as u64);
    Ok((out, stats.diff_id))
}

/// Apply a whole stack with the reference; on a refused entry, its
/// (layer, index) and why.
fn reference(root: &Path, layers: &[Vec<Op>]) -> Result<(), ((usize, usize), String)> {
    for (l, ops) in layers.iter().enumerate() {
        apply_layer(root, ops).map_err(|(i, why)| ((l, i), why))?;
    }
    Ok(())
}

/// Compare ferry with the reference on one stack. Returns where the reference
/// refused the stack, if it did (ferry must then refuse it too).
fn compare(layers: &[Vec<Op>]) -> Result<Option<(usize, usize)>, TestCaseError> {
    let tars: Vec<Vec<u8>> = layers.iter().map(|l| build_tar(l)).collect();
    let reference_dir = tempfile::tempdir().unwrap();
    match (reference(reference_dir.path(), layers), ferry_flatten(&tars)) {
        (Err((_, why)), Ok(_)) => Err(TestCaseError::fail(format!("reference refused ({why}) but ferry accepted"))),
        (Ok(()), Err(e)) => Err(TestCaseError::fail(format!("ferry refused: {e}"))),
        (Err((at, why)), Err(e)) => {
            prop_assert!(matches!(e, FlattenError::BadHardlink { .. }), "{why} / {e:?}");
            prop_assert_eq!(e.to_string().contains(&format!("layer {}", at.0)), true, "{} / {}", why, e);
            Ok(Some(at))
        }
        (Ok(()), Ok((out, digest))) => {
            let flat_dir = tempfile::tempdir().unwrap();
            apply_layer(flat_dir.path(), &output_ops(&out)).unwrap();
            let want = snapshot(reference_dir.path());
            let got = snapshot(flat_dir.path());
            prop_assert_eq!(got, want);
            // deterministic
            let (out2, digest2) = ferry_flatten(&tars).unwrap();
            prop_assert_eq!(digest2, digest);
            prop_assert!(out2 == out);
            Ok(None)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Random stacks often hold invalid hard links (missing or directory
    /// targets): both sides must refuse those; the entry is then dropped and
    /// the comparison repeated until the stack is valid, so every case ends
    /// with a full tree comparison.
    #[test]
    fn flatten_equals_sequential_apply(mut layers in stack()) {
        while let Some((l, i)) = compare(&layers)? {
            layers[l].remove(i);
        }
    }
}

#[test]
fn flatten_is_deterministic_across_runs() {
    let layers = [
        vec![
            Op::Dir { path: "a".into(), mode: 0o755 },
            Op::File { path: "a/b".into(), content: vec![1; 3000], mode: 0o644 },
            Op::Hardlink { path: "c".into(), target: "a/b".into() },
            Op::Symlink { path: "s".into(), target: "/abs/x".into() },
        ],
        vec![
            Op::Whiteout { path: "a/b".into() },
            Op::Opaque { dir: "a".into() },
            Op::File { path: "a/c/d".into(), content: b"d".to_vec(), mode: 0o4755 },
        ],
    ];
    let tars: Vec<Vec<u8>> = layers.iter().map(|l| build_tar(l)).collect();
    let (o1, d1) = ferry_flatten(&tars).unwrap();
    let (o2, d2) = ferry_flatten(&tars).unwrap();
    assert_eq!(d1, d2);
    assert_eq!(o1, o2);
    let got: Vec<String> = output_ops(&o1).iter().map(|op| format!("{op:?}").chars().take(60).collect()).collect();
    assert_eq!(got.len(), 5, "{got:#?}"); // a, a/c, a/c/d, c (now a file), s
}

#[test]
fn hostile_layers_are_refused() {
    fn raw(ty: EntryType, name: &[u8], link: &[u8]) -> Vec<u8> {
        let mut h = hdr(ty, 0o644, 0);
        let old = h.as_old_mut();
        old.name = [0; 100];
        old.name[..name.len()].copy_from_slice(name);
        old.linkname = [0; 100];
        old.linkname[..link.len()].copy_from_slice(link);
        h.set_cksum();
        let mut b = Builder::new(Vec::new());
        b.append(&h, &b""[..]).unwrap();
        b.into_inner().unwrap()
    }
    let ok = build_tar(&[Op::File { path: "ok".into(), content: vec![], mode: 0o644 }]);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (raw(EntryType::Regular, b"../../etc/passwd", b""), "../../etc/passwd"),
        (raw(EntryType::Regular, b"a/../../x", b""), "a/../../x"),
        (raw(EntryType::Directory, b"/../root/", b""), "/../root/"),
        (raw(EntryType::Regular, b"d/.wh..", b""), "d/.wh.."),
        (raw(EntryType::Regular, b".wh...", b""), ".wh..."),
        (raw(EntryType::Link, b"l", b"../outside"), "l"),
        (raw(EntryType::Link, b"l", b"/../../etc/shadow"), "l"),
        (raw(EntryType::Link, b"l", b"nonexistent"), "l"),
    ];
    for (layer, entry) in cases {
        let err = ferry_flatten(&[ok.clone(), layer]).expect_err(entry);
        assert!(err.is_hostile(), "{entry}: {err:?}");
        let msg = err.to_string();
        assert!(msg.contains(entry) && msg.contains("layer 1"), "{msg}");
    }
    // an absolute path is a tar convention, not an escape; an absolute symlink
    // target is legitimate and kept as is
    let fine = build_tar(&[Op::Symlink { path: "s".into(), target: "/etc/passwd".into() }]);
    let abs = raw(EntryType::Regular, b"/abs/file", b"");
    let (out, _) = ferry_flatten(&[fine, abs]).unwrap();
    let ops = output_ops(&out);
    let names: Vec<String> = ops
        .iter()
        .map(|op| match op {
            Op::Dir { path, .. } | Op::File { path, .. } => path.clone(),
            Op::Symlink { path, target } => format!("{path}->{target}"),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(names, ["abs", "abs/file", "s->/etc/passwd"]);
}
