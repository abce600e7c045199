//! `docker-daemon:` against real Docker 20.10 daemons (scripts/dockerd.sh):
//! save from a producer, load into an empty consumer, run the images there.
//! No mocks; a missing dockerd fails the test.
mod common;
mod support;
use common::*;
use std::path::Path;
use std::process::Command;
use support::dockerd::Dockerd;
use support::podman::PodmanService;

fn ferry_at(daemon: &Dockerd, args: &[&str]) -> Run {
    ferry_env(args, &[("DOCKER_HOST", daemon.host.as_str())])
}

fn ferry_at_ok(daemon: &Dockerd, args: &[&str]) -> Run {
    let r = ferry_at(daemon, args);
    assert_eq!(r.code, 0, "ferry {args:?} (DOCKER_HOST={}) failed:\n{}", daemon.host, r.stderr);
    r
}

fn run_image(daemon: &Dockerd, image: &str) -> String {
    let out = daemon.docker_ok(&["run", "--rm", "--pull=never", "--network", "none", image]);
    out.trim_end().to_string()
}

fn inspect(daemon: &Dockerd, image: &str) -> serde_json::Value {
    let out = daemon.docker_ok(&["image", "inspect", image]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0].clone()
}

/// Build `name` in `daemon` from a Dockerfile (classic builder), base imported from busybox.
fn build(daemon: &Dockerd, name: &str, dockerfile: &str) {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    let out = daemon.command().env("DOCKER_BUILDKIT", "0").args(["build", "-q", "-t", name]).arg(ctx.path()).output().unwrap();
    assert!(out.status.success(), "docker build {name} failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

fn start_two() -> (Dockerd, Dockerd) {
    let a = std::thread::spawn(Dockerd::start);
    let b = std::thread::spawn(Dockerd::start);
    (a.join().expect("start producer dockerd"), b.join().expect("start consumer dockerd"))
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum()
}

const APP: &str = r#"FROM ferry-test/base:1
RUN mkdir -p /data && echo one > /data/a && echo two > /data/b && echo old > /data/gone && ln -s a /data/link
RUN rm /data/b /data/gone && echo three > /data/a && echo new > /data/c
ENV GREETING=hello FERRY_MODE=test
WORKDIR /data
LABEL org.example.tool="ferry" org.example.kind="roundtrip"
CMD ["/bin/sh", "-c", "echo $GREETING $FERRY_MODE; cat a c link; pwd; test ! -e b && test ! -e gone && echo deleted-stay-deleted"]
"#;
const APP_OUTPUT: &str = "hello test\nthree\nnew\nthree\n/data\ndeleted-stay-deleted";

#[test]
fn built_image_keeps_id_config_and_tags_across_daemons() {
    let (producer, consumer) = start_two();
    producer.import_busybox("ferry-test/base:1");
    build(&producer, "ferry-test/app:1", APP);
    producer.docker_ok(&["tag", "ferry-test/app:1", "localhost:5000/ferry/app:2"]);
    assert_eq!(run_image(&producer, "ferry-test/app:1"), APP_OUTPUT);

    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("usb");
    // A bare NAME[:TAG] means docker-daemon:.
    let saved = ferry_at_ok(
        &producer,
        &["save", "ferry-test/app:1", "docker-daemon:localhost:5000/ferry/app:2", "-o", out.to_str().unwrap(), "-n", "app"],
    );
    assert!(saved.stderr.contains("saved"), "{}", saved.stderr);
    ferry_ok(&["verify", out.to_str().unwrap()]);
    // The layers were compressed as the export streamed and taken into the
    // artifact as they were: it is several zstd frames, which zstd reads as one stream.
    let listed = Command::new("zstd").args(["-l", "-q"]).arg(out.join("app.tar.zst")).output().unwrap();
    let listing = String::from_utf8_lossy(&listed.stdout);
    let frames: u32 = listing.lines().nth(1).and_then(|l| l.split_whitespace().next()).and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(frames > 3, "zstd -l: {listing}");
    assert!(Command::new("zstd").args(["-t", "-q"]).arg(out.join("app.tar.zst")).status().unwrap().success());
    // No spool file is left next to the output.
    let names: Vec<String> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "leftover files: {names:?}");
    // Built in place from the spool or not, the artifact is as readable as the checksum file.
    let mode = |name: &str| std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(out.join(name)).unwrap().permissions());
    assert_eq!(mode("app.tar.zst"), mode("app.sha256"));

    let loaded = ferry_at_ok(&consumer, &["load", "--allow-unsigned", out.to_str().unwrap()]);
    assert!(loaded.stderr.contains("loaded ferry-test/app:1"), "{}", loaded.stderr);
    assert_eq!(run_image(&consumer, "ferry-test/app:1"), APP_OUTPUT);
    assert_eq!(run_image(&consumer, "localhost:5000/ferry/app:2"), APP_OUTPUT);

    let a = inspect(&producer, "ferry-test/app:1");
    let b = inspect(&consumer, "ferry-test/app:1");
    assert_eq!(a["Id"], b["Id"], "image ID (config digest) survives");
    for field in ["Env", "Cmd", "WorkingDir", "Labels", "Entrypoint"] {
        assert_eq!(a["Config"][field], b["Config"][field], "Config.{field}");
    }
    assert_eq!(a["RootFS"]["Layers"], b["RootFS"]["Layers"], "diff_ids survive");
    let mut tags_a: Vec<String> = serde_json::from_value(a["RepoTags"].clone()).unwrap();
    let mut tags_b: Vec<String> = serde_json::from_value(b["RepoTags"].clone()).unwrap();
    tags_a.sort();
    tags_b.sort();
    assert_eq!(tags_a, tags_b, "RepoTags");
    assert_eq!(b["Config"]["WorkingDir"], "/data");
    assert_eq!(b["Config"]["Labels"]["org.example.tool"], "ferry");
}

