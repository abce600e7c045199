//! `ferry watch` against real drops: a vsftpd incoming folder (the transports crate's
//! harness) and a directory, loading into `oci:` and a real dockerd. A producer
//! publishes signed, tampered and unsigned bundles with `ferry save`/`push`; the
//! watcher's journal, its `--json` events and the target itself are checked.
//! Crash safety: kill -9 mid-pull and mid-load, then a restart loads each bundle
//! exactly once. Every ferry run has its own `$HOME` and no `FERRY_*` secrets.
mod common;
#[path = "../transports/tests/support/mod.rs"]
mod servers;
mod support;

use common::fixture;
use serde_json::Value;
use servers::Vsftpd;
use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::dockerd::Dockerd;

const MIB: usize = 1024 * 1024;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// One site of the test: a producer's keys and bundles, the consumer's home and state.
struct Site {
    work: tempfile::TempDir,
    home: PathBuf,
    env: Vec<(String, String)>,
}

impl Site {
    fn new() -> Site {
        let work = servers::tempdir("ferry-watch-");
        let home = work.path().join("home");
        fs::create_dir_all(&home).unwrap();
        let site = Site { work, home, env: vec![] };
        site.ok(&["keygen", "--no-password", "-o", site.path("keys").to_str().unwrap()]);
        site
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.work.path().join(rel)
    }

    fn pubkey(&self) -> String {
        self.path("keys/ferry.pub").display().to_string()
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
        cmd.args(args).stdin(Stdio::null()).env("HOME", &self.home);
        for var in ["SSH_AUTH_SOCK", "NETRC", "FERRY_FTP_PASSWORD", "FERRY_KEY_PASSWORD", "FERRY_PASSPHRASE", "XDG_STATE_HOME"] {
            cmd.env_remove(var);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    fn run(&self, args: &[&str]) -> Out {
        let out = self.cmd(args).output().expect("run ferry");
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn ok(&self, args: &[&str]) -> Out {
        let r = self.run(args);
        assert_eq!(r.code, 0, "ferry {args:?} failed (exit {}):\n{}{}", r.code, r.stdout, r.stderr);
        r
    }

    /// `ferry save IMAGE -o WORK/made/STEM -n STEM [--sign]`; returns the bundle's `.sha256`.
    fn make(&self, image: &str, stem: &str, signed: bool) -> PathBuf {
        let out = self.path(&format!("made/{stem}"));
        let key = self.path("keys/ferry.key").display().to_string();
        let mut args = vec!["save", "-q", image, "-o", out.to_str().unwrap(), "-n", stem, "--compress", "none"];
        if signed {
            args.extend(["--sign", &key]);
        }
        self.ok(&args);
        out.join(format!("{stem}.sha256"))
    }

    /// Make a bundle and publish it at `location` with `ferry push`.
    fn publish(&self, image: &str, stem: &str, signed: bool, location: &str) {
        let made = self.make(image, stem, signed);
        self.ok(&["push", "-q", made.to_str().unwrap(), location]);
    }

    /// Publish a small synthetic image `ferry-test/STEM:STEM` as the signed bundle STEM.
    fn publish_small(&self, stem: &str, seed: u64, location: &str) {
        let img = synthetic_image(&self.path(&format!("img/{stem}")), &format!("ferry-test/{stem}:{stem}"), 32 * 1024, seed);
        self.publish(&img, stem, true, location);
    }

    /// A directory drop (`WORK/usb`) and an `oci:` target (`WORK/oci-out`).
    fn usb_and_layout(&self) -> (String, String) {
        (self.path("usb").display().to_string(), format!("oci:{}", self.path("oci-out").display()))
    }

    /// `ferry watch LOCATION --into TARGET --state STATE --json ARGS...`; every stdout
    /// line must be one JSON event.
    fn watch(&self, location: &str, target: &str, extra: &[&str]) -> (Out, Vec<Value>) {
        let args = self.watch_args(location, target, extra);
        let out = self.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let events = parse_events(&out.stdout);
        (out, events)
    }

    fn watch_args(&self, location: &str, target: &str, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> =
            ["watch", location, "--into", target, "-k", &self.pubkey(), "--state"].iter().map(|s| s.to_string()).collect();
        args.push(self.state().display().to_string());
        args.push("--json".into());
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    fn spawn_watch(&self, location: &str, target: &str, extra: &[&str]) -> Child {
        let args = self.watch_args(location, target, extra);
        self.cmd(&args.iter().map(String::as_str).collect::<Vec<_>>()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
    }

    fn state(&self) -> PathBuf {
        self.path("state")
    }

    /// The journal's lines, each parsed (a torn line fails the test: none is expected).
    fn journal(&self) -> Vec<Value> {
        let text = fs::read_to_string(self.state().join("journal.jsonl")).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("journal line {l:?}: {e}"))).collect()
    }

    /// stem → outcomes, in journal order.
    fn outcomes(&self) -> BTreeMap<String, Vec<String>> {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for e in self.journal() {
            m.entry(e["stem"].as_str().unwrap().into()).or_default().push(e["outcome"].as_str().unwrap().into());
        }
        m
    }

    fn incoming(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.state().join("incoming"))
            .map(|rd| rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }
}

fn parse_events(stdout: &str) -> Vec<Value> {
    stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("event line is not JSON ({e}): {l:?}"))).collect()
}

fn bundle_events<'a>(events: &'a [Value], outcome: &str) -> Vec<&'a str> {
    events.iter().filter(|e| e["event"] == "bundle" && e["outcome"] == outcome).map(|e| e["stem"].as_str().unwrap()).collect()
}

