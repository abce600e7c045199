//! Signed and encrypted bundles end to end: interop with the real minisign,
//! age, sha256sum and docker CLIs, and every attack of the sealing issue
//! refused with exit 3 and nothing written at the target.
mod common;
mod support;
use common::*;
use std::path::{Path, PathBuf};

struct Keys {
    dir: PathBuf,
    recipient: String,
}

fn keygen(dir: &Path) -> Keys {
    ferry_ok(&["keygen", "-o", dir.to_str().unwrap(), "--no-password"]);
    let age = std::fs::read_to_string(dir.join("ferry.age")).unwrap();
    let recipient = age.lines().find_map(|l| l.strip_prefix("# public key: ")).unwrap().to_string();
    Keys { dir: dir.to_path_buf(), recipient }
}

impl Keys {
    fn key(&self) -> String {
        self.dir.join("ferry.key").display().to_string()
    }
    fn public(&self) -> String {
        self.dir.join("ferry.pub").display().to_string()
    }
    fn identity(&self) -> String {
        self.dir.join("ferry.age").display().to_string()
    }
}

fn sealed_bundle(keys: &Keys, out: &Path, stem: &str, fixture_file: &str) {
    ferry_ok(&[
        "save",
        &format!("docker-archive:{}", fixture(fixture_file).display()),
        "-o",
        out.to_str().unwrap(),
        "-n",
        stem,
        "--sign",
        &keys.key(),
        "-r",
        &keys.recipient,
    ]);
}

/// `load` fails with exit 3 naming `expect`, and the target does not exist.
fn load_refused(bundle: &Path, extra: &[&str], expect: &str) {
    let target = bundle.parent().unwrap().join(format!("target-{}", rand_suffix()));
    let into = format!("oci:{}", target.display());
    let mut args = vec!["load", bundle.to_str().unwrap(), "--into", &into];
    args.extend_from_slice(extra);
    let r = ferry(&args);
    assert_eq!(r.code, 3, "ferry {args:?} should be refused with exit 3:\n{}", r.stderr);
    assert!(r.stderr.contains(expect), "expected {expect:?} in:\n{}", r.stderr);
    assert!(!target.exists(), "target written despite the refusal");
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::SeqCst).to_string()
}

#[test]
fn standard_tools_check_and_open_a_sealed_bundle_and_docker_loads_it() {
    require("minisign");
    require("age");
    let work = tempfile::tempdir().unwrap();
    let keys = keygen(&work.path().join("keys"));
    let out = work.path().join("usb");
    sealed_bundle(&keys, &out, "s", "docker20-whiteout.docker.tar.gz");
    sh(&format!("minisign -Vm {0}/s.sha256 -p {1}", out.display(), keys.public()));
    sh(&format!("cd {} && sha256sum -c s.sha256", out.display()));
    let daemon = support::dockerd::Dockerd::start();
    let tar = work.path().join("plain.tar");
    sh(&format!("age -d -i {} {}/s.tar.zst.age | zstd -d > {}", keys.identity(), out.display(), tar.display()));
    daemon.docker_ok(&["load", "-i", tar.to_str().unwrap()]);
    let run = daemon.docker_ok(&["run", "--rm", "--pull=never", "--network", "none", "ferry-fixture/docker20:v1"]);
    assert_eq!(run.trim_end(), "ferry fixture docker20: ok");
    // And ferry itself: verify with key + identity, load.
    let v = ferry_ok(&["verify", out.to_str().unwrap(), "-k", &keys.public(), "-i", &keys.identity()]);
    assert!(v.stderr.contains("signed by trusted key"), "{}", v.stderr);
    let oci = work.path().join("oci");
    ferry_ok(&["load", out.to_str().unwrap(), "-k", &keys.public(), "-i", &keys.identity(), "--into", &format!("oci:{}", oci.display())]);
    // Without an identity, verify checks signature and checksums and says it did not open the content.
    let v = ferry_ok(&["verify", out.to_str().unwrap(), "-k", &keys.public()]);
    assert!(v.stderr.contains("not opened"), "{}", v.stderr);
    // inspect shows the signer and the recipients without keys.
    let i = ferry_ok(&["inspect", out.to_str().unwrap(), "--json"]);
    let info: serde_json::Value = serde_json::from_str(&i.stdout).unwrap();
    let signer = info["signer"].as_str().unwrap();
    assert!(std::fs::read_to_string(keys.dir.join("ferry.pub")).unwrap().contains(signer), "{signer}");
    assert!(info["recipients"].as_str().unwrap().contains("1 recipient"), "{}", i.stdout);
}

