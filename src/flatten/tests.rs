//! Unit tests: one per rule of the flatten semantics.

use std::collections::{BTreeMap, HashSet};
use std::io::{Cursor, Read};

use sha2::{Digest, Sha256};
use tar::{Builder, EntryType, Header};

use super::writer::pax_record;
use super::*;

// ----- building layers -------------------------------------------------------------

struct L {
    b: Builder<Vec<u8>>,
}

fn header(ty: EntryType, mode: u32, size: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(ty);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_000);
    h.set_size(size);
    h
}

impl L {
    fn new() -> Self {
        L { b: Builder::new(Vec::new()) }
    }
    fn file(self, path: &str, content: &[u8]) -> Self {
        self.file_with(path, content, |_| {})
    }
    fn file_with(mut self, path: &str, content: &[u8], f: impl FnOnce(&mut Header)) -> Self {
        let mut h = header(EntryType::Regular, 0o644, content.len() as u64);
        f(&mut h);
        self.b.append_data(&mut h, path, content).unwrap();
        self
    }
    fn dir(self, path: &str) -> Self {
        self.dir_with(path, |_| {})
    }
    fn dir_with(mut self, path: &str, f: impl FnOnce(&mut Header)) -> Self {
        let mut h = header(EntryType::Directory, 0o755, 0);
        f(&mut h);
        self.b.append_data(&mut h, path, &b""[..]).unwrap();
        self
    }
    fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut h = header(EntryType::Symlink, 0o777, 0);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }
    fn hardlink(mut self, path: &str, target: &str) -> Self {
        let mut h = header(EntryType::Link, 0o644, 0);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }
    fn whiteout(self, path: &str) -> Self {
        self.file(path, b"")
    }
    /// An entry with a raw name (no validation by the tar crate).
    fn raw(mut self, ty: EntryType, name: &[u8], link: &[u8], data: &[u8]) -> Self {
        let mut h = header(ty, 0o644, data.len() as u64);
        let old = h.as_old_mut();
        old.name = [0; 100];
        old.name[..name.len()].copy_from_slice(name);
        old.linkname = [0; 100];
        old.linkname[..link.len()].copy_from_slice(link);
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }
    /// A PAX extended header followed by a file entry.
    fn pax_file(mut self, name: &str, records: &[(&str, &[u8])], content: &[u8]) -> Self {
        let body: Vec<u8> = records.iter().flat_map(|(k, v)| pax_record(k.as_bytes(), v)).collect();
        let mut x = Header::new_ustar();
        x.set_entry_type(EntryType::XHeader);
        x.set_path("PaxHeaders/x").unwrap();
        x.set_size(body.len() as u64);
        x.set_mode(0o644);
        x.set_cksum();
        self.b.append(&x, &body[..]).unwrap();
        let mut h = Header::new_ustar();
        h.set_entry_type(EntryType::Regular);
        h.set_path(name).unwrap();
        h.set_mode(0o644);
        h.set_size(content.len() as u64);
        h.set_cksum();
        self.b.append(&h, content).unwrap();
        self
    }
    fn done(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

fn run(layers: Vec<Vec<u8>>) -> Result<(Vec<u8>, FlattenStats)> {
    let tmp = tempfile::tempdir().unwrap();
    let mut out = Vec::new();
    let boxed = layers.into_iter().map(|l| Box::new(Cursor::new(l)) as Box<dyn Read + Send>).collect();
    let stats = flatten_layers(boxed, &mut out, tmp.path())?;
    Ok((out, stats))
}

// ----- reading the output ------------------------------------------------------------

#[derive(Debug, Clone)]
struct E {
    path: String,
    ty: EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    uname: String,
    gname: String,
    mtime: u64,
    link: Option<String>,
    data: Vec<u8>,
    pax: BTreeMap<String, Vec<u8>>,
    dev: (u32, u32),
}

fn read_out(tar: &[u8]) -> Vec<E> {
    let mut ar = tar::Archive::new(tar);
    let mut v = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let mut pax = BTreeMap::new();
        if let Some(exts) = e.pax_extensions().unwrap() {
            for x in exts {
                let x = x.unwrap();
                pax.insert(x.key().unwrap().to_string(), x.value_bytes().to_vec());
            }
        }
        let h = e.header().clone();
        let mut path = String::from_utf8(e.path_bytes().into_owned()).unwrap();
        if path.ends_with('/') {
            path.pop();
        }
        let link = e.link_name_bytes().map(|l| String::from_utf8(l.into_owned()).unwrap()).filter(|l| !l.is_empty());
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        let dev = match h.entry_type() {
            EntryType::Char | EntryType::Block => (h.device_major().unwrap().unwrap(), h.device_minor().unwrap().unwrap()),
            _ => (0, 0),
        };
        let s = |b: Option<&[u8]>| String::from_utf8(b.unwrap_or_default().to_vec()).unwrap();
        v.push(E {
            path,
            ty: h.entry_type(),
            mode: h.mode().unwrap(),
            uid: h.uid().unwrap(),
            gid: h.gid().unwrap(),
            uname: pax.get("uname").map(|u| String::from_utf8(u.clone()).unwrap()).unwrap_or_else(|| s(h.username_bytes())),
            gname: s(h.groupname_bytes()),
            mtime: h.mtime().unwrap(),
            link,
            data,
            pax,
            dev,
        });
    }
    v
}