#[test]
fn several_images_share_layers_in_one_bundle_and_all_load() {
    let (producer, consumer) = start_two();
    producer.import_busybox("ferry-test/base:1");
    // A large shared layer, then one small layer each.
    build(&producer, "ferry-test/shared:1", "FROM ferry-test/base:1\nRUN head -c 3000000 /dev/urandom > /big\n");
    build(&producer, "ferry-test/one:1", "FROM ferry-test/shared:1\nRUN echo one > /which\nCMD [\"cat\", \"/which\"]\n");
    build(&producer, "ferry-test/two:1", "FROM ferry-test/shared:1\nRUN echo two > /which\nCMD [\"cat\", \"/which\"]\n");

    let work = tempfile::tempdir().unwrap();
    let both = work.path().join("both");
    let one = work.path().join("one");
    let two = work.path().join("two");
    ferry_at_ok(&producer, &["save", "ferry-test/one:1", "ferry-test/two:1", "-o", both.to_str().unwrap()]);
    ferry_at_ok(&producer, &["save", "ferry-test/one:1", "-o", one.to_str().unwrap()]);
    ferry_at_ok(&producer, &["save", "ferry-test/two:1", "-o", two.to_str().unwrap()]);
    let (sb, s1, s2) = (dir_size(&both), dir_size(&one), dir_size(&two));
    assert!(sb < s1 + s2 - 2_000_000, "shared layers once: together {sb} bytes, apart {s1} + {s2}");

    let r = ferry_at_ok(&consumer, &["load", "--allow-unsigned", both.to_str().unwrap()]);
    assert!(r.stderr.contains("ferry-test/one:1") && r.stderr.contains("ferry-test/two:1"), "{}", r.stderr);
    assert_eq!(run_image(&consumer, "ferry-test/one:1"), "one");
    assert_eq!(run_image(&consumer, "ferry-test/two:1"), "two");
    for name in ["ferry-test/one:1", "ferry-test/two:1"] {
        assert_eq!(inspect(&producer, name)["Id"], inspect(&consumer, name)["Id"], "{name}");
    }
}

