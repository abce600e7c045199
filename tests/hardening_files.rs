//! Issue 14, class 1 and the file side of class 3: files ferry creates never
//! follow a planted link or FIFO; FIFOs, devices and sockets given as bundle
//! files are refused at once; `pull` writes no more than the source announced.
//! Each case runs the real binary, checks the exit code, the message, that a
//! victim file outside ferry's own files kept its bytes, and the peak RSS.
mod common;
use common::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A file outside every directory ferry is told about, which must keep its bytes.
struct Victim {
    _dir: tempfile::TempDir,
    path: PathBuf,
    bytes: Vec<u8>,
}

impl Victim {
    fn new() -> Victim {
        Victim::with(b"victim: these bytes must stay as they are\n".to_vec())
    }
    fn with(bytes: Vec<u8>) -> Victim {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("victim");
        std::fs::write(&path, &bytes).unwrap();
        Victim { _dir: dir, path, bytes }
    }
    fn untouched(&self) {
        let meta = std::fs::symlink_metadata(&self.path).unwrap();
        assert!(meta.file_type().is_file(), "{} is still a regular file", self.path.display());
        let now = std::fs::read(&self.path).unwrap();
        assert!(now == self.bytes, "{} was written through: {} bytes, was {}", self.path.display(), now.len(), self.bytes.len());
    }
}

/// A bundle `m` of a small fixture saved into `dir`.
fn save_into(dir: &Path, extra: &[&str]) {
    let image = format!("docker-archive:{}", fixture("docker20-whiteout.docker.tar.gz").display());
    let mut args = vec!["save", &image, "-o", dir.to_str().unwrap(), "-n", "m"];
    args.extend_from_slice(extra);
    ferry_ok(&args);
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo {}", path.display());
}

fn symlink(target: &Path, link: &Path) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

/// One line per case for the issue's closing note: exit code, what ferry said, peak RSS.
fn report(case: &str, r: &Run, kib: u64) {
    let said = r.stderr.lines().find(|l| l.starts_with("ferry: error")).or(r.stderr.lines().last()).unwrap_or("");
    println!("{case}: exit {}, peak RSS {kib} KiB: {said}", r.code);
}

fn assert_bounded(kib: u64) {
    assert!(kib < HOSTILE_RSS_LIMIT_KIB, "peak RSS {kib} KiB, more than {HOSTILE_RSS_LIMIT_KIB} KiB");
}

fn assert_regular(path: &Path) {
    let meta = std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(meta.file_type().is_file(), "{} is a regular file, not {:?}", path.display(), meta.file_type());
}

/// Names in a directory, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// `resumed_from` of `name` in `pull --json`'s report.
fn resumed_from(stdout: &str, name: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    v["files"].as_array().unwrap().iter().find(|f| f["name"] == name).unwrap()["resumed_from"].as_u64().unwrap()
}

fn verify_ok(dir: &Path) {
    let r = ferry(&["verify", dir.to_str().unwrap()]);
    assert_eq!(r.code, 0, "the result verifies:\n{}", r.stderr);
}

// ---- class 1: files ferry creates never follow links --------------------------------

#[test]
fn save_replaces_a_symlink_planted_at_the_partial_name() {
    let victim = Victim::new();
    let out = tempfile::tempdir().unwrap();
    symlink(&victim.path, &out.path().join("m.tar.zst.partial"));
    let image = format!("docker-archive:{}", fixture("docker20-whiteout.docker.tar.gz").display());
    let (r, kib) = ferry_rss(&["save", &image, "-o", out.path().to_str().unwrap(), "-n", "m"], &[]);
    report("save, symlink at m.tar.zst.partial", &r, kib);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("saved ferry-fixture/docker20:v1"), "{}", r.stderr);
    victim.untouched();
    assert_regular(&out.path().join("m.tar.zst"));
    assert_eq!(names(out.path()), ["m.sha256", "m.tar.zst"]);
    verify_ok(out.path());
    assert_bounded(kib);
}

