//! `ferry flatten` and `save --flatten` against a real Docker Engine 20.10.
//!
//! - Oracle: the flattened layer holds exactly what `docker create` +
//!   `docker export` of the original image shows (path, type, mode, uid/gid,
//!   size, content hash, link target, hard-link groups).
//! - The flattened images load into Docker, run with the same output, keep
//!   Env/Cmd/Entrypoint/WorkingDir/Labels, and have exactly one layer.
//! - Hostile layers are refused with a clear message and nothing is written.
//!
//! A missing dockerd fails these tests (never skipped).
mod common;
mod support;
use common::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use support::dockerd::Dockerd;

/// One path of a filesystem tree as a tar shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    kind: &'static str,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    sha256: String,
    link: String,
}

/// A filesystem tree read from a tar stream: path → node, hard links resolved
/// to their target's node, plus the hard-link groups (sets of paths).
struct Tree {
    nodes: BTreeMap<String, Node>,
    groups: BTreeSet<BTreeSet<String>>,
}

/// Paths Docker makes up for every container (and that `docker export` shows).
fn ignored(path: &str) -> bool {
    const FILES: [&str; 5] = [".dockerenv", "etc/hostname", "etc/hosts", "etc/resolv.conf", "etc/mtab"];
    const TREES: [&str; 3] = ["dev", "proc", "sys"];
    FILES.contains(&path) || TREES.iter().any(|t| path == *t || path.starts_with(&format!("{t}/")))
}

fn norm(path: &str) -> String {
    path.split('/').filter(|c| !c.is_empty() && *c != ".").collect::<Vec<_>>().join("/")
}

fn read_tree(tar_bytes: &[u8]) -> Tree {
    let mut nodes = BTreeMap::new();
    let mut links: Vec<(String, String)> = Vec::new();
    let mut archive = tar::Archive::new(tar_bytes);
    for entry in archive.entries().unwrap() {
        let mut e = entry.unwrap();
        let path = norm(&String::from_utf8_lossy(&e.path_bytes()));
        if path.is_empty() || ignored(&path) {
            continue;
        }
        let h = e.header().clone();
        let link = e.link_name_bytes().map(|l| String::from_utf8_lossy(&l).into_owned()).unwrap_or_default();
        let kind = match h.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => "file",
            tar::EntryType::Directory => "dir",
            tar::EntryType::Symlink => "symlink",
            tar::EntryType::Link => {
                links.push((path, norm(&link)));
                continue;
            }
            tar::EntryType::Char => "char",
            tar::EntryType::Block => "block",
            tar::EntryType::Fifo => "fifo",
            other => panic!("unexpected entry type {other:?} at {path}"),
        };
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        let node = Node {
            kind,
            mode: h.mode().unwrap() & 0o7777,
            uid: h.uid().unwrap(),
            gid: h.gid().unwrap(),
            size: if kind == "file" { data.len() as u64 } else { 0 },
            sha256: if kind == "file" { sha256_hex(&data) } else { String::new() },
            link: if kind == "symlink" { link } else { String::new() },
        };
        assert!(nodes.insert(path.clone(), node).is_none(), "{path} appears twice");
    }
    // Hard links: the same object under several paths.
    let mut group_of: HashMap<String, BTreeSet<String>> = HashMap::new();
    for (path, target) in links {
        let node = nodes.get(&target).unwrap_or_else(|| panic!("hard link {path} -> {target}: no such entry before it")).clone();
        nodes.insert(path.clone(), node);
        let g = group_of.entry(target.clone()).or_insert_with(|| BTreeSet::from([target.clone()]));
        g.insert(path);
    }
    Tree { nodes, groups: group_of.into_values().collect() }
}