fn paths(es: &[E]) -> Vec<&str> {
    es.iter().map(|e| e.path.as_str()).collect()
}

fn get<'a>(es: &'a [E], p: &str) -> &'a E {
    es.iter().find(|e| e.path == p).unwrap_or_else(|| panic!("{p} not in {:?}", paths(es)))
}

/// Structural invariants every output must satisfy.
fn check_invariants(es: &[E]) {
    let mut seen = HashSet::new();
    let mut dirs = HashSet::new();
    for e in es {
        assert!(seen.insert(e.path.clone()), "{} twice", e.path);
        assert!(!e.path.split('/').any(|c| c.starts_with(".wh.")), "whiteout {}", e.path);
        if let Some((parent, _)) = e.path.rsplit_once('/') {
            assert!(dirs.contains(parent), "{} before its parent", e.path);
        }
        if e.ty == EntryType::Link {
            let t = e.link.as_ref().unwrap();
            assert!(seen.contains(t) && !dirs.contains(t), "link {} -> {t}", e.path);
        }
        if e.ty == EntryType::Directory {
            dirs.insert(e.path.clone());
        }
    }
}

fn flat(layers: Vec<Vec<u8>>) -> Vec<E> {
    let (out, stats) = run(layers).unwrap();
    assert_eq!(stats.size, out.len() as u64);
    assert_eq!(stats.diff_id, format!("sha256:{}", hex::encode(Sha256::digest(&out))));
    let es = read_out(&out);
    assert_eq!(stats.entries, es.len() as u64);
    check_invariants(&es);
    es
}

// ----- whiteouts ---------------------------------------------------------------------

#[test]
fn whiteout_hides_lower_file_and_subtree() {
    let l1 = L::new().dir("d").file("d/a", b"a").dir("d/sub").file("d/sub/x", b"x").file("keep", b"k").done();
    let l2 = L::new().whiteout("d/.wh.a").whiteout("d/.wh.sub").done();
    let es = flat(vec![l1, l2]);
    assert_eq!(paths(&es), ["d", "keep"]);
}

#[test]
fn whiteout_does_not_hide_same_layer_entry_in_any_order() {
    let l1 = L::new().file("a", b"old").done();
    let before = L::new().whiteout(".wh.a").file("a", b"new").done();
    let after = L::new().file("a", b"new").whiteout(".wh.a").done();
    for l2 in [before, after] {
        let es = flat(vec![l1.clone(), l2]);
        assert_eq!(paths(&es), ["a"]);
        assert_eq!(get(&es, "a").data, b"new");
    }
}