#[test]
fn save_replaces_a_symlink_planted_at_a_sidecar_partial_name() {
    let victim = Victim::new();
    let out = tempfile::tempdir().unwrap();
    symlink(&victim.path, &out.path().join("m.sha256.partial"));
    let image = format!("docker-archive:{}", fixture("docker20-whiteout.docker.tar.gz").display());
    let (r, kib) = ferry_rss(&["save", &image, "-o", out.path().to_str().unwrap(), "-n", "m"], &[]);
    report("save, symlink at m.sha256.partial", &r, kib);
    assert_eq!(r.code, 0, "{}", r.stderr);
    victim.untouched();
    assert_regular(&out.path().join("m.sha256"));
    verify_ok(out.path());
    assert_bounded(kib);
}

#[test]
fn pull_replaces_a_symlink_planted_at_the_partial_name() {
    let src = tempfile::tempdir().unwrap();
    save_into(src.path(), &[]);
    // A prefix-sized victim: the old code took it for an interrupted download and appended to it.
    let victim = Victim::new();
    let dest = tempfile::tempdir().unwrap();
    symlink(&victim.path, &dest.path().join("m.tar.zst.partial"));
    let source = format!("{}/m", src.path().display());
    let (r, kib) = ferry_rss(&["pull", &source, "-o", dest.path().to_str().unwrap(), "--json"], &[]);
    report("pull, symlink at m.tar.zst.partial", &r, kib);
    assert_eq!(r.code, 0, "{}", r.stderr);
    victim.untouched();
    assert_eq!(resumed_from(&r.stdout, "m.tar.zst"), 0, "a link is never resumed");
    assert_regular(&dest.path().join("m.tar.zst"));
    assert_eq!(std::fs::read(dest.path().join("m.tar.zst")).unwrap(), std::fs::read(src.path().join("m.tar.zst")).unwrap());
    verify_ok(dest.path());
    assert_bounded(kib);
}

/// `load --into KIND:OUT.tar` with a symlink planted at `.OUT.tar.partial`.
fn archive_target_with_planted_partial(kind: &str) {
    let bundle = tempfile::tempdir().unwrap();
    save_into(bundle.path(), &[]);
    let victim = Victim::new();
    let target = tempfile::tempdir().unwrap();
    let out = target.path().join("OUT.tar");
    symlink(&victim.path, &target.path().join(".OUT.tar.partial"));
    let into = format!("{kind}:{}", out.display());
    let (r, kib) = ferry_rss(&["load", "--allow-unsigned", bundle.path().to_str().unwrap(), "--into", &into], &[]);
    report(&format!("load --into {kind}:, symlink at .OUT.tar.partial"), &r, kib);
    assert_eq!(r.code, 0, "{}", r.stderr);
    victim.untouched();
    assert_regular(&out);
    assert_eq!(names(target.path()), ["OUT.tar"]);
    let entries = tar_files(&std::fs::read(&out).unwrap());
    assert!(entries.iter().any(|(n, ..)| n == "index.json") && entries.iter().any(|(n, ..)| n == "manifest.json"));
    assert_bounded(kib);
}

#[test]
fn oci_archive_target_replaces_a_symlink_planted_at_its_partial_name() {
    archive_target_with_planted_partial("oci-archive");
}

#[test]
fn docker_archive_target_replaces_a_symlink_planted_at_its_partial_name() {
    archive_target_with_planted_partial("docker-archive");
}

/// An `oci:` layout loaded from a bundle: (its dir's parent, the layout, the bundle).
fn existing_layout() -> (tempfile::TempDir, PathBuf, tempfile::TempDir) {
    let bundle = tempfile::tempdir().unwrap();
    save_into(bundle.path(), &[]);
    let parent = tempfile::tempdir().unwrap();
    let layout = parent.path().join("layout");
    ferry_ok(&["load", "--allow-unsigned", bundle.path().to_str().unwrap(), "--into", &format!("oci:{}", layout.display())]);
    (parent, layout, bundle)
}