/// Compare two trees; a readable list of differences.
fn diff(expected: &Tree, actual: &Tree) -> Vec<String> {
    let mut out = Vec::new();
    for (p, n) in &expected.nodes {
        match actual.nodes.get(p) {
            None => out.push(format!("missing in ferry's layer: {p} {n:?}")),
            Some(m) if m != n => out.push(format!("{p}: docker export {n:?} / ferry {m:?}")),
            _ => {}
        }
    }
    for (p, m) in &actual.nodes {
        if !expected.nodes.contains_key(p) {
            out.push(format!("only in ferry's layer: {p} {m:?}"));
        }
    }
    if expected.groups != actual.groups {
        out.push(format!("hard-link groups differ: docker export {:?} / ferry {:?}", expected.groups, actual.groups));
    }
    out
}

/// Entries of the outer archive (small fixtures: in memory).
fn archive_file(archive: &Path, name: &str) -> Vec<u8> {
    let bytes = std::fs::read(archive).unwrap();
    tar_files(&bytes).into_iter().find(|(n, ..)| n == name).unwrap_or_else(|| panic!("{}: no {name}", archive.display())).2
}

fn docker_manifest(archive: &Path) -> Vec<serde_json::Value> {
    serde_json::from_slice(&archive_file(archive, "manifest.json")).unwrap()
}

/// `docker.io/library/x:1` and `docker.io/x/y:1` as manifest.json RepoTags write them.
fn familiar(r: &str) -> String {
    let r = r.strip_prefix("docker.io/").unwrap_or(r);
    r.strip_prefix("library/").unwrap_or(r).to_string()
}

/// The flattened layer of the image tagged `tag` in a docker-archive ferry wrote.
fn flattened_layer(archive: &Path, tag: &str) -> (Vec<u8>, serde_json::Value) {
    let entry = docker_manifest(archive)
        .into_iter()
        .find(|e| e["RepoTags"].as_array().into_iter().flatten().any(|t| t.as_str() == Some(tag)))
        .unwrap_or_else(|| panic!("{}: no image tagged {tag}", archive.display()));
    let layers = entry["Layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{tag}: flattened image has {} layers", layers.len());
    let config: serde_json::Value = serde_json::from_slice(&archive_file(archive, entry["Config"].as_str().unwrap())).unwrap();
    (archive_file(archive, layers[0].as_str().unwrap()), config)
}

fn loadable_fixtures() -> Vec<Fixture> {
    fixtures().into_iter().filter(|f| f.docker20_loadable).collect()
}

/// No temporary file (spools, partial outputs) left in `dir`.
fn assert_no_leftovers(dir: &Path, keep: &[&str]) {
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(keep.contains(&name.as_str()), "{}: unexpected leftover {name}", dir.display());
    }
}

#[test]
fn flattened_layer_matches_docker_export() {
    let daemon = Dockerd::start();
    let work = tempfile::tempdir().unwrap();
    let mut compared = 0;
    for fx in loadable_fixtures() {
        let src = fixture(&fx.file);
        daemon.docker_ok(&["load", "-i", src.to_str().unwrap()]);
        let out_dir = work.path().join(fx.file.replace('.', "_"));
        std::fs::create_dir_all(&out_dir).unwrap();
        let out = out_dir.join("flat.tar");
        ferry_ok(&["-q", "flatten", &fx.image_ref(), &format!("docker-archive:{}", out.display())]);
        assert_no_leftovers(&out_dir, &["flat.tar"]);
        for (r, _) in &fx.refs {
            let cid = daemon.docker_ok(&["create", "--pull=never", "--network", "none", r]).trim().to_string();
            let export = out_dir.join("export.tar");
            daemon.docker_ok(&["export", "-o", export.to_str().unwrap(), &cid]);
            daemon.docker_ok(&["rm", &cid]);
            let expected = read_tree(&std::fs::read(&export).unwrap());
            std::fs::remove_file(&export).unwrap();

            let (layer, config) = flattened_layer(&out, &familiar(r));
            let actual = read_tree(&layer);
            let diffs = diff(&expected, &actual);
            assert!(diffs.is_empty(), "{} {r}: ferry's flattened layer differs from docker export:\n{}", fx.file, diffs.join("\n"));
            // Sanity: the comparison saw real content.
            assert!(expected.nodes.len() > 10, "{} {r}: docker export has only {} entries", fx.file, expected.nodes.len());
            if fx.file.starts_with("podman-links") {
                assert!(!actual.groups.is_empty(), "{r}: the hard links of podman-links were compared");
            }
            // The config: diff_ids is the new layer; history marks the old entries empty + one new.
            let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
            assert_eq!(diff_ids.len(), 1);
            assert_eq!(diff_ids[0].as_str().unwrap(), format!("sha256:{}", sha256_hex(&layer)));
            let history = config["history"].as_array().unwrap();
            let non_empty: Vec<_> = history.iter().filter(|h| h["empty_layer"] != serde_json::json!(true)).collect();
            assert_eq!(non_empty.len(), 1, "{r}: one history entry makes a layer");
            assert_eq!(non_empty[0]["created_by"], "ferry flatten");
            assert_eq!(history.last().unwrap()["created_by"], "ferry flatten");
            compared += 1;
        }
        daemon.docker(&["system", "prune", "-a", "-f"]);
    }
    assert!(compared >= 6, "compared only {compared} images");
}