#[test]
fn opaque_hides_lower_contents_only() {
    let l1 = L::new().dir_with("d", |h| h.set_mode(0o700)).file("d/lower", b"l").dir("d/s").file("d/s/deep", b"").file("e", b"").done();
    for marker_first in [true, false] {
        let mut l2 = L::new().dir_with("d", |h| h.set_mode(0o750));
        if marker_first {
            l2 = l2.whiteout("d/.wh..wh..opq").file("d/mine", b"m");
        } else {
            l2 = l2.file("d/mine", b"m").whiteout("d/.wh..wh..opq");
        }
        let es = flat(vec![l1.clone(), l2.done()]);
        assert_eq!(paths(&es), ["d", "d/mine", "e"]);
        assert_eq!(get(&es, "d").mode, 0o750);
    }
    // the directory itself survives an opaque marker even without a new entry for it
    let l2 = L::new().whiteout("d/.wh..wh..opq").done();
    let es = flat(vec![l1.clone(), l2]);
    assert_eq!(paths(&es), ["d", "e"]);
    assert_eq!(get(&es, "d").mode, 0o700);
}

#[test]
fn opaque_at_root_and_whiteouts_of_missing_paths() {
    let l1 = L::new().file("a", b"").dir("b").done();
    let l2 = L::new().whiteout(".wh..wh..opq").file("c", b"").whiteout("nope/.wh.x").whiteout(".wh.zz").done();
    let es = flat(vec![l1, l2]);
    assert_eq!(paths(&es), ["c"]);
}

#[test]
fn whiteout_of_a_lower_directory_then_recreated_in_same_layer() {
    let l1 = L::new().dir("d").file("d/old", b"").done();
    let l2 = L::new().file("d/new", b"n").whiteout(".wh.d").done();
    let es = flat(vec![l1, l2]);
    assert_eq!(paths(&es), ["d", "d/new"]);
    // d is implied by d/new only: synthesized
    let d = get(&es, "d");
    assert_eq!((d.mode, d.uid, d.gid, d.mtime), (0o755, 0, 0, 0));
}

// ----- type changes ------------------------------------------------------------------

#[test]
fn file_replaces_directory_subtree() {
    let l1 = L::new().dir("x").file("x/a", b"").dir("x/b").file("x/b/c", b"").file("x-y", b"").done();
    let l2 = L::new().file("x", b"now a file").done();
    let es = flat(vec![l1, l2]);
    assert_eq!(paths(&es), ["x", "x-y"]);
    assert_eq!(get(&es, "x").ty, EntryType::Regular);
}

#[test]
fn directory_replaces_file_and_symlink_replaces_directory() {
    let l1 = L::new().file("f", b"file").dir("s").file("s/in", b"").done();
    let l2 = L::new().dir("f").file("f/child", b"c").symlink("s", "/elsewhere").done();
    let es = flat(vec![l1, l2]);
    assert_eq!(paths(&es), ["f", "f/child", "s"]);
    assert_eq!(get(&es, "f").ty, EntryType::Directory);
    assert_eq!(get(&es, "s").ty, EntryType::Symlink);
    assert_eq!(get(&es, "s").link.as_deref(), Some("/elsewhere"));
}

#[test]
fn directory_over_directory_merges_and_takes_new_metadata() {
    let l1 = L::new()
        .dir_with("d", |h| {
            h.set_mode(0o755);
            h.set_uid(1);
        })
        .file("d/a", b"")
        .done();
    let l2 = L::new()
        .dir_with("d", |h| {
            h.set_mode(0o1777);
            h.set_uid(2);
            h.set_mtime(42);
        })
        .file("d/b", b"")
        .done();
    let es = flat(vec![l1, l2]);
    assert_eq!(paths(&es), ["d", "d/a", "d/b"]);
    let d = get(&es, "d");
    assert_eq!((d.mode, d.uid, d.mtime), (0o1777, 2, 42));
}