/// Load `bundle` into the layout and insist it is refused (exit 2) with `expect`,
/// before anything was staged next to it.
fn refused_oci_target(layout: &Path, bundle: &Path, expect: &str) -> u64 {
    let before = names(layout.parent().unwrap());
    let (r, kib) = ferry_rss(&["load", "--allow-unsigned", bundle.to_str().unwrap(), "--into", &format!("oci:{}", layout.display())], &[]);
    report("load --into oci:", &r, kib);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains(expect), "expected {expect:?} in:\n{}", r.stderr);
    assert!(r.stderr.contains("not a regular file") || r.stderr.contains("not a directory"), "{}", r.stderr);
    assert_eq!(names(layout.parent().unwrap()), before, "nothing staged next to the layout");
    assert_bounded(kib);
    kib
}

#[test]
fn oci_target_with_a_dangling_symlink_as_oci_layout_is_refused() {
    let (_parent, layout, bundle) = existing_layout();
    let victim = Victim::new();
    let absent = victim.path.with_file_name("created-through-the-link");
    std::fs::remove_file(layout.join("oci-layout")).unwrap();
    symlink(&absent, &layout.join("oci-layout"));
    let index = std::fs::read(layout.join("index.json")).unwrap();
    let kib = refused_oci_target(&layout, bundle.path(), &format!("{}/oci-layout is a symbolic link", layout.display()));
    println!("load --into oci:, dangling symlink as oci-layout: peak RSS {kib} KiB");
    assert!(std::fs::symlink_metadata(&absent).is_err(), "nothing created through the link");
    assert_eq!(std::fs::read(layout.join("index.json")).unwrap(), index);
    victim.untouched();
}

#[test]
fn oci_target_with_a_dangling_symlink_as_index_json_is_refused() {
    let (_parent, layout, bundle) = existing_layout();
    let victim = Victim::new();
    let absent = victim.path.with_file_name("created-through-the-link");
    std::fs::remove_file(layout.join("index.json")).unwrap();
    symlink(&absent, &layout.join("index.json"));
    let kib = refused_oci_target(&layout, bundle.path(), &format!("{}/index.json is a symbolic link", layout.display()));
    println!("load --into oci:, dangling symlink as index.json: peak RSS {kib} KiB");
    assert!(std::fs::symlink_metadata(&absent).is_err(), "nothing created through the link");
    assert!(std::fs::symlink_metadata(layout.join("index.json")).unwrap().file_type().is_symlink(), "the layout was left as it was");
    victim.untouched();
}

#[test]
fn oci_target_whose_index_json_is_a_fifo_is_refused_without_blocking() {
    let (_parent, layout, bundle) = existing_layout();
    std::fs::remove_file(layout.join("index.json")).unwrap();
    mkfifo(&layout.join("index.json"));
    let kib = refused_oci_target(&layout, bundle.path(), &format!("{}/index.json is a FIFO", layout.display()));
    println!("load --into oci:, FIFO as index.json: peak RSS {kib} KiB");
}

#[test]
fn oci_target_whose_blobs_dir_is_a_symlink_is_refused() {
    let (_parent, layout, _bundle) = existing_layout();
    // The blobs moved outside, a link left in their place: loading must not move new blobs there.
    let outside = tempfile::tempdir().unwrap();
    std::fs::rename(layout.join("blobs"), outside.path().join("blobs")).unwrap();
    symlink(&outside.path().join("blobs"), &layout.join("blobs"));
    let before = names(&outside.path().join("blobs/sha256"));
    let other = tempfile::tempdir().unwrap();
    ferry_ok(&[
        "save",
        &format!("docker-archive:{}", fixture("multi.docker.tar.gz").display()),
        "-o",
        other.path().to_str().unwrap(),
        "-n",
        "o",
    ]);
    let kib = refused_oci_target(&layout, other.path(), &format!("{}/blobs is a symbolic link", layout.display()));
    println!("load --into oci:, blobs/ a symlink to another directory: peak RSS {kib} KiB");
    assert_eq!(names(&outside.path().join("blobs/sha256")), before, "no blob moved outside the layout");
}

