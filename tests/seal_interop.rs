//! Interoperability of `ferry::seal` with the reference tools: the `minisign`,
//! `age`, `age-keygen` and `ssh-keygen` CLIs (and `script`, to give `age -p` the
//! terminal it insists on). A missing tool fails the test with its name; nothing
//! is skipped.
//!
//! Uses only the public `ferry::seal` API.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use ferry::seal::{self, PublicKey, Recipient, SealError, SecretKey, SecretString};

/// Runs a CLI; panics with a clear message when it is not installed.
fn run(cli: &str, args: &[&str], stdin: Option<&[u8]>, cwd: &Path) -> Output {
    let mut cmd = Command::new(cli);
    cmd.args(args).current_dir(cwd).stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "the `{cli}` command is required by this test but was not found on PATH; install it \
             (Debian: apt-get install minisign age openssh-client bsdutils)"
        ),
        Err(e) => panic!("cannot run `{cli}`: {e}"),
    };
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    child.wait_with_output().unwrap()
}

/// Like [`run`], and asserts success.
fn ok(cli: &str, args: &[&str], stdin: Option<&[u8]>, cwd: &Path) -> Output {
    let out = run(cli, args, stdin, cwd);
    assert!(
        out.status.success(),
        "`{cli} {}` failed ({}):\nstdout: {}\nstderr: {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn pw(s: &str) -> SecretString {
    SecretString::from(s.to_string())
}

fn sample(n: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

const SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  nightly.tar.zst.age\n";

fn ferry_encrypt(recipients: &[Recipient], data: &[u8]) -> Vec<u8> {
    let mut w = seal::encrypt_writer(recipients, Vec::new()).unwrap();
    w.write_all(data).unwrap();
    w.finish().unwrap()
}

fn ferry_decrypt(ct: &[u8], ids: &[seal::Identity]) -> Result<Vec<u8>, SealError> {
    let mut r = seal::decrypt_reader(ct, ids)?;
    let mut out = Vec::new();
    match r.read_to_end(&mut out) {
        Ok(_) => Ok(out),
        Err(e) => match SealError::from_io(&e) {
            Some(SealError::Truncated) => Err(SealError::Truncated),
            Some(SealError::Corrupt) => Err(SealError::Corrupt),
            _ => panic!("unexpected read error: {e}"),
        },
    }
}

// ----------------------------------------------------------------------------------
// minisign
// ----------------------------------------------------------------------------------

#[test]
fn ferry_signature_verifies_with_minisign_cli() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (sub, password) in [("plain", None), ("protected", Some(pw("s3cret")))] {
        let kd = d.join(sub);
        let r = seal::generate(&kd, password.as_ref()).unwrap();
        let sk = SecretKey::from_file(&r.secret_key_path, password.as_ref()).unwrap();
        let comment = seal::bundle_trusted_comment("nightly", &["alpine:3.19", "nginx:1.25"], std::time::SystemTime::now());
        let sig = seal::sign(SHA.as_bytes(), &sk, &comment, None).unwrap();
        fs::write(kd.join("nightly.sha256"), SHA).unwrap();
        fs::write(kd.join("nightly.sha256.minisig"), &sig).unwrap();
        let pubfile = r.public_key_path.to_str().unwrap();
        let out = ok("minisign", &["-Vm", "nightly.sha256", "-p", pubfile], None, &kd);
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        assert!(text.contains(&format!("Trusted comment: {comment}")), "{text}");
        // -P with the bare base64 string works as well.
        ok("minisign", &["-Vm", "nightly.sha256", "-P", &r.public_key], None, &kd);
        // minisign refuses it once the data is edited (sanity check of the check).
        fs::write(kd.join("nightly.sha256"), SHA.replace("e3b0", "e3b1")).unwrap();
        assert!(!run("minisign", &["-Vm", "nightly.sha256", "-p", pubfile], None, &kd).status.success());
    }
}

#[test]
fn minisign_cli_unprotected_key_signs_and_ferry_verifies_and_loads_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok("minisign", &["-G", "-W", "-p", "m.pub", "-s", "m.key"], None, d);
    fs::write(d.join("b.sha256"), SHA).unwrap();
    ok("minisign", &["-S", "-s", "m.key", "-m", "b.sha256", "-t", "ferry bundle b images=x created=2024-01-01T00:00:00Z"], None, d);
    let sig = fs::read(d.join("b.sha256.minisig")).unwrap();

    let pk = PublicKey::load(d.join("m.pub").to_str().unwrap()).unwrap();
    let info = seal::verify(SHA.as_bytes(), &sig, std::slice::from_ref(&pk)).unwrap();
    assert_eq!(info.key_id, pk.key_id());
    assert_eq!(info.trusted_comment, "ferry bundle b images=x created=2024-01-01T00:00:00Z");
    assert_eq!(seal::signer_key_id(&sig).unwrap(), pk.key_id());
    // The key id ferry shows is the one minisign writes in the public key file.
    let pub_text = fs::read_to_string(d.join("m.pub")).unwrap();
    assert!(pub_text.contains(&pk.key_id().to_string()), "{pub_text}");
    // `-k` also takes the bare base64 string.
    let b64 = pub_text.lines().nth(1).unwrap();
    assert_eq!(PublicKey::load(b64).unwrap(), pk);

    // ferry loads that secret key (no password) and minisign accepts its signature.
    let sk = SecretKey::from_file(&d.join("m.key"), None).unwrap();
    assert_eq!(sk.key_id(), pk.key_id());
    fs::write(d.join("c.sha256"), SHA).unwrap();
    fs::write(d.join("c.sha256.minisig"), seal::sign(SHA.as_bytes(), &sk, "ferry bundle c", None).unwrap()).unwrap();
    ok("minisign", &["-Vm", "c.sha256", "-p", "m.pub"], None, d);
}

