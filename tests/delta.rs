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
}