#[test]
fn save_replaces_a_fifo_planted_at_the_partial_name() {
    let out = tempfile::tempdir().unwrap();
    mkfifo(&out.path().join("m.tar.zst.partial"));
    let image = format!("docker-archive:{}", fixture("docker20-whiteout.docker.tar.gz").display());
    let (r, kib) = ferry_rss(&["save", &image, "-o", out.path().to_str().unwrap(), "-n", "m"], &[]);
    report("save, FIFO at m.tar.zst.partial", &r, kib);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("saved ferry-fixture/docker20:v1"), "{}", r.stderr);
    assert_regular(&out.path().join("m.tar.zst"));
    assert_eq!(names(out.path()), ["m.sha256", "m.tar.zst"]);
    verify_ok(out.path());
    assert_bounded(kib);
}

#[test]
fn pull_replaces_a_fifo_planted_at_the_partial_name() {
    let src = tempfile::tempdir().unwrap();
    save_into(src.path(), &[]);
    let dest = tempfile::tempdir().unwrap();
    mkfifo(&dest.path().join("m.tar.zst.partial"));
    let source = format!("{}/m", src.path().display());
    let (r, kib) = ferry_rss(&["pull", &source, "-o", dest.path().to_str().unwrap(), "--json"], &[]);
    report("pull, FIFO at m.tar.zst.partial", &r, kib);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(resumed_from(&r.stdout, "m.tar.zst"), 0);
    assert_regular(&dest.path().join("m.tar.zst"));
    verify_ok(dest.path());
    assert_bounded(kib);
}

/// `DEST/m.tar.zst.partial` holding the first half of the artifact: what an
/// interrupted pull leaves, and what a later pull would resume.
fn half_downloaded(src: &Path, partial: &Path) -> Vec<u8> {
    let artifact = std::fs::read(src.join("m.tar.zst")).unwrap();
    let half = artifact[..artifact.len() / 2].to_vec();
    std::fs::write(partial, &half).unwrap();
    half
}

#[test]
fn partial_owned_by_another_user_is_not_resumed() {
    let src = tempfile::tempdir().unwrap();
    save_into(src.path(), &[]);
    let dest = tempfile::tempdir().unwrap();
    let partial = dest.path().join("m.tar.zst.partial");
    let half = half_downloaded(src.path(), &partial);
    let nobody: u32 = sh("id -u nobody").trim().parse().unwrap();
    std::os::unix::fs::chown(&partial, Some(nobody), Some(nobody)).unwrap();
    // Hold the planted inode open: what ferry did to it stays readable after it is unlinked.
    let mut planted = std::fs::File::open(&partial).unwrap();
    let source = format!("{}/m", src.path().display());
    let (r, kib) = ferry_rss(&["pull", &source, "-o", dest.path().to_str().unwrap(), "--json"], &[]);
    report("pull, m.tar.zst.partial owned by nobody", &r, kib);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(resumed_from(&r.stdout, "m.tar.zst"), 0, "another user's file is not resumed");
    let mut still = Vec::new();
    planted.read_to_end(&mut still).unwrap();
    assert_eq!(still, half, "the other user's file was not written to");
    let done = dest.path().join("m.tar.zst");
    assert_eq!(std::fs::metadata(&done).unwrap().uid(), 0, "the result is ours");
    assert_eq!(std::fs::read(&done).unwrap(), std::fs::read(src.path().join("m.tar.zst")).unwrap());
    verify_ok(dest.path());
    assert_bounded(kib);
}

#[test]
fn hard_linked_partial_is_not_resumed() {
    let src = tempfile::tempdir().unwrap();
    save_into(src.path(), &[]);
    let dest = tempfile::tempdir().unwrap();
    let partial = dest.path().join("m.tar.zst.partial");
    // The victim is a plausible half download, linked in as the partial (same file system).
    let artifact = std::fs::read(src.path().join("m.tar.zst")).unwrap();
    let victim = Victim::with(artifact[..artifact.len() / 2].to_vec());
    std::fs::hard_link(&victim.path, &partial).unwrap();
    let source = format!("{}/m", src.path().display());
    let (r, kib) = ferry_rss(&["pull", &source, "-o", dest.path().to_str().unwrap(), "--json"], &[]);
    report("pull, m.tar.zst.partial a hard link to a file outside", &r, kib);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(resumed_from(&r.stdout, "m.tar.zst"), 0, "a file with other names is not resumed");
    victim.untouched();
    assert_eq!(std::fs::read(dest.path().join("m.tar.zst")).unwrap(), artifact);
    assert_bounded(kib);
}

