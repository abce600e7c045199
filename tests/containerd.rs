//! `containerd:` (issue 18): load into, save from and have-lists of a real
//! containerd 1.6 started per test (tests/support/containerd.rs), checked with
//! `ctr` as the reference client: image records, digests, `ctr images check`,
//! and containers run from what ferry unpacked (overlayfs snapshotter).
mod common;
mod support;
use common::*;
use std::path::Path;
use support::containerd::Containerd;

const NS: &str = "k8s.io";

/// ferry with the containerd socket in CONTAINERD_ADDRESS.
fn ferry_at(ctd: &Containerd, args: &[&str]) -> Run {
    ferry_env(args, &[("CONTAINERD_ADDRESS", ctd.socket.to_str().unwrap())])
}

fn ferry_at_ok(ctd: &Containerd, args: &[&str]) -> Run {
    let r = ferry_at(ctd, args);
    assert_eq!(r.code, 0, "ferry {} failed:\n{}\ncontainerd log:\n{}", args.join(" "), r.stderr, ctd.log());
    r
}

fn save(source: &str, out: &Path, extra: &[&str]) {
    let mut args = vec!["save", source, "-o", out.to_str().unwrap(), "-n", "b"];
    args.extend_from_slice(extra);
    ferry_ok(&args);
}

fn load(ctd: &Containerd, bundle: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["--json", "load", "--allow-unsigned", bundle.to_str().unwrap(), "--into", "containerd:"];
    args.extend_from_slice(extra);
    serde_json::from_str(&ferry_at_ok(ctd, &args).stdout).unwrap()
}

/// The bundle's index.json: full image name → manifest (or index) digest.
fn bundle_images(bundle: &Path) -> Vec<(String, String)> {
    let tar = decompress(&std::fs::read(bundle.join("b.tar.zst")).unwrap());
    let index = tar_files(&tar).into_iter().find(|(n, ..)| n == "index.json").expect("index.json").2;
    let index: serde_json::Value = serde_json::from_slice(&index).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["annotations"]["io.containerd.image.name"].as_str().unwrap().to_string(), d["digest"].as_str().unwrap().to_string()))
        .collect()
}

/// `ctr images check`: every image complete and unpacked.
fn assert_complete(ctd: &Containerd) {
    let check = ctd.ctr_ok(&["-n", NS, "images", "check"]);
    for line in check.lines().skip(1) {
        assert!(line.contains("complete (") && line.trim_end().ends_with("true"), "not complete and unpacked: {line}\n{check}");
    }
}

fn full_name(r: &str) -> String {
    if r.split('/').next().is_some_and(|d| d.contains('.') || d.contains(':') || d == "localhost") {
        r.to_string()
    } else {
        format!("docker.io/{r}")
    }
}

#[test]
fn every_fixture_loads_and_runs() {
    let ctd = Containerd::start();
    let work = tempfile::tempdir().unwrap();
    for (i, fx) in fixtures().into_iter().enumerate() {
        let out = work.path().join(format!("b{i}"));
        save(&fx.image_ref(), &out, &[]);
        let report = load(&ctd, &out, &[]);
        assert_eq!(report["target"], "containerd:k8s.io", "{}", fx.file);
        let listed = ctd.images(NS);
        for (name, digest) in bundle_images(&out) {
            let row = listed.iter().find(|r| r.0 == name).unwrap_or_else(|| panic!("{}: {name} not in ctr images ls: {listed:?}", fx.file));
            assert_eq!(row.2, digest, "{}: {name}: ctr shows the bundle's manifest digest", fx.file);
        }
        if fx.format != "docker-archive" {
            // OCI sources: the digests are the source's own.
            let source = source_digests(&fixture(&fx.file));
            for (name, digest) in bundle_images(&out) {
                assert!(source.contains(&digest), "{}: {name} {digest} is a digest of the source", fx.file);
            }
        }
        assert_complete(&ctd);
        for (r, expected) in &fx.refs {
            let Some(expected) = expected else { continue };
            let printed = ctd.run(NS, &full_name(r));
            assert_eq!(printed.trim_end(), expected, "{}: ctr run {r}", fx.file);
        }
    }
    assert_eq!(ctd.ctr_ok(&["-n", NS, "leases", "ls"]).lines().count(), 1, "no lease left behind");
}