#[test]
fn non_directory_parent_is_replaced_by_implied_directory() {
    let l1 = L::new().file("p", b"").symlink("q", "/etc").done();
    let l2 = L::new().file("p/x", b"").file("q/y", b"").done();
    let es = flat(vec![l1, l2]);
    assert_eq!(paths(&es), ["p", "p/x", "q", "q/y"]);
    assert_eq!(get(&es, "q").ty, EntryType::Directory);
}

#[test]
fn later_entry_in_same_layer_wins() {
    let l1 = L::new().file("a", b"1").file("a", b"2").dir("b").file("b/x", b"").file("b", b"3").done();
    let es = flat(vec![l1]);
    assert_eq!(paths(&es), ["a", "b"]);
    assert_eq!(get(&es, "a").data, b"2");
    assert_eq!(get(&es, "b").data, b"3");
}

// ----- hard links ----------------------------------------------------------------------

#[test]
fn hardlink_kept_after_its_target() {
    let l1 = L::new().file("b", b"content").hardlink("c", "b").done();
    let es = flat(vec![l1]);
    assert_eq!(paths(&es), ["b", "c"]);
    assert_eq!(get(&es, "c").ty, EntryType::Link);
    assert_eq!(get(&es, "c").link.as_deref(), Some("b"));
    assert_eq!(get(&es, "b").data, b"content");
}

#[test]
fn hardlink_sorting_before_its_target_takes_the_content() {
    // link "a" -> "z": in path order "a" comes first, so it carries the file.
    let l1 = L::new().file_with("z", b"zz", |h| h.set_mode(0o4755)).hardlink("a", "z").done();
    let es = flat(vec![l1]);
    assert_eq!(paths(&es), ["a", "z"]);
    let a = get(&es, "a");
    assert_eq!((a.ty, a.data.as_slice(), a.mode), (EntryType::Regular, &b"zz"[..], 0o4755));
    let z = get(&es, "z");
    assert_eq!((z.ty, z.link.as_deref(), z.mode), (EntryType::Link, Some("a"), 0o4755));
}

#[test]
fn hardlink_to_deleted_target_becomes_file() {
    let l1 = L::new().dir("d").file("d/t", b"target content").done();
    let l2 = L::new().hardlink("l", "d/t").done();
    let l3 = L::new().whiteout(".wh.d").done();
    let es = flat(vec![l1, l2, l3]);
    assert_eq!(paths(&es), ["l"]);
    assert_eq!(get(&es, "l").ty, EntryType::Regular);
    assert_eq!(get(&es, "l").data, b"target content");
}

#[test]
fn hardlink_to_overwritten_target_keeps_old_content() {
    let l1 = L::new().file("t", b"v1").hardlink("l", "t").hardlink("m", "l").done();
    let l2 = L::new().file("t", b"v2").done();
    let es = flat(vec![l1, l2]);
    assert_eq!(paths(&es), ["l", "m", "t"]);
    assert_eq!(get(&es, "l").data, b"v1");
    assert_eq!(get(&es, "m").ty, EntryType::Link);
    assert_eq!(get(&es, "m").link.as_deref(), Some("l"));
    assert_eq!(get(&es, "t").data, b"v2");
    assert_eq!(get(&es, "t").ty, EntryType::Regular);
}

#[test]
fn hardlink_to_symlink_and_to_lower_layer() {
    let l1 = L::new().symlink("s", "../x").file("f", b"ff").done();
    let l2 = L::new().hardlink("s2", "s").hardlink("g", "f").done();
    let es = flat(vec![l1, l2]);
    assert_eq!(paths(&es), ["f", "g", "s", "s2"]);
    assert_eq!(get(&es, "s2").ty, EntryType::Link);
    assert_eq!(get(&es, "s2").link.as_deref(), Some("s"));
    assert_eq!(get(&es, "g").link.as_deref(), Some("f"));
}