#[test]
fn own_interrupted_partial_is_still_resumed() {
    // The check above must not cost the resume it protects.
    let src = tempfile::tempdir().unwrap();
    save_into(src.path(), &[]);
    let dest = tempfile::tempdir().unwrap();
    let half = half_downloaded(src.path(), &dest.path().join("m.tar.zst.partial"));
    let source = format!("{}/m", src.path().display());
    let r = ferry(&["pull", &source, "-o", dest.path().to_str().unwrap(), "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(resumed_from(&r.stdout, "m.tar.zst"), half.len() as u64);
    assert_eq!(std::fs::read(dest.path().join("m.tar.zst")).unwrap(), std::fs::read(src.path().join("m.tar.zst")).unwrap());
}

// ---- class 3: special files refused up front ----------------------------------------

/// Load into `oci:` and verify: both refused with exit 3 naming `name`, the target not created.
fn refused_special(bundle: &Path, source: &str, name: &str, what: &str) -> u64 {
    let target = bundle.parent().unwrap().join("target-oci");
    let mut peak = 0;
    for args in [vec!["load", "--allow-unsigned", source, "--into", &format!("oci:{}", target.display())], vec!["verify", source]] {
        let (r, kib) = ferry_rss(&args, &[]);
        report(args[0], &r, kib);
        assert_eq!(r.code, 3, "ferry {args:?}: {}", r.stderr);
        let expect = format!("{name} is not a regular file (it is {what})");
        assert!(r.stderr.contains(&expect), "ferry {args:?}: expected {expect:?} in:\n{}", r.stderr);
        assert!(r.stderr.contains("hint:"), "{}", r.stderr);
        assert_bounded(kib);
        peak = peak.max(kib);
    }
    assert!(!target.exists(), "nothing loaded");
    let staged: Vec<String> = names(bundle.parent().unwrap()).into_iter().filter(|n| n.contains("staging")).collect();
    assert!(staged.is_empty(), "{staged:?}");
    peak
}

/// A bundle `m` saved into `PARENT/usb`.
fn bundle_in_usb(extra: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let parent = tempfile::tempdir().unwrap();
    let usb = parent.path().join("usb");
    save_into(&usb, extra);
    (parent, usb)
}

#[test]
fn fifo_as_the_checksum_file_is_refused() {
    let (_parent, usb) = bundle_in_usb(&[]);
    std::fs::remove_file(usb.join("m.sha256")).unwrap();
    mkfifo(&usb.join("m.sha256"));
    let source = usb.join("m.sha256").display().to_string();
    let kib = refused_special(&usb, &source, "m.sha256", "a FIFO");
    println!("FIFO as m.sha256: exit 3, peak RSS {kib} KiB");
}

#[test]
fn symlink_to_a_fifo_as_the_checksum_file_is_refused() {
    // Inputs may be symlinked (a shared key mounted elsewhere): what counts is what the link reaches.
    let (_parent, usb) = bundle_in_usb(&[]);
    let elsewhere = tempfile::tempdir().unwrap();
    mkfifo(&elsewhere.path().join("fifo"));
    std::fs::remove_file(usb.join("m.sha256")).unwrap();
    symlink(&elsewhere.path().join("fifo"), &usb.join("m.sha256"));
    let source = format!("{}/m", usb.display());
    let kib = refused_special(&usb, &source, "m.sha256", "a FIFO");
    println!("symlink to a FIFO as m.sha256: exit 3, peak RSS {kib} KiB");
}

#[test]
fn fifo_as_the_signature_is_refused() {
    let (_parent, usb) = bundle_in_usb(&[]);
    mkfifo(&usb.join("m.sha256.minisig"));
    let source = usb.display().to_string();
    let kib = refused_special(&usb, &source, "m.sha256.minisig", "a FIFO");
    println!("FIFO as m.sha256.minisig: exit 3, peak RSS {kib} KiB");
}

#[test]
fn fifo_as_the_artifact_is_refused() {
    let (_parent, usb) = bundle_in_usb(&[]);
    std::fs::remove_file(usb.join("m.tar.zst")).unwrap();
    mkfifo(&usb.join("m.tar.zst"));
    let source = usb.display().to_string();
    let kib = refused_special(&usb, &source, "m.tar.zst", "a FIFO");
    println!("FIFO as m.tar.zst: exit 3, peak RSS {kib} KiB");
}

#[test]
fn fifo_as_a_part_of_a_split_bundle_is_refused() {
    let (_parent, usb) = bundle_in_usb(&["--split", "256K"]);
    let part = usb.join("m.tar.zst.001");
    assert!(part.exists() && usb.join("m.tar.zst.002").exists());
    std::fs::remove_file(&part).unwrap();
    mkfifo(&part);
    let source = usb.display().to_string();
    let kib = refused_special(&usb, &source, "m.tar.zst.001", "a FIFO");
    println!("FIFO as part m.tar.zst.001: exit 3, peak RSS {kib} KiB");
}

#[test]
fn character_device_as_the_artifact_is_refused() {
    // /dev/zero never ends: read as the artifact it would spin for ever.
    let (_parent, usb) = bundle_in_usb(&[]);
    std::fs::remove_file(usb.join("m.tar.zst")).unwrap();
    symlink(Path::new("/dev/zero"), &usb.join("m.tar.zst"));
    let source = usb.display().to_string();
    let kib = refused_special(&usb, &source, "m.tar.zst", "a character device");
    println!("/dev/zero as m.tar.zst: exit 3, peak RSS {kib} KiB");
}

#[test]
fn pull_refuses_a_fifo_as_the_artifact_at_the_source() {
    let (_parent, usb) = bundle_in_usb(&[]);
    std::fs::remove_file(usb.join("m.tar.zst")).unwrap();
    mkfifo(&usb.join("m.tar.zst"));
    let dest = tempfile::tempdir().unwrap();
    let source = format!("{}/m", usb.display());
    let (r, kib) = ferry_rss(&["pull", &source, "-o", dest.path().to_str().unwrap()], &[]);
    report("pull, FIFO as the source's m.tar.zst", &r, kib);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("m.tar.zst is not a regular file (it is a FIFO)"), "{}", r.stderr);
    assert!(names(dest.path()).is_empty(), "{:?}", names(dest.path()));
    assert_bounded(kib);
}

// ---- class 3: pull never writes more than announced --------------------------------

/// An HTTP server for one bundle that announces each file's true size (HEAD,
/// and on GET of the other files) but sends `excess` more bytes after the
/// artifact, with no Content-Length, as a hostile server may.
struct LyingServer {
    url: String,
    /// Bytes of the artifact's body the client accepted (the socket took).
    sent: Arc<AtomicU64>,
}

impl LyingServer {
    fn start(files: Vec<(String, Vec<u8>)>, artifact: &str, excess: u64) -> LyingServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/drop/m", listener.local_addr().unwrap());
        let sent = Arc::new(AtomicU64::new(0));
        let files = Arc::new(files);
        let (counter, artifact) = (sent.clone(), artifact.to_string());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (files, counter, artifact) = (files.clone(), counter.clone(), artifact.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &files, &artifact, excess, &counter);
                });
            }
        });
        LyingServer { url, sent }
    }
}

