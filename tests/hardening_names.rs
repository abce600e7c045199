//! Names that come from a server or a bundle are shown safely: control characters
//! and newlines are escaped in every message, names that are not valid bundle
//! stems are skipped with a note, and passwords typed in a URL never appear.
mod common;
#[path = "../transports/tests/support/mod.rs"]
mod servers;

use common::*;
use std::fs;
use std::path::Path;

/// A name that would retitle the terminal, clear the screen and forge a line of output.
const EVIL_STEM: &str = "evil\u{1b}]0;pwned\u{7}\u{1b}[2J\nferry: all good";

fn assert_no_raw_controls(label: &str, text: &str) {
    assert!(!text.contains('\u{1b}') && !text.contains('\u{7}'), "{label}: raw control characters in output:\n{text:?}");
    assert!(!text.contains("\nferry: all good"), "{label}: a forged output line:\n{text:?}");
}

/// A good bundle of the small fixture in `dir`, stem `good`.
fn good_bundle(dir: &Path) {
    ferry_ok(&[
        "save",
        &format!("docker-archive:{}", fixture("docker20-whiteout.docker.tar.gz").display()),
        "-o",
        dir.to_str().unwrap(),
        "-n",
        "good",
    ]);
}

/// Files a hostile writer of a shared drop could plant.
fn plant_evil_names(dir: &Path) {
    fs::write(dir.join(format!("{EVIL_STEM}.sha256")), format!("{}  x.tar\n", "0".repeat(64))).unwrap();
    fs::write(dir.join(format!("{EVIL_STEM}.tar.zst")), b"junk").unwrap();
    fs::write(dir.join(".hidden.sha256"), b"junk").unwrap();
    fs::write(dir.join("good.tar\u{1b}[31m.zst"), b"junk").unwrap();
}

