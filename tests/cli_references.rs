//! Image references as the CLI takes them (issue 15): a digest in `SOURCE:REF`
//! selects the image by digest (and a tag beside it must match), a digest the
//! source lacks is a clear error, targets cannot pin a digest, and bundle stems
//! with dots round-trip through save, ls, verify and load.
mod common;
mod support;
use common::*;
use std::path::{Path, PathBuf};
use support::podman::PodmanService;

const WRONG: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000bad";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `ferry inspect --json` of the bundle STEM in `dir`.
fn inspect(dir: &Path, stem: &str) -> serde_json::Value {
    let r = ferry_ok(&["inspect", "--json", s(&dir.join(format!("{stem}.sha256")))]);
    serde_json::from_str(&r.stdout).unwrap()
}

/// (digest, name) of every image the bundle records.
fn images(info: &serde_json::Value) -> Vec<(String, String)> {
    info["images"]
        .as_array()
        .expect("the bundle's images")
        .iter()
        .map(|i| (i["digest"].as_str().unwrap().to_string(), i["name"].as_str().unwrap_or("").to_string()))
        .collect()
}

fn index_digests(index_json: &[u8]) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(index_json).unwrap();
    v["manifests"].as_array().unwrap().iter().map(|d| d["digest"].as_str().unwrap().to_string()).collect()
}

/// A copy of fixtures/skopeo-gzip.oci holding a second image, `…:v2`, whose
/// manifest differs from v1's by an annotation. Returns (dir, v1 digest, v2 digest).
fn two_image_layout(parent: &Path) -> (PathBuf, String, String) {
    let dir = parent.join("two.oci");
    sh(&format!("cp -r '{}' '{}'", fixture("skopeo-gzip.oci").display(), dir.display()));
    let index_path = dir.join("index.json");
    let mut index: serde_json::Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let v1 = index["manifests"][0]["digest"].as_str().unwrap().to_string();
    let mut manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("blobs/sha256").join(&v1[7..])).unwrap()).unwrap();
    manifest["annotations"] = serde_json::json!({"test.ferry.copy": "v2"});
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let v2 = format!("sha256:{}", sha256_hex(&bytes));
    std::fs::write(dir.join("blobs/sha256").join(&v2[7..]), &bytes).unwrap();
    let mut second = index["manifests"][0].clone();
    second["digest"] = v2.clone().into();
    second["size"] = bytes.len().into();
    second["annotations"]["org.opencontainers.image.ref.name"] = "ferry-fixture/docker20:v2".into();
    index["manifests"].as_array_mut().unwrap().push(second);
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    (dir, v1, v2)
}

fn save(image: &str, out: &Path, stem: &str) -> Run {
    ferry(&["save", image, "-o", s(out), "-n", stem])
}

fn assert_nothing_saved(out: &Path) {
    let left: Vec<_> = std::fs::read_dir(out).map(|d| d.map(|e| e.unwrap().file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "a refused save left {left:?} in {}", out.display());
}

#[test]
fn oci_digest_selects_exactly_that_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("usb");

    // The fixture itself, pinned to the manifest digest its index.json gives.
    let gzip_oci = fixture("skopeo-gzip.oci");
    let pinned = index_digests(&std::fs::read(gzip_oci.join("index.json")).unwrap()).remove(0);
    let r = save(&format!("oci:{}:ferry-fixture/docker20:v1@{pinned}", gzip_oci.display()), &out, "pinned");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(images(&inspect(&out, "pinned")), [(pinned, "docker.io/ferry-fixture/docker20:v1".to_string())]);

    // Two images in one layout: the digest alone picks the second one, with its name.
    let (layout, v1, v2) = two_image_layout(tmp.path());
    let r = save(&format!("oci:{}:@{v2}", layout.display()), &out, "by-digest");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(images(&inspect(&out, "by-digest")), [(v2.clone(), "docker.io/ferry-fixture/docker20:v2".to_string())]);
    // Name and digest that agree select that image, not the other.
    let r = save(&format!("oci:{}:ferry-fixture/docker20:v1@{v1}", layout.display()), &out, "both");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(images(&inspect(&out, "both")), [(v1, "docker.io/ferry-fixture/docker20:v1".to_string())]);
}