/// An HTTP request's head, read a byte at a time up to its blank line
/// (`None`: the client closed first).
fn read_request_head(conn: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte)? == 0 {
            return Ok(None);
        }
        head.push(byte[0]);
    }
    Ok(Some(head))
}

fn serve(mut conn: TcpStream, files: &[(String, Vec<u8>)], artifact: &str, excess: u64, sent: &AtomicU64) -> std::io::Result<()> {
    let Some(head) = read_request_head(&mut conn)? else { return Ok(()) };
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut words = head.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let name = path.strip_prefix("/drop/").unwrap_or("");
    let Some((_, data)) = files.iter().find(|(n, _)| n == name) else {
        return conn.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    };
    if method == "HEAD" {
        return conn.write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", data.len()).as_bytes());
    }
    if name != artifact {
        conn.write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", data.len()).as_bytes())?;
        return conn.write_all(data);
    }
    // The body ends when the connection does: the announced size is all a client has to go by.
    conn.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")?;
    conn.write_all(data)?;
    sent.fetch_add(data.len() as u64, Ordering::SeqCst);
    let junk = vec![0u8; 64 << 10];
    let mut left = excess;
    while left > 0 {
        let n = left.min(junk.len() as u64) as usize;
        conn.write_all(&junk[..n])?;
        sent.fetch_add(n as u64, Ordering::SeqCst);
        left -= n as u64;
    }
    Ok(())
}

