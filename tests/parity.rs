//! Parity parts (issue 20): `save --split SIZE --parity N` on real fixtures;
//! parts deleted and damaged on disk and on a real nginx; `verify`, `load`,
//! `pull` read past them and `repair` writes them back. Real consumers check
//! the outcome: `sha256sum -c`, `minisign -V`, `age -d | zstd -d | tar`, and
//! `umoci` on the loaded layout.
mod common;
#[path = "../transports/tests/support/mod.rs"]
mod servers;

use common::{ferry, ferry_ok, fixture, flip_byte, require, sh};
use std::fs;
use std::path::Path;

fn image() -> String {
    format!("docker-archive:{}", fixture("multi.docker.tar.gz").display())
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// A --split SIZE that cuts this fixture's artifact into 8 data parts.
fn split_for_eight(extra: &[&str]) -> String {
    let probe = tempfile::tempdir().unwrap();
    let out = probe.path().join("b");
    let mut args = vec!["save", image_ref(), "-o", out.to_str().unwrap(), "-n", "p", "--json"];
    args.extend_from_slice(extra);
    let r = ferry_ok(&args);
    let size = json(&r.stdout)["size"].as_u64().unwrap();
    // A little over an eighth: the 8th part is nearly full, so a few bytes more or less still make 8.
    (size / 8 + 1024).to_string()
}

fn image_ref() -> &'static str {
    static IMAGE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    IMAGE.get_or_init(image)
}

