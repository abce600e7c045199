//! Damaged, truncated, reordered and hostile bundles: each refused with exit 3,
//! a message naming what failed, and nothing at the target.
mod common;
use common::*;
use std::path::{Path, PathBuf};

struct Case {
    _dir: tempfile::TempDir,
    bundle: PathBuf,
    target: PathBuf,
}

/// A fresh split bundle of the multi-image fixture.
fn split_bundle() -> Case {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("usb");
    ferry_ok(&[
        "save",
        &format!("docker-archive:{}", fixture("multi.docker.tar.gz").display()),
        "-o",
        bundle.to_str().unwrap(),
        "-n",
        "m",
        "--split",
        "256K",
    ]);
    let target = dir.path().join("target-oci");
    Case { bundle, target, _dir: dir }
}

fn parts(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.to_string_lossy().contains(".tar.zst.")).collect();
    v.sort();
    v
}

/// Load must fail with exit 3, the message must contain `expect`, and neither
/// the target nor any staging directory may be left.
fn refused(case: &Case, expect: &str) {
    for args in [
        vec![
            "load".to_string(),
            "--allow-unsigned".into(),
            case.bundle.display().to_string(),
            "--into".into(),
            format!("oci:{}", case.target.display()),
        ],
        vec!["verify".to_string(), case.bundle.display().to_string()],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = ferry(&args);
        assert_eq!(r.code, 3, "ferry {args:?} should fail with exit 3; stderr:\n{}", r.stderr);
        assert!(r.stderr.contains(expect), "ferry {args:?}: expected {expect:?} in:\n{}", r.stderr);
        assert!(r.stderr.contains("hint:"), "no hint in:\n{}", r.stderr);
    }
    assert!(!case.target.exists(), "the target was created despite the failure");
    let parent = case.target.parent().unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("staging"))
        .collect();
    assert!(leftovers.is_empty(), "staging left behind: {leftovers:?}");
}

#[test]
fn truncated_artifact() {
    let case = split_bundle();
    let last = parts(&case.bundle).pop().unwrap();
    let data = std::fs::read(&last).unwrap();
    std::fs::write(&last, &data[..data.len() / 2]).unwrap();
    refused(&case, "checksum mismatch in m.tar.zst.");
}

#[test]
fn one_flipped_byte_in_any_part() {
    let n = parts(&split_bundle().bundle).len();
    assert!(n >= 3);
    for i in 0..n {
        let case = split_bundle();
        let p = parts(&case.bundle)[i].clone();
        let mut data = std::fs::read(&p).unwrap();
        let at = data.len() / 3;
        data[at] ^= 0x01;
        std::fs::write(&p, &data).unwrap();
        refused(&case, &format!("checksum mismatch in m.tar.zst.{i:03}"));
    }
}

#[test]
fn missing_part() {
    let case = split_bundle();
    std::fs::remove_file(&parts(&case.bundle)[1]).unwrap();
    refused(&case, "part m.tar.zst.001 is missing");
}

#[test]
fn parts_swapped() {
    let case = split_bundle();
    let p = parts(&case.bundle);
    let tmp = case.bundle.join("swap");
    std::fs::rename(&p[0], &tmp).unwrap();
    std::fs::rename(&p[1], &p[0]).unwrap();
    std::fs::rename(&tmp, &p[1]).unwrap();
    refused(&case, "checksum mismatch in m.tar.zst.000");
}

/// Rewrite the artifact's inner tar with `edit`, recompress, recompute STEM.sha256.
fn rebuilt(edit: impl FnOnce(Vec<u8>) -> Vec<u8>) -> Case {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("usb");
    ferry_ok(&[
        "save",
        &format!("docker-archive:{}", fixture("docker20-whiteout.docker.tar.gz").display()),
        "-o",
        bundle.to_str().unwrap(),
        "-n",
        "m",
    ]);
    let inner = decompress(&std::fs::read(bundle.join("m.tar.zst")).unwrap());
    let edited = edit(inner);
    std::fs::remove_file(bundle.join("m.tar.zst")).unwrap();
    write_bundle(&bundle, "m", &zstd_bytes(&edited));
    let target = dir.path().join("target-oci");
    Case { bundle, target, _dir: dir }
}

/// Offset of the data of the largest blob entry in a tar.
fn largest_blob_data(tar: &[u8]) -> (usize, usize) {
    let mut best = (0, 0);
    let mut a = tar::Archive::new(tar);
    for e in a.entries().unwrap() {
        let e = e.unwrap();
        if e.size() as usize > best.1 {
            best = (e.raw_file_position() as usize, e.size() as usize);
        }
    }
    best
}

#[test]
fn corrupt_blob_with_recomputed_outer_checksum() {
    let case = rebuilt(|mut tar| {
        let (off, len) = largest_blob_data(&tar);
        tar[off + len / 2] ^= 0xff;
        tar
    });
    // The outer checksum now matches: sha256sum alone would not notice.
    sh(&format!("cd {} && sha256sum -c m.sha256", case.bundle.display()));
    refused(&case, "is corrupt: its content hashes to");
}