// ----- metadata ---------------------------------------------------------------------

#[test]
fn metadata_is_kept_exactly() {
    let l1 = L::new()
        .file_with("suid", b"x", |h| {
            h.set_mode(0o4755);
            h.set_uid(1000);
            h.set_gid(2000);
            h.set_username("alice").unwrap();
            h.set_groupname("staff").unwrap();
            h.set_mtime(1_234_567_890);
        })
        .file_with("sgid", b"", |h| h.set_mode(0o2711))
        .dir_with("tmp", |h| h.set_mode(0o1777))
        .symlink("abs", "/usr/bin/env")
        .symlink("rel", "../../etc/passwd")
        .done();
    let mut b = Builder::new(Vec::new());
    for (name, ty, maj, min) in [("dev/null", EntryType::Char, 1, 3), ("dev/sda", EntryType::Block, 8, 0), ("pipe", EntryType::Fifo, 0, 0)]
    {
        let mut h = Header::new_ustar();
        h.set_entry_type(ty);
        h.set_mode(0o666);
        h.set_mtime(7);
        h.set_device_major(maj).unwrap();
        h.set_device_minor(min).unwrap();
        h.set_size(0);
        b.append_data(&mut h, name, &b""[..]).unwrap();
    }
    let l2 = b.into_inner().unwrap();
    let es = flat(vec![l1, l2]);
    let s = get(&es, "suid");
    assert_eq!((s.mode, s.uid, s.gid, s.uname.as_str(), s.gname.as_str(), s.mtime), (0o4755, 1000, 2000, "alice", "staff", 1_234_567_890));
    assert_eq!(get(&es, "sgid").mode, 0o2711);
    assert_eq!(get(&es, "tmp").mode, 0o1777);
    assert_eq!(get(&es, "abs").link.as_deref(), Some("/usr/bin/env"));
    assert_eq!(get(&es, "rel").link.as_deref(), Some("../../etc/passwd"));
    let null = get(&es, "dev/null");
    assert_eq!((null.ty, null.dev, null.mode), (EntryType::Char, (1, 3), 0o666));
    assert_eq!(get(&es, "dev/sda").dev, (8, 0));
    assert_eq!(get(&es, "pipe").ty, EntryType::Fifo);
    // dev was implied
    assert_eq!(get(&es, "dev").mtime, 0);
}