#[test]
fn pull_refuses_a_body_longer_than_announced() {
    let src = tempfile::tempdir().unwrap();
    save_into(src.path(), &[]);
    let files: Vec<(String, Vec<u8>)> =
        ["m.tar.zst", "m.sha256"].iter().map(|n| (n.to_string(), std::fs::read(src.path().join(n)).unwrap())).collect();
    let size = files[0].1.len() as u64;
    const EXCESS: u64 = 256 << 20;
    let server = LyingServer::start(files, "m.tar.zst", EXCESS);
    let dest = tempfile::tempdir().unwrap();
    let (r, kib) = ferry_rss(&["pull", &server.url, "-o", dest.path().to_str().unwrap()], &[("NO_PROXY", "*")]);
    report("pull, body longer than announced", &r, kib);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains(&format!("m.tar.zst: the source sent more than the {size} bytes it announced")), "{}", r.stderr);
    assert!(names(dest.path()).is_empty(), "the partial was discarded, nothing under a final name: {:?}", names(dest.path()));
    // ferry stopped reading at size + 1: the rest is at most what the sockets buffer.
    let accepted = server.sent.load(Ordering::SeqCst);
    assert!(accepted < size + (64 << 20), "the client took {accepted} bytes of a {size}-byte file");
    assert_bounded(kib);
}

// ---- class 3: staging writes no more than the documents declare ---------------------

/// A bundle whose largest blob's tar header claims 1 MiB more than its
/// descriptor, and whose stream ends right after that header: had ferry
/// staged (or teed) a byte of it, reading would fail on the missing data instead.
fn blob_longer_than_descriptor() -> (tempfile::TempDir, PathBuf, String) {
    let parent = tempfile::tempdir().unwrap();
    let usb = parent.path().join("usb");
    save_into(&usb, &[]);
    let inner = decompress(&std::fs::read(usb.join("m.tar.zst")).unwrap());
    let entries = tar_files(&inner);
    let largest = entries.iter().filter(|(n, ..)| n.starts_with("blobs/")).max_by_key(|(_, _, d, _)| d.len()).unwrap().0.clone();
    let mut out = RawTar::new();
    let mut expect = String::new();
    for (path, kind, data, link) in entries {
        if path == largest {
            out.entry_sized(&path, kind, &[], data.len() as u64 + (1 << 20), &link);
            expect = format!("is {} bytes but its descriptor says {}", data.len() + (1 << 20), data.len());
            break;
        }
        out.entry(&path, kind, &data, &link);
    }
    std::fs::remove_file(usb.join("m.tar.zst")).unwrap();
    write_bundle(&usb, "m", &zstd_bytes(&out.0));
    (parent, usb, expect)
}

#[test]
fn blob_longer_than_its_descriptor_is_refused_before_the_oci_target_stages_it() {
    let (parent, usb, expect) = blob_longer_than_descriptor();
    let before = names(parent.path());
    let target = parent.path().join("target-oci");
    let (r, kib) = ferry_rss(&["load", "--allow-unsigned", usb.to_str().unwrap(), "--into", &format!("oci:{}", target.display())], &[]);
    report("load --into oci:, blob entry longer than its descriptor", &r, kib);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains(&expect), "expected {expect:?} in:\n{}", r.stderr);
    assert_eq!(names(parent.path()), before, "no target, no staging left");
    assert_bounded(kib);
}