#[test]
fn zstd_layer_fixture_loads_into_docker_20() {
    let daemon = Dockerd::start();
    let version = daemon.docker_ok(&["version", "--format", "{{.Server.APIVersion}}"]);
    assert_eq!(version.trim(), "1.41", "this test is about a daemon that cannot read zstd layers");
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("z");
    let fx = fixtures().into_iter().find(|f| f.file == "skopeo-zstd.oci.tar").expect("fixture listed");
    ferry_ok(&["save", &fx.image_ref(), "-o", out.to_str().unwrap()]);
    let r = ferry_at_ok(&daemon, &["load", "--allow-unsigned", out.to_str().unwrap()]);
    assert!(r.stderr.contains("converted") && r.stderr.contains("zstd"), "says so: {}", r.stderr);
    for (name, expected) in &fx.refs {
        let expected = expected.as_deref().expect("runnable");
        assert_eq!(run_image(&daemon, name), expected, "{name}");
    }
    // The image ID is the bundle's config digest: the conversion changed only layer compression.
    let id = inspect(&daemon, &fx.refs[0].0)["Id"].as_str().unwrap().to_string();
    assert!(source_digests(&fixture(&fx.file)).contains(&id), "image ID {id} is the source's config digest");
}

#[test]
fn every_fixture_saves_and_loads_into_docker_and_runs() {
    let daemon = Dockerd::start();
    let work = tempfile::tempdir().unwrap();
    for fx in fixtures() {
        let stem = fx.file.replace('.', "_");
        let out = work.path().join(&stem);
        ferry_ok(&["save", &fx.image_ref(), "-o", out.to_str().unwrap(), "-n", "b"]);
        let r = ferry_at(&daemon, &["load", "--allow-unsigned", out.to_str().unwrap()]);
        assert_eq!(r.code, 0, "{} (docker20_loadable: {}): ferry load failed:\n{}", fx.file, fx.docker20_loadable, r.stderr);
        for (name, expected) in &fx.refs {
            let Some(expected) = expected else { continue };
            let run = daemon.docker(&["run", "--rm", "--pull=never", "--network", "none", name]);
            assert!(run.status.success(), "{}: docker run {name} failed: {}", fx.file, String::from_utf8_lossy(&run.stderr));
            assert_eq!(String::from_utf8_lossy(&run.stdout).trim_end(), expected.as_str(), "{}: {name}", fx.file);
        }
        // Start the next fixture from an empty daemon (several fixtures share names).
        let ids = daemon.docker_ok(&["images", "-q", "--no-trunc"]);
        for id in ids.lines() {
            daemon.docker(&["rmi", "-f", id]);
        }
    }
}

#[test]
fn daemon_save_then_every_fixture_back_through_a_daemon() {
    // docker-daemon: as a source for images that came from every fixture kind:
    // load a fixture into the producer, save it from there, load into the consumer.
    let (producer, consumer) = start_two();
    let work = tempfile::tempdir().unwrap();
    for fx in fixtures() {
        let stem = fx.file.replace('.', "_");
        let first = work.path().join(format!("{stem}-in"));
        ferry_ok(&["save", &fx.image_ref(), "-o", first.to_str().unwrap(), "-n", "b"]);
        ferry_at_ok(&producer, &["load", "--allow-unsigned", first.to_str().unwrap()]);
        let runnable: Vec<(&String, &String)> = fx.refs.iter().filter_map(|(n, o)| o.as_ref().map(|o| (n, o))).collect();
        let names: Vec<&str> = runnable.iter().map(|(n, _)| n.as_str()).collect();
        let second = work.path().join(format!("{stem}-daemon"));
        let mut args = vec!["save"];
        args.extend(names.iter().copied());
        args.extend(["-o", second.to_str().unwrap(), "-n", "d"]);
        ferry_at_ok(&producer, &args);
        ferry_at_ok(&consumer, &["load", "--allow-unsigned", second.to_str().unwrap()]);
        for (name, expected) in &runnable {
            assert_eq!(run_image(&consumer, name), expected.as_str(), "{}: {name}", fx.file);
            assert_eq!(inspect(&producer, name)["Id"], inspect(&consumer, name)["Id"], "{}: {name}", fx.file);
        }
        for d in [&producer, &consumer] {
            let ids = d.docker_ok(&["images", "-q", "--no-trunc"]);
            for id in ids.lines() {
                d.docker(&["rmi", "-f", id]);
            }
        }
    }
}