/// Save the fixture with `--parity 2` into `dir` as bundle `p`; returns the files in STEM.sha256 order.
fn save_with_parity(dir: &Path, extra: &[&str]) -> Vec<String> {
    let split = split_for_eight(extra);
    let mut args = vec!["save", image_ref(), "-o", dir.to_str().unwrap(), "-n", "p", "--split", &split, "--parity", "2", "--json"];
    args.extend_from_slice(extra);
    let r = ferry_ok(&args);
    let report = json(&r.stdout);
    assert_eq!(report["parity"]["data"], 8, "8 data parts: {report}");
    assert_eq!(report["parity"]["parity"], 2);
    let files: Vec<String> = report["files"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(files.len(), 10);
    assert!(files[8].ends_with(".parity.000") && files[9].ends_with(".parity.001"), "{files:?}");
    files
}

fn sha256sum_c(dir: &Path) -> bool {
    require("sha256sum");
    std::process::Command::new("sha256sum").args(["-c", "--strict", "--quiet", "p.sha256"]).current_dir(dir).status().unwrap().success()
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn assert_identical(a: &Path, b: &Path, files: &[String]) {
    for f in files {
        assert!(fs::read(a.join(f)).unwrap() == fs::read(b.join(f)).unwrap(), "{f} differs from the original");
    }
}

fn bad_names(report: &serde_json::Value, key: &str) -> Vec<String> {
    report[key].as_array().unwrap_or_else(|| panic!("no {key}: {report}")).iter().map(|b| b["name"].as_str().unwrap().to_string()).collect()
}

#[test]
fn one_part_deleted_and_one_damaged_verify_load_and_repair() {
    let tmp = tempfile::tempdir().unwrap();
    let (usb, pristine) = (tmp.path().join("usb"), tmp.path().join("pristine"));
    let files = save_with_parity(&usb, &[]);
    assert!(sha256sum_c(&usb), "sha256sum -c accepts STEM.sha256 with its parity line");
    // `cat ARTIFACT.*` still joins the data parts alone.
    let joined = sh(&format!("cd {} && cat {}.* | zstd -dc | tar -t | head -3", usb.display(), files[0].trim_end_matches(".000")));
    assert!(joined.contains("oci-layout"), "{joined}");
    copy_dir(&usb, &pristine);

    fs::remove_file(usb.join(&files[2])).unwrap();
    flip_byte(&usb.join(&files[5]), 1000);
    assert!(!sha256sum_c(&usb));

    let r = ferry(&["verify", usb.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains(&format!("{} (missing)", files[2])) && r.stderr.contains(&format!("{} (damaged)", files[5])), "{}", r.stderr);
    let r = ferry(&["verify", usb.to_str().unwrap(), "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = json(&r.stdout);
    assert_eq!(bad_names(&report, "bad_parts"), vec![files[2].clone(), files[5].clone()]);
    assert_eq!(report["bad_parts"][0]["problem"], "missing");
    assert_eq!(report["bad_parts"][1]["problem"], "damaged");
    assert_eq!(report["blobs"], 11);

    let oci = tmp.path().join("oci");
    let r = ferry(&["load", usb.to_str().unwrap(), "--allow-unsigned", "--into", &format!("oci:{}", oci.display()), "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(bad_names(&json(&r.stdout), "bad_parts"), vec![files[2].clone(), files[5].clone()]);
    require("umoci");
    let tags = sh(&format!("umoci ls --layout {}", oci.display()));
    assert!(tags.contains("v1"), "umoci reads the loaded layout: {tags}");

    // Inspect shows the redundancy and the bad parts (a part missing: every part is hashed).
    let r = ferry_ok(&["inspect", usb.to_str().unwrap(), "--json"]);
    let info = json(&r.stdout);
    assert_eq!(
        (info["parity"]["data_parts"].as_u64(), info["parity"]["parity_parts"].as_u64(), info["parity"]["may_lose"].as_u64()),
        (Some(8), Some(2), Some(2))
    );
    assert_eq!(bad_names(&info["parity"], "bad_parts"), vec![files[2].clone(), files[5].clone()]);
    let r = ferry_ok(&["inspect", usb.to_str().unwrap()]);
    assert!(r.stdout.contains("8 data + 2 parity parts") && r.stdout.contains("any 2 may be lost"), "{}", r.stdout);

    // Repair into another directory: a whole bundle there, the source untouched.
    let elsewhere = tmp.path().join("elsewhere");
    let r = ferry(&["repair", usb.to_str().unwrap(), "-o", elsewhere.to_str().unwrap(), "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(bad_names(&json(&r.stdout), "rebuilt"), vec![files[2].clone(), files[5].clone()]);
    assert!(sha256sum_c(&elsewhere));
    assert_identical(&elsewhere, &pristine, &files);
    assert!(!usb.join(&files[2]).exists());

    // Repair in place: only the bad parts are written, byte-identical to the originals.
    let r = ferry(&["repair", usb.to_str().unwrap(), "-o", usb.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("rebuilt") && r.stderr.contains(&files[2]) && r.stderr.contains(&files[5]), "{}", r.stderr);
    assert!(sha256sum_c(&usb), "sha256sum -c passes after repair");
    assert_identical(&usb, &pristine, &files);
    let leftovers: Vec<_> =
        fs::read_dir(&usb).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).filter(|n| n.ends_with(".partial")).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let r = ferry_ok(&["repair", usb.to_str().unwrap(), "-o", usb.to_str().unwrap()]);
    assert!(r.stderr.contains("nothing to rebuild"), "{}", r.stderr);
}

#[test]
fn damaged_parity_and_last_part_are_rebuilt_too() {
    let tmp = tempfile::tempdir().unwrap();
    let (usb, pristine) = (tmp.path().join("usb"), tmp.path().join("pristine"));
    let files = save_with_parity(&usb, &[]);
    copy_dir(&usb, &pristine);
    // The short last data part, and a parity part cut short.
    fs::remove_file(usb.join(&files[7])).unwrap();
    let p1 = usb.join(&files[9]);
    let len = fs::metadata(&p1).unwrap().len();
    fs::OpenOptions::new().write(true).open(&p1).unwrap().set_len(len - 1).unwrap();
    let r = ferry(&["verify", usb.to_str().unwrap(), "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = json(&r.stdout);
    assert_eq!(bad_names(&report, "bad_parts"), vec![files[7].clone(), files[9].clone()]);
    assert_eq!(report["bad_parts"][1]["parity"], true);
    ferry_ok(&["repair", usb.to_str().unwrap(), "-o", usb.to_str().unwrap()]);
    assert!(sha256sum_c(&usb));
    assert_identical(&usb, &pristine, &files);
}

#[test]
fn three_bad_parts_are_refused_with_exit_3_naming_them() {
    let tmp = tempfile::tempdir().unwrap();
    let usb = tmp.path().join("usb");
    let files = save_with_parity(&usb, &[]);
    fs::remove_file(usb.join(&files[0])).unwrap();
    flip_byte(&usb.join(&files[3]), 7);
    flip_byte(&usb.join(&files[8]), 7);
    let oci = tmp.path().join("oci");
    for args in [
        vec!["verify", usb.to_str().unwrap()],
        vec!["load", usb.to_str().unwrap(), "--allow-unsigned", "--into", &format!("oci:{}", oci.display())],
        vec!["repair", usb.to_str().unwrap(), "-o", usb.to_str().unwrap()],
    ] {
        let r = ferry(&args);
        assert_eq!(r.code, 3, "{args:?}: {}", r.stderr);
        for f in [&files[0], &files[3], &files[8]] {
            assert!(r.stderr.contains(f.as_str()), "{args:?} names {f}: {}", r.stderr);
        }
        assert!(r.stderr.contains("3 parts are missing or damaged"), "{}", r.stderr);
    }
    assert!(!oci.join("index.json").exists(), "nothing was loaded");
    let r = ferry(&["verify", usb.to_str().unwrap(), "--json"]);
    assert_eq!(json(&r.stderr)["exit"], 3);
}

#[test]
fn signed_encrypted_split_parity_round_trip() {
    require("minisign");
    require("age");
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    ferry_ok(&["keygen", "--no-password", "-o", keys.to_str().unwrap()]);
    let age = fs::read_to_string(keys.join("ferry.age")).unwrap();
    let recipient = age.lines().find_map(|l| l.strip_prefix("# public key: ")).unwrap().to_string();
    let key = keys.join("ferry.key").display().to_string();
    let (public, identity) = (keys.join("ferry.pub").display().to_string(), keys.join("ferry.age").display().to_string());
    let usb = tmp.path().join("usb");
    let pristine = tmp.path().join("pristine");
    let files = save_with_parity(&usb, &["--sign", &key, "-r", &recipient]);
    assert!(files[0].ends_with(".tar.zst.age.000"), "{files:?}");
    copy_dir(&usb, &pristine);
    // The signature covers STEM.sha256, which lists (and so covers) the parity parts.
    sh(&format!("minisign -Vm {0}/p.sha256 -p {public} -q", usb.display()));
    assert!(fs::read_to_string(usb.join("p.sha256")).unwrap().contains(&files[9]));

    fs::remove_file(usb.join(&files[0])).unwrap();
    flip_byte(&usb.join(&files[6]), 3);
    // Checksums only (no identity): the data parts are rebuilt and hashed.
    let r = ferry(&["verify", usb.to_str().unwrap(), "-k", &public, "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = json(&r.stdout);
    assert_eq!(report["checksums_only"], true);
    assert_eq!(bad_names(&report, "bad_parts"), vec![files[0].clone(), files[6].clone()]);
    let r = ferry(&["verify", usb.to_str().unwrap(), "-k", &public, "-i", &identity]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("signed by trusted key") && r.stderr.contains("rebuilt from parity"), "{}", r.stderr);
    let oci = tmp.path().join("oci");
    let r = ferry(&["load", usb.to_str().unwrap(), "-k", &public, "-i", &identity, "--into", &format!("oci:{}", oci.display())]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    let r = ferry(&["repair", usb.to_str().unwrap(), "-o", usb.to_str().unwrap(), "-k", &public]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(sha256sum_c(&usb));
    assert_identical(&usb, &pristine, &files);
    // Without ferry: signature, checksums, then the data parts joined, decrypted, decompressed.
    let artifact = files[0].trim_end_matches(".000");
    let listing = sh(&format!(
        "cd {0} && minisign -Vm p.sha256 -p {public} -q && sha256sum -c --quiet p.sha256 && cat {artifact}.* | age -d -i {identity} | zstd -dc | tar -t",
        usb.display()
    ));
    assert!(listing.contains("index.json") && listing.contains("blobs/sha256/"), "{listing}");

    // A repair checks the signature it is given a key for.
    let other = tmp.path().join("other");
    ferry_ok(&["keygen", "--no-password", "-o", other.to_str().unwrap()]);
    let r = ferry(&["repair", usb.to_str().unwrap(), "-o", usb.to_str().unwrap(), "-k", other.join("ferry.pub").to_str().unwrap()]);
    assert_eq!(r.code, 3, "{}", r.stderr);
}

#[test]
fn a_part_missing_on_an_http_server_is_rebuilt_by_pull_and_read_past_by_verify() {
    let server = servers::Nginx::start();
    let tmp = tempfile::tempdir().unwrap();
    let split = split_for_eight(&[]);
    // Saved straight to the server: the parity parts are accumulated locally and uploaded.
    let drop = server.url("drop/");
    let r = ferry(&["save", image_ref(), "-o", &drop, "-n", "p", "--split", &split, "--parity", "2", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let files: Vec<String> = json(&r.stdout)["files"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap().to_string()).collect();
    let www = server.www.join("drop");
    assert!(sha256sum_c(&www), "what nginx holds checks out");
    let pristine = tmp.path().join("pristine");
    copy_dir(&www, &pristine);
    fs::remove_file(www.join(&files[4])).unwrap();

    let r = ferry(&["verify", &format!("{drop}p")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains(&format!("{} (missing)", files[4])), "{}", r.stderr);

    let out = tmp.path().join("pulled");
    let r = ferry(&["pull", &format!("{drop}p"), "-o", out.to_str().unwrap(), "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = json(&r.stdout);
    assert_eq!(bad_names(&report, "rebuilt"), vec![files[4].clone()]);
    assert!(sha256sum_c(&out), "the pulled bundle is complete");
    assert_identical(&out, &pristine, &files);
    ferry_ok(&["verify", out.to_str().unwrap()]);

    // Three parts gone on the server: pull refuses, naming them, and publishes no STEM.sha256.
    fs::remove_file(www.join(&files[1])).unwrap();
    fs::remove_file(www.join(&files[9])).unwrap();
    let out3 = tmp.path().join("pulled3");
    let r = ferry(&["pull", &format!("{drop}p"), "-o", out3.to_str().unwrap()]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains(&files[1]) && r.stderr.contains(&files[4]) && r.stderr.contains(&files[9]), "{}", r.stderr);
    assert!(!out3.join("p.sha256").exists());
}

#[test]
fn bad_parity_options_are_usage_errors_and_leave_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o");
    let o = out.to_str().unwrap();
    let r = ferry(&["save", image_ref(), "-o", o, "--parity", "2"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--parity needs --split"), "{}", r.stderr);
    for n in ["0", "129"] {
        let r = ferry(&["save", image_ref(), "-o", o, "--split", "64K", "--parity", n]);
        assert_eq!(r.code, 2, "--parity {n}: {}", r.stderr);
    }
    // More parity parts than the artifact makes data parts: refused after writing, and cleaned up.
    let r = ferry(&["save", image_ref(), "-o", o, "-n", "p", "--split", "100M", "--parity", "2"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("more than the 1 data part"), "{}", r.stderr);
    let left: Vec<_> = fs::read_dir(&out).map(|d| d.map(|e| e.unwrap().file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "nothing left behind: {left:?}");
    // Too many data parts for the field (256 parts in all).
    let r = ferry(&["save", image_ref(), "-o", o, "-n", "p", "--split", "4K", "--parity", "100"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("at most 156 data parts"), "{}", r.stderr);
    let left: Vec<_> = fs::read_dir(&out).map(|d| d.map(|e| e.unwrap().file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "nothing left behind: {left:?}");
    // Repair of a bundle without parity.
    ferry_ok(&["save", image_ref(), "-o", o, "-n", "plain"]);
    let r = ferry(&["repair", &out.join("plain.sha256").display().to_string(), "-o", o]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}

#[test]
fn a_tampered_parity_line_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let usb = tmp.path().join("usb");
    save_with_parity(&usb, &[]);
    let sums = usb.join("p.sha256");
    let text = fs::read_to_string(&sums).unwrap();
    for (from, to) in [("data=8", "data=7"), ("parity=2", "parity=3"), ("data=8", "data=008")] {
        fs::write(&sums, text.replacen(from, to, 1)).unwrap();
        let r = ferry(&["verify", usb.to_str().unwrap()]);
        assert_eq!(r.code, 3, "{from} -> {to}: {}", r.stderr);
    }
    // A lying part size: the parts are not what the line says.
    let bigger = text.lines().next().unwrap().split(' ').find(|f| f.starts_with("part-size=")).unwrap().to_string();
    let n: u64 = bigger.trim_start_matches("part-size=").parse().unwrap();
    fs::write(&sums, text.replacen(&bigger, &format!("part-size={}", n + 1), 1)).unwrap();
    let r = ferry(&["verify", usb.to_str().unwrap()]);
    assert_eq!(r.code, 3, "{}", r.stderr);
}