#[test]
fn digest_of_a_platform_manifest_selects_that_platform() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("usb");
    let archive = fixture("multiarch.oci.tar");
    let files = tar_files(&std::fs::read(&archive).unwrap());
    let file = |name: &str| files.iter().find(|(n, ..)| n == name).map(|(_, _, d, _)| d.clone()).unwrap();
    let top = index_digests(&file("index.json")).remove(0);
    let children = index_digests(&file(&format!("blobs/sha256/{}", &top[7..])));
    assert_eq!(children.len(), 2, "multiarch.oci.tar holds an index of two platforms");

    // The index's own digest keeps every platform.
    let r = save(&format!("oci-archive:{}:ferry-fixture/multiarch:v1@{top}", archive.display()), &out, "index");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let info = inspect(&out, "index");
    assert_eq!(images(&info), [(top, "docker.io/ferry-fixture/multiarch:v1".to_string())]);
    assert_eq!(info["images"][0]["manifests"].as_array().unwrap().len(), 2);

    // A platform manifest's digest selects that manifest alone (as `docker pull NAME@DIGEST` does).
    let r = save(&format!("oci-archive:{}:ferry-fixture/multiarch:v1@{}", archive.display(), children[1]), &out, "arm64");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let info = inspect(&out, "arm64");
    assert_eq!(images(&info), [(children[1].clone(), "docker.io/ferry-fixture/multiarch:v1".to_string())]);
    assert_eq!(info["images"][0]["manifests"][0]["platform"], "linux/arm64");
}

#[test]
fn a_digest_the_source_lacks_is_refused_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("usb");
    let (layout, _v1, v2) = two_image_layout(tmp.path());
    let oci = |r: &str| format!("oci:{}:{r}", layout.display());

    for reference in [format!("ferry-fixture/docker20:v1@{WRONG}"), format!("@{WRONG}")] {
        let r = save(&oci(&reference), &out, "wrong");
        assert_eq!(r.code, 1, "{reference}: {}", r.stderr);
        assert!(r.stderr.contains(WRONG) && r.stderr.contains("no image"), "{reference}: {}", r.stderr);
        assert_nothing_saved(&out);
    }

    // The name is there, the digest too, but not together: the tag must match.
    let r = save(&oci(&format!("ferry-fixture/docker20:v1@{v2}")), &out, "mismatch");
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains(&v2) && r.stderr.contains("ferry-fixture/docker20:v2"), "the message names what the digest is: {}", r.stderr);
    assert_nothing_saved(&out);

    // --json: one error object naming the digest, with its exit code.
    let r = ferry(&["save", &oci(&format!("@{WRONG}")), "-o", s(&out), "--json"]);
    let err: serde_json::Value = serde_json::from_str(r.stderr.trim()).unwrap();
    assert_eq!(err["exit"], 1);
    assert!(err["error"].as_str().unwrap().contains(WRONG), "{err}");

    // A malformed digest is a usage error before anything is read.
    for bad in ["app@sha256:1234", "app@sha512:abcd", "app@sha256:00000000000000000000000000000000000000000000000000000000000000AB"] {
        let r = save(&oci(bad), &out, "bad");
        assert_eq!(r.code, 2, "{bad}: {}", r.stderr);
        assert!(r.stderr.contains("digest"), "{bad}: {}", r.stderr);
    }
    assert_nothing_saved(&out);
}

