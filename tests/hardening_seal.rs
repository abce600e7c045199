//! Issue 14, the age layer: hostile age headers (too many stanzas, huge
//! stanzas, scrypt work factors meant to burn hours and gigabytes, truncated,
//! armored, bad base64, a bad MAC) are refused with exit 3, a message naming
//! what is wrong, bounded memory and time, and nothing at the target. When the
//! artifact no longer matches `STEM.sha256`, the checksum mismatch is what
//! ferry names, whatever layer noticed first.
mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A bundle in a scratch directory: `keys/` (ferry keygen), `usb/` (the bundle).
struct Sealed {
    dir: tempfile::TempDir,
    artifact: String,
}

impl Sealed {
    fn usb(&self) -> PathBuf {
        self.dir.path().join("usb")
    }
    fn identity(&self) -> String {
        self.dir.path().join("keys/ferry.age").display().to_string()
    }
    fn target(&self) -> PathBuf {
        self.dir.path().join("target")
    }
    fn artifact_path(&self) -> PathBuf {
        self.usb().join(&self.artifact)
    }
    fn artifact_bytes(&self) -> Vec<u8> {
        std::fs::read(self.artifact_path()).unwrap()
    }
}

fn recipient_of(keys: &Path) -> String {
    let age = std::fs::read_to_string(keys.join("ferry.age")).unwrap();
    age.lines().find_map(|l| l.strip_prefix("# public key: ")).unwrap().to_string()
}

fn fixture_ref() -> String {
    format!("docker-archive:{}", fixture("docker20-whiteout.docker.tar.gz").display())
}

const PASSPHRASE: &str = "correct horse battery staple";

/// An unsigned bundle encrypted to a fresh X25519 recipient with `ferry save -r`.
fn recipient_bundle() -> Sealed {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    ferry_ok(&["keygen", "-o", keys.to_str().unwrap(), "--no-password"]);
    let usb = dir.path().join("usb");
    ferry_ok(&["save", &fixture_ref(), "-o", usb.to_str().unwrap(), "-n", "s", "-r", &recipient_of(&keys)]);
    Sealed { dir, artifact: "s.tar.zst.age".into() }
}

/// An unsigned bundle encrypted with `ferry save --passphrase` (scrypt, the
/// work factor age picks for ~1 s on this machine).
fn passphrase_bundle() -> Sealed {
    let dir = tempfile::tempdir().unwrap();
    let usb = dir.path().join("usb");
    let r =
        ferry_env(&["save", &fixture_ref(), "-o", usb.to_str().unwrap(), "-n", "p", "--passphrase"], &[("FERRY_PASSPHRASE", PASSPHRASE)]);
    assert_eq!(r.code, 0, "save --passphrase failed:\n{}", r.stderr);
    std::fs::create_dir_all(dir.path().join("keys")).unwrap();
    Sealed { dir, artifact: "p.tar.zst.age".into() }
}

/// Whether `STEM.sha256` is rewritten to match the damaged artifact (the seal
/// layer is what refuses it) or left as it was (the attacker swapped the
/// artifact only: the checksum mismatch must be what ferry names).
#[derive(Clone, Copy, PartialEq)]
enum Sidecar {
    Rewritten,
    Stale,
}

fn replace_artifact(b: &Sealed, bytes: &[u8], sidecar: Sidecar) {
    std::fs::write(b.artifact_path(), bytes).unwrap();
    if sidecar == Sidecar::Rewritten {
        let stem = b.artifact.split('.').next().unwrap();
        std::fs::write(b.usb().join(format!("{stem}.sha256")), format!("{}  {}\n", sha256_hex(bytes), b.artifact)).unwrap();
    }
}

/// Offset of the header's MAC line (`--- ...`).
fn mac_line(ct: &[u8]) -> usize {
    ct.windows(5).position(|w| w == b"\n--- ").expect("an age header") + 1
}

/// Length of the version line `age-encryption.org/v1\n`.
const VERSION_LINE: usize = 22;

fn with_stanzas_inserted(ct: &[u8], stanzas: &[u8]) -> Vec<u8> {
    assert!(ct.starts_with(b"age-encryption.org/v1\n"));
    [&ct[..VERSION_LINE], stanzas, &ct[VERSION_LINE..]].concat()
}

struct Outcome {
    code: i32,
    stderr: String,
    peak_rss_kib: u64,
    elapsed: Duration,
}

