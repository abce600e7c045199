//! Deltas driven by the receiver (issue 17, SPEC §6): `ferry have` writes what
//! a consumer holds; `ferry save --have` leaves that out; `load` refuses a
//! delta whose base the target lacks. Real binaries and real Docker 20.10
//! daemons (scripts/dockerd.sh); no mocks.
mod common;
mod support;
use common::*;
use std::collections::BTreeSet;
use std::path::Path;
use support::dockerd::Dockerd;

/// The blob and chain lines of a have-list, checking its header.
fn have_lines(path: &Path) -> (BTreeSet<String>, BTreeSet<String>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert_eq!(text.lines().next(), Some("# ferry have v1"), "{text}");
    let (mut blobs, mut chains) = (BTreeSet::new(), BTreeSet::new());
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        match line.strip_prefix("chain ") {
            Some(chain) => chains.insert(chain.to_string()),
            None => blobs.insert(line.to_string()),
        };
    }
    (blobs, chains)
}

/// Chain IDs as the OCI image spec defines them, computed here independently.
fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut chains: Vec<String> = Vec::new();
    for diff in diff_ids {
        let next = match chains.last() {
            None => diff.clone(),
            Some(parent) => format!("sha256:{}", sha256_hex(format!("{parent} {diff}").as_bytes())),
        };
        chains.push(next);
    }
    chains
}

/// The diff_ids of every image config of an OCI layout's (single-platform) manifests.
fn layout_diff_ids(dir: &Path) -> Vec<Vec<String>> {
    let blob = |digest: &str| -> serde_json::Value {
        let hex = digest.strip_prefix("sha256:").unwrap();
        serde_json::from_slice(&std::fs::read(dir.join("blobs/sha256").join(hex)).unwrap()).unwrap()
    };
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let mut stacks = Vec::new();
    for entry in index["manifests"].as_array().unwrap() {
        let manifest = blob(entry["digest"].as_str().unwrap());
        let config = blob(manifest["config"]["digest"].as_str().unwrap());
        stacks.push(config["rootfs"]["diff_ids"].as_array().unwrap().iter().map(|d| d.as_str().unwrap().to_string()).collect());
    }
    stacks
}

const LAYOUT: &str = "skopeo-gzip.oci";