fn map(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect())).collect()
}

/// Image names in an OCI layout's index.json, with how often each is there.
fn layout_names(dir: &Path) -> BTreeMap<String, usize> {
    let index: Value = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let mut m = BTreeMap::new();
    for d in index["manifests"].as_array().unwrap() {
        let name = d["annotations"]["io.containerd.image.name"].as_str().or(d["annotations"]["org.opencontainers.image.ref.name"].as_str());
        *m.entry(name.unwrap_or("<untagged>").to_string()).or_insert(0) += 1;
    }
    m
}

/// An OCI layout holding one image `name` whose single layer is a file of `size`
/// pseudo-random (incompressible) bytes from `seed`: a bundle as big as a test needs.
fn synthetic_image(dir: &Path, name: &str, size: usize, seed: u64) -> String {
    use sha2::Digest;
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| -> (String, usize) {
        let hex = hex::encode(sha2::Sha256::digest(bytes));
        fs::write(blobs.join(&hex), bytes).unwrap();
        (format!("sha256:{hex}"), bytes.len())
    };
    let mut data = vec![0u8; size];
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let mut layer = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(size as u64);
    h.set_mode(0o644);
    h.set_cksum();
    layer.append_data(&mut h, "data.bin", &data[..]).unwrap();
    let (layer_digest, layer_size) = put(&layer.into_inner().unwrap());
    let config = serde_json::json!({"architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]}});
    let (config_digest, config_size) = put(config.to_string().as_bytes());
    let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size}]});
    let (manifest_digest, manifest_size) = put(manifest.to_string().as_bytes());
    let tag = name.rsplit_once(':').unwrap().1;
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": manifest_digest, "size": manifest_size,
        "annotations": {"org.opencontainers.image.ref.name": tag, "io.containerd.image.name": format!("docker.io/{name}")}}]});
    fs::write(dir.join("index.json"), index.to_string()).unwrap();
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    format!("oci:{}", dir.display())
}

