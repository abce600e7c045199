//! Each kind of failure gets its own exit code and a hint that fits it: a full
//! disk is not a damaged bundle, a damaged source is not a damaged bundle, a
//! newer format asks for a newer ferry, a server that is down is a transport
//! failure. Messages carry no raw errno numbers.
mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of `size` mounted for the test (root only), unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn new(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(dir.path()).status().unwrap();
        assert!(ok.success(), "mounting a tmpfs needs root (tests run as root, as CI does)");
        SmallDisk { dir }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn fixture_image() -> String {
    format!("docker-archive:{}", fixture("multi.docker.tar.gz").display())
}

fn hint(stderr: &str) -> &str {
    stderr.lines().find_map(|l| l.trim().strip_prefix("hint: ")).unwrap_or_else(|| panic!("no hint in:\n{stderr}"))
}

fn assert_no_errno(stderr: &str) {
    assert!(!stderr.contains("os error"), "a raw errno in:\n{stderr}");
}

#[test]
fn a_target_without_room_is_not_a_damaged_bundle() {
    let tmp = tempfile::tempdir().unwrap();
    let usb = tmp.path().join("usb");
    ferry_ok(&["save", &fixture_image(), "-o", usb.to_str().unwrap(), "-n", "m"]);
    let disk = SmallDisk::new("256k");
    let target = disk.path().join("oci");
    let r = ferry(&["load", usb.to_str().unwrap(), "--allow-unsigned", "--into", &format!("oci:{}", target.display())]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("bytes are free at"), "{}", r.stderr);
    assert!(hint(&r.stderr).contains("free space at the target"), "{}", r.stderr);
    assert!(!r.stderr.contains("damaged"), "{}", r.stderr);
    assert!(!target.exists(), "nothing was written");
    assert_no_errno(&r.stderr);
}

#[test]
fn a_full_disk_during_save_says_so_without_errno() {
    let disk = SmallDisk::new("256k");
    let out = disk.path().join("usb");
    let r = ferry(&["save", &fixture_image(), "-o", out.to_str().unwrap(), "-n", "m", "--compress", "none"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("No space left on device"), "{}", r.stderr);
    assert_no_errno(&r.stderr);
    assert!(hint(&r.stderr).contains("free some disk space"), "{}", r.stderr);
    assert!(!out.join("m.sha256").exists() && !out.join("m.tar").exists(), "nothing under a final name");
}

/// The fixture with one byte of one layer flipped (the archive stays readable).
fn damaged_source(dir: &Path) -> PathBuf {
    let raw = decompress(&std::fs::read(fixture("docker20-whiteout.docker.tar.gz")).unwrap());
    let entries = tar_files(&raw);
    let mut out = RawTar::new();
    let mut flipped = false;
    for (path, kind, mut data, link) in entries {
        if !flipped && path.ends_with("layer.tar") && data.len() > 4096 {
            data[2048] ^= 0x01;
            flipped = true;
        }
        if kind.is_dir() {
            continue;
        }
        out.entry(&path, kind, &data, &link);
    }
    assert!(flipped);
    let path = dir.join("damaged.tar");
    std::fs::write(&path, out.finish()).unwrap();
    path
}

#[test]
fn a_damaged_source_is_not_a_damaged_bundle() {
    let tmp = tempfile::tempdir().unwrap();
    let source = damaged_source(tmp.path());
    let out = tmp.path().join("usb");
    let r = ferry(&["save", &format!("docker-archive:{}", source.display()), "-o", out.to_str().unwrap(), "-n", "d"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("the source image is damaged"), "{}", r.stderr);
    let h = hint(&r.stderr);
    assert!(h.contains("export or copy it again") && !h.contains("copy it again from its origin"), "{}", r.stderr);
    assert!(!out.join("d.sha256").exists());
}

#[test]
fn a_newer_format_asks_for_a_newer_ferry() {
    let tmp = tempfile::tempdir().unwrap();
    let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"annotations":{"dev.ferry.bundle.format":"2"}}"#;
    let mut tar = RawTar::new();
    tar.entry("oci-layout", tar::EntryType::Regular, br#"{"imageLayoutVersion":"1.0.0"}"#, "").entry(
        "index.json",
        tar::EntryType::Regular,
        index,
        "",
    );
    write_bundle(&tmp.path().join("usb"), "future", &zstd_bytes(&tar.finish()));
    let r = ferry(&["verify", tmp.path().join("usb/future.sha256").to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("bundle format 2 is newer"), "{}", r.stderr);
    assert!(hint(&r.stderr).contains("upgrade ferry"), "{}", r.stderr);
}

#[test]
fn a_server_that_is_down_is_a_transport_failure() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let r = ferry(&["ls", &format!("http://127.0.0.1:{port}/drop/")]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(hint(&r.stderr).contains("server is reachable"), "{}", r.stderr);
    assert_no_errno(&r.stderr);
}