#[test]
fn have_of_an_oci_layout_lists_every_blob_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("consumer.have");
    let layout = fixture(LAYOUT);
    let r = ferry(&["have", &format!("oci:{}", layout.display()), "-o", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let (blobs, chains) = have_lines(&out);
    assert_eq!(blobs, layout_blobs(&layout).into_iter().collect::<BTreeSet<_>>());
    assert!(chains.is_empty(), "an OCI layout is blob-addressed: {chains:?}");
    assert!(r.stderr.contains("8 blob(s)"), "{}", r.stderr);
    // Only the have-list was written beside it.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn have_of_a_bundle_lists_what_it_carried_and_checks_it_first() {
    let dir = tempfile::tempdir().unwrap();
    let bundles = dir.path().join("usb");
    let layout = fixture(LAYOUT);
    ferry_ok(&["save", &format!("oci:{}", layout.display()), "-o", bundles.to_str().unwrap(), "-n", "rel1", "-q"]);
    let out = dir.path().join("rel1.have");
    let source = format!("{}/rel1", bundles.display());

    // Its content is read, so its signature is checked first, as load does.
    let r = ferry(&["have", &source, "-o", out.to_str().unwrap()]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("unsigned"), "{}", r.stderr);
    assert!(!out.exists(), "nothing is written for a refused bundle");

    let r = ferry(&["have", &source, "--allow-unsigned", "-o", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let (blobs, chains) = have_lines(&out);
    assert_eq!(blobs, layout_blobs(&layout).into_iter().collect::<BTreeSet<_>>());
    let expected: BTreeSet<String> = layout_diff_ids(&layout).iter().flat_map(|s| chain_ids(s)).collect();
    assert!(!expected.is_empty());
    assert_eq!(chains, expected);

    // A damaged bundle is refused (exit 3) and no have-list appears.
    let artifact = bundles.join("rel1.tar.zst");
    let mut bytes = std::fs::read(&artifact).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    std::fs::write(&artifact, bytes).unwrap();
    let damaged = dir.path().join("damaged.have");
    let r = ferry(&["have", &source, "--allow-unsigned", "-o", damaged.to_str().unwrap()]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(!damaged.exists());
}

#[test]
fn have_of_a_docker_daemon_lists_the_chain_ids_docker_stores() {
    let daemon = Dockerd::start();
    daemon.import_busybox("ferry-test/base:1");
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM ferry-test/base:1\nRUN echo one > /one\nRUN echo two > /two\nCMD [\"cat\", \"/one\", \"/two\"]\n",
    )
    .unwrap();
    let built = daemon.command().env("DOCKER_BUILDKIT", "0").args(["build", "-q", "-t", "app:1"]).arg(ctx.path()).output().unwrap();
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    let dir = tempfile::tempdir().unwrap();
    let env = [("DOCKER_HOST", daemon.host.as_str())];

    let all = dir.path().join("all.have");
    let r = ferry_env(&["have", "docker-daemon:", "-o", all.to_str().unwrap()], &env);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let (blobs, chains) = have_lines(&all);
    assert!(blobs.is_empty(), "Docker holds layers by chain, not blobs: {blobs:?}");
    // Docker's own layer store is named by chain ID: the oracle.
    let layerdb = daemon.dir().join("root/image/vfs/layerdb/sha256");
    let stored: BTreeSet<String> =
        std::fs::read_dir(&layerdb).unwrap().map(|e| format!("sha256:{}", e.unwrap().file_name().to_string_lossy())).collect();
    assert_eq!(stored.len(), 3, "{stored:?}");
    assert_eq!(chains, stored);

    // One image: its own stack, computed from what `docker image inspect` says.
    let one = dir.path().join("app.have");
    let r = ferry_env(&["have", "docker-daemon:app:1", "-o", one.to_str().unwrap()], &env);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let inspect: serde_json::Value = serde_json::from_str(&daemon.docker_ok(&["image", "inspect", "app:1"])).unwrap();
    let diff_ids: Vec<String> =
        inspect[0]["RootFS"]["Layers"].as_array().unwrap().iter().map(|d| d.as_str().unwrap().to_string()).collect();
    assert_eq!(have_lines(&one).1, chain_ids(&diff_ids).into_iter().collect::<BTreeSet<_>>());

    let missing = dir.path().join("missing.have");
    let r = ferry_env(&["have", "docker-daemon:nope:1", "-o", missing.to_str().unwrap()], &env);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("nope:1 not found"), "{}", r.stderr);
    assert!(!missing.exists());
}

#[test]
fn have_refuses_targets_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.have");
    let r = ferry(&["have", "docker-archive:/nonexistent.tar", "-o", out.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("cannot read docker-archive:"), "{}", r.stderr);
    let r = ferry(&["have", &format!("oci:{}", dir.path().join("none").display()), "-o", out.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("no index.json"), "{}", r.stderr);
    assert!(!out.exists());
    let r = ferry(&["--json", "have", &format!("oci:{}", fixture(LAYOUT).display()), "-o", "-"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stdout.is_empty() && r.stderr.contains("both write to stdout"), "{}", r.stderr);
    let r = ferry(&["have", &format!("oci:{}", fixture(LAYOUT).display()), "-o", "-"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("# ferry have v1\n"), "{}", r.stdout);
}

/// A have-list of the fixture layout, written by ferry.
fn layout_have(dir: &Path) -> std::path::PathBuf {
    let have = dir.join("target.have");
    ferry_ok(&["have", &format!("oci:{}", fixture(LAYOUT).display()), "-o", have.to_str().unwrap(), "-q"]);
    have
}

/// `DIR/delta/app`: the fixture layout saved against its own have-list (every layer left out).
fn layout_delta(dir: &Path) -> std::path::PathBuf {
    let have = layout_have(dir);
    let delta = dir.join("delta");
    let layout = format!("oci:{}", fixture(LAYOUT).display());
    ferry_ok(&["save", &layout, "--have", have.to_str().unwrap(), "-o", delta.to_str().unwrap(), "-n", "app", "-q"]);
    delta
}

/// The fixture's layer digests and sizes, from its manifest.
fn layout_layers() -> Vec<(String, u64)> {
    let dir = fixture(LAYOUT);
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let hex = index["manifests"][0]["digest"].as_str().unwrap().strip_prefix("sha256:").unwrap().to_string();
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("blobs/sha256").join(hex)).unwrap()).unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["digest"].as_str().unwrap().to_string(), l["size"].as_u64().unwrap()))
        .collect()
}

fn only_entries(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir).map(|r| r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default()
}

#[test]
fn save_with_a_have_list_leaves_out_the_layers_it_proves_and_standard_tools_accept_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let have = layout_have(d);
    ferry_ok(&["keygen", "-o", d.join("keys").to_str().unwrap(), "--no-password", "-q"]);
    let key = d.join("keys/ferry.key");
    let public = d.join("keys/ferry.pub");
    let source = format!("oci:{}", fixture(LAYOUT).display());
    let (full, delta) = (d.join("full"), d.join("delta"));
    ferry_ok(&["save", &source, "-o", full.to_str().unwrap(), "-n", "app", "-q"]);
    let r = ferry(&[
        "save",
        &source,
        "--have",
        have.to_str().unwrap(),
        "--sign",
        key.to_str().unwrap(),
        "-o",
        delta.to_str().unwrap(),
        "-n",
        "app",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let layers = layout_layers();
    let saved: u64 = layers.iter().map(|l| l.1).sum();
    let line = format!("delta: {} layers left out, {:.1} MiB saved", layers.len(), saved as f64 / 1048576.0);
    assert!(r.stderr.contains(&line), "wanted {line:?} in:\n{}", r.stderr);

    // The summary says so too (--json).
    let json_out = d.join("json");
    let r = ferry(&["--json", "save", &source, "--have", have.to_str().unwrap(), "-o", json_out.to_str().unwrap(), "-n", "app"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let summary: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(summary["left_out"], layers.len());
    assert_eq!(summary["saved_bytes"], saved);
    let listed: BTreeSet<String> =
        summary["left_out_layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_string()).collect();
    assert_eq!(listed, layers.iter().map(|l| l.0.clone()).collect());

    // The artifact carries no left-out layer, but its configs and manifests, and records what it left out.
    let artifact = std::fs::read(delta.join("app.tar.zst")).unwrap();
    let entries = tar_files(&decompress(&artifact));
    let names: BTreeSet<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    for (digest, _) in &layers {
        assert!(!names.contains(format!("blobs/sha256/{}", &digest[7..]).as_str()), "{digest} was carried");
    }
    let blobs = names.iter().filter(|n| n.starts_with("blobs/sha256/") && n.len() > 13).count();
    assert_eq!(blobs, layout_blobs(&fixture(LAYOUT)).len() - layers.len());
    let index: serde_json::Value = serde_json::from_slice(&entries.iter().find(|e| e.0 == "index.json").unwrap().2).unwrap();
    let have_digest = format!("sha256:{}", sha256_hex(&std::fs::read(&have).unwrap()));
    assert_eq!(index["annotations"]["dev.ferry.bundle.delta-base"], have_digest.as_str());
    let recorded: serde_json::Value = serde_json::from_str(index["annotations"]["dev.ferry.bundle.left-out"].as_str().unwrap()).unwrap();
    assert_eq!(recorded.as_array().unwrap().len(), layers.len());
    assert_eq!(recorded[0]["have"], have_digest.as_str());
    // manifest.json still names every layer (Docker skips the ones whose chain it has).
    let manifest_json: serde_json::Value = serde_json::from_slice(&entries.iter().find(|e| e.0 == "manifest.json").unwrap().2).unwrap();
    assert_eq!(manifest_json[0]["Layers"].as_array().unwrap().len(), layers.len());
    let full_size = std::fs::metadata(full.join("app.tar.zst")).unwrap().len();
    assert!((artifact.len() as u64) * 100 < full_size * 15, "delta {} bytes vs full {full_size}", artifact.len());

    // Standard tools accept it as they accept any bundle.
    sh(&format!("cd {} && sha256sum -c app.sha256 && minisign -Vm app.sha256 -p {}", delta.display(), public.display()));

    // verify accepts exactly these as absent and lists what the target must hold; inspect shows it.
    let r = ferry(&["verify", delta.to_str().unwrap(), "-k", public.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("the target must hold:"), "{}", r.stderr);
    assert!(r.stderr.contains(&layers[0].0), "{}", r.stderr);
    let r = ferry(&["inspect", delta.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains(&format!("delta:       yes, against have-list(s) {have_digest}")), "{}", r.stdout);
    assert!(r.stdout.contains("(left out)"), "{}", r.stdout);
    let r = ferry(&["--json", "inspect", delta.to_str().unwrap()]);
    let info: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(info["left_out"].as_array().unwrap().len(), layers.len());

    // A full bundle is not a delta: an empty have-list leaves nothing out.
    let empty = d.join("empty.have");
    std::fs::write(&empty, "# ferry have v1\n").unwrap();
    let r = ferry(&["save", &source, "--have", empty.to_str().unwrap(), "-o", d.join("none").to_str().unwrap(), "-n", "app"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("delta: 0 layers left out, 0.0 MiB saved"), "{}", r.stderr);
    let r = ferry(&["--json", "inspect", d.join("none").to_str().unwrap()]);
    let info: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(info["left_out"].as_array().unwrap().is_empty() && info["delta_base"].is_null(), "{info}");
}

#[test]
fn a_delta_into_an_archive_target_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let delta = layout_delta(d);
    for target in ["oci-archive", "docker-archive"] {
        let out = d.join(format!("{target}.tar"));
        let r = ferry(&["load", delta.to_str().unwrap(), "--allow-unsigned", "--into", &format!("{target}:{}", out.display())]);
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(r.stderr.contains("is a delta") || r.stderr.contains("a delta"), "{}", r.stderr);
        assert!(!out.exists(), "{target}: nothing is written");
    }
    assert_eq!(only_entries(d), ["delta", "target.have"].iter().map(|s| s.to_string()).collect());
}

/// A change to a delta's record of its left-out layers.
type RecordEdit = dyn Fn(&mut serde_json::Value);

/// Rewrite a delta bundle's index.json annotation `key` with `edit` (and re-seal the checksums).
fn edit_record(bundle: &Path, edit: impl Fn(&mut serde_json::Value)) {
    let artifact = bundle.join("app.tar.zst");
    let entries = tar_files(&decompress(&std::fs::read(&artifact).unwrap()));
    let mut tar = RawTar::new();
    for (name, kind, data, link) in entries {
        if name == "index.json" {
            let mut index: serde_json::Value = serde_json::from_slice(&data).unwrap();
            let ann = &mut index["annotations"]["dev.ferry.bundle.left-out"];
            let mut record: serde_json::Value = serde_json::from_str(ann.as_str().unwrap()).unwrap();
            edit(&mut record);
            *ann = serde_json::Value::String(record.to_string());
            tar.entry(&name, kind, &serde_json::to_vec(&index).unwrap(), &link);
        } else {
            tar.entry(&name, kind, &data, &link);
        }
    }
    write_bundle(bundle, "app", &zstd_bytes(&tar.finish()));
}

#[test]
fn the_verifier_accepts_exactly_the_recorded_layers_as_absent() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let have = layout_have(d);
    let layers = layout_layers();
    assert!(layers.len() >= 2, "the fixture has several layers");
    // Leave out only the first layer: a have-list of its blob alone.
    let first = d.join("first.have");
    std::fs::write(&first, format!("# ferry have v1\n{}\n", layers[0].0)).unwrap();
    let make = |name: &str, have: &Path| -> std::path::PathBuf {
        let out = d.join(name);
        ferry_ok(&[
            "save",
            &format!("oci:{}", fixture(LAYOUT).display()),
            "--have",
            have.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "-n",
            "app",
            "-q",
        ]);
        out
    };
    let verify = |bundle: &Path| ferry(&["verify", bundle.to_str().unwrap()]);
    assert_eq!(verify(&make("ok", &first)).code, 0);

    let cases: Vec<(&str, Box<RecordEdit>, &str)> = vec![
        // Dropping the record: the absent layer is no longer accepted.
        ("unrecorded", Box::new(|r| r.as_array_mut().unwrap().truncate(0)), "leaves out at least one layer"),
        ("wrong size", Box::new(|r| r[0]["size"] = (r[0]["size"].as_u64().unwrap() + 1).into()), "no manifest has it as one of"),
        ("wrong diff_id", Box::new(|r| r[0]["diffID"] = format!("sha256:{}", "0".repeat(64)).into()), "disagrees with its manifests"),
        (
            "wrong chain",
            Box::new(|r| r[0]["chainIDs"] = serde_json::json!([format!("sha256:{}", "1".repeat(64))])),
            "disagrees with its manifests",
        ),
    ];
    for (what, edit, message) in cases {
        let bundle = make(what, &first);
        edit_record(&bundle, edit);
        let r = verify(&bundle);
        assert_eq!(r.code, 3, "{what}: {}", r.stderr);
        assert!(r.stderr.contains(message), "{what}: {}", r.stderr);
    }
    // A record naming a layer the artifact still carries.
    let bundle = make("carried", &first);
    let second = layers[1].clone();
    edit_record(&bundle, move |r| {
        let mut extra = r[0].clone();
        extra["digest"] = second.0.clone().into();
        extra["size"] = second.1.into();
        let records = r.as_array_mut().unwrap();
        records.push(extra);
        // The record is sorted by digest.
        records.sort_by(|a, b| a["digest"].as_str().cmp(&b["digest"].as_str()));
    });
    let r = verify(&bundle);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("recorded as left out, but the artifact holds it"), "{}", r.stderr);
    // Out of order (or twice): refused, the record is looked up by binary search.
    let bundle = make("twice", &first);
    edit_record(&bundle, |r| {
        let again = r[0].clone();
        r.as_array_mut().unwrap().push(again);
    });
    let r = verify(&bundle);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("is listed twice or out of order"), "{}", r.stderr);
    // A record of the whole image, on an artifact that still has a layer but claims none missing is fine; one that misses
    // a layer it does not record is not: the full delta with one record removed.
    let bundle = make("missing", &have);
    edit_record(&bundle, |r| {
        r.as_array_mut().unwrap().remove(0);
    });
    let r = verify(&bundle);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("is referenced but missing from the artifact"), "{}", r.stderr);
}

/// Write `contents` as a have-list and run `save --have` with it under the RSS meter.
fn hostile_have(name: &str, contents: &[u8]) -> (Run, u64, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let have = dir.path().join(name);
    std::fs::write(&have, contents).unwrap();
    let out = dir.path().join("out");
    let (r, kib) = ferry_rss(
        &["save", &format!("oci:{}", fixture(LAYOUT).display()), "--have", have.to_str().unwrap(), "-o", out.to_str().unwrap()],
        &[],
    );
    assert!(!out.exists(), "{name}: nothing is written for a refused have-list");
    assert!(kib < HOSTILE_RSS_LIMIT_KIB, "{name}: peak RSS {kib} KiB");
    eprintln!("{name}: exit {}, {kib} KiB: {}", r.code, r.stderr.lines().next().unwrap_or(""));
    (r, kib, dir)
}

#[test]
fn hostile_have_lists_are_refused_naming_the_line() {
    let digest = format!("sha256:{}", "a".repeat(64));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("no-header.have", format!("{digest}\n").into_bytes(), "no-header.have:1: the first line must be \"# ferry have v1\""),
        ("empty.have", Vec::new(), "empty.have:1: empty file"),
        ("v2.have", b"# ferry have v2\n".to_vec(), "v2.have:1: the first line must be"),
        ("upper.have", format!("# ferry have v1\n# ok\n{}\n", digest.to_uppercase()).into_bytes(), "upper.have:3: \"SHA256:"),
        ("short.have", b"# ferry have v1\nsha256:abc\n".to_vec(), "short.have:2: \"sha256:abc\" is not"),
        ("trailing.have", format!("# ferry have v1\n{digest} \n").into_bytes(), "trailing.have:2:"),
        ("chain.have", format!("# ferry have v1\nchain\t{digest}\n").into_bytes(), "chain.have:2:"),
        ("crlf.have", format!("# ferry have v1\r\n{digest}\r\n").into_bytes(), "crlf.have:1: carriage return"),
        ("binary.have", b"# ferry have v1\n\xff\xfe\x00\n".to_vec(), "binary.have:2: not UTF-8"),
        (
            "long-line.have",
            format!("# ferry have v1\n#{}\n", "x".repeat(1 << 20)).into_bytes(),
            "long-line.have:2: line longer than 4096 bytes",
        ),
        ("many-lines.have", [b"# ferry have v1\n".to_vec(), vec![b'\n'; 1 << 20]].concat(), "more than 1048576 lines"),
        ("escape.have", b"# ferry have v1\n\x1b]0;owned\x07\n".to_vec(), "escape.have:2:"),
    ];
    for (name, contents, message) in cases {
        let (r, _, _dir) = hostile_have(name, &contents);
        assert_eq!(r.code, 2, "{name}: {}", r.stderr);
        assert!(r.stderr.contains(message), "{name}: wanted {message:?} in {}", r.stderr);
        assert!(!r.stderr.contains('\u{1b}'), "{name}: control characters are escaped: {:?}", r.stderr);
        assert!(r.stderr.contains("hint: give a have-list written by `ferry have`"), "{name}: {}", r.stderr);
    }
}

#[test]
fn a_have_list_over_16_mib_is_refused_before_it_is_read() {
    let digest = format!("sha256:{}\n", "b".repeat(64));
    let mut big = b"# ferry have v1\n".to_vec();
    while big.len() <= 16 << 20 {
        big.extend_from_slice(digest.as_bytes());
    }
    let (r, kib, _dir) = hostile_have("big.have", &big);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("big.have: larger than 16 MiB"), "{}", r.stderr);
    assert!(kib < 20 * 1024, "refused from its size, not read: {kib} KiB");
    // At the bound, many distinct digests: parsed within the memory bound.
    let mut full = b"# ferry have v1\n".to_vec();
    let mut n = 0u64;
    while full.len() + 72 + 4 <= 16 << 20 {
        full.extend_from_slice(format!("sha256:{:064x}\n", n).as_bytes());
        n += 1;
    }
    let (r, kib, _dir) = hostile_have("full.have", &[full, b"bad\n".to_vec()].concat());
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains(&format!("full.have:{}: \"bad\"", n + 2)), "{}", r.stderr);
    eprintln!("16 MiB of distinct digests: {kib} KiB");
}

/// A FIFO planted as a have-list is refused at once, not read for ever.
#[test]
fn a_fifo_as_a_have_list_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("site.have");
    sh(&format!("mkfifo '{}'", fifo.display()));
    let out = dir.path().join("out");
    let (r, kib) = ferry_rss(
        &["save", &format!("oci:{}", fixture(LAYOUT).display()), "--have", fifo.to_str().unwrap(), "-o", out.to_str().unwrap()],
        &[],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("a have-list must be a regular file (it is a FIFO)"), "{}", r.stderr);
    assert!(!out.exists() && kib < HOSTILE_RSS_LIMIT_KIB);
}