#[test]
fn ls_of_a_directory_escapes_and_skips_names_that_are_not_stems() {
    let tmp = tempfile::tempdir().unwrap();
    let drop = tmp.path().join("drop");
    good_bundle(&drop);
    plant_evil_names(&drop);
    let r = ferry(&["ls", drop.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_no_raw_controls("ls stdout", &r.stdout);
    assert_no_raw_controls("ls stderr", &r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "only the good bundle is listed: {lines:?}");
    assert!(lines[0].starts_with("good\t"), "{lines:?}");
    assert!(lines[0].contains("1 file(s)"), "the planted part-like name is not counted: {lines:?}");
    assert!(
        r.stderr.contains("note: skipped evil\\u{1b}]0;pwned\\u{7}\\u{1b}[2J\\nferry: all good.sha256: not a valid bundle name"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("note: skipped .hidden.sha256"), "{}", r.stderr);

    let r = ferry(&["ls", drop.to_str().unwrap(), "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let stems: Vec<&str> = v.as_array().unwrap().iter().map(|b| b["stem"].as_str().unwrap()).collect();
    assert_eq!(stems, ["good"]);

    // A directory "holding exactly one bundle" still holds one: the planted names do not count.
    let oci = tmp.path().join("oci");
    let r = ferry(&["load", drop.to_str().unwrap(), "--allow-unsigned", "--into", &format!("oci:{}", oci.display())]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(oci.join("index.json").exists());
}

#[test]
fn ls_of_a_webdav_server_escapes_and_skips_hostile_names() {
    let nginx = servers::Nginx::start();
    let drop = nginx.www.join("drop");
    good_bundle(&drop);
    plant_evil_names(&drop);
    // nginx lists a name holding a newline with no size, and answers HEAD for it with
    // 404: such a file is not listed at all. One without a newline is listed.
    fs::write(drop.join("title\u{1b}]0;pwned\u{7}.sha256"), b"junk").unwrap();
    let home = tempfile::tempdir().unwrap();
    let r = ferry_env(&["ls", &nginx.url("drop/")], &[("HOME", home.path().to_str().unwrap())]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_no_raw_controls("ls stdout", &r.stdout);
    assert_no_raw_controls("ls stderr", &r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("good\t"), "{lines:?}");
    assert!(r.stderr.contains("note: skipped title\\u{1b}]0;pwned\\u{7}.sha256"), "{}", r.stderr);
}

#[test]
fn a_checksum_file_naming_a_hostile_file_is_refused_with_the_name_escaped() {
    let tmp = tempfile::tempdir().unwrap();
    let drop = tmp.path().join("drop");
    good_bundle(&drop);
    let sums = drop.join("good.sha256");
    let text = fs::read_to_string(&sums).unwrap();
    let (hex, _) = text.split_once("  ").unwrap();
    fs::write(&sums, format!("{hex}  good.tar\u{1b}[2J\u{1b}]0;pwned\u{7}\n")).unwrap();
    for args in [
        vec!["verify", sums.to_str().unwrap()],
        vec!["inspect", sums.to_str().unwrap()],
        vec!["pull", sums.to_str().unwrap(), "-o", tmp.path().join("out").to_str().unwrap()],
    ] {
        let r = ferry(&args);
        assert_eq!(r.code, 3, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains("which is not a file of this bundle"), "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains("good.tar\\u{1b}[2J"), "{args:?}: {}", r.stderr);
        assert_no_raw_controls(&format!("{args:?}"), &r.stderr);
    }
    assert!(!tmp.path().join("out").join("good.sha256").exists());
}

#[test]
fn image_names_from_a_bundle_are_escaped_in_inspect_verify_and_load() {
    let tmp = tempfile::tempdir().unwrap();
    let drop = tmp.path().join("drop");
    // A complete, consistent bundle (every digest right) whose image name is hostile.
    let digest = |b: &[u8]| format!("sha256:{}", sha256_hex(b));
    let layer = RawTar::new().entry("hello.txt", tar::EntryType::Regular, b"hello\n", "").finish();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [digest(&layer)]},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(&layer), "size": layer.len()}],
    }))
    .unwrap();
    let evil_name = "localhost/evil\u{1b}[2J\u{1b}]0;pwned\u{7}:1";
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest(&manifest), "size": manifest.len(),
            "annotations": {"io.containerd.image.name": evil_name, "org.opencontainers.image.ref.name": "1\u{1b}[2J"},
        }],
        "annotations": {"dev.ferry.bundle.format": "1", "dev.ferry.bundle.tool": "ferry\u{1b}[2J", "dev.ferry.bundle.created": "2026-01-01T00:00:00Z\u{1b}]0;x\u{7}"},
    }))
    .unwrap();
    let manifest_json = serde_json::to_vec(&serde_json::json!([{
        "Config": format!("blobs/sha256/{}", &digest(&config)[7..]),
        "RepoTags": ["evil\u{1b}[2J:1"],
        "Layers": [format!("blobs/sha256/{}", &digest(&layer)[7..])],
    }]))
    .unwrap();
    let mut tar = RawTar::new();
    tar.entry("oci-layout", tar::EntryType::Regular, br#"{"imageLayoutVersion":"1.0.0"}"#, "")
        .entry("index.json", tar::EntryType::Regular, &index, "")
        .entry("manifest.json", tar::EntryType::Regular, &manifest_json, "");
    for blob in [&manifest, &config, &layer] {
        tar.entry(&format!("blobs/sha256/{}", &digest(blob)[7..]), tar::EntryType::Regular, blob, "");
    }
    write_bundle(&drop, "named", &zstd_bytes(&tar.finish()));
    let sums = drop.join("named.sha256");
    let oci = tmp.path().join("oci");
    for args in [
        vec!["inspect", sums.to_str().unwrap()],
        vec!["verify", sums.to_str().unwrap()],
        vec!["load", sums.to_str().unwrap(), "--allow-unsigned", "--into", &format!("oci:{}", oci.display())],
    ] {
        let r = ferry(&args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        assert_no_raw_controls(&format!("{args:?} stdout"), &r.stdout);
        assert_no_raw_controls(&format!("{args:?} stderr"), &r.stderr);
        let all = format!("{}{}", r.stdout, r.stderr);
        assert!(all.contains("evil\\u{1b}[2J"), "{args:?}: the name is shown, escaped:\n{all}");
    }
}

#[test]
fn passwords_typed_in_a_url_never_appear_in_usage_errors() {
    const SECRET: &str = "hunter2-s3cret";
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    for url in [
        format!("ftp://alice:{SECRET}@127.0.0.1:1/"),
        format!("sftp://alice:{SECRET}@127.0.0.1:1"),
        format!("https://alice:{SECRET}@127.0.0.1:1"),
        format!("ftp://alice:{SECRET}@127.0.0.1:1/drop/x@y"),
    ] {
        for args in [
            vec!["pull", url.as_str(), "-o", out.to_str().unwrap()],
            vec!["verify", url.as_str()],
            vec!["load", url.as_str(), "--into", "oci:/nonexistent"],
        ] {
            let r = ferry(&args);
            assert_ne!(r.code, 0, "{args:?}");
            assert!(!r.stdout.contains(SECRET) && !r.stderr.contains(SECRET), "{args:?}: password shown:\n{}", r.stderr);
            if r.code == 2 {
                assert!(r.stderr.contains("give LOCATION/STEM"), "{args:?}: {}", r.stderr);
                assert!(r.stderr.contains("alice:***@"), "{args:?}: {}", r.stderr);
            }
        }
    }
}
