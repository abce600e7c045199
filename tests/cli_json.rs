//! `--json` on every command: one JSON object (or, for `ls`, one array) on
//! stdout, read back by python3's json module as a script would; errors as
//! `{"error", "exit", "hint"}` on stderr.
mod common;
use common::*;
use std::io::Write;
use std::process::{Command, Stdio};

/// Parse `text` with python3 and return what `expr` (over `d`) evaluates to, as JSON.
fn python(text: &str, expr: &str) -> serde_json::Value {
    require("python3");
    let mut child = Command::new("python3")
        .args(["-c", &format!("import json, sys\nd = json.load(sys.stdin)\nprint(json.dumps({expr}))")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python3 could not read it as JSON ({}):\n{text}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn json_ok(args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.push("--json");
    let r = ferry_env(&all, &[("FERRY_KEY_PASSWORD", "pw-for-tests")]);
    assert_eq!(r.code, 0, "ferry {all:?}: {}", r.stderr);
    r.stdout
}

#[test]
fn every_command_reports_json() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let keys = t.join("keys");
    let k = json_ok(&["keygen", "-o", keys.to_str().unwrap()]);
    assert_eq!(python(&k, "[d['password_protected'], d['age_recipient'][:4], bool(d['key_id'])]"), serde_json::json!([true, "age1", true]));
    let recipient = python(&k, "d['age_recipient']").as_str().unwrap().to_string();

    let image = format!("docker-archive:{}", fixture("docker20-whiteout.docker.tar.gz").display());
    let usb = t.join("usb");
    let s = json_ok(&[
        "save",
        &image,
        "-o",
        usb.to_str().unwrap(),
        "-n",
        "rel",
        "--sign",
        keys.join("ferry.key").to_str().unwrap(),
        "-r",
        &recipient,
    ]);
    assert_eq!(
        python(&s, "[d['stem'], d['signed'], d['encrypted'], len(d['files']), d['files'][0]['name']]"),
        serde_json::json!(["rel", true, true, 1, "rel.tar.zst.age"])
    );
    assert_eq!(python(&s, "len(d['files'][0]['sha256'])"), 64);

    let sums = usb.join("rel.sha256");
    let pubkey = keys.join("ferry.pub");
    let ident = keys.join("ferry.age");
    let i = json_ok(&["inspect", sums.to_str().unwrap()]);
    assert_eq!(python(&i, "[d['signed'], d['encrypted'], d['images']]"), serde_json::json!([true, true, null]));

    let v = json_ok(&["verify", sums.to_str().unwrap(), "-k", pubkey.to_str().unwrap(), "-i", ident.to_str().unwrap()]);
    assert_eq!(
        python(&v, "[d['checksums_only'], d['blobs'] > 0, d['signature'].startswith('signed by trusted key')]"),
        serde_json::json!([false, true, true])
    );
    let v = json_ok(&["verify", sums.to_str().unwrap(), "-k", pubkey.to_str().unwrap()]);
    assert_eq!(python(&v, "[d['checksums_only'], d['files']]"), serde_json::json!([true, 1]));

    let oci = t.join("oci");
    let l = json_ok(&[
        "load",
        sums.to_str().unwrap(),
        "-k",
        pubkey.to_str().unwrap(),
        "-i",
        ident.to_str().unwrap(),
        "--into",
        &format!("oci:{}", oci.display()),
    ]);
    assert_eq!(
        python(&l, "[d['target'].startswith('oci:'), d['images'], d['encrypted'], d['compression']]"),
        serde_json::json!([true, ["ferry-fixture/docker20:v1"], true, "zstd"])
    );

    let drop = t.join("drop");
    let p = json_ok(&["push", sums.to_str().unwrap(), drop.to_str().unwrap()]);
    assert_eq!(
        python(&p, "[d['stem'], [f['name'] for f in d['files']]]"),
        serde_json::json!(["rel", ["rel.tar.zst.age", "rel.sha256.minisig", "rel.sha256"]])
    );
    let ls = json_ok(&["ls", drop.to_str().unwrap()]);
    assert_eq!(python(&ls, "[(b['stem'], b['signed'], b['encrypted']) for b in d]"), serde_json::json!([["rel", true, true]]));
    let pulled = t.join("pulled");
    let p = json_ok(&["pull", &format!("{}/rel", drop.display()), "-o", pulled.to_str().unwrap()]);
    assert_eq!(python(&p, "len(d['files'])"), 3);

    let flat = t.join("flat.tar");
    let f = json_ok(&["flatten", &image, &format!("docker-archive:{}", flat.display())]);
    assert_eq!(python(&f, "[d['target'].startswith('docker-archive:'), len(d['manifests'])]"), serde_json::json!([true, 1]));

    // have (issue 17) and repair (issue 20): the newer commands report JSON as well;
    // watch's --json events are read in tests/watch.rs.
    let have = t.join("have.txt");
    let h = json_ok(&["have", &format!("oci:{}", oci.display()), "-o", have.to_str().unwrap()]);
    assert_eq!(
        python(&h, "[d['blobs'] > 0, d['chains'], d['targets'][0]['target'].startswith('oci:')]"),
        serde_json::json!([true, 0, true])
    );
    let par = t.join("par");
    ferry_ok(&["-q", "save", &image, "-o", par.to_str().unwrap(), "-n", "p", "--split", "200K", "--parity", "1", "--compress", "none"]);
    std::fs::remove_file(par.join("p.tar.002")).unwrap();
    let fixed = t.join("fixed");
    let r = json_ok(&["repair", par.join("p.sha256").to_str().unwrap(), "-o", fixed.to_str().unwrap()]);
    assert_eq!(
        python(&r, "[[(p['name'], p['problem']) for p in d['rebuilt']], d['written'] > 2]"),
        serde_json::json!([[["p.tar.002", "missing"]], true])
    );
}

#[test]
fn errors_are_json_on_stderr_with_the_exit_code_and_a_hint() {
    let tmp = tempfile::tempdir().unwrap();
    let r = ferry(&["verify", tmp.path().join("nothing.sha256").to_str().unwrap(), "--json"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    let e = python(r.stderr.trim(), "[d['exit'], 'no such bundle' in d['error'], bool(d['hint'])]");
    assert_eq!(e, serde_json::json!([2, true, true]));

    // A damaged bundle: exit 3 in the JSON too.
    let usb = tmp.path().join("usb");
    let image = format!("docker-archive:{}", fixture("docker20-whiteout.docker.tar.gz").display());
    ferry_ok(&["save", &image, "-o", usb.to_str().unwrap(), "-n", "x"]);
    let artifact = usb.join("x.tar.zst");
    let mut bytes = std::fs::read(&artifact).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&artifact, bytes).unwrap();
    let r = ferry(&["verify", usb.join("x.sha256").to_str().unwrap(), "--json"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    let e = python(r.stderr.trim(), "[d['exit'], 'checksum mismatch' in d['error']]");
    assert_eq!(e, serde_json::json!([3, true]));
}