#[test]
fn podman_loads_a_decompressed_artifact() {
    require("podman");
    require("zstd");
    let work = tempfile::tempdir().unwrap();
    let p = work.path();
    let conf = p.join("storage.conf");
    std::fs::write(
        &conf,
        format!("[storage]\ndriver = \"vfs\"\nrunroot = \"{}\"\ngraphroot = \"{}\"\n", p.join("run").display(), p.join("graph").display()),
    )
    .unwrap();
    let fx = fixtures().into_iter().find(|f| f.file == "docker20-whiteout.docker.tar.gz").expect("fixture listed");
    let out = p.join("b");
    ferry_ok(&["save", &fx.image_ref(), "-o", out.to_str().unwrap(), "-n", "x"]);
    let podman = |args: &str| sh(&format!("export CONTAINERS_STORAGE_CONF={}; cd {} && {args}", conf.display(), out.display()));
    podman("zstd -d -q < x.tar.zst > x.tar");
    let loaded = podman("podman load -i x.tar 2>&1");
    assert!(loaded.contains("Loaded image"), "{loaded}");
    let ids = podman("podman images -q --no-trunc");
    let source = source_digests(&fixture(&fx.file));
    assert!(ids.lines().any(|id| source.contains(&id.trim().to_string())), "podman image IDs {ids:?} are source config digests");
    let names = podman("podman images --format '{{.Repository}}:{{.Tag}}'");
    assert!(names.contains("ferry-fixture/docker20:v1"), "{names}");
}

#[test]
fn corrupt_blob_is_refused_and_nothing_reaches_docker() {
    let daemon = Dockerd::start();
    let work = tempfile::tempdir().unwrap();
    let fx = format!("docker-archive:{}", fixture("multi.docker.tar.gz").display());
    // The largest layer (over the held-back tail), the last blob, and a config.
    let pickers: Vec<(&str, Picker)> = vec![
        ("largest", Box::new(|b: &[BlobEntry]| (0..b.len()).max_by_key(|&i| b[i].2).unwrap())),
        ("last", Box::new(|b: &[BlobEntry]| b.len() - 1)),
        ("small", Box::new(|b: &[BlobEntry]| (0..b.len()).filter(|&i| b[i].2 > 200).min_by_key(|&i| b[i].2).unwrap())),
    ];
    for (what, pick) in pickers {
        let out = work.path().join(what);
        ferry_ok(&["save", &fx, "-o", out.to_str().unwrap(), "-n", "m"]);
        corrupt_blob(&out, "m", pick);
        let r = ferry_at(&daemon, &["load", "--allow-unsigned", out.to_str().unwrap()]);
        assert_eq!(r.code, 3, "{what}: a corrupt blob is an integrity failure:\n{}", r.stderr);
        assert!(r.stderr.contains("corrupt"), "{what}: {}", r.stderr);
        let images = daemon.docker_ok(&["images", "-a", "-q"]);
        assert_eq!(images.trim(), "", "{what}: nothing may reach Docker before it is verified");
    }
    // The same bundle, intact, loads into the same daemon.
    let out = work.path().join("good");
    ferry_ok(&["save", &fx, "-o", out.to_str().unwrap(), "-n", "m"]);
    ferry_at_ok(&daemon, &["load", "--allow-unsigned", out.to_str().unwrap()]);
    assert_eq!(run_image(&daemon, "ferry-fixture/docker20:v1"), "ferry fixture docker20: ok");
}