#[test]
fn minisign_cli_protected_key_loads_in_ferry_and_ferry_key_works_in_minisign() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // minisign reads the password from stdin when it is not a terminal.
    ok("minisign", &["-G", "-p", "m.pub", "-s", "m.key"], Some(b"p4ss\np4ss\n"), d);
    let e = SecretKey::from_file(&d.join("m.key"), None).unwrap_err();
    assert!(matches!(e, SealError::KeyPasswordRequired { .. }), "{e}");
    let e = SecretKey::from_file(&d.join("m.key"), Some(&pw("wrong"))).unwrap_err();
    assert!(matches!(e, SealError::WrongKeyPassword { .. }), "{e}");
    let sk = SecretKey::from_file(&d.join("m.key"), Some(&pw("p4ss"))).unwrap();
    fs::write(d.join("a.sha256"), SHA).unwrap();
    fs::write(d.join("a.sha256.minisig"), seal::sign(SHA.as_bytes(), &sk, "ferry bundle a", None).unwrap()).unwrap();
    ok("minisign", &["-Vm", "a.sha256", "-p", "m.pub"], None, d);

    // A password-protected ferry key is usable by the minisign CLI.
    let r = seal::generate(&d.join("k"), Some(&pw("hunter2"))).unwrap();
    let key = r.secret_key_path.to_str().unwrap();
    ok("minisign", &["-S", "-s", key, "-m", "a.sha256", "-x", "a.cli.minisig"], Some(b"hunter2\n"), d);
    let sig = fs::read(d.join("a.cli.minisig")).unwrap();
    let pk = PublicKey::from_file(&r.public_key_path).unwrap();
    seal::verify(SHA.as_bytes(), &sig, &[pk]).unwrap();
}

#[test]
fn signature_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok("minisign", &["-G", "-W", "-p", "a.pub", "-s", "a.key"], None, d);
    ok("minisign", &["-G", "-W", "-p", "b.pub", "-s", "b.key"], None, d);
    fs::write(d.join("x.sha256"), SHA).unwrap();
    ok("minisign", &["-S", "-s", "a.key", "-m", "x.sha256", "-t", "ferry bundle x"], None, d);
    let sig = fs::read_to_string(d.join("x.sha256.minisig")).unwrap();
    let a = PublicKey::from_file(&d.join("a.pub")).unwrap();
    let b = PublicKey::from_file(&d.join("b.pub")).unwrap();

    // Signed by another key.
    let e = seal::verify(SHA.as_bytes(), sig.as_bytes(), std::slice::from_ref(&b)).unwrap_err();
    match &e {
        SealError::UntrustedSigner { signer, trusted } => {
            assert_eq!(*signer, a.key_id());
            assert_eq!(trusted, &vec![b.key_id()]);
        }
        other => panic!("expected UntrustedSigner, got {other}"),
    }
    let msg = e.to_string();
    assert!(msg.contains(&a.key_id().to_string()) && msg.contains(&b.key_id().to_string()), "{msg}");
    assert!(e.is_integrity_failure());

    // Edited trusted comment.
    let edited = sig.replace("trusted comment: ferry bundle x", "trusted comment: ferry bundle y");
    assert_ne!(edited, sig);
    let e = seal::verify(SHA.as_bytes(), edited.as_bytes(), &[a.clone(), b.clone()]).unwrap_err();
    assert!(matches!(e, SealError::BadSignature { .. }), "{e}");
    // minisign agrees.
    fs::write(d.join("x.sha256.minisig"), &edited).unwrap();
    assert!(!run("minisign", &["-Vm", "x.sha256", "-p", "a.pub"], None, d).status.success());

    // Edited data.
    let e = seal::verify(SHA.replace('e', "f").as_bytes(), sig.as_bytes(), std::slice::from_ref(&a)).unwrap_err();
    assert!(matches!(e, SealError::BadSignature { .. }), "{e}");

    // Malformed signature file.
    let e = seal::verify(SHA.as_bytes(), b"not a signature\n", &[a]).unwrap_err();
    assert!(matches!(e, SealError::MalformedSignature { .. }), "{e}");
}