#[test]
fn pax_records_xattrs_and_big_ids_are_kept() {
    let cap: &[u8] = &[1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let l1 = L::new()
        .pax_file(
            "bin/ping",
            &[
                ("SCHILY.xattr.security.capability", cap),
                ("mtime", b"1700000000.123456789"),
                ("uid", b"3000000"),
                ("uname", b"a-user-name-that-is-longer-than-32-bytes"),
            ],
            b"ELF",
        )
        .done();
    let es = flat(vec![l1]);
    let p = get(&es, "bin/ping");
    assert_eq!(p.pax["SCHILY.xattr.security.capability"], cap);
    assert_eq!(p.pax["mtime"], b"1700000000.123456789");
    assert_eq!(p.pax["uid"], b"3000000");
    assert_eq!(p.uid, 3_000_000); // applied by the tar crate from PAX
    assert_eq!(p.mtime, 1_700_000_000);
    assert_eq!(p.uname, "a-user-name-that-is-longer-than-32-bytes");
    assert_eq!(p.data, b"ELF");
}

#[test]
fn long_paths_and_link_names() {
    let long_dir = format!("{}/{}", "d".repeat(120), "e".repeat(90));
    let long_file = format!("{long_dir}/{}", "f".repeat(150));
    let long_target = format!("/{}", "t".repeat(300));
    let l1 = L::new()
        .file(&long_file, b"deep") // GNU long name in the input
        .symlink("sym", &long_target)
        .hardlink("hl", &long_file)
        .done();
    let es = flat(vec![l1]);
    assert_eq!(get(&es, &long_file).data, b"deep");
    assert_eq!(get(&es, "sym").link.as_deref(), Some(long_target.as_str()));
    // the long path sorts first and carries the content; the link's long
    // target name is written through PAX
    assert_eq!(get(&es, "hl").ty, EntryType::Link);
    assert_eq!(get(&es, "hl").link.as_deref(), Some(long_file.as_str()));
    assert_eq!(paths(&es)[..2], ["d".repeat(120).as_str(), long_dir.as_str()]);

    let l1 = L::new().file("short", b"s").hardlink(&long_file, "short").done();
    let es = flat(vec![l1]);
    // "ddd..." sorts before "short": the long path now carries the content
    assert_eq!(get(&es, &long_file).data, b"s");
    assert_eq!(get(&es, "short").ty, EntryType::Link);
    assert_eq!(get(&es, "short").link.as_deref(), Some(long_file.as_str()));
}

// ----- structure and determinism ------------------------------------------------------

#[test]
fn implied_parents_are_synthesized_and_sorted() {
    let l1 = L::new().file("a/b/c", b"c").file("a-z", b"").file("./b", b"").raw(EntryType::Regular, b"/abs", b"", b"").done();
    let l2 = L::new().dir_with("a/b", |h| h.set_mode(0o700)).done();
    let es = flat(vec![l1, l2]);
    assert_eq!(paths(&es), ["a", "a/b", "a/b/c", "a-z", "abs", "b"]);
    let a = get(&es, "a");
    assert_eq!((a.ty, a.mode, a.uid, a.gid, a.mtime, a.uname.as_str()), (EntryType::Directory, 0o755, 0, 0, 0, ""));
    assert_eq!(get(&es, "a/b").mode, 0o700);
}

#[test]
fn root_entries_are_ignored() {
    let l1 = L::new().raw(EntryType::Directory, b"./", b"", b"").file("x", b"").done();
    let es = flat(vec![l1]);
    assert_eq!(paths(&es), ["x"]);
}

#[test]
fn output_is_deterministic_and_digest_is_correct() {
    let mk = || {
        vec![
            L::new().dir("etc").file("etc/a", &[7u8; 5000]).file("etc/b", b"b").hardlink("etc/c", "etc/a").done(),
            L::new().whiteout("etc/.wh.b").file("usr/bin/x", &[1u8; 70000]).done(),
        ]
    };
    let (o1, s1) = run(mk()).unwrap();
    let (o2, s2) = run(mk()).unwrap();
    assert_eq!(o1, o2);
    assert_eq!(s1, s2);
    assert_eq!(s1.diff_id, format!("sha256:{}", hex::encode(Sha256::digest(&o1))));
    assert_eq!(s1.content_bytes, 75000);
    assert_eq!(o1.len() % 512, 0);
}

#[test]
fn empty_stack_gives_an_empty_tar() {
    let (out, stats) = run(vec![]).unwrap();
    assert_eq!(out, vec![0u8; 1024]);
    assert_eq!(stats.entries, 0);
    let (out, _) = run(vec![Vec::new(), L::new().done()]).unwrap();
    assert_eq!(out, vec![0u8; 1024]);
}

#[test]
fn input_streams_are_read_to_the_end() {
    struct Counting(Cursor<Vec<u8>>, std::sync::Arc<std::sync::atomic::AtomicUsize>);
    impl Read for Counting {
        fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.read(b)?;
            self.1.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
            Ok(n)
        }
    }
    let mut layer = L::new().file("a", b"x").done();
    layer.extend_from_slice(&[0u8; 4096]); // extra padding after the end marker
    let len = layer.len();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tmp = tempfile::tempdir().unwrap();
    let input: Box<dyn Read + Send> = Box::new(Counting(Cursor::new(layer), count.clone()));
    flatten_layers(vec![input], std::io::sink(), tmp.path()).unwrap();
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), len);
    // spools are unnamed temporary files: nothing left behind
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