#[test]
fn platform_keeps_only_that_platform_and_imports_cleanly() {
    let ctd = Containerd::start();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("m");
    save(&format!("oci-archive:{}", fixture("multiarch.oci.tar").display()), &out, &[]);
    let (name, full_index) = bundle_images(&out).remove(0);

    // All platforms kept without --platform: the bundle's own index.
    load(&ctd, &out, &[]);
    let row = ctd.images(NS).into_iter().find(|r| r.0 == name).unwrap();
    assert_eq!(row.2, full_index);
    assert_eq!(row.3, "linux/amd64,linux/arm64", "{row:?}");

    // --platform: a record whose index lists only that platform.
    let other = Containerd::start();
    load(&other, &out, &["--platform", "linux/amd64"]);
    let row = other.images(NS).into_iter().find(|r| r.0 == name).unwrap();
    assert_ne!(row.2, full_index, "the index was cut down");
    assert_eq!(row.3, "linux/amd64", "{row:?}");
    assert_complete(&other);
    assert_eq!(other.run(NS, &name).trim_end(), "ferry fixture multiarch: amd64");
    // The cut index is the bundle's with one manifest left.
    let cut: serde_json::Value = serde_json::from_str(&other.ctr_ok(&["-n", NS, "content", "get", &row.2])).unwrap();
    let manifests = cut["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1, "{cut}");
    assert_eq!(manifests[0]["platform"]["architecture"], "amd64");

    // No manifest for the platform asked for: refused, nothing recorded.
    let third = Containerd::start();
    let r = ferry_at(&third, &["load", "--allow-unsigned", out.to_str().unwrap(), "--into", "containerd:", "--platform", "linux/s390x"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("no manifest for the platform"), "{}", r.stderr);
    assert!(third.images(NS).is_empty());
}

#[test]
fn damaged_bundle_is_refused_and_nothing_is_recorded() {
    let ctd = Containerd::start();
    let work = tempfile::tempdir().unwrap();
    let fx = format!("docker-archive:{}", fixture("multi.docker.tar.gz").display());
    let pickers: Vec<(&str, Picker)> = vec![
        ("largest", Box::new(|b: &[BlobEntry]| (0..b.len()).max_by_key(|&i| b[i].2).unwrap())),
        ("last", Box::new(|b: &[BlobEntry]| b.len() - 1)),
    ];
    for (what, pick) in pickers {
        let out = work.path().join(what);
        save(&fx, &out, &[]);
        corrupt_blob(&out, "b", pick);
        let r = ferry_at(&ctd, &["load", "--allow-unsigned", out.to_str().unwrap(), "--into", "containerd:"]);
        assert_eq!(r.code, 3, "{what}: a corrupt blob is an integrity failure:\n{}", r.stderr);
        assert!(ctd.images(NS).is_empty(), "{what}: no image record");
        assert_eq!(ctd.ctr_ok(&["-n", NS, "leases", "ls"]).lines().count(), 1, "{what}: the lease was deleted");
    }
    // What was written under the deleted lease is garbage: a collection removes it.
    ctd.ctr_ok(&["-n", NS, "content", "prune", "references"]).lines().count();
    let left = ctd.ctr_ok(&["-n", NS, "content", "ls", "-q"]);
    assert_eq!(left.trim(), "", "content of the refused load is released: {left}");
    // The intact bundle loads into the same containerd.
    let out = work.path().join("good");
    save(&fx, &out, &[]);
    load(&ctd, &out, &[]);
    assert_eq!(ctd.run(NS, "docker.io/ferry-fixture/docker20:v1").trim_end(), "ferry fixture docker20: ok");
}

#[test]
fn second_load_writes_no_content() {
    let ctd = Containerd::start();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("m");
    save(&format!("docker-archive:{}", fixture("multi.docker.tar.gz").display()), &out, &[]);
    let first = load(&ctd, &out, &[]);
    assert_eq!(first["skipped_blobs"], 0);
    let content = ctd.ctr_ok(&["-n", NS, "content", "ls", "-q"]);
    let second = load(&ctd, &out, &[]);
    assert_eq!(second["skipped_blobs"], first["blobs"], "every blob was there already: {second}");
    assert_eq!(ctd.ctr_ok(&["-n", NS, "content", "ls", "-q"]), content, "the content store holds the same blobs");
    assert_complete(&ctd);
}

#[test]
fn unreachable_containerd_is_exit_1_with_a_hint() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("m");
    save(&format!("docker-archive:{}", fixture("docker20-whiteout.docker.tar.gz").display()), &out, &[]);
    let missing = work.path().join("no.sock");
    for args in [
        vec!["load", "--allow-unsigned", out.to_str().unwrap(), "--into", "containerd:", "--containerd-address", missing.to_str().unwrap()],
        vec!["have", "containerd:", "-o", "-", "--containerd-address", missing.to_str().unwrap()],
    ] {
        let r = ferry(&args);
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(r.stderr.contains(missing.to_str().unwrap()), "names the socket: {}", r.stderr);
        assert!(r.stderr.contains("hint:") && r.stderr.contains("--containerd-address"), "{}", r.stderr);
    }
    // A namespace that containerd would refuse is a usage error, before anything is read.
    let r = ferry(&["load", "--allow-unsigned", out.to_str().unwrap(), "--into", "containerd:a/b"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}

#[test]
fn save_from_containerd_round_trips() {
    let ctd = Containerd::start();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("m");
    let fx = fixture("skopeo-gzip.oci");
    save(&format!("oci:{}", fx.display()), &out, &[]);
    load(&ctd, &out, &[]);
    let again = work.path().join("again");
    let r = ferry_at_ok(&ctd, &["save", "containerd:ferry-fixture/docker20:v1", "-o", again.to_str().unwrap(), "-n", "b"]);
    assert!(r.stderr.contains("saved"), "{}", r.stderr);
    // Every digest survives: the saved bundle carries the source's blobs.
    let layout = work.path().join("layout");
    ferry_ok(&["load", "--allow-unsigned", again.to_str().unwrap(), "--into", &format!("oci:{}", layout.display())]);
    assert_eq!(layout_blobs(&layout), source_digests(&fx));
    assert_eq!(bundle_images(&again), bundle_images(&out));
    // A name containerd lacks: an error naming it.
    let r = ferry_at(&ctd, &["save", "containerd:nothing/here:v1", "-o", work.path().join("x").to_str().unwrap()]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("nothing/here"), "{}", r.stderr);
}

#[test]
fn have_and_delta_into_containerd() {
    let ctd = Containerd::start();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let base = w.join("base");
    save(&format!("docker-archive:{}", fixture("docker20-whiteout.docker.tar.gz").display()), &base, &[]);
    load(&ctd, &base, &[]);
    let have = w.join("node.have");
    ferry_at_ok(&ctd, &["have", "containerd:", "-o", have.to_str().unwrap()]);
    let text = std::fs::read_to_string(&have).unwrap();
    assert!(text.starts_with("# ferry have v1\n"), "{text}");
    let (_, base_digest) = bundle_images(&base).remove(0);
    assert!(text.lines().any(|l| l == base_digest), "the manifest is listed: {text}");
    assert!(text.lines().any(|l| l.starts_with("chain sha256:")), "chains are listed: {text}");

    // The child image shares the base's layers: the delta leaves them out.
    let delta = w.join("delta");
    let multi = format!("docker-archive:{}", fixture("multi.docker.tar.gz").display());
    save(&multi, &delta, &["--have", have.to_str().unwrap()]);
    let full = w.join("full");
    save(&multi, &full, &[]);
    let size = |d: &Path| std::fs::metadata(d.join("b.tar.zst")).unwrap().len();
    assert!(size(&delta) < size(&full) / 2, "the delta is smaller: {} vs {}", size(&delta), size(&full));

    // A containerd without the base refuses it (exit 1) and records nothing.
    let empty = Containerd::start();
    let r = ferry_at(&empty, &["load", "--allow-unsigned", delta.to_str().unwrap(), "--into", "containerd:"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(empty.images(NS).is_empty());

    // The node with the base takes it, and the child runs.
    load(&ctd, &delta, &[]);
    assert_complete(&ctd);
    assert_eq!(
        ctd.run(NS, "docker.io/ferry-fixture/docker20-child:v1").trim_end(),
        "ferry fixture docker20: ok\nferry fixture docker20-child: ok"
    );
}