#[test]
fn a_bundle_sealed_by_the_real_age_and_minisign_clis_loads() {
    require("minisign");
    require("age");
    let work = tempfile::tempdir().unwrap();
    let keys = keygen(&work.path().join("keys"));
    let out = work.path().join("usb");
    ferry_ok(&["save", &format!("docker-archive:{}", fixture("multi.docker.tar.gz").display()), "-o", out.to_str().unwrap(), "-n", "cli"]);
    let d = out.display();
    sh(&format!(
        "cd {d} && age -r {r} -o cli.tar.zst.age cli.tar.zst && rm cli.tar.zst && sha256sum cli.tar.zst.age > cli.sha256 && \
         minisign -G -W -p {d}/mini.pub -s {d}/mini.key && minisign -S -s {d}/mini.key -m cli.sha256 -t 'made by the minisign CLI'",
        r = keys.recipient
    ));
    std::fs::rename(out.join("mini.pub"), work.path().join("mini.pub")).unwrap();
    std::fs::rename(out.join("mini.key"), work.path().join("mini.key")).unwrap();
    let oci = work.path().join("oci");
    ferry_ok(&[
        "load",
        out.to_str().unwrap(),
        "-k",
        work.path().join("mini.pub").to_str().unwrap(),
        "-i",
        &keys.identity(),
        "--into",
        &format!("oci:{}", oci.display()),
    ]);
    for d in source_digests(&fixture("multi.docker.tar.gz")) {
        assert!(layout_blobs(&oci).contains(&d));
    }
}

#[test]
fn attacks_on_signatures_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let keys = keygen(&work.path().join("keys"));
    let other = keygen(&work.path().join("other"));
    let k = keys.public();
    let i = keys.identity();
    let fresh = |name: &str| {
        let dir = work.path().join(name);
        sealed_bundle(&keys, &dir, "s", "docker20-whiteout.docker.tar.gz");
        dir
    };

    // Signed by another key.
    let b = work.path().join("by-other");
    sealed_bundle(&other, &b, "s", "docker20-whiteout.docker.tar.gz");
    load_refused(&b, &["-k", &k, "-i", &i], "which is not trusted");

    // A signature copied from another bundle (same stem, other content).
    let victim = fresh("victim");
    let donor = work.path().join("donor");
    sealed_bundle(&keys, &donor, "s", "multi.docker.tar.gz");
    std::fs::copy(donor.join("s.sha256.minisig"), victim.join("s.sha256.minisig")).unwrap();
    load_refused(&victim, &["-k", &k, "-i", &i], "signature");

    // A valid signature of another bundle, renamed to this stem.
    let renamed = work.path().join("renamed");
    sealed_bundle(&keys, &renamed, "t", "docker20-whiteout.docker.tar.gz");
    for f in ["t.sha256", "t.sha256.minisig", "t.tar.zst.age"] {
        std::fs::rename(renamed.join(f), renamed.join(f.replacen('t', "s", 1))).unwrap();
    }
    let sums = std::fs::read_to_string(renamed.join("s.sha256")).unwrap();
    assert!(sums.contains("t.tar.zst.age"));
    load_refused(&renamed, &["-k", &k, "-i", &i], "");

    // Edited trusted comment.
    let b = fresh("comment");
    let sig = std::fs::read_to_string(b.join("s.sha256.minisig")).unwrap();
    std::fs::write(b.join("s.sha256.minisig"), sig.replace("images=", "images=evil/")).unwrap();
    load_refused(&b, &["-k", &k, "-i", &i], "signature");

    // STEM.sha256 edited after signing (the artifact replaced to match it).
    let b = fresh("edited");
    let art = std::fs::read(b.join("s.tar.zst.age")).unwrap();
    let mut evil = art.clone();
    let n = evil.len();
    evil[n - 100] ^= 1;
    std::fs::write(b.join("s.tar.zst.age"), &evil).unwrap();
    std::fs::write(b.join("s.sha256"), format!("{}  s.tar.zst.age\n", sha256_hex(&evil))).unwrap();
    load_refused(&b, &["-k", &k, "-i", &i], "signature");

    // Signature missing when a key is required.
    let b = fresh("nosig");
    std::fs::remove_file(b.join("s.sha256.minisig")).unwrap();
    load_refused(&b, &["-k", &k, "-i", &i], "not signed");
    // ... and an unsigned bundle without --allow-unsigned.
    load_refused(&b, &["-i", &i], "not signed");
    // ... and a signed bundle with no key given.
    load_refused(&fresh("nokey"), &["-i", &i], "no trusted key was given");
}