#[cfg(unix)]
#[test]
fn readable_secret_files_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok("minisign", &["-G", "-W", "-p", "a.pub", "-s", "a.key"], None, d);
    ok("age-keygen", &["-o", "id.txt"], None, d);
    for f in ["a.key", "id.txt"] {
        fs::set_permissions(d.join(f), fs::Permissions::from_mode(0o644)).unwrap();
    }
    let e = SecretKey::from_file(&d.join("a.key"), None).unwrap_err();
    assert!(matches!(e, SealError::InsecurePermissions { .. }) && e.to_string().contains("chmod 600"), "{e}");
    let e = seal::load_identities(&d.join("id.txt")).unwrap_err();
    assert!(matches!(e, SealError::InsecurePermissions { .. }) && e.to_string().contains("id.txt"), "{e}");
}

// ----------------------------------------------------------------------------------
// age
// ----------------------------------------------------------------------------------

fn ssh_keygen(d: &Path, kind: &str) -> (PathBuf, String) {
    let name = format!("id_{kind}");
    let mut args = vec!["-q", "-t", kind, "-N", "", "-C", "test@ferry", "-f", name.as_str()];
    if kind == "rsa" {
        args.extend(["-b", "2048"]);
    }
    ok("ssh-keygen", &args, None, d);
    let public = fs::read_to_string(d.join(format!("{name}.pub"))).unwrap();
    (d.join(name), public.trim().to_string())
}

#[test]
fn ferry_encrypted_streams_decrypt_with_age_cli() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = sample(300_000);
    let keys = seal::generate(&d.join("keys"), None).unwrap();
    let (ed_key, ed_pub) = ssh_keygen(d, "ed25519");
    let (rsa_key, rsa_pub) = ssh_keygen(d, "rsa");
    let age_id = keys.age_identity_path.to_str().unwrap().to_string();

    let cases: Vec<(&str, Vec<Recipient>, Vec<String>)> = vec![
        ("x25519", vec![Recipient::parse(&keys.age_recipient).unwrap()], vec![age_id.clone()]),
        ("ssh-ed25519", vec![Recipient::parse(&ed_pub).unwrap()], vec![ed_key.to_str().unwrap().into()]),
        ("ssh-rsa", vec![Recipient::parse(&rsa_pub).unwrap()], vec![rsa_key.to_str().unwrap().into()]),
    ];
    for (name, recips, idents) in &cases {
        let ct = ferry_encrypt(recips, &data);
        let f = d.join(format!("{name}.age"));
        fs::write(&f, &ct).unwrap();
        let out = ok("age", &["-d", "-i", &idents[0], f.to_str().unwrap()], None, d);
        assert!(out.stdout == data, "{name}: age -d output differs");
        let info = seal::describe_recipients(&ct).unwrap();
        assert_eq!(info.to_string(), format!("1 recipient: {}", recips[0].kind()));
    }

    // One file to all three: each identity alone decrypts it.
    let all: Vec<Recipient> = cases.iter().flat_map(|c| c.1.clone()).collect();
    let ct = ferry_encrypt(&all, &data);
    fs::write(d.join("all.age"), &ct).unwrap();
    assert_eq!(seal::describe_recipients(&ct).unwrap().to_string(), "3 recipients: X25519, ssh-ed25519, ssh-rsa");
    for (_, _, idents) in &cases {
        let out = ok("age", &["-d", "-i", &idents[0], "all.age"], None, d);
        assert!(out.stdout == data);
    }

    // Recipients file (-R) with comments.
    fs::write(d.join("recips.txt"), format!("# ops team\n{}\n\n{ed_pub}\n", keys.age_recipient)).unwrap();
    let rs = seal::load_recipients_file(&d.join("recips.txt")).unwrap();
    let ct = ferry_encrypt(&rs, &data);
    fs::write(d.join("r.age"), &ct).unwrap();
    assert!(ok("age", &["-d", "-i", ed_key.to_str().unwrap(), "r.age"], None, d).stdout == data);
}