#[test]
fn docker_archive_digest_selects_by_image_id() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("usb");
    let archive = fixture("multi.docker.tar.gz");
    let files = tar_files(&decompress(&std::fs::read(&archive).unwrap()));
    let file = |name: &str| files.iter().find(|(n, ..)| n == name).map(|(_, _, d, _)| d.clone()).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&file("manifest.json")).unwrap();
    let child = manifest
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["RepoTags"].as_array().unwrap().iter().any(|t| t == "ferry-fixture/docker20-child:v1"))
        .unwrap();
    let child_id = format!("sha256:{}", sha256_hex(&file(child["Config"].as_str().unwrap())));

    let r = save(&format!("docker-archive:{}:@{child_id}", archive.display()), &out, "child");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let info = inspect(&out, "child");
    let names: Vec<String> = images(&info).into_iter().map(|(_, n)| n).collect();
    assert_eq!(names, ["docker.io/ferry-fixture/docker20-child:v1"]);
    assert_eq!(info["images"][0]["manifests"][0]["config"], child_id.as_str());

    // A tag of another image beside the child's ID: refused, nothing saved.
    let out2 = tmp.path().join("usb2");
    let r = save(&format!("docker-archive:{}:ferry-fixture/docker20:v1@{child_id}", archive.display()), &out2, "x");
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains(&child_id) && r.stderr.contains("ferry-fixture/docker20-child:v1"), "{}", r.stderr);
    assert_nothing_saved(&out2);
    let r = save(&format!("docker-archive:{}:@{WRONG}", archive.display()), &out2, "x");
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains(WRONG), "{}", r.stderr);
    assert_nothing_saved(&out2);
}

#[test]
fn targets_cannot_pin_a_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let source = format!("oci:{}", fixture("skopeo-gzip.oci").display());
    let pinned = format!("app:v1@{WRONG}");
    let target = tmp.path().join("flat.oci");
    for t in [format!("oci:{}:{pinned}", target.display()), format!("docker-archive:{}:{pinned}", tmp.path().join("a.tar").display())] {
        let r = ferry(&["flatten", &source, &t]);
        assert_eq!(r.code, 2, "{t}: {}", r.stderr);
        assert!(r.stderr.contains("digest"), "{t}: {}", r.stderr);
    }
    assert!(!target.exists() && !tmp.path().join("a.tar").exists());

    let out = tmp.path().join("usb");
    ferry_ok(&["save", &source, "-o", s(&out), "-n", "b"]);
    let r = ferry(&["load", "--allow-unsigned", s(&out), "--into", &format!("oci:{}:{pinned}", target.display())]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("digest"), "{}", r.stderr);
    assert!(!target.exists());
}

