//! The artifact is a docker-archive too: decompressed with the standard tool,
//! a real Docker 20.10 `docker load`s it and the images run.
mod common;
mod support;
use common::*;
use support::dockerd::Dockerd;

#[test]
fn docker_load_accepts_every_artifact_and_images_run() {
    require("zstd");
    let daemon = Dockerd::start();
    let work = tempfile::tempdir().unwrap();
    for fx in fixtures() {
        // zstd *layers* need Docker 23+; ferry's engine target converts them (tests/engine_docker.rs).
        if fx.file.contains("zstd.oci") {
            continue;
        }
        let stem = fx.file.replace('.', "_");
        let out = work.path().join(&stem);
        ferry_ok(&["save", &fx.image_ref(), "-o", out.to_str().unwrap(), "-n", "b"]);
        let tar = out.join("b.tar");
        sh(&format!("zstd -d -q {}/b.tar.zst -o {}", out.display(), tar.display()));
        let loaded = daemon.docker(&["load", "-i", tar.to_str().unwrap()]);
        assert!(loaded.status.success(), "{}: docker load failed: {}", fx.file, String::from_utf8_lossy(&loaded.stderr));
        for (r, expected) in &fx.refs {
            let Some(expected) = expected else { continue };
            let run = daemon.docker(&["run", "--rm", "--pull=never", "--network", "none", r]);
            assert!(run.status.success(), "{}: docker run {r} failed: {}", fx.file, String::from_utf8_lossy(&run.stderr));
            assert_eq!(String::from_utf8_lossy(&run.stdout).trim_end(), expected.as_str(), "{}: {r}", fx.file);
        }
        // Image IDs are the source's config digests.
        let ids = daemon.docker_ok(&["images", "-q", "--no-trunc"]);
        let source = source_digests(&fixture(&fx.file));
        for id in ids.lines() {
            assert!(source.contains(&id.to_string()), "{}: image ID {id} is not a digest of the source", fx.file);
        }
        for id in ids.lines() {
            daemon.docker(&["rmi", "-f", id]);
        }
    }
    // gzip bundles load on Docker 20.10 as they are (no decompression step).
    let out = work.path().join("gz");
    ferry_ok(&[
        "save",
        &format!("docker-archive:{}", fixture("docker20-whiteout.docker.tar.gz").display()),
        "-o",
        out.to_str().unwrap(),
        "-n",
        "g",
        "--compress",
        "gzip",
    ]);
    let loaded = daemon.docker(&["load", "-i", out.join("g.tar.gz").to_str().unwrap()]);
    assert!(loaded.status.success(), "{}", String::from_utf8_lossy(&loaded.stderr));
    let run = daemon.docker(&["run", "--rm", "--pull=never", "--network", "none", "ferry-fixture/docker20:v1"]);
    assert_eq!(String::from_utf8_lossy(&run.stdout).trim_end(), "ferry fixture docker20: ok");
}