#[test]
fn age_cli_output_decrypts_with_ferry() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = sample(200_000);
    fs::write(d.join("plain"), &data).unwrap();
    ok("age-keygen", &["-o", "id.txt"], None, d);
    let id_text = fs::read_to_string(d.join("id.txt")).unwrap();
    let recip = id_text.lines().find_map(|l| l.strip_prefix("# public key: ")).unwrap().to_string();
    let (ed_key, _) = ssh_keygen(d, "ed25519");
    let (rsa_key, _) = ssh_keygen(d, "rsa");

    ok("age", &["-r", &recip, "-o", "x.age", "plain"], None, d);
    ok("age", &["-R", "id_ed25519.pub", "-o", "ed.age", "plain"], None, d);
    ok("age", &["-R", "id_rsa.pub", "-o", "rsa.age", "plain"], None, d);

    let ids = seal::load_identities(&d.join("id.txt")).unwrap();
    let ct = fs::read(d.join("x.age")).unwrap();
    assert!(seal::is_age(&ct));
    assert_eq!(ferry_decrypt(&ct, &ids).unwrap(), data);
    let ed = seal::load_identities(&ed_key).unwrap();
    assert_eq!(ferry_decrypt(&fs::read(d.join("ed.age")).unwrap(), &ed).unwrap(), data);
    let rsa = seal::load_identities(&rsa_key).unwrap();
    assert_eq!(rsa[0].kind(), "ssh-rsa");
    assert_eq!(ferry_decrypt(&fs::read(d.join("rsa.age")).unwrap(), &rsa).unwrap(), data);

    // Several identities: the matching one is found.
    let mut mixed = seal::load_identities(&ed_key).unwrap();
    mixed.extend(seal::load_identities(&d.join("id.txt")).unwrap());
    assert_eq!(ferry_decrypt(&ct, &mixed).unwrap(), data);
}

#[test]
fn decryption_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = sample(3 * 65536 + 1000);
    fs::write(d.join("plain"), &data).unwrap();
    ok("age-keygen", &["-o", "id.txt"], None, d);
    ok("age-keygen", &["-o", "other.txt"], None, d);
    let recip =
        fs::read_to_string(d.join("id.txt")).unwrap().lines().find_map(|l| l.strip_prefix("# public key: ").map(str::to_string)).unwrap();
    ok("age", &["-r", &recip, "-o", "x.age", "plain"], None, d);
    let ct = fs::read(d.join("x.age")).unwrap();
    let ids = seal::load_identities(&d.join("id.txt")).unwrap();

    // Wrong identity.
    let other = seal::load_identities(&d.join("other.txt")).unwrap();
    let e = ferry_decrypt(&ct, &other).unwrap_err();
    assert!(matches!(e, SealError::NoMatchingIdentity { .. }), "{e}");
    assert!(e.is_integrity_failure());
    assert!(e.to_string().contains("other.txt"), "{e}");

    // No identity at all.
    let e = ferry_decrypt(&ct, &[]).unwrap_err();
    assert!(matches!(e, SealError::NoIdentity { .. }), "{e}");
    assert!(e.to_string().contains("1 recipient: X25519") && e.to_string().contains("-i"), "{e}");

    // Truncated streams: at a chunk boundary, inside a chunk, by one byte.
    let payload_start = ct.len() - (3 * (65536 + 16) + 1000 + 16);
    for cut in [payload_start + 65536 + 16, payload_start + 2 * (65536 + 16), ct.len() - 100, ct.len() - 1] {
        let e = ferry_decrypt(&ct[..cut], &ids).unwrap_err();
        assert!(matches!(e, SealError::Truncated | SealError::Corrupt), "cut {cut}: {e}");
        assert!(e.is_integrity_failure());
    }
    let e = ferry_decrypt(&ct[..payload_start + 2 * (65536 + 16)], &ids).unwrap_err();
    assert!(matches!(e, SealError::Truncated), "{e}");
    // age itself agrees that the truncated file is bad.
    fs::write(d.join("cut.age"), &ct[..ct.len() - 100]).unwrap();
    assert!(!run("age", &["-d", "-i", "id.txt", "cut.age"], None, d).status.success());

    // Not encrypted at all.
    let e = ferry_decrypt(&data, &ids).unwrap_err();
    assert!(matches!(e, SealError::NotAge), "{e}");
}