/// `ferry ARGS` under `/usr/bin/time` (peak RSS, as `common::ferry_rss`) and
/// `timeout` (so that a regression ends the run).
fn ferry_bounded(args: &[&str], env: &[(&str, &str)]) -> Outcome {
    // Secrets and limits come only from `env`, never from the test runner's environment.
    let start = Instant::now();
    let (run, peak_rss_kib) = common::ferry_rss_without(args, env, &["FERRY_PASSPHRASE", "FERRY_MAX_SCRYPT_WORK_FACTOR"]);
    Outcome { code: run.code, stderr: run.stderr, peak_rss_kib, elapsed: start.elapsed() }
}

/// `ferry load` of the bundle into `oci:TARGET`, with the identity (and the
/// passphrase in the environment), plus `env`.
fn load(b: &Sealed, env: &[(&str, &str)]) -> Outcome {
    let into = format!("oci:{}", b.target().display());
    let usb = b.usb();
    let identity = b.identity();
    let mut args = vec!["load", usb.to_str().unwrap(), "--allow-unsigned", "--into", &into];
    if b.artifact.starts_with("s.") {
        args.extend(["-i", identity.as_str()]);
    }
    let mut env = env.to_vec();
    env.push(("FERRY_PASSPHRASE", PASSPHRASE));
    ferry_bounded(&args, &env)
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// `load` is refused with exit 3 naming `expect` within the RSS bound; nothing
/// was written: no target, no staging, the bundle directory as it was.
fn refused(b: &Sealed, env: &[(&str, &str)], expect: &str) -> Outcome {
    let usb_before = names_in(&b.usb());
    let out = load(b, env);
    eprintln!("exit {}, peak RSS {} KiB, {:.2?}:\n{}", out.code, out.peak_rss_kib, out.elapsed, out.stderr);
    assert_eq!(out.code, 3, "expected exit 3 ({expect:?}); stderr:\n{}", out.stderr);
    assert!(out.stderr.contains(expect), "expected {expect:?} in:\n{}", out.stderr);
    assert!(out.stderr.contains("hint:"), "no hint in:\n{}", out.stderr);
    assert!(out.peak_rss_kib < HOSTILE_RSS_LIMIT_KIB, "peak RSS {} KiB", out.peak_rss_kib);
    assert!(!b.target().exists(), "the target was written despite the refusal");
    assert_eq!(names_in(b.dir.path()), ["keys", "usb"], "something was left next to the target");
    assert_eq!(names_in(&b.usb()), usb_before, "the bundle directory changed");
    out
}

/// Names the stale checksum, not the symptom `symptom` the seal layer saw.
fn refused_as_checksum_mismatch(b: &Sealed, symptom: &str) -> Outcome {
    let out = refused(b, &[], &format!("checksum mismatch in {}", b.artifact));
    assert!(!out.stderr.contains(symptom), "the symptom is named, not the cause:\n{}", out.stderr);
    out
}

// ----- stanza count and header size -------------------------------------------------

fn many_stanzas(ct: &[u8]) -> Vec<u8> {
    with_stanzas_inserted(ct, &b"-> X y\n\n".repeat(100_000))
}

#[test]
fn header_with_100000_stanzas_is_refused_at_256() {
    let b = recipient_bundle();
    replace_artifact(&b, &many_stanzas(&b.artifact_bytes()), Sidecar::Rewritten);
    let out = refused(&b, &[], "the age header has more than 256 stanzas");
    assert!(out.elapsed < Duration::from_secs(5), "took {:?}", out.elapsed);
}

#[test]
fn header_with_100000_stanzas_and_stale_checksum_names_the_checksum() {
    let b = recipient_bundle();
    replace_artifact(&b, &many_stanzas(&b.artifact_bytes()), Sidecar::Stale);
    refused_as_checksum_mismatch(&b, "stanzas");
}

fn huge_stanza(ct: &[u8]) -> Vec<u8> {
    let body = b"A".repeat(64).iter().chain(b"\n").copied().collect::<Vec<u8>>().repeat(10 << 20 >> 6);
    with_stanzas_inserted(ct, &[&b"-> X y\n"[..], &body, b"\n"].concat())
}

#[test]
fn stanza_with_10_mib_body_is_refused_at_64_kib() {
    let b = recipient_bundle();
    replace_artifact(&b, &huge_stanza(&b.artifact_bytes()), Sidecar::Rewritten);
    refused(&b, &[], "the age header is longer than 65536 bytes");
}

#[test]
fn stanza_with_10_mib_body_and_stale_checksum_names_the_checksum() {
    let b = recipient_bundle();
    replace_artifact(&b, &huge_stanza(&b.artifact_bytes()), Sidecar::Stale);
    refused_as_checksum_mismatch(&b, "longer than");
}

// ----- scrypt work factor -------------------------------------------------------------

/// The passphrase bundle's scrypt stanza asking for 2^`log_n` (the MAC is not
/// recomputed: the work factor is checked before it).
fn work_factor(ct: &[u8], log_n: u8) -> Vec<u8> {
    let line_end = VERSION_LINE + ct[VERSION_LINE..].iter().position(|&c| c == b'\n').unwrap();
    let line = std::str::from_utf8(&ct[VERSION_LINE..line_end]).unwrap();
    let args: Vec<&str> = line.split(' ').collect();
    assert_eq!(args[..2], ["->", "scrypt"], "{line}");
    let edited = format!("-> scrypt {} {log_n}", args[2]);
    [&ct[..VERSION_LINE], edited.as_bytes(), &ct[line_end..]].concat()
}

fn work_factor_refused_fast(log_n: u8) {
    let b = passphrase_bundle();
    replace_artifact(&b, &work_factor(&b.artifact_bytes(), log_n), Sidecar::Rewritten);
    let out =
        refused(&b, &[], &format!("the passphrase-encrypted bundle asks for scrypt work factor 2^{log_n}; ferry accepts at most 2^22"));
    assert!(out.stderr.contains("FERRY_MAX_SCRYPT_WORK_FACTOR"), "the hint does not say how to raise the limit:\n{}", out.stderr);
    assert!(out.elapsed < Duration::from_secs(5), "took {:?}", out.elapsed);
}

#[test]
fn scrypt_work_factor_2_40_is_refused_fast() {
    work_factor_refused_fast(40);
}

#[test]
fn scrypt_work_factor_2_23_is_refused_fast() {
    work_factor_refused_fast(23);
}

#[test]
fn scrypt_work_factor_2_40_with_stale_checksum_names_the_checksum() {
    let b = passphrase_bundle();
    replace_artifact(&b, &work_factor(&b.artifact_bytes(), 40), Sidecar::Stale);
    refused_as_checksum_mismatch(&b, "work factor");
}

#[test]
fn real_passphrase_bundle_loads_under_the_default_cap_and_the_cap_is_configurable() {
    let b = passphrase_bundle();
    // age picks ~1 s of work for this machine (2^18 or so): well under 2^22.
    let out = load(&b, &[]);
    assert_eq!(out.code, 0, "a real passphrase bundle must load:\n{}", out.stderr);
    assert!(b.target().join("index.json").is_file());
    std::fs::remove_dir_all(b.target()).unwrap();
    // FERRY_MAX_SCRYPT_WORK_FACTOR moves the cap: below the bundle's, it is refused.
    let out = refused(&b, &[("FERRY_MAX_SCRYPT_WORK_FACTOR", "10")], "ferry accepts at most 2^10");
    assert!(out.elapsed < Duration::from_secs(5), "took {:?}", out.elapsed);
    // A setting that is not a work factor is a usage error.
    let out = load(&b, &[("FERRY_MAX_SCRYPT_WORK_FACTOR", "lots")]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("FERRY_MAX_SCRYPT_WORK_FACTOR"), "{}", out.stderr);
    assert!(!b.target().exists());
}

// ----- truncated, armored, bad base64, bad MAC ---------------------------------------

#[test]
fn header_cut_in_the_middle_of_a_stanza() {
    let b = recipient_bundle();
    let ct = b.artifact_bytes();
    replace_artifact(&b, &ct[..VERSION_LINE + 20], Sidecar::Rewritten);
    refused(&b, &[], "the age header is truncated: the file ends in the middle of a recipient stanza");
}

#[test]
fn header_cut_before_the_mac_line() {
    let b = recipient_bundle();
    let ct = b.artifact_bytes();
    replace_artifact(&b, &ct[..mac_line(&ct)], Sidecar::Rewritten);
    refused(&b, &[], "the age header is truncated: the file ends before the header's MAC line");
}

#[test]
fn truncated_header_with_stale_checksum_names_the_checksum() {
    let b = recipient_bundle();
    let ct = b.artifact_bytes();
    replace_artifact(&b, &ct[..VERSION_LINE + 20], Sidecar::Stale);
    refused_as_checksum_mismatch(&b, "age header is truncated");
}

/// The bundle's artifact re-encrypted by the real `age -a` CLI (ASCII armor).
fn armored_bundle(sidecar: Sidecar) -> Sealed {
    require("age");
    let b = recipient_bundle();
    let plain = b.dir.path().join("plain");
    ferry_ok(&["save", &fixture_ref(), "-o", plain.to_str().unwrap(), "-n", "s"]);
    let keys = b.dir.path().join("keys");
    let armored = b.dir.path().join("armored.age");
    sh(&format!("age -a -r {} -o {} {}/s.tar.zst", recipient_of(&keys), armored.display(), plain.display()));
    let bytes = std::fs::read(&armored).unwrap();
    assert!(bytes.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----"));
    std::fs::remove_dir_all(&plain).unwrap();
    std::fs::remove_file(&armored).unwrap();
    replace_artifact(&b, &bytes, sidecar);
    b
}

#[test]
fn armored_age_file_is_refused_as_not_a_ferry_bundle() {
    let b = armored_bundle(Sidecar::Rewritten);
    let out = refused(&b, &[], "is an ASCII-armored age file");
    assert!(out.stderr.contains("ferry bundles are binary"), "{}", out.stderr);
}

#[test]
fn armored_age_file_with_stale_checksum_names_the_checksum() {
    let b = armored_bundle(Sidecar::Stale);
    refused_as_checksum_mismatch(&b, "armored");
}

/// A `.` (not base64) in the first stanza's body line.
fn bad_base64(ct: &[u8]) -> Vec<u8> {
    let body = VERSION_LINE + ct[VERSION_LINE..].iter().position(|&c| c == b'\n').unwrap() + 1;
    let mut v = ct.to_vec();
    v[body + 5] = b'.';
    v
}

#[test]
fn stanza_body_with_bad_base64() {
    let b = recipient_bundle();
    replace_artifact(&b, &bad_base64(&b.artifact_bytes()), Sidecar::Rewritten);
    refused(&b, &[], "the body of recipient stanza 1 (X25519) is not valid base64");
}

#[test]
fn stanza_body_with_bad_base64_and_stale_checksum_names_the_checksum() {
    let b = recipient_bundle();
    replace_artifact(&b, &bad_base64(&b.artifact_bytes()), Sidecar::Stale);
    refused_as_checksum_mismatch(&b, "base64");
}

fn bad_mac(ct: &[u8]) -> Vec<u8> {
    let p = mac_line(ct) + 5;
    let mut v = ct.to_vec();
    v[p] = if v[p] == b'A' { b'B' } else { b'A' };
    v
}

#[test]
fn header_whose_mac_does_not_verify() {
    let b = recipient_bundle();
    replace_artifact(&b, &bad_mac(&b.artifact_bytes()), Sidecar::Rewritten);
    refused(&b, &[], "the header MAC does not match");
}

/// The failure is found at the first bytes of a 50 MiB artifact, long before
/// the reader thread got to its end: the message is still the checksum
/// mismatch, read in bounded memory.
#[test]
fn bad_mac_in_a_50_mib_artifact_with_stale_checksum_names_the_checksum() {
    let b = recipient_bundle();
    let mut bytes = bad_mac(&b.artifact_bytes());
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    bytes.extend((0..50 << 20).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as u8
    }));
    replace_artifact(&b, &bytes, Sidecar::Stale);
    refused_as_checksum_mismatch(&b, "MAC");
}

// ----- inspect ------------------------------------------------------------------------

#[test]
fn inspect_bounds_the_header_it_describes() {
    let b = recipient_bundle();
    replace_artifact(&b, &many_stanzas(&b.artifact_bytes()), Sidecar::Rewritten);
    let usb = b.usb();
    let out = ferry_bounded(&["inspect", usb.to_str().unwrap(), "--json"], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.peak_rss_kib < HOSTILE_RSS_LIMIT_KIB, "peak RSS {} KiB", out.peak_rss_kib);
    let run = ferry(&["inspect", usb.to_str().unwrap(), "--json"]);
    let info: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(info["recipients"].is_null(), "{}", run.stdout);
    let notes = info["notes"].to_string();
    assert!(notes.contains("the age header has more than 256 stanzas"), "{notes}");
}