#[test]
fn unreachable_daemon_is_a_clear_error() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("o");
    let env = [("DOCKER_HOST", "unix:///nonexistent.sock")];
    let r = ferry_env(&["save", "busybox:latest", "-o", out.to_str().unwrap()], &env);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("unix:///nonexistent.sock") && r.stderr.contains("DOCKER_HOST"), "{}", r.stderr);
    assert!(r.stderr.contains("hint:"), "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    assert!(!out.exists() || std::fs::read_dir(&out).unwrap().next().is_none(), "nothing written");

    let bundle = work.path().join("b");
    ferry_ok(&[
        "save",
        &format!("docker-archive:{}", fixture("docker20-whiteout.docker.tar.gz").display()),
        "-o",
        bundle.to_str().unwrap(),
    ]);
    let r = ferry_env(&["load", "--allow-unsigned", bundle.to_str().unwrap()], &env);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("unix:///nonexistent.sock") && r.stderr.contains("DOCKER_HOST"), "{}", r.stderr);
}

#[test]
fn missing_image_is_a_clear_error() {
    let daemon = Dockerd::start();
    daemon.import_busybox("ferry-test/base:1");
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("o");
    let r = ferry_at(&daemon, &["save", "ferry-test/nosuch:1", "-o", out.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("ferry-test/nosuch:1") && r.stderr.contains("not found"), "{}", r.stderr);
    // One missing name fails the whole save, and nothing is written.
    let r = ferry_at(&daemon, &["save", "ferry-test/base:1", "docker-daemon:ferry-test/base:2", "-o", out.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("ferry-test/base:2"), "{}", r.stderr);
    assert!(!out.exists() || std::fs::read_dir(&out).unwrap().next().is_none(), "nothing written");
    // NAME means NAME:latest, as with skopeo.
    let r = ferry_at(&daemon, &["save", "ferry-test/base", "-o", out.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("ferry-test/base:latest"), "{}", r.stderr);
}

#[test]
fn image_with_only_a_tag_loads_untagged_and_says_so() {
    let daemon = Dockerd::start();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    // An OCI layout whose only name is ref.name "v1" (no repository).
    let first = w.join("first");
    ferry_ok(&["save", &format!("oci:{}", fixture("skopeo-gzip.oci").display()), "-o", first.to_str().unwrap(), "-n", "a"]);
    let layout = w.join("layout");
    ferry_ok(&["load", "--allow-unsigned", first.to_str().unwrap(), "--into", &format!("oci:{}:v1", layout.display())]);
    let second = w.join("second");
    ferry_ok(&["save", &format!("oci:{}", layout.display()), "-o", second.to_str().unwrap(), "-n", "b"]);
    let r = ferry_at_ok(&daemon, &["load", "--allow-unsigned", second.to_str().unwrap()]);
    assert!(r.stderr.contains("untagged") && r.stderr.contains("\"v1\""), "{}", r.stderr);
    let images = daemon.docker_ok(&["images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    let lines: Vec<&str> = images.lines().collect();
    assert_eq!(lines.len(), 1, "{images}");
    assert!(lines[0].starts_with("<none>:<none> sha256:"), "{images}");
    let id = lines[0].split(' ').nth(1).unwrap();
    daemon.docker_ok(&["tag", id, "ferry-test/named:1"]);
    assert_eq!(run_image(&daemon, "ferry-test/named:1"), "ferry fixture docker20: ok");
}

/// Write `bytes` as a blob of the OCI layout at `dir`; returns its descriptor fields.
fn put_blob(dir: &Path, bytes: &[u8]) -> (String, usize) {
    let hex = sha256_hex(bytes);
    std::fs::write(dir.join("blobs/sha256").join(&hex), bytes).unwrap();
    (format!("sha256:{hex}"), bytes.len())
}

#[test]
fn daemon_failing_mid_load_is_an_error_and_nothing_is_tagged() {
    // Two images: a good one, then one whose config lists a wrong diff_id. Every
    // digest in the bundle is right (ferry verifies it), but Docker refuses the
    // second image after it has taken the first: nothing may end up tagged.
    let daemon = Dockerd::start();
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    sh(&format!("cp -r {} {}", fixture("skopeo-gzip.oci").display(), layout.display()));
    let read = |d: &str| std::fs::read(layout.join("blobs/sha256").join(&d[7..])).unwrap();
    let mut index: serde_json::Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let good = index["manifests"][0].clone();
    let manifest: serde_json::Value = serde_json::from_slice(&read(good["digest"].as_str().unwrap())).unwrap();
    let mut config: serde_json::Value = serde_json::from_slice(&read(manifest["config"]["digest"].as_str().unwrap())).unwrap();
    let n = config["rootfs"]["diff_ids"].as_array().unwrap().len();
    config["rootfs"]["diff_ids"][n - 1] = serde_json::Value::String(format!("sha256:{}", "0".repeat(64)));
    let (cd, cs) = put_blob(&layout, &serde_json::to_vec(&config).unwrap());
    let mut bad_manifest = manifest.clone();
    bad_manifest["config"]["digest"] = cd.into();
    bad_manifest["config"]["size"] = cs.into();
    let (md, ms) = put_blob(&layout, &serde_json::to_vec(&bad_manifest).unwrap());
    let mut good = good;
    good["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "ferry-test/good:1"});
    let mut bad = good.clone();
    bad["digest"] = md.into();
    bad["size"] = ms.into();
    bad["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "ferry-test/bad:1"});
    index["manifests"] = serde_json::json!([good, bad]);
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();

    let out = work.path().join("b");
    ferry_ok(&["save", &format!("oci:{}", layout.display()), "-o", out.to_str().unwrap(), "-n", "b"]);
    ferry_ok(&["verify", out.to_str().unwrap()]);
    let r = ferry_at(&daemon, &["load", "--allow-unsigned", out.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("Docker Engine") && r.stderr.contains(&daemon.host), "names the daemon: {}", r.stderr);
    assert!(r.stderr.contains("nothing was tagged"), "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    let tagged = daemon.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(tagged.lines().all(|l| l == "<none>:<none>"), "half-tagged: {tagged}");
}

#[test]
fn podman_socket_is_a_source_and_a_target() {
    let podman = PodmanService::start();
    let docker = Dockerd::start();
    let work = tempfile::tempdir().unwrap();
    let fx = fixtures().into_iter().find(|f| f.file == "multi.docker.tar.gz").expect("fixture listed");
    let first = work.path().join("first");
    ferry_ok(&["save", &fx.image_ref(), "-o", first.to_str().unwrap(), "-n", "m"]);
    let env = [("DOCKER_HOST", podman.host.as_str())];
    let r = ferry_env(&["load", "--allow-unsigned", first.to_str().unwrap()], &env);
    assert_eq!(r.code, 0, "load into podman: {}", r.stderr);
    assert!(podman.podman("images --format '{{.Repository}}:{{.Tag}}'").contains("ferry-fixture/docker20-child:v1"));

    let second = work.path().join("second");
    let r = ferry_env(
        &["save", "ferry-fixture/docker20:v1", "ferry-fixture/docker20-child:v1", "-o", second.to_str().unwrap(), "-n", "p"],
        &env,
    );
    assert_eq!(r.code, 0, "save from podman: {}", r.stderr);
    ferry_at_ok(&docker, &["load", "--allow-unsigned", second.to_str().unwrap()]);
    for (name, expected) in &fx.refs {
        if name.ends_with(":latest") {
            continue; // not saved from podman
        }
        assert_eq!(run_image(&docker, name), expected.as_deref().unwrap(), "{name}");
    }
    let source = source_digests(&fixture(&fx.file));
    let id = inspect(&docker, "ferry-fixture/docker20-child:v1")["Id"].as_str().unwrap().to_string();
    assert!(source.contains(&id), "image ID {id} survives podman and docker");
}