/// Files in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn stems_with_dots_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let image = format!("docker-archive:{}", fixture("docker20-whiteout.docker.tar.gz").display());
    let usb = tmp.path().join("usb");

    ferry_ok(&["save", &image, "-o", s(&usb), "-n", "release-1.2"]);
    assert_eq!(listing(&usb), ["release-1.2.sha256", "release-1.2.tar.zst"]);
    for source in [usb.clone(), usb.join("release-1.2.sha256"), usb.join("release-1.2.tar.zst")] {
        let report: serde_json::Value = serde_json::from_str(&ferry_ok(&["verify", "--json", s(&source)]).stdout).unwrap();
        assert!(report["bundle"].as_str().unwrap().ends_with("/release-1.2"), "{report}");
        assert!(report["blobs"].as_u64().unwrap() > 0, "{report}");
    }
    let oci = tmp.path().join("oci");
    let r =
        ferry_ok(&["load", "--json", "--allow-unsigned", s(&usb.join("release-1.2.tar.zst")), "--into", &format!("oci:{}", oci.display())]);
    assert!(r.stdout.contains("docker20:v1"), "{}", r.stdout);
    let loaded = layout_blobs(&oci);
    let missing: Vec<_> = source_digests(&fixture("docker20-whiteout.docker.tar.gz")).into_iter().filter(|d| !loaded.contains(d)).collect();
    assert!(missing.is_empty(), "the load lacks {missing:?}");

    // A stem that itself holds `.tar`, beside a bundle whose stem is its start:
    // each file belongs to exactly one bundle.
    let shelf = tmp.path().join("shelf");
    ferry_ok(&["save", &image, "-o", s(&shelf), "-n", "my"]);
    ferry_ok(&["save", &image, "-o", s(&shelf), "-n", "my.tar.backup", "--split", "300K", "--compress", "gzip"]);
    let ls: serde_json::Value = serde_json::from_str(&ferry_ok(&["ls", "--json", s(&shelf)]).stdout).unwrap();
    let bundles = ls.as_array().unwrap();
    let files_of = |stem: &str| -> Vec<String> {
        let b = bundles.iter().find(|b| b["stem"] == stem).unwrap_or_else(|| panic!("ls lists {stem}: {ls}"));
        b["files"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_string()).collect()
    };
    assert_eq!(files_of("my"), ["my.tar.zst"]);
    let backup = files_of("my.tar.backup");
    assert!(backup.len() > 1 && backup.iter().all(|f| f.starts_with("my.tar.backup.tar.gz.")), "{backup:?}");
    for source in [shelf.join("my.tar.backup.sha256"), shelf.join(&backup[1]), shelf.join("my.tar.zst")] {
        ferry_ok(&["verify", s(&source)]);
    }
    let oci2 = tmp.path().join("oci2");
    ferry_ok(&["load", "--allow-unsigned", s(&shelf.join(&backup[0])), "--into", &format!("oci:{}", oci2.display())]);
    assert_eq!(layout_blobs(&oci2), layout_blobs(&oci));

    // `.age` inside a stem does not make a bundle encrypted.
    let plain = tmp.path().join("plain");
    ferry_ok(&["save", &image, "-o", s(&plain), "-n", "notes.age"]);
    let info = inspect(&plain, "notes.age");
    assert_eq!(info["encrypted"], false, "{info}");
    let report: serde_json::Value = serde_json::from_str(&ferry_ok(&["verify", "--json", s(&plain)]).stdout).unwrap();
    assert_eq!(report["checksums_only"], false, "verify opened the content: {report}");
    let ls: serde_json::Value = serde_json::from_str(&ferry_ok(&["ls", "--json", s(&plain)]).stdout).unwrap();
    assert_eq!(ls[0]["encrypted"], false, "{ls}");
}

/// Podman's engine records RepoDigests (a Docker 20.10 daemon only has them for
/// pulled images, and the tests have no registry).
#[test]
fn daemon_digest_is_looked_up_and_the_tag_beside_it_checked() {
    let podman = PodmanService::start();
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("multi.tar");
    std::fs::write(&archive, decompress(&std::fs::read(fixture("multi.docker.tar.gz")).unwrap())).unwrap();
    podman.podman(&format!("load -q -i {}", archive.display()));
    let digest = podman.podman("inspect --format '{{.Digest}}' localhost/ferry-fixture/docker20:v1").trim().to_string();
    assert!(digest.starts_with("sha256:"), "{digest}");
    let env = [("DOCKER_HOST", podman.host.as_str())];
    let save = |reference: &str, out: &Path| ferry_env(&["save", &format!("docker-daemon:{reference}"), "-o", s(out), "-n", "d"], &env);

    let out = tmp.path().join("tagged");
    let r = save(&format!("localhost/ferry-fixture/docker20:v1@{digest}"), &out);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let names: Vec<String> = images(&inspect(&out, "d")).into_iter().map(|(_, n)| n).collect();
    assert_eq!(names, ["localhost/ferry-fixture/docker20:v1"], "exported by its tag, so the bundle records the name");

    // The engine finds the digest even under another repository name; ferry checks the tag.
    let out = tmp.path().join("other");
    let r = save(&format!("localhost/ferry-fixture/docker20-child:v1@{digest}"), &out);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("is not tagged localhost/ferry-fixture/docker20-child:v1")
            && r.stderr.contains("localhost/ferry-fixture/docker20:v1"),
        "{}",
        r.stderr
    );
    assert_nothing_saved(&out);

    let r = save(&format!("localhost/ferry-fixture/docker20:v1@{WRONG}"), &out);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains(WRONG) && r.stderr.contains("not found"), "{}", r.stderr);
    let r = save("localhost/ferry-fixture/docker20@sha256:12", &out);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("digest"), "{}", r.stderr);
    assert_nothing_saved(&out);
}