fn build(daemon: &Dockerd, name: &str, dockerfile: &str) {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    let out = daemon.command().env("DOCKER_BUILDKIT", "0").args(["build", "-q", "-t", name]).arg(ctx.path()).output().unwrap();
    assert!(out.status.success(), "docker build {name} failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

fn at(daemon: &Dockerd, args: &[&str]) -> Run {
    ferry_env(args, &[("DOCKER_HOST", daemon.host.as_str())])
}

fn at_ok(daemon: &Dockerd, args: &[&str]) -> Run {
    let r = at(daemon, args);
    assert_eq!(r.code, 0, "ferry {args:?} (DOCKER_HOST={}):\n{}", daemon.host, r.stderr);
    r
}

fn run_image(daemon: &Dockerd, image: &str) -> String {
    daemon.docker_ok(&["run", "--rm", "--pull=never", "--network", "none", image]).trim_end().to_string()
}

fn artifact_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().contains(".tar"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

const APP_V1: &str = "FROM ferry-test/base:1\nRUN echo v1 > /version\nCMD [\"cat\", \"/version\"]\n";
const APP_V2: &str =
    "FROM ferry-test/base:1\nRUN echo v2 > /version && echo extra > /extra\nCMD [\"sh\", \"-c\", \"cat /version /extra\"]\n";
const APP_V2_OUTPUT: &str = "v2\nextra";

#[test]
fn delta_from_a_consumers_have_list_loads_into_docker_and_oci_and_fails_closed_elsewhere() {
    let daemons: Vec<_> = (0..3).map(|_| std::thread::spawn(Dockerd::start)).collect();
    let mut daemons = daemons.into_iter().map(|d| d.join().expect("start dockerd"));
    let (producer, consumer, empty) = (daemons.next().unwrap(), daemons.next().unwrap(), daemons.next().unwrap());
    producer.import_busybox("ferry-test/base:1");
    build(&producer, "app:1", APP_V1);
    build(&producer, "app:2", APP_V2);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p = |name: &str| d.join(name).to_str().unwrap().to_string();
    ferry_ok(&["keygen", "-o", &p("keys"), "--no-password", "-q"]);
    let (key, public) = (p("keys/ferry.key"), p("keys/ferry.pub"));

    // The consumer loaded v1, into Docker and into an OCI layout.
    at_ok(&producer, &["save", "docker-daemon:app:1", "--sign", &key, "-o", &p("v1"), "-n", "app-1", "-q"]);
    at_ok(&consumer, &["load", &p("v1"), "-k", &public, "-q"]);
    let layout = p("oci");
    ferry_ok(&["load", &p("v1"), "-k", &public, "--into", &format!("oci:{layout}"), "-q"]);

    // Have-lists from both; deltas of v2 against each.
    at_ok(&consumer, &["have", "docker-daemon:", "-o", &p("docker.have"), "-q"]);
    ferry_ok(&["have", &format!("oci:{layout}"), "-o", &p("oci.have"), "-q"]);
    at_ok(&producer, &["save", "docker-daemon:app:2", "--sign", &key, "-o", &p("full"), "-n", "app-2", "-q"]);
    let r = at_ok(
        &producer,
        &["save", "docker-daemon:app:2", "--have", &p("docker.have"), "--sign", &key, "-o", &p("delta-docker"), "-n", "app-2"],
    );
    assert!(r.stderr.contains("delta: 1 layers left out"), "{}", r.stderr);
    at_ok(
        &producer,
        &["save", "docker-daemon:app:2", "--have", &p("oci.have"), "--sign", &key, "-o", &p("delta-oci"), "-n", "app-2", "-q"],
    );
    let (full, delta) = (artifact_size(&d.join("full")), artifact_size(&d.join("delta-docker")));
    eprintln!("full bundle {full} bytes, delta {delta} bytes ({:.1} %)", delta as f64 * 100.0 / full as f64);
    assert!(delta * 100 < full * 15, "delta {delta} bytes is not < 15 % of the full bundle's {full}");
    assert!(artifact_size(&d.join("delta-oci")) * 100 < full * 15);

    // A sender-side delta, against the previous release's bundle (its .sha256): the same layers left out.
    ferry_ok(&["have", &p("v1/app-1.sha256"), "-k", &public, "-o", &p("v1.have"), "-q"]);
    at_ok(&producer, &["save", "docker-daemon:app:2", "--have", &p("v1.have"), "-o", &p("delta-sender"), "-n", "app-2", "-q"]);
    let left_out = |bundle: &str| -> serde_json::Value {
        let info: serde_json::Value = serde_json::from_str(&ferry_ok(&["--json", "inspect", &p(bundle)]).stdout).unwrap();
        info["left_out"].as_array().unwrap().iter().map(|l| l["digest"].clone()).collect()
    };
    assert_eq!(left_out("delta-sender"), left_out("delta-docker"));
    assert!(artifact_size(&d.join("delta-sender")) * 100 < full * 15);

    // Standard tools still accept delta bundles.
    for bundle in ["delta-docker", "delta-oci"] {
        sh(&format!("cd {} && sha256sum -c app-2.sha256 && minisign -Vm app-2.sha256 -p {public}", d.join(bundle).display()));
    }

    // Docker 20.10's own loader skips a layer whose chain it has: the tar's
    // manifest.json names the absent layer's path.
    let tar = d.join("delta.tar");
    sh(&format!("zstd -dqc {}/app-2.tar.zst > {}", d.join("delta-docker").display(), tar.display()));
    consumer.docker_ok(&["load", "-i", tar.to_str().unwrap()]);
    assert_eq!(run_image(&consumer, "app:2"), APP_V2_OUTPUT);
    consumer.docker_ok(&["rmi", "app:2"]);

    // ferry loads it into the consumer's Docker ...
    at_ok(&consumer, &["load", &p("delta-docker"), "-k", &public]);
    assert_eq!(run_image(&consumer, "app:2"), APP_V2_OUTPUT);
    assert_eq!(run_image(&consumer, "app:1"), "v1");
    // ... and into its OCI layout, which skopeo reads.
    ferry_ok(&["load", &p("delta-oci"), "-k", &public, "--into", &format!("oci:{layout}"), "-q"]);
    let inspected = sh(&format!("skopeo inspect oci:{layout}:2"));
    let inspected: serde_json::Value = serde_json::from_str(&inspected).unwrap();
    assert_eq!(inspected["Layers"].as_array().unwrap().len(), 2, "{inspected}");
    for layer in inspected["Layers"].as_array().unwrap() {
        let hex = layer.as_str().unwrap().strip_prefix("sha256:").unwrap();
        assert!(d.join("oci/blobs/sha256").join(hex).is_file(), "{layer} in the layout");
    }

    // The same delta where the base is missing: exit 1, a missing digest named, nothing written.
    let images_before = empty.docker_ok(&["images", "-aq"]);
    let r = at(&empty, &["load", &p("delta-docker"), "-k", &public]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let recorded = ferry_ok(&["--json", "inspect", &p("delta-docker")]);
    let info: serde_json::Value = serde_json::from_str(&recorded.stdout).unwrap();
    let missing = info["left_out"][0]["digest"].as_str().unwrap().to_string();
    assert!(r.stderr.contains(&missing) && r.stderr.contains("lacks 1 of the 1 layer(s)"), "{}", r.stderr);
    assert_eq!(empty.docker_ok(&["images", "-aq"]), images_before);
    let fresh = d.join("fresh");
    let r = ferry(&["load", &p("delta-oci"), "-k", &public, "--into", &format!("oci:{}", fresh.display())]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("sha256:") && r.stderr.contains("lacks"), "{}", r.stderr);
    assert!(!fresh.exists(), "nothing is written");
    assert!(!std::fs::read_dir(d).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().contains("staging")), "no staging left");
}

#[test]
fn a_delta_into_an_oci_layout_missing_a_base_layer_or_with_a_wrong_size_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let delta = layout_delta(d);
    // A copy of the fixture layout holds everything: the delta loads.
    let target = d.join("target");
    sh(&format!("cp -r {} {}", fixture(LAYOUT).display(), target.display()));
    let r = ferry(&["load", delta.to_str().unwrap(), "--allow-unsigned", "--into", &format!("oci:{}:again", target.display())]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let index = std::fs::read_to_string(target.join("index.json")).unwrap();
    assert!(index.contains("\"again\""), "{index}");
    let layers = layout_layers();
    let blob = |i: usize| target.join("blobs/sha256").join(&layers[i].0[7..]);
    // A base layer of the right size but other bytes: --deep hashes it and refuses.
    let good = std::fs::read(blob(0)).unwrap();
    let mut bad = good.clone();
    bad[good.len() / 2] ^= 1;
    std::fs::write(blob(0), &bad).unwrap();
    let r = ferry(&["load", delta.to_str().unwrap(), "--allow-unsigned", "--deep", "--into", &format!("oci:{}:deep", target.display())]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("lacks 1 of the {} layer(s) this delta bundle leaves out: {}", layers.len(), layers[0].0)),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read_to_string(target.join("index.json")).unwrap(), index);
    std::fs::write(blob(0), &good).unwrap();
    let r = ferry(&["load", delta.to_str().unwrap(), "--allow-unsigned", "--deep", "--into", &format!("oci:{}:deep", target.display())]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let index = std::fs::read_to_string(target.join("index.json")).unwrap();
    // One layer gone, another cut short: both named, index.json untouched.
    std::fs::remove_file(blob(0)).unwrap();
    std::fs::write(blob(1), b"short").unwrap();
    let r = ferry(&["load", delta.to_str().unwrap(), "--allow-unsigned", "--into", &format!("oci:{}:third", target.display())]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains(&layers[0].0) && r.stderr.contains(&layers[1].0), "{}", r.stderr);
    assert!(r.stderr.contains("hint: nothing was written"), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(target.join("index.json")).unwrap(), index);
}