/// Config fields `docker image inspect` shows that flattening must keep.
fn inspect(daemon: &Dockerd, r: &str) -> (serde_json::Value, usize) {
    let out = daemon.docker_ok(&["image", "inspect", r]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let img = &v[0];
    let c = &img["Config"];
    let kept = serde_json::json!({
        "Env": c["Env"], "Cmd": c["Cmd"], "Entrypoint": c["Entrypoint"],
        "WorkingDir": c["WorkingDir"], "Labels": c["Labels"], "User": c["User"],
    });
    (kept, img["RootFS"]["Layers"].as_array().map(|l| l.len()).unwrap_or(0))
}

fn run(daemon: &Dockerd, r: &str) -> String {
    let out = daemon.docker(&["run", "--rm", "--pull=never", "--network", "none", r]);
    assert!(out.status.success(), "docker run {r} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

#[test]
fn flattened_images_load_and_run_in_docker() {
    require("zstd");
    let daemon = Dockerd::start();
    let work = tempfile::tempdir().unwrap();

    // What the originals look like in Docker.
    let mut original: HashMap<String, (serde_json::Value, usize)> = HashMap::new();
    for fx in loadable_fixtures() {
        daemon.docker_ok(&["load", "-i", fixture(&fx.file).to_str().unwrap()]);
        for (r, _) in &fx.refs {
            original.insert(familiar(r), inspect(&daemon, r));
        }
    }
    daemon.docker(&["system", "prune", "-a", "-f"]);

    // ferry flatten, from every fixture (also those Docker 20.10 cannot load as
    // they are: zstd layers, zstd outer stream, multi-platform index).
    for fx in fixtures() {
        let out = work.path().join(format!("{}.flat.tar", fx.file));
        ferry_ok(&["-q", "flatten", &fx.image_ref(), &format!("docker-archive:{}", out.display())]);
        let loaded = daemon.docker(&["load", "-i", out.to_str().unwrap()]);
        assert!(
            loaded.status.success(),
            "{}: docker load of the flattened image failed: {}",
            fx.file,
            String::from_utf8_lossy(&loaded.stderr)
        );
        for (r, expected) in &fx.refs {
            let (kept, layers) = inspect(&daemon, r);
            assert_eq!(layers, 1, "{} {r}: the flattened image has {layers} layers", fx.file);
            if let Some((orig, orig_layers)) = original.get(&familiar(r)) {
                assert_eq!(&kept, orig, "{} {r}: config fields changed", fx.file);
                assert!(*orig_layers > 1, "{} {r}: the original was multi-layer", fx.file);
            }
            if let Some(expected) = expected {
                assert_eq!(&run(&daemon, r), expected, "{} {r}", fx.file);
            }
        }
        daemon.docker(&["system", "prune", "-a", "-f"]);
    }

    // save --flatten: the bundle, decompressed, loads into Docker and runs.
    for fx in loadable_fixtures() {
        let dir = work.path().join(format!("bundle-{}", fx.file));
        ferry_ok(&["-q", "save", "--flatten", &fx.image_ref(), "-o", dir.to_str().unwrap(), "-n", "b"]);
        let tar = dir.join("b.tar");
        sh(&format!("zstd -d -q {} -o {}", dir.join("b.tar.zst").display(), tar.display()));
        daemon.docker_ok(&["load", "-i", tar.to_str().unwrap()]);
        for (r, expected) in &fx.refs {
            let (kept, layers) = inspect(&daemon, r);
            assert_eq!(layers, 1, "save --flatten {} {r}: {layers} layers", fx.file);
            assert_eq!(&kept, &original[&familiar(r)].0, "save --flatten {} {r}: config fields changed", fx.file);
            if let Some(expected) = expected {
                assert_eq!(&run(&daemon, r), expected, "save --flatten {} {r}", fx.file);
            }
        }
        // The bundle records that it is flattened, and verifies.
        let info = ferry_ok(&["inspect", dir.to_str().unwrap(), "--json"]);
        let info: serde_json::Value = serde_json::from_str(&info.stdout).unwrap();
        assert_eq!(info["flattened"], serde_json::json!(true), "{}", fx.file);
        ferry_ok(&["verify", dir.to_str().unwrap()]);
        assert_no_leftovers(&dir, &["b.tar.zst", "b.sha256", "b.tar"]);
        daemon.docker(&["system", "prune", "-a", "-f"]);
    }

    // docker-daemon: on both sides (the engine module), renamed on the way.
    daemon.docker_ok(&["load", "-i", fixture("multi.docker.tar.gz").to_str().unwrap()]);
    let env = [("DOCKER_HOST", daemon.host.as_str())];
    let r = ferry_env(&["-q", "flatten", "docker-daemon:ferry-fixture/docker20-child:v1", "docker-daemon:ferry-fixture/flat:child"], &env);
    assert_eq!(r.code, 0, "flatten docker-daemon: -> docker-daemon: failed: {}", r.stderr);
    let (kept, layers) = inspect(&daemon, "ferry-fixture/flat:child");
    assert_eq!(layers, 1);
    assert_eq!(kept, original["ferry-fixture/docker20-child:v1"].0);
    assert_eq!(run(&daemon, "ferry-fixture/flat:child"), "ferry fixture docker20: ok\nferry fixture docker20-child: ok");
    // The original is untouched.
    assert_eq!(inspect(&daemon, "ferry-fixture/docker20-child:v1").1, original["ferry-fixture/docker20-child:v1"].1);
}

/// Other targets and sources, no Docker needed: oci:DIR and oci-archive:
/// targets, a multi-platform index, compressed layers giving the same layer.
#[test]
fn flatten_targets_and_multi_platform() {
    let work = tempfile::tempdir().unwrap();
    // The same image as docker-archive (uncompressed layers), skopeo gzip and zstd layers.
    let mut layers = Vec::new();
    for src in ["docker-archive:docker20-whiteout.docker.tar.gz", "oci:skopeo-gzip.oci", "oci-archive:skopeo-zstd.oci.tar"] {
        let (kind, file) = src.split_once(':').unwrap();
        let out = work.path().join(format!("{file}.flat.tar"));
        ferry_ok(&["-q", "flatten", &format!("{kind}:{}", fixture(file).display()), &format!("docker-archive:{}", out.display())]);
        layers.push(docker_manifest(&out)[0]["Layers"][0].as_str().unwrap().to_string());
    }
    assert!(layers.windows(2).all(|w| w[0] == w[1]), "same filesystem, same flattened layer: {layers:?}");

    // Multi-platform: a new index, each platform flattened; into oci:DIR:REF.
    let dir = work.path().join("layout");
    ferry_ok(&[
        "-q",
        "flatten",
        &format!("oci-archive:{}", fixture("multiarch.oci.tar").display()),
        &format!("oci:{}:flat", dir.display()),
    ]);
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let top = &index["manifests"][0];
    assert_eq!(top["annotations"]["org.opencontainers.image.ref.name"], "flat");
    let blob = |d: &serde_json::Value| -> serde_json::Value {
        let d = d.as_str().unwrap();
        serde_json::from_slice(&std::fs::read(dir.join("blobs/sha256").join(&d[7..])).unwrap()).unwrap()
    };
    let inner = blob(&top["digest"]);
    assert_eq!(inner["mediaType"], "application/vnd.oci.image.index.v1+json");
    let platforms: Vec<String> = inner["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| format!("{}/{}", m["platform"]["os"].as_str().unwrap(), m["platform"]["architecture"].as_str().unwrap()))
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    for m in inner["manifests"].as_array().unwrap() {
        let manifest = blob(&m["digest"]);
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1);
        assert_eq!(layers[0]["mediaType"], "application/vnd.oci.image.layer.v1.tar");
        let config = blob(&manifest["config"]["digest"]);
        assert_eq!(config["rootfs"]["diff_ids"][0], layers[0]["digest"], "uncompressed: digest = diff_id");
        assert_eq!(config["architecture"], m["platform"]["architecture"]);
        // Every blob is there and matches its digest.
        for d in [&m["digest"], &manifest["config"]["digest"], &layers[0]["digest"]] {
            let hex = &d.as_str().unwrap()[7..];
            assert_eq!(sha256_hex(&std::fs::read(dir.join("blobs/sha256").join(hex)).unwrap()), hex);
        }
    }
    // Only the flattened image's blobs were written (the old layers are gone).
    assert_eq!(layout_blobs(&dir).len(), 1 + 2 * 3);

    // --platform keeps one; oci-archive target; the layout reads back with ferry.
    let one = work.path().join("arm.tar");
    ferry_ok(&[
        "-q",
        "flatten",
        "--platform",
        "linux/arm64",
        &format!("oci-archive:{}", fixture("multiarch.oci.tar").display()),
        &format!("oci-archive:{}", one.display()),
    ]);
    let again = work.path().join("again.tar");
    ferry_ok(&["-q", "flatten", &format!("oci-archive:{}", one.display()), &format!("docker-archive:{}:ferry/arm:1", again.display())]);
    let m = docker_manifest(&again);
    assert_eq!(m[0]["RepoTags"], serde_json::json!(["ferry/arm:1"]));
    // Flattening a flattened image changes nothing in the layer.
    assert_eq!(docker_manifest(&one)[0]["Layers"], m[0]["Layers"]);
    // A target name with several images is a usage error, found before any work.
    let r = ferry(&[
        "flatten",
        &format!("docker-archive:{}", fixture("multi.docker.tar.gz").display()),
        &format!("docker-archive:{}:x/y:1", work.path().join("multi.tar").display()),
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("names one image"), "{}", r.stderr);
    assert_no_leftovers(
        work.path(),
        &[
            "docker20-whiteout.docker.tar.gz.flat.tar",
            "skopeo-gzip.oci.flat.tar",
            "skopeo-zstd.oci.tar.flat.tar",
            "layout",
            "arm.tar",
            "again.tar",
        ],
    );

    // Two images with the same layers (different configs) flatten to one
    // layer, stored once in the archive.
    let dir = work.path().join("twins");
    std::fs::create_dir_all(&dir).unwrap();
    let layer1 = RawTar::new().entry("a", tar::EntryType::Regular, b"a", "").finish();
    let layer2 = RawTar::new().entry("b", tar::EntryType::Regular, b"b", "").entry(".wh.a", tar::EntryType::Regular, b"", "").finish();
    let diff_ids: Vec<String> = [&layer1, &layer2].iter().map(|l| format!("sha256:{}", sha256_hex(l))).collect();
    let config = |label: &str| {
        serde_json::to_vec(&serde_json::json!({"os": "linux", "architecture": "amd64", "config": {"Labels": {"x": label}}, "rootfs": {"type": "layers", "diff_ids": diff_ids}})).unwrap()
    };
    let manifest = serde_json::to_vec(&serde_json::json!([
        {"Config": "c1.json", "RepoTags": ["twin/a:1"], "Layers": ["l1.tar", "l2.tar"]},
        {"Config": "c2.json", "RepoTags": ["twin/b:1"], "Layers": ["l1.tar", "l2.tar"]},
    ]))
    .unwrap();
    let outer = RawTar::new()
        .entry("manifest.json", tar::EntryType::Regular, &manifest, "")
        .entry("c1.json", tar::EntryType::Regular, &config("one"), "")
        .entry("c2.json", tar::EntryType::Regular, &config("two"), "")
        .entry("l1.tar", tar::EntryType::Regular, &layer1, "")
        .entry("l2.tar", tar::EntryType::Regular, &layer2, "")
        .finish();
    std::fs::write(dir.join("twins.tar"), outer).unwrap();
    let out = dir.join("flat.tar");
    ferry_ok(&[
        "-q",
        "flatten",
        &format!("docker-archive:{}", dir.join("twins.tar").display()),
        &format!("docker-archive:{}", out.display()),
    ]);
    let m = docker_manifest(&out);
    assert_eq!(m.len(), 2);
    assert_eq!(m[0]["Layers"], m[1]["Layers"]);
    assert_ne!(m[0]["Config"], m[1]["Config"]);
    let names: Vec<String> = tar_files(&std::fs::read(&out).unwrap()).into_iter().map(|(n, ..)| n).collect();
    let layer = m[0]["Layers"][0].as_str().unwrap();
    assert_eq!(names.iter().filter(|n| n.as_str() == layer).count(), 1, "{names:?}");
    let (flat, _) = flattened_layer(&out, "twin/b:1");
    assert_eq!(read_tree(&flat).nodes.keys().cloned().collect::<Vec<_>>(), ["b"]);
    // Every blob the archive names is there and matches its digest.
    let files = tar_files(&std::fs::read(&out).unwrap());
    for (n, _, data, _) in &files {
        if let Some(hex) = n.strip_prefix("blobs/sha256/").filter(|h| !h.is_empty()) {
            assert_eq!(sha256_hex(data), hex, "{n}");
        }
    }
    assert_no_leftovers(&dir, &["twins.tar", "flat.tar"]);
}

/// A docker-archive whose second layer is `layer2` (raw tar bytes).
fn hostile_archive(path: &Path, layer2: Vec<u8>) {
    crafted_archive(path, layer2, false)
}

/// `wrong_diff_id`: the config's diff_id of layer 2 is not its digest.
fn crafted_archive(path: &Path, layer2: Vec<u8>, wrong_diff_id: bool) {
    let layer1 =
        RawTar::new().entry("a/", tar::EntryType::Directory, b"", "").entry("a/file", tar::EntryType::Regular, b"hello\n", "").finish();
    let mut diff_ids: Vec<String> = [&layer1, &layer2].iter().map(|l| format!("sha256:{}", sha256_hex(l))).collect();
    if wrong_diff_id {
        diff_ids[1] = format!("sha256:{}", sha256_hex(b"something else"));
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "one"}, {"created_by": "two"}],
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!([
        {"Config": "config.json", "RepoTags": ["hostile/x:1"], "Layers": ["l1.tar", "l2.tar"]}
    ]))
    .unwrap();
    let outer = RawTar::new()
        .entry("manifest.json", tar::EntryType::Regular, &manifest, "")
        .entry("config.json", tar::EntryType::Regular, &config, "")
        .entry("l1.tar", tar::EntryType::Regular, &layer1, "")
        .entry("l2.tar", tar::EntryType::Regular, &layer2, "")
        .finish();
    std::fs::write(path, outer).unwrap();
}

#[test]
fn hostile_layers_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("dotdot", RawTar::new().entry("a/../../escape", tar::EntryType::Regular, b"x", "").finish(), "a/../../escape"),
        ("leading-dotdot", RawTar::new().entry("../etc/passwd", tar::EntryType::Regular, b"x", "").finish(), "../etc/passwd"),
        ("whiteout-dotdot", RawTar::new().entry("a/.wh..", tar::EntryType::Regular, b"", "").finish(), "a/.wh.."),
        ("hardlink-escape", RawTar::new().entry("a/link", tar::EntryType::Link, b"", "../../etc/shadow").finish(), "a/link"),
    ];
    for (name, layer, entry) in cases {
        let dir = work.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("hostile.tar");
        hostile_archive(&src, layer);
        let out = dir.join("flat.tar");
        let r = ferry(&["flatten", &format!("docker-archive:{}", src.display()), &format!("docker-archive:{}", out.display())]);
        assert_eq!(r.code, 3, "{name}: exit {} (stderr: {})", r.code, r.stderr);
        assert!(r.stderr.contains("refusing") && r.stderr.contains(entry), "{name}: unclear message: {}", r.stderr);
        assert!(
            r.stderr.contains("hostile/x:1") && r.stderr.contains("layer 1"),
            "{name}: message names the image and layer: {}",
            r.stderr
        );
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
        assert_no_leftovers(&dir, &["hostile.tar"]);

        // save --flatten refuses too, and publishes nothing.
        let usb = dir.join("usb");
        let r = ferry(&["save", "--flatten", &format!("docker-archive:{}", src.display()), "-o", usb.to_str().unwrap(), "-n", "h"]);
        assert_eq!(r.code, 3, "save --flatten {name}: exit {} ({})", r.code, r.stderr);
        assert!(r.stderr.contains(entry), "{}", r.stderr);
        let left: Vec<PathBuf> = std::fs::read_dir(&usb).map(|d| d.map(|e| e.unwrap().path()).collect()).unwrap_or_default();
        assert!(left.is_empty(), "save --flatten {name} left {left:?}");
    }
    // A layer whose bytes are not what the config says: an integrity failure.
    let dir = work.path().join("damaged");
    std::fs::create_dir_all(&dir).unwrap();
    crafted_archive(&dir.join("d.tar"), RawTar::new().entry("b", tar::EntryType::Regular, b"b", "").finish(), true);
    let r = ferry(&[
        "flatten",
        &format!("docker-archive:{}", dir.join("d.tar").display()),
        &format!("docker-archive:{}", dir.join("flat.tar").display()),
    ]);
    assert_eq!(r.code, 3, "damaged layer: exit {} ({})", r.code, r.stderr);
    assert!(r.stderr.contains("damaged"), "{}", r.stderr);
    assert_no_leftovers(&dir, &["d.tar"]);

    // A sane archive built the same way flattens (the harness itself is fine).
    let dir = work.path().join("sane");
    std::fs::create_dir_all(&dir).unwrap();
    hostile_archive(
        &dir.join("ok.tar"),
        RawTar::new().entry("a/.wh.file", tar::EntryType::Regular, b"", "").entry("b", tar::EntryType::Regular, b"b", "").finish(),
    );
    let out = dir.join("flat.tar");
    ferry_ok(&["-q", "flatten", &format!("docker-archive:{}", dir.join("ok.tar").display()), &format!("docker-archive:{}", out.display())]);
    let (layer, _) = flattened_layer(&out, "hostile/x:1");
    let tree = read_tree(&layer);
    assert_eq!(tree.nodes.keys().cloned().collect::<Vec<_>>(), ["a", "b"]);
}