#[test]
fn blob_longer_than_its_descriptor_is_refused_before_the_archive_target_writes_it() {
    let (parent, usb, expect) = blob_longer_than_descriptor();
    let before = names(parent.path());
    let out = parent.path().join("OUT.tar");
    let (r, kib) =
        ferry_rss(&["load", "--allow-unsigned", usb.to_str().unwrap(), "--into", &format!("oci-archive:{}", out.display())], &[]);
    report("load --into oci-archive:, blob entry longer than its descriptor", &r, kib);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains(&expect), "expected {expect:?} in:\n{}", r.stderr);
    assert_eq!(names(parent.path()), before, "no OUT.tar, no .OUT.tar.partial left");
    assert_bounded(kib);
}

/// A hand-made bundle whose one manifest declares two layers of 2^63 bytes:
/// their sizes add up past what a u64 holds.
fn layers_whose_sizes_overflow(dir: &Path) {
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec();
    let (layer_a, layer_b) = (sha256_hex(b"a"), sha256_hex(b"b"));
    let huge = 1u64 << 63;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{}", sha256_hex(&config)), "size": config.len()},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": format!("sha256:{layer_a}"), "size": huge},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": format!("sha256:{layer_b}"), "size": huge},
        ],
    }))
    .unwrap();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": format!("sha256:{}", sha256_hex(&manifest)), "size": manifest.len(),
                       "annotations": {"org.opencontainers.image.ref.name": "huge"}}],
        "annotations": {"dev.ferry.bundle.format": "1"},
    }))
    .unwrap();
    let mut tar = RawTar::new();
    tar.entry("oci-layout", tar::EntryType::Regular, br#"{"imageLayoutVersion":"1.0.0"}"#, "")
        .entry("index.json", tar::EntryType::Regular, &index, "")
        .entry(&format!("blobs/sha256/{}", sha256_hex(&manifest)), tar::EntryType::Regular, &manifest, "")
        .entry(&format!("blobs/sha256/{}", sha256_hex(&config)), tar::EntryType::Regular, &config, "")
        .entry_sized(&format!("blobs/sha256/{layer_a}"), tar::EntryType::Regular, &[], huge, "");
    write_bundle(dir, "m", &zstd_bytes(&tar.0));
}

#[test]
fn declared_sizes_that_overflow_are_refused_not_a_panic() {
    let parent = tempfile::tempdir().unwrap();
    let usb = parent.path().join("usb");
    layers_whose_sizes_overflow(&usb);
    let target = parent.path().join("target-oci");
    let (r, kib) = ferry_rss(&["load", "--allow-unsigned", usb.to_str().unwrap(), "--into", &format!("oci:{}", target.display())], &[]);
    report("load --into oci:, layer sizes adding up past 2^64", &r, kib);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("declares more than 2^64 bytes"), "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    assert_eq!(names(parent.path()), ["usb"], "no target, no staging left");
    assert_bounded(kib);
}

/// A server whose directory index never ends: `ls` reads at most 16 MiB of it,
/// then gives up with exit 4, in bounded memory (before: read until the memory ran out).
#[test]
fn ls_of_a_server_whose_index_never_ends_is_refused_within_bounds() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/drop/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || -> std::io::Result<()> {
                if read_request_head(&mut conn)?.is_none() {
                    return Ok(());
                }
                conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n<html><body>\n")?;
                let line = b"<a href=\"x.sha256\">x.sha256</a>   01-Jan-2026 00:00   64\n".repeat(1024);
                // 256 MiB at most, so the test ends even if the bound were gone.
                for _ in 0..(256 << 20) / line.len() {
                    conn.write_all(&line)?;
                }
                Ok(())
            });
        }
    });
    let home = tempfile::tempdir().unwrap();
    let (r, kib) = ferry_rss(&["ls", &url], &[("HOME", home.path().to_str().unwrap())]);
    report("ls of an endless directory index", &r, kib);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(r.stderr.contains("the directory listing is larger than 16 MiB"), "{}", r.stderr);
    assert!(kib < HOSTILE_RSS_LIMIT_KIB, "peak RSS {kib} KiB");
}