/// Flip one byte in the middle of a file (same size: only the checksum can tell).
fn flip_middle_byte(path: &Path) {
    let mut bytes = fs::read(path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    fs::write(path, bytes).unwrap();
}

/// Wait until the pull of a running watcher has put `bytes` into `partial`.
fn wait_for_bytes(child: &mut Child, partial: &Path, bytes: u64) {
    let started = Instant::now();
    while fs::metadata(partial).map(|m| m.len()).unwrap_or(0) < bytes {
        assert!(child.try_wait().unwrap().is_none(), "ferry finished before {} held {bytes} bytes", partial.display());
        assert!(started.elapsed() < Duration::from_secs(60), "the pull never started");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("ferry watch did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kill9(child: &mut Child) {
    // SAFETY: signalling a child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL), "ferry had already exited: {status}");
}

/// The standard drop: three signed bundles, one signed then tampered with at the
/// location, one unsigned. `tamper` gets the artifact's path at the location.
fn publish_standard_drop(site: &Site, location: &str, tamper: &dyn Fn(&str)) {
    site.publish(&format!("docker-archive:{}", fixture("multi.docker.tar.gz").display()), "multi", true, location);
    let small = synthetic_image(&site.path("img/small"), "ferry-test/small:small", 64 * 1024, 1);
    site.publish(&small, "small", true, location);
    let third = synthetic_image(&site.path("img/third"), "ferry-test/third:third", 64 * 1024, 5);
    site.publish(&third, "third", true, location);
    let forged = synthetic_image(&site.path("img/forged"), "ferry-test/forged:forged", 64 * 1024, 2);
    site.publish(&forged, "forged", true, location);
    tamper("forged.tar");
    let unsigned = synthetic_image(&site.path("img/unsigned"), "ferry-test/unsigned:unsigned", 64 * 1024, 3);
    site.publish(&unsigned, "unsigned", false, location);
}

/// Distinct tags: an OCI layout names images by tag (`org.opencontainers.image.ref.name`),
/// so a second `v1` would replace the first there, as with `skopeo copy`.
const GOOD: [&str; 3] = ["multi", "small", "third"];
const GOOD_NAMES: [&str; 5] = [
    "docker.io/ferry-fixture/docker20:v1",
    "docker.io/ferry-fixture/docker20:latest",
    "docker.io/ferry-fixture/docker20-child:v1",
    "docker.io/ferry-test/third:third",
    "docker.io/ferry-test/small:small",
];

#[test]
fn ftp_incoming_loads_the_good_refuses_the_rest_and_never_twice() {
    let server = Vsftpd::anonymous();
    let site = Site::new();
    let url = server.url();
    publish_standard_drop(&site, &url, &|name| flip_middle_byte(&server.data_dir.join(name)));
    let target = site.path("oci-out");
    let into = format!("oci:{}", target.display());

    // First run: the three good ones loaded, the tampered and the unsigned refused.
    let (out, events) = site.watch(&url, &into, &["--once"]);
    assert_eq!(out.code, 3, "exit 3 when one was refused:\n{}{}", out.stdout, out.stderr);
    let mut loaded = bundle_events(&events, "loaded");
    loaded.sort();
    assert_eq!(loaded, GOOD);
    let mut refused = bundle_events(&events, "refused");
    refused.sort();
    assert_eq!(refused, ["forged", "unsigned"]);
    let forged = events.iter().find(|e| e["stem"] == "forged" && e["event"] == "bundle").unwrap();
    assert!(forged["reason"].as_str().unwrap().contains("checksum"), "{forged}");
    assert_eq!(forged["exit"], 3);
    let unsigned = events.iter().find(|e| e["stem"] == "unsigned" && e["event"] == "bundle").unwrap();
    assert!(unsigned["reason"].as_str().unwrap().contains("not signed"), "{unsigned}");
    assert_eq!(events.first().unwrap()["event"], "started");
    assert_eq!(events.last().unwrap()["event"], "done");
    assert_eq!(
        site.outcomes(),
        map(&[
            ("forged", &["refused"]),
            ("multi", &["loaded"]),
            ("small", &["loaded"]),
            ("third", &["loaded"]),
            ("unsigned", &["refused"])
        ])
    );
    for e in site.journal() {
        assert!(e["digest"].as_str().unwrap().starts_with("sha256:") && e["time"].as_str().unwrap().ends_with('Z'), "{e}");
    }
    let names = layout_names(&target);
    assert_eq!(names.len(), GOOD_NAMES.len(), "only the good bundles' images: {names:?}");
    for name in GOOD_NAMES {
        assert_eq!(names.get(name), Some(&1), "{name} in {names:?}");
    }
    // A real consumer reads the layout: skopeo inspects each loaded image.
    common::require("skopeo");
    for tag in ["small", "third", "latest"] {
        common::sh(&format!("skopeo inspect --raw oci:{}:{tag} >/dev/null", target.display()));
    }
    assert!(site.incoming().is_empty(), "incoming/ keeps nothing once settled: {:?}", site.incoming());

    // Second run: nothing new, nothing loaded, exit 0.
    let index_before = fs::read(target.join("index.json")).unwrap();
    let (out, events) = site.watch(&url, &into, &["--once"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(events.iter().all(|e| e["event"] != "bundle" && e["event"] != "pulling"), "{events:?}");
    assert_eq!(site.journal().len(), 5);
    assert_eq!(fs::read(target.join("index.json")).unwrap(), index_before);

    // A new bundle: the third run loads it, and only it.
    let fresh = synthetic_image(&site.path("img/fresh"), "ferry-test/fresh:fresh", 64 * 1024, 4);
    site.publish(&fresh, "fresh", true, &url);
    let (out, events) = site.watch(&url, &into, &["--once"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(bundle_events(&events, "loaded"), ["fresh"]);
    assert_eq!(site.journal().len(), 6);
    assert_eq!(layout_names(&target).get("docker.io/ferry-test/fresh:fresh"), Some(&1));
    // The anonymous incoming folder kept everything (--after keep is the default);
    // deleting there is refused up front.
    assert!(server.data_dir.join("multi.sha256").exists());
    let (out, _) = site.watch(&url, &into, &["--once", "--after", "delete"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("does not allow deleting"), "{}", out.stderr);
    // No trusted key: a usage error, before anything is read.
    let state = site.state().display().to_string();
    let out = site.run(&["watch", &url, "--into", &into, "--state", &state, "--once"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("-k"), "{}", out.stderr);
    assert_eq!(site.journal().len(), 6);
}

#[test]
fn directory_drop_into_dockerd_and_a_refused_bundle_waits_for_a_new_checksum_file() {
    let daemon = Dockerd::start();
    let mut site = Site::new();
    site.env.push(("DOCKER_HOST".into(), daemon.host.clone()));
    let drop_dir = site.path("usb");
    let drop = drop_dir.display().to_string();
    publish_standard_drop(&site, &drop, &|name| flip_middle_byte(&drop_dir.join(name)));

    let (out, events) = site.watch(&drop, "docker-daemon:", &["--once"]);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    let mut loaded = bundle_events(&events, "loaded");
    loaded.sort();
    assert_eq!(loaded, GOOD);
    let images = daemon.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    for name in ["ferry-fixture/docker20:v1", "ferry-fixture/docker20-child:v1", "ferry-test/third:third", "ferry-test/small:small"] {
        assert!(images.lines().any(|l| l == name), "{name} not in docker images:\n{images}");
    }
    assert!(!images.contains("forged") && !images.contains("unsigned"), "{images}");
    let run = daemon.docker(&["run", "--rm", "--pull=never", "--network", "none", "ferry-fixture/docker20:v1"]);
    assert_eq!(String::from_utf8_lossy(&run.stdout).trim_end(), "ferry fixture docker20: ok");

    // Again: nothing to do.
    let (out, events) = site.watch(&drop, "docker-daemon:", &["--once"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(bundle_events(&events, "loaded").is_empty() && bundle_events(&events, "refused").is_empty(), "{events:?}");

    // The sender makes the bundle anew, signed: a new STEM.sha256 (its metadata records
    // the creation time), so it is tried again and loaded.
    std::thread::sleep(Duration::from_millis(1100));
    let made = site.make(&format!("oci:{}", site.path("img/unsigned").display()), "unsigned", true);
    for f in ["unsigned.tar", "unsigned.sha256.minisig", "unsigned.sha256"] {
        fs::copy(made.with_file_name(f), drop_dir.join(f)).unwrap();
    }
    let (out, events) = site.watch(&drop, "docker-daemon:", &["--once"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(bundle_events(&events, "loaded"), ["unsigned"]);
    assert_eq!(site.outcomes()["unsigned"], ["refused", "loaded"]);
    let images = daemon.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(images.lines().any(|l| l == "ferry-test/unsigned:unsigned"), "{images}");
}

/// kill -9 while a big bundle is being pulled, then while one is being loaded; each
/// restart finishes the job, and every bundle is journaled and in the target once.
#[test]
fn kill_during_pull_and_during_load_then_each_bundle_loaded_exactly_once() {
    let server = Vsftpd::local_user();
    let site = Site::new();
    let url = server.url();
    let target = site.path("oci-out");
    let into = format!("oci:{}", target.display());
    let big = 96 * MIB;
    let one = synthetic_image(&site.path("img/big1"), "ferry-test/big1:big1", big, 11);
    site.publish(&one, "big1", true, &url);

    // Mid-pull: killed once a good part of the artifact is in incoming/.
    let mut child = site.spawn_watch(&url, &into, &["--once"]);
    let partial = site.state().join("incoming/big1.tar.partial");
    wait_for_bytes(&mut child, &partial, 8 * MIB as u64);
    kill9(&mut child);
    let pulled = fs::metadata(&partial).unwrap().len();
    assert!(pulled < (big as u64), "killed mid-pull: {pulled} bytes there");
    assert!(site.journal().is_empty(), "nothing journaled for a killed pull");

    let (out, events) = site.watch(&url, &into, &["--once"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(bundle_events(&events, "loaded"), ["big1"]);
    // The restart resumed the download where the killed one stopped (vsftpd logged a REST).
    let log = fs::read_to_string(server.data_dir.parent().unwrap().parent().unwrap().join("vsftpd.log")).unwrap();
    let rest = log.lines().filter_map(|l| l.split("\"REST ").nth(1)).filter_map(|r| r.trim_end_matches('"').parse::<u64>().ok()).max();
    assert!(rest.is_some_and(|r| r > 0), "no REST in the vsftpd log: the pull started over");

    // Mid-load: killed as soon as the watcher says it is loading.
    let two = synthetic_image(&site.path("img/big2"), "ferry-test/big2:big2", big, 12);
    site.publish(&two, "big2", true, &url);
    let mut child = site.spawn_watch(&url, &into, &["--once"]);
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = lines.next().expect("ferry ended before it loaded big2").unwrap();
        let e: Value = serde_json::from_str(&line).unwrap();
        if e["event"] == "loading" && e["stem"] == "big2" {
            break;
        }
    }
    kill9(&mut child);
    assert_eq!(site.outcomes(), map(&[("big1", &["loaded"])]), "big2 was killed before its outcome");
    assert_eq!(layout_names(&target).get("docker.io/ferry-test/big2:big2"), None, "a killed load left the image half-visible");

    let (out, events) = site.watch(&url, &into, &["--once"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(bundle_events(&events, "loaded"), ["big2"]);
    assert_eq!(site.outcomes(), map(&[("big1", &["loaded"]), ("big2", &["loaded"])]));
    let names = layout_names(&target);
    assert_eq!(names, [("docker.io/ferry-test/big1:big1".to_string(), 1), ("docker.io/ferry-test/big2:big2".to_string(), 1)].into());
    assert!(site.incoming().is_empty(), "{:?}", site.incoming());

    // A re-load of an already loaded bundle (what a crash between load and journal
    // causes) leaves the layout as it was: one entry per name.
    let index_before = fs::read(target.join("index.json")).unwrap();
    site.ok(&["load", &format!("{url}big2"), "--into", &into, "-k", &site.pubkey()]);
    assert_eq!(layout_names(&target), names);
    assert_eq!(fs::read(target.join("index.json")).unwrap().len(), index_before.len());
}

#[test]
fn after_move_and_delete_on_ftp() {
    let server = Vsftpd::local_user();
    let site = Site::new();
    let url = server.url();
    let into = format!("oci:{}", site.path("oci-out").display());
    for (stem, seed) in [("a", 21), ("b", 22)] {
        let img = synthetic_image(&site.path(&format!("img/{stem}")), &format!("ferry-test/{stem}:v1"), 32 * 1024, seed);
        site.publish(&img, stem, true, &url);
    }
    let (out, events) = site.watch(&url, &into, &["--once", "--after", "move:done/loaded"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let moved: Vec<&Value> = events.iter().filter(|e| e["event"] == "after").collect();
    assert_eq!(moved.len(), 2, "{events:?}");
    let set_aside = server.data_dir.join("done/loaded");
    for stem in ["a", "b"] {
        for f in [format!("{stem}.tar"), format!("{stem}.sha256"), format!("{stem}.sha256.minisig")] {
            assert!(set_aside.join(&f).is_file(), "{f} not moved into done/loaded");
            assert!(!server.data_dir.join(&f).exists(), "{f} still in the drop");
        }
    }
    // What was moved is a complete bundle still: ferry verifies it there.
    site.ok(&["verify", &format!("{url}done/loaded/a"), "-k", &site.pubkey()]);

    site.publish_small("c", 23, &url);
    let (out, events) = site.watch(&url, &into, &["--once", "--after", "delete"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(bundle_events(&events, "loaded"), ["c"]);
    assert!(events.iter().any(|e| e["event"] == "after" && e["stem"] == "c" && e["action"] == "deleted"), "{events:?}");
    let left: Vec<_> = fs::read_dir(&server.data_dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(left, ["done"], "the drop holds only the moved-away folder");
    assert_eq!(site.outcomes(), map(&[("a", &["loaded"]), ("b", &["loaded"]), ("c", &["loaded"])]));

    // A folder outside the location is refused before anything happens.
    let (out, _) = site.watch(&url, &into, &["--once", "--after", "move:../elsewhere"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
}

#[test]
fn lock_refuses_a_second_watcher_and_sigterm_stops_the_loop_cleanly() {
    let site = Site::new();
    let (usb, into) = site.usb_and_layout();
    site.publish_small("a", 31, &usb);

    let mut child = site.spawn_watch(&usb, &into, &["--interval", "1s"]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next_event = || -> Value { serde_json::from_str(&lines.next().expect("an event").unwrap()).unwrap() };
    let started = next_event();
    assert_eq!(started["event"], "started");
    let pid = started["pid"].as_u64().unwrap();
    loop {
        let e = next_event();
        if e["event"] == "bundle" {
            assert_eq!(e["outcome"], "loaded", "{e}");
            break;
        }
    }

    // A second watcher on the same state: refused, naming the first.
    let (out, _) = site.watch(&usb, &into, &["--once"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let err: Value = serde_json::from_str(out.stderr.trim()).unwrap();
    assert!(err["error"].as_str().unwrap().contains(&format!("process {pid}")), "{err}");
    assert!(err["hint"].as_str().unwrap().contains("--state"), "{err}");

    // A bundle published while the loop runs is picked up by a later poll.
    site.publish_small("b", 32, &usb);
    loop {
        let e = next_event();
        if e["event"] == "bundle" {
            assert_eq!((e["stem"].as_str(), e["outcome"].as_str()), (Some("b"), Some("loaded")), "{e}");
            break;
        }
    }

    // SIGTERM: the loop stops between steps and exits 0.
    // SAFETY: signalling the child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "clean stop exits 0");
    let rest: Vec<Value> = std::iter::from_fn(|| lines.next()).map(|l| serde_json::from_str(&l.unwrap()).unwrap()).collect();
    let kinds: Vec<&str> = rest.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["stopped", "done"], "{rest:?}");
    assert_eq!(rest[1]["stopped"], true);
    assert_eq!(site.outcomes(), map(&[("a", &["loaded"]), ("b", &["loaded"])]));

    // The lock went with the process.
    let (out, _) = site.watch(&usb, &into, &["--once"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

/// A torn last journal line (a crash mid-append) is cut off; text events are one line each.
#[test]
fn torn_journal_line_is_tolerated_and_text_output_is_one_line_per_event() {
    let site = Site::new();
    let (usb, into) = site.usb_and_layout();
    site.publish_small("a", 41, &usb);
    let (out, _) = site.watch(&usb, &into, &["--once"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut f = fs::OpenOptions::new().append(true).open(site.state().join("journal.jsonl")).unwrap();
    f.write_all(br#"{"time":"2026-01-01T00:00:00Z","stem":"b","outco"#).unwrap();
    drop(f);
    site.publish_small("b", 42, &usb);
    let state = site.state().display().to_string();
    let out = site.ok(&["watch", &usb, "--into", &into, "-k", &site.pubkey(), "--state", &state, "--once"]);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("watching "), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains(" b loaded ")), "{lines:?}");
    assert!(lines.last().unwrap().starts_with("done: 1 poll(s), 1 loaded"), "{lines:?}");
    assert_eq!(site.outcomes(), map(&[("a", &["loaded"]), ("b", &["loaded"])]));
}

/// Every location kind: an SFTP drop (moved aside with rename) and a WebDAV drop
/// (moved aside with MKCOL + MOVE), each loaded once.
#[test]
fn sftp_and_webdav_drops_with_after_move() {
    let sshd = servers::Sshd::start();
    let nginx = servers::Nginx::start();
    let site = Site::new();
    let ssh = ["--ssh-key", sshd.key.to_str().unwrap(), "--known-hosts", sshd.known_hosts.to_str().unwrap()];
    let sftp_url = format!("{}/", sshd.url());
    let http_url = nginx.url("drop/");
    for (label, url, disk) in [("sftp", &sftp_url, sshd.data_dir.clone()), ("http", &http_url, nginx.www.join("drop"))] {
        let img = synthetic_image(&site.path(&format!("img/{label}")), &format!("ferry-test/{label}:{label}"), 32 * 1024, 51);
        let made = site.make(&img, label, true);
        site.ok(&[&["push", "-q", made.to_str().unwrap(), url][..], &ssh[..]].concat());
        let into = format!("oci:{}", site.path(&format!("oci-{label}")).display());
        let state = site.path(&format!("state-{label}")).display().to_string();
        let key = site.pubkey();
        let args =
            [&["watch", url, "--into", &into, "-k", &key, "--state", &state, "--json", "--once", "--after", "move:old"][..], &ssh[..]]
                .concat();
        let out = site.run(&args);
        assert_eq!(out.code, 0, "[{label}] {}{}", out.stdout, out.stderr);
        let events = parse_events(&out.stdout);
        assert_eq!(bundle_events(&events, "loaded"), [label], "[{label}] {events:?}");
        assert!(
            disk.join(format!("old/{label}.sha256")).is_file() && disk.join(format!("old/{label}.tar")).is_file(),
            "[{label}] not moved"
        );
        assert!(!disk.join(format!("{label}.sha256")).exists(), "[{label}] still in the drop");
        // A second run finds nothing (the bundle is gone from the drop) and exits 0.
        let out = site.run(&args);
        assert_eq!(out.code, 0, "[{label}] {}", out.stderr);
        assert!(bundle_events(&parse_events(&out.stdout), "loaded").is_empty());
    }
}

/// A target that is down fails the bundle (exit 1, journaled `failed`, what was pulled
/// kept); the next run retries it and loads it. A server that is down is exit 4.
#[test]
fn failed_bundles_are_retried_and_exit_codes_say_why() {
    let mut server = Vsftpd::local_user();
    let mut site = Site::new();
    let url = server.url();
    site.publish_small("a", 61, &url);
    site.env.push(("DOCKER_HOST".into(), format!("unix://{}", site.path("no-docker.sock").display())));
    let (out, events) = site.watch(&url, "docker-daemon:", &["--once"]);
    assert_eq!(out.code, 1, "target down: exit 1\n{}{}", out.stdout, out.stderr);
    assert_eq!(bundle_events(&events, "failed"), ["a"]);
    assert_eq!(site.incoming(), ["a.sha256", "a.sha256.minisig", "a.tar"], "what was pulled stays for the retry");

    // The target is back (here: another one under the same state): retried and loaded.
    let into = format!("oci:{}", site.path("oci-out").display());
    let (out, events) = site.watch(&url, &into, &["--once"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(bundle_events(&events, "loaded"), ["a"]);
    assert_eq!(site.outcomes(), map(&[("a", &["failed", "loaded"])]));
    assert!(site.incoming().is_empty());

    // The server is down: exit 4, nothing journaled.
    server.proc.kill();
    let (out, events) = site.watch(&url, &into, &["--once", "--timeout", "5s"]);
    assert_eq!(out.code, 4, "{}{}", out.stdout, out.stderr);
    assert!(events.iter().any(|e| e["event"] == "poll-failed" && e["exit"] == 4), "{events:?}");
    assert_eq!(site.journal().len(), 2);
}

/// SIGTERM while a big bundle is being pulled: the pull stops at once (it resumes
/// later), nothing is journaled, exit 0; the next run finishes it.
#[test]
fn sigterm_during_a_pull_stops_at_once_and_the_next_run_resumes() {
    let server = Vsftpd::local_user();
    let site = Site::new();
    let url = server.url();
    let into = format!("oci:{}", site.path("oci-out").display());
    let img = synthetic_image(&site.path("img/big"), "ferry-test/big:big", 96 * MIB, 71);
    site.publish(&img, "big", true, &url);
    let mut child = site.spawn_watch(&url, &into, &["--interval", "1h"]);
    let partial = site.state().join("incoming/big.tar.partial");
    wait_for_bytes(&mut child, &partial, 8 * MIB as u64);
    // SAFETY: signalling the child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    let events = parse_events(&stdout);
    let kinds: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["started", "pulling", "stopped", "done"], "{events:?}");
    let kept = fs::metadata(&partial).unwrap().len();
    assert!(kept > 0 && kept < 96 * MIB as u64, "the partial pull stays to resume from ({kept} bytes)");
    assert!(site.journal().is_empty());

    let (out, events) = site.watch(&url, &into, &["--once"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(bundle_events(&events, "loaded"), ["big"]);
}

/// A bundle signed by a key the watcher does not trust is refused and stays refused
/// run after run; once the operator adds that key, it is tried again and loaded.
#[test]
fn a_refusal_holds_until_the_trusted_keys_change() {
    let site = Site::new();
    let other = Site::new();
    let (usb, into) = site.usb_and_layout();
    other.publish_small("x", 81, &usb);
    let (out, events) = site.watch(&usb, &into, &["--once"]);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert_eq!(bundle_events(&events, "refused"), ["x"]);
    let (out, events) = site.watch(&usb, &into, &["--once"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(bundle_events(&events, "refused").is_empty(), "not retried with the same keys: {events:?}");
    let (out, events) = site.watch(&usb, &into, &["--once", "-k", &other.pubkey()]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(bundle_events(&events, "loaded"), ["x"]);
    assert_eq!(site.outcomes(), map(&[("x", &["refused", "loaded"])]));
}

/// In the loop a bundle that keeps failing (target down) waits longer each time:
/// interval × 2^(n−1).
#[test]
fn the_loop_backs_off_a_failing_bundle() {
    let mut site = Site::new();
    let (usb, _) = site.usb_and_layout();
    site.publish_small("a", 91, &usb);
    site.env.push(("DOCKER_HOST".into(), format!("unix://{}", site.path("no-docker.sock").display())));
    let mut child = site.spawn_watch(&usb, "docker-daemon:", &["--interval", "1s"]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut backoffs = vec![];
    let mut failures = 0;
    let started = Instant::now();
    while backoffs.len() < 2 {
        let e: Value = serde_json::from_str(&lines.next().expect("an event").unwrap()).unwrap();
        match e["event"].as_str().unwrap() {
            "bundle" => {
                assert_eq!(e["outcome"], "failed", "{e}");
                failures += 1;
            }
            "backoff" => backoffs.push((e["seconds"].as_u64().unwrap(), started.elapsed())),
            _ => {}
        }
    }
    assert_eq!(backoffs.iter().map(|b| b.0).collect::<Vec<_>>(), [2, 4]);
    assert_eq!(failures, 3, "the first failure waits one interval, then 2 s, then 4 s");
    // The second retry came no sooner than the first backoff said.
    assert!(backoffs[1].1 - backoffs[0].1 >= Duration::from_secs(2), "{backoffs:?}");
    // SAFETY: signalling the child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)).code(), Some(0));
    assert_eq!(site.outcomes(), map(&[("a", &["failed", "failed", "failed"])]));
}