// ----- hostile input ------------------------------------------------------------------

fn refused(layers: Vec<Vec<u8>>) -> FlattenError {
    match run(layers) {
        Ok((out, _)) => panic!("accepted: {:?}", paths(&read_out(&out))),
        Err(e) => e,
    }
}

#[test]
fn hostile_paths_are_refused_naming_the_entry() {
    for name in [&b"../escape"[..], b"a/../../etc/passwd", b"a/../b", b"/../x", b"./a/.."] {
        let e = refused(vec![L::new().file("ok", b"").done(), L::new().raw(EntryType::Regular, name, b"", b"x").done()]);
        match &e {
            FlattenError::UnsafePath { layer: 1, entry, .. } => assert_eq!(entry.as_bytes(), name),
            other => panic!("{other:?}"),
        }
        assert!(e.is_hostile());
        assert!(e.to_string().contains(&*String::from_utf8_lossy(name)), "{e}");
    }
    for name in [&b"d/.wh.."[..], b".wh...", b"d/.wh.", b".wh..wh/x", b"a/.wh.b/c"] {
        let e = refused(vec![L::new().raw(EntryType::Regular, name, b"", b"").done()]);
        assert!(matches!(e, FlattenError::UnsafePath { layer: 0, .. }), "{name:?}: {e:?}");
    }
    let e = refused(vec![L::new().raw(EntryType::Symlink, b".", b"/x", b"").done()]);
    assert!(matches!(e, FlattenError::UnsafePath { .. }), "{e:?}");
}

#[test]
fn hostile_hardlinks_are_refused() {
    for (target, why) in [
        (&b"../etc/shadow"[..], "escape"),
        (b"/../../x", "escape"),
        (b"missing", "missing"),
        (b"d", "directory"),
        (b"./", "root"),
        (b"later", "later in the layer"),
    ] {
        let l = L::new().dir("d").raw(EntryType::Link, b"evil", target, b"").file("later", b"").done();
        let e = refused(vec![l]);
        match &e {
            FlattenError::BadHardlink { layer: 0, entry, .. } => assert_eq!(entry, "evil", "{why}"),
            other => panic!("{why}: {other:?}"),
        }
        assert!(e.is_hostile());
    }
    // a target removed by a whiteout of the same layer is gone for the layer's entries
    let l1 = L::new().file("t", b"").done();
    let l2 = L::new().hardlink("l", "t").whiteout(".wh.t").done();
    assert!(matches!(refused(vec![l1, l2]), FlattenError::BadHardlink { layer: 1, .. }));
}

#[test]
fn malformed_and_unsupported_input_is_refused() {
    let mut l = L::new().file("a", b"0123456789").done();
    l.truncate(600); // data cut short
    assert!(matches!(refused(vec![l]), FlattenError::Tar { layer: 0, .. }));
    let mut l = L::new().file("a", b"x").done();
    l[148] ^= 1; // checksum
    assert!(matches!(refused(vec![l]), FlattenError::Tar { .. }));
    let l = L::new().raw(EntryType::new(b'V'), b"volume", b"", b"").done();
    assert!(matches!(refused(vec![l]), FlattenError::Unsupported { .. }));
    let l = L::new().pax_file("s", &[("GNU.sparse.major", b"1")], b"").done();
    assert!(matches!(refused(vec![l]), FlattenError::Unsupported { .. }));
}

#[test]
fn unused_layer_spools_do_not_matter_for_output() {
    // The lower layer's content is entirely hidden: its spool is dropped before
    // writing, and the output only holds the upper layer.
    let l1 = L::new().file("big", &[9u8; 100_000]).done();
    let l2 = L::new().whiteout(".wh.big").file("small", b"s").done();
    let es = flat(vec![l1, l2]);
    assert_eq!(paths(&es), ["small"]);
}