/// `age -p` insists on a terminal: `script` gives it a pseudo-terminal and
/// forwards our stdin to it; the sleeps let age switch the terminal to no-echo
/// before the passphrase arrives.
fn age_with_tty(d: &Path, age_args: &str, answers: &[&str]) -> Output {
    let mut input = String::new();
    for a in answers {
        input.push_str(&format!("sleep 1; printf '%s\\n' '{a}'; "));
    }
    let sh = format!("({input} sleep 1) | script -qec \"age {age_args}\" /dev/null");
    // Make sure `script` is there (clear message if not).
    let probe = run("script", &["--version"], None, d);
    assert!(probe.status.success(), "`script --version` failed");
    run("sh", &["-c", &sh], None, d)
}

#[test]
fn passphrase_interop_with_age_cli() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = sample(100_000);
    fs::write(d.join("plain"), &data).unwrap();
    let pass = "correct horse battery staple";

    // age -p → ferry.
    let out = age_with_tty(d, "-p -o p.age plain", &[pass, pass]);
    assert!(out.status.success(), "age -p failed: {}", String::from_utf8_lossy(&out.stdout));
    let ct = fs::read(d.join("p.age")).unwrap();
    assert_eq!(seal::describe_recipients(&ct).unwrap().to_string(), "passphrase (scrypt)");
    let mut r = seal::decrypt_reader_passphrase(&ct[..], &pw(pass)).unwrap();
    let mut pt = Vec::new();
    r.read_to_end(&mut pt).unwrap();
    assert_eq!(pt, data);
    let e = seal::decrypt_reader_passphrase(&ct[..], &pw("wrong")).unwrap_err();
    assert!(matches!(e, SealError::WrongPassphrase), "{e}");
    assert!(e.is_integrity_failure());
    // Identities on a passphrase file: a clear "use the passphrase" error.
    let keys = seal::generate(&d.join("k"), None).unwrap();
    let ids = seal::load_identities(&keys.age_identity_path).unwrap();
    let e = seal::decrypt_reader(&ct[..], &ids).unwrap_err();
    assert!(matches!(e, SealError::PassphraseRequired), "{e}");

    // ferry → age -d (passphrase typed on the pseudo-terminal).
    let mut w = seal::encrypt_writer_passphrase(&pw(pass), Vec::new()).unwrap();
    w.write_all(&data).unwrap();
    fs::write(d.join("f.age"), w.finish().unwrap()).unwrap();
    let out = age_with_tty(d, "-d -o f.out f.age", &[pass]);
    assert!(out.status.success(), "age -d failed: {}", String::from_utf8_lossy(&out.stdout));
    assert!(fs::read(d.join("f.out")).unwrap() == data);
}

#[test]
fn throughput_256_mib() {
    const MIB: usize = 1 << 20;
    const TOTAL: usize = 256 * MIB;
    let keys_dir = tempfile::tempdir().unwrap();
    let keys = seal::generate(keys_dir.path(), None).unwrap();
    let ids = seal::load_identities(&keys.age_identity_path).unwrap();
    let recips = [Recipient::parse(&keys.age_recipient).unwrap()];
    let block = sample(MIB);

    // Encryption timed into a sink (what a file write costs is not ours to
    // measure); the ciphertext for decryption is made separately, untimed.
    struct Count(usize);
    impl Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let t = Instant::now();
    let mut w = seal::encrypt_writer(&recips, Count(0)).unwrap();
    for _ in 0..TOTAL / MIB {
        w.write_all(&block).unwrap();
    }
    let written = w.finish().unwrap().0;
    let enc = t.elapsed();
    assert!(written > TOTAL);

    let mut w = seal::encrypt_writer(&recips, Vec::with_capacity(TOTAL + TOTAL / 4096 + 4096)).unwrap();
    for _ in 0..TOTAL / MIB {
        w.write_all(&block).unwrap();
    }
    let ct = w.finish().unwrap();

    let t = Instant::now();
    let mut r = seal::decrypt_reader(&ct[..], &ids).unwrap();
    let mut buf = vec![0u8; MIB];
    let mut total = 0usize;
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n;
    }
    let dec = t.elapsed();
    assert_eq!(total, TOTAL);
    let mbs = |d: std::time::Duration| TOTAL as f64 / 1e6 / d.as_secs_f64();
    println!(
        "seal throughput ({} build): encrypt 256 MiB in {:.2}s = {:.0} MB/s; decrypt in {:.2}s = {:.0} MB/s",
        if cfg!(debug_assertions) { "debug, dependencies at opt-level 2" } else { "release" },
        enc.as_secs_f64(),
        mbs(enc),
        dec.as_secs_f64(),
        mbs(dec)
    );
}