/// A bundle whose inner tar is a valid ferry layout plus one hostile entry.
fn hostile(name: &str, kind: tar::EntryType, link: &str) -> Case {
    let name = name.to_string();
    let link = link.to_string();
    rebuilt(move |tar| {
        // Insert the hostile entry right after the documents, before the blobs.
        let entries = tar_files(&tar);
        let mut out = RawTar::new();
        let mut inserted = false;
        for (path, k, data, l) in entries {
            if path.starts_with("blobs/sha256/") && !inserted && k.is_file() {
                out.entry(&name, kind, b"pwned\n", &link);
                inserted = true;
            }
            out.entry(&path, k, &data, &l);
        }
        out.finish()
    })
}

#[test]
fn tar_entry_with_dot_dot() {
    let case = hostile("../evil", tar::EntryType::Regular, "");
    refused(&case, "unexpected entry \"../evil\"");
    assert!(!case.bundle.parent().unwrap().join("evil").exists());
}

#[test]
fn tar_entry_with_absolute_path() {
    let case = hostile("/tmp/ferry-evil-absolute", tar::EntryType::Regular, "");
    refused(&case, "unexpected entry \"/tmp/ferry-evil-absolute\"");
    assert!(!Path::new("/tmp/ferry-evil-absolute").exists());
}

#[test]
fn symlink_escaping_the_target() {
    let case = hostile("blobs/sha256/escape", tar::EntryType::Symlink, "../../../../etc/passwd");
    refused(&case, "not a regular file");
}

#[test]
fn decompression_bomb_is_refused_before_it_is_read() {
    // A blob entry that claims 64 GiB: the verifier knows every blob's size from
    // the manifests before the bytes arrive, so it refuses at the header.
    let case = rebuilt(|tar| {
        let entries = tar_files(&tar);
        let mut out = RawTar::new();
        let mut bombed = false;
        for (path, k, data, l) in entries {
            if path.starts_with("blobs/sha256/") && k.is_file() && !bombed && data.len() > 100_000 {
                // Header claims 64 GiB; a few MB of zeros follow (compressed, they are tiny).
                out.entry_sized(&path, k, &vec![0u8; 4 << 20], 64 << 30, &l);
                bombed = true;
                continue;
            }
            out.entry(&path, k, &data, &l);
        }
        out.0.clone()
    });
    let start = std::time::Instant::now();
    refused(&case, "but its descriptor says");
    assert!(start.elapsed().as_secs() < 20);
}

#[test]
fn oversized_metadata_document_is_refused() {
    let case = rebuilt(|tar| {
        let entries = tar_files(&tar);
        let mut out = RawTar::new();
        for (path, k, data, l) in entries {
            if path == "index.json" {
                out.entry_sized(&path, k, &[], 1 << 40, &l);
                return out.0.clone();
            }
            out.entry(&path, k, &data, &l);
        }
        unreachable!()
    });
    refused(&case, "more than a metadata document may be");
}

#[test]
fn checksum_file_naming_other_files_is_refused() {
    let case = split_bundle();
    let sums = case.bundle.join("m.sha256");
    let text = std::fs::read_to_string(&sums).unwrap();
    std::fs::write(&sums, text.replacen("m.tar.zst.000", "../../etc/passwd", 1)).unwrap();
    let r = ferry(&["verify", case.bundle.to_str().unwrap()]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("not a file of this bundle"), "{}", r.stderr);
}

#[test]
fn incomplete_bundle_without_checksum_file() {
    let case = split_bundle();
    std::fs::remove_file(case.bundle.join("m.sha256")).unwrap();
    let r = ferry(&["load", "--allow-unsigned", case.bundle.to_str().unwrap(), "--into", &format!("oci:{}", case.target.display())]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("no complete bundle"), "{}", r.stderr);
    assert!(!case.target.exists());
}

#[test]
fn failed_load_leaves_an_existing_layout_as_it_was() {
    let good = split_bundle();
    ferry_ok(&["load", "--allow-unsigned", good.bundle.to_str().unwrap(), "--into", &format!("oci:{}", good.target.display())]);
    let before = std::fs::read(good.target.join("index.json")).unwrap();
    let blobs_before = layout_blobs(&good.target);
    let bad = rebuilt(|mut tar| {
        let (off, len) = largest_blob_data(&tar);
        tar[off + len - 1] ^= 0xff;
        tar
    });
    let r = ferry(&["load", "--allow-unsigned", bad.bundle.to_str().unwrap(), "--into", &format!("oci:{}", good.target.display())]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert_eq!(std::fs::read(good.target.join("index.json")).unwrap(), before);
    assert_eq!(layout_blobs(&good.target), blobs_before);
}

#[test]
fn archive_targets_leave_nothing_on_failure() {
    let case = rebuilt(|mut tar| {
        let (off, len) = largest_blob_data(&tar);
        tar[off + len / 3] ^= 0x10;
        tar
    });
    let out = case.target.with_extension("tar");
    let r = ferry(&["load", "--allow-unsigned", case.bundle.to_str().unwrap(), "--into", &format!("docker-archive:{}", out.display())]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(!out.exists());
    let names: Vec<String> =
        std::fs::read_dir(out.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(!names.iter().any(|n| n.contains("partial")), "{names:?}");
}