#[test]
fn attacks_on_encryption_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let keys = keygen(&work.path().join("keys"));
    let other = keygen(&work.path().join("other"));
    let k = keys.public();
    let i = keys.identity();

    // Artifact swapped for another one validly encrypted to the same recipient.
    let a = work.path().join("a");
    sealed_bundle(&keys, &a, "s", "docker20-whiteout.docker.tar.gz");
    let b = work.path().join("b");
    sealed_bundle(&keys, &b, "s", "multi.docker.tar.gz");
    std::fs::copy(b.join("s.tar.zst.age"), a.join("s.tar.zst.age")).unwrap();
    load_refused(&a, &["-k", &k, "-i", &i], "checksum mismatch");

    let good = work.path().join("good");
    sealed_bundle(&keys, &good, "s", "docker20-whiteout.docker.tar.gz");
    // Wrong identity.
    load_refused(&good, &["-k", &k, "-i", &other.identity()], "");
    // Encrypted and no identity.
    load_refused(&good, &["-k", &k], "-i");

    // Truncated age stream, re-checksummed and re-signed by the real key holder's tool:
    // the signature and checksums pass, decryption must still fail.
    require("minisign");
    let t = work.path().join("trunc");
    ferry_ok(&[
        "save",
        &format!("docker-archive:{}", fixture("docker20-whiteout.docker.tar.gz").display()),
        "-o",
        t.to_str().unwrap(),
        "-n",
        "s",
        "-r",
        &keys.recipient,
    ]);
    let art = std::fs::read(t.join("s.tar.zst.age")).unwrap();
    std::fs::write(t.join("s.tar.zst.age"), &art[..art.len() - 70_000]).unwrap();
    sh(&format!("cd {} && sha256sum s.tar.zst.age > s.sha256", t.display()));
    load_refused(&t, &["--allow-unsigned", "-i", &i], "");
}

#[test]
fn passphrase_bundles_and_wrong_passphrase() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("p");
    let save = ferry_env(
        &[
            "save",
            &format!("docker-archive:{}", fixture("docker20-whiteout.docker.tar.gz").display()),
            "-o",
            out.to_str().unwrap(),
            "-n",
            "p",
            "--passphrase",
        ],
        &[("FERRY_PASSPHRASE", "correct horse battery staple")],
    );
    assert_eq!(save.code, 0, "{}", save.stderr);
    let oci = work.path().join("oci");
    let ok = ferry_env(
        &["load", out.to_str().unwrap(), "--allow-unsigned", "--into", &format!("oci:{}", oci.display())],
        &[("FERRY_PASSPHRASE", "correct horse battery staple")],
    );
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let target = work.path().join("oci2");
    let bad = ferry_env(
        &["load", out.to_str().unwrap(), "--allow-unsigned", "--into", &format!("oci:{}", target.display())],
        &[("FERRY_PASSPHRASE", "wrong guess")],
    );
    assert_eq!(bad.code, 3, "{}", bad.stderr);
    assert!(!target.exists());
    assert!(!bad.stderr.contains("wrong guess") && !bad.stderr.contains("correct horse"), "secret in output: {}", bad.stderr);
}

#[test]
fn secret_keys_must_be_private_and_passwords_stay_secret() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("keys");
    let r = ferry_env(&["keygen", "-o", dir.to_str().unwrap()], &[("FERRY_KEY_PASSWORD", "s3cret-pw")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    use std::os::unix::fs::PermissionsExt;
    for f in ["ferry.key", "ferry.age"] {
        assert_eq!(std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777, 0o600, "{f}");
    }
    let src = format!("docker-archive:{}", fixture("docker20-whiteout.docker.tar.gz").display());
    let out = work.path().join("o");
    let key = dir.join("ferry.key");
    // Wrong password: refused, and neither password appears anywhere.
    let bad =
        ferry_env(&["save", &src, "-o", out.to_str().unwrap(), "--sign", key.to_str().unwrap()], &[("FERRY_KEY_PASSWORD", "not-the-pw")]);
    assert_ne!(bad.code, 0);
    assert!(!bad.stderr.contains("not-the-pw") && !bad.stdout.contains("not-the-pw"), "{}", bad.stderr);
    let good = ferry_env(
        &["save", &src, "-o", out.to_str().unwrap(), "-n", "g", "--sign", key.to_str().unwrap()],
        &[("FERRY_KEY_PASSWORD", "s3cret-pw")],
    );
    assert_eq!(good.code, 0, "{}", good.stderr);
    assert!(!good.stderr.contains("s3cret-pw"));
    // A world-readable secret key is refused with the fix in the message.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let loose = ferry_env(
        &["save", &src, "-o", out.to_str().unwrap(), "-n", "h", "--sign", key.to_str().unwrap()],
        &[("FERRY_KEY_PASSWORD", "s3cret-pw")],
    );
    assert_ne!(loose.code, 0);
    assert!(loose.stderr.contains("chmod 600"), "{}", loose.stderr);
}
