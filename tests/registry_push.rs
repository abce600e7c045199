//! `ferry load --into docker://…` against a real distribution 2.8 (Debian
//! docker-registry) with TLS and htpasswd auth, checked with skopeo.
mod common;
mod support;

use common::*;
use std::path::{Path, PathBuf};
use support::registry::{Mode, Registry, PASSWORD};

/// A bundle of `image` saved into `dir` (unsigned), its `.sha256` path.
fn save(image: &str, dir: &Path, stem: &str, extra: &[&str]) -> PathBuf {
    let mut args = vec!["save", image, "-o", dir.to_str().unwrap(), "-n", stem];
    args.extend_from_slice(extra);
    ferry_ok(&args);
    dir.join(format!("{stem}.sha256"))
}

/// `ferry load BUNDLE --into TARGET --json` with the registry's flags; HOME and
/// the upload-session cache kept inside `work`.
fn push(reg: &Registry, work: &Path, bundle: &Path, target: &str, extra: &[&str]) -> Run {
    let flags = reg.ferry_args();
    let mut args = vec!["--json", "load", "--allow-unsigned", bundle.to_str().unwrap(), "--into", target];
    args.extend(flags.iter().map(String::as_str));
    args.extend_from_slice(extra);
    let home = work.join("home");
    std::fs::create_dir_all(&home).unwrap();
    ferry_env(&args, &[("HOME", home.to_str().unwrap()), ("XDG_CACHE_HOME", work.join("cache").to_str().unwrap())])
}

fn push_ok(reg: &Registry, work: &Path, bundle: &Path, target: &str) -> serde_json::Value {
    let run = push(reg, work, bundle, target, &[]);
    assert_eq!(run.code, 0, "push into {target} failed: {}", run.stderr);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("--json report: {e}: {}", run.stdout))
}

fn skopeo(args: &[String]) -> std::process::Output {
    require("skopeo");
    std::process::Command::new("skopeo").args(args).output().expect("run skopeo")
}

/// `skopeo inspect --raw` of a pushed image: its manifest bytes.
fn raw_manifest(reg: &Registry, name: &str) -> Vec<u8> {
    let mut args = vec!["inspect".to_string(), "--raw".into()];
    args.extend(reg.skopeo_args(""));
    args.push(format!("docker://{name}"));
    let out = skopeo(&args);
    assert!(out.status.success(), "skopeo inspect docker://{name}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// The image digests the bundle's index.json records.
fn bundle_digests(bundle: &Path) -> Vec<String> {
    let run = ferry_ok(&["--json", "inspect", bundle.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let mut d: Vec<String> = v["images"].as_array().unwrap().iter().map(|i| i["digest"].as_str().unwrap().to_string()).collect();
    d.sort();
    d
}

fn pushed(report: &serde_json::Value) -> Vec<(String, String)> {
    report["registry"]["pushed"]
        .as_array()
        .unwrap_or_else(|| panic!("no registry.pushed in {report}"))
        .iter()
        .map(|p| (p["name"].as_str().unwrap().to_string(), p["digest"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn every_fixture_pushes_with_its_digests_and_skopeo_reads_it() {
    let reg = Registry::start(Mode::TlsAuth);
    let work = tempfile::tempdir().unwrap();
    for fx in fixtures() {
        let stem = fx.file.replace('.', "_");
        let bundle = save(&fx.image_ref(), &work.path().join("bundles"), &stem, &[]);
        let report = push_ok(&reg, work.path(), &bundle, &reg.url("mirror"));
        let images = pushed(&report);
        let mut digests: Vec<String> = images.iter().map(|(_, d)| d.clone()).collect();
        digests.sort();
        digests.dedup();
        let mut want = bundle_digests(&bundle);
        want.dedup();
        assert_eq!(digests, want, "{}: the pushed images are the bundle's", fx.file);
        let source = source_digests(&fixture(&fx.file));
        for (name, digest) in &images {
            assert!(name.starts_with(&format!("{}/mirror/", reg.host())), "{name}: kept under the prefix");
            // The registry serves the very bytes the bundle holds: same digest.
            let raw = raw_manifest(&reg, name);
            assert_eq!(format!("sha256:{}", sha256_hex(&raw)), *digest, "{}: {name}", fx.file);
            if fx.format != "docker-archive" || source.contains(digest) {
                assert!(source.contains(digest), "{}: {name} has the source's manifest digest", fx.file);
            }
        }
        // A real client copies it out again.
        let (first, _) = &images[0];
        let out_dir = work.path().join(format!("{stem}-copy"));
        let mut args = vec!["copy".to_string(), "--all".into()];
        args.extend(reg.skopeo_args("src"));
        args.push(format!("docker://{first}"));
        args.push(format!("oci:{}:copied", out_dir.display()));
        let out = skopeo(&args);
        assert!(out.status.success(), "{}: skopeo copy docker://{first}: {}", fx.file, String::from_utf8_lossy(&out.stderr));
    }
    // Multi-arch: the index went up with both platforms' manifests.
    let multi = save(&format!("oci-archive:{}", fixture("multiarch.oci.tar").display()), &work.path().join("m"), "multi", &[]);
    let report = push_ok(&reg, work.path(), &multi, &reg.url("ma"));
    let (name, _) = &pushed(&report)[0];
    let index: serde_json::Value = serde_json::from_slice(&raw_manifest(&reg, name)).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    let mut platforms: Vec<String> = entries
        .iter()
        .map(|m| format!("{}/{}", m["platform"]["os"].as_str().unwrap(), m["platform"]["architecture"].as_str().unwrap()))
        .collect();
    platforms.sort();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    let repo = name.rsplit_once(':').unwrap().0;
    for m in entries {
        let digest = m["digest"].as_str().unwrap();
        assert_eq!(format!("sha256:{}", sha256_hex(&raw_manifest(&reg, &format!("{repo}@{digest}")))), digest);
    }
}

#[test]
fn a_second_load_uploads_no_blob_and_a_one_image_target_renames() {
    let reg = Registry::start(Mode::TlsAuth);
    let work = tempfile::tempdir().unwrap();
    let src = format!("docker-archive:{}", fixture("multi.docker.tar.gz").display());
    let bundle = save(&src, &work.path().join("b"), "multi", &[]);
    let first = push_ok(&reg, work.path(), &bundle, &reg.url(""));
    assert!(reg.upload_requests() > 0);
    assert!(first["registry"]["blobs_uploaded"].as_u64().unwrap() > 0, "{first}");
    // Two images share base layers: the second repository mounts them.
    assert!(first["registry"]["blobs_mounted"].as_u64().unwrap() > 0, "{first}");
    let names: Vec<String> = pushed(&first).into_iter().map(|(n, _)| n).collect();
    for want in ["ferry-fixture/docker20:v1", "ferry-fixture/docker20:latest", "ferry-fixture/docker20-child:v1"] {
        assert!(names.contains(&format!("{}/{want}", reg.host())), "{want} in {names:?}");
    }
    let before = reg.upload_requests();
    let again = push_ok(&reg, work.path(), &bundle, &reg.url(""));
    assert_eq!(reg.upload_requests(), before, "the second load uploaded blobs:\n{:#?}", reg.requests());
    assert_eq!(again["registry"]["blobs_uploaded"], 0);
    assert_eq!(again["registry"]["manifests_pushed"], 0);

    // docker://HOST/REPO:TAG takes a one-image bundle under the name given.
    let one = save(&format!("{src}:ferry-fixture/docker20-child:v1"), &work.path().join("one"), "one", &[]);
    let report = push_ok(&reg, work.path(), &one, &reg.url("team/child:2.0"));
    assert_eq!(pushed(&report)[0].0, format!("{}/team/child:2.0", reg.host()));
    raw_manifest(&reg, &format!("{}/team/child:2.0", reg.host()));
    let refused = push(&reg, work.path(), &bundle, &reg.url("team/app:1"), &[]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("holds 3 images"), "{}", refused.stderr);
}

#[test]
fn tampered_bundle_exits_3_and_leaves_no_tag() {
    let reg = Registry::start(Mode::TlsAuth);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("t");
    let bundle =
        save(&format!("docker-archive:{}", fixture("docker20-whiteout.docker.tar.gz").display()), &dir, "t", &["--compress", "none"]);
    // Flip one byte deep inside the artifact (in a layer), and make the checksum
    // file agree, so that only the blob's digest can tell.
    let artifact = dir.join("t.tar");
    let mut bytes = std::fs::read(&artifact).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x55;
    std::fs::write(&artifact, &bytes).unwrap();
    std::fs::write(&bundle, format!("{}  t.tar\n", sha256_hex(&bytes))).unwrap();
    let run = push(&reg, work.path(), &bundle, &reg.url("tampered"), &[]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(reg.count("PUT", "/manifests/") == 0, "no manifest or tag was stored:\n{:#?}", reg.requests());
    let mut args = vec!["list-tags".to_string()];
    args.extend(reg.skopeo_args(""));
    args.push(reg.url("tampered/ferry-fixture/docker20"));
    let out = skopeo(&args);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(!listed.contains("v1"), "a tag was left behind: {listed}");
}

#[test]
fn wrong_password_and_unknown_ca_are_clear_transport_errors() {
    let reg = Registry::start(Mode::TlsAuth);
    let work = tempfile::tempdir().unwrap();
    let bundle =
        save(&format!("docker-archive:{}", fixture("docker20-whiteout.docker.tar.gz").display()), &work.path().join("b"), "b", &[]);
    let bad_auth = reg.auth_file("not-the-password-42");
    let home = work.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> =
            ["load", "--allow-unsigned", bundle.to_str().unwrap(), "--into", &reg.url("x")].iter().map(|s| s.to_string()).collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let env = [("HOME", home.to_str().unwrap())];
    let a = args(&["--ca-cert", reg.ca_cert().to_str().unwrap(), "--registry-auth", bad_auth.to_str().unwrap()]);
    let run = ferry_env(&a.iter().map(String::as_str).collect::<Vec<_>>(), &env);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(run.stderr.contains(&reg.host()) && run.stderr.contains("access denied"), "{}", run.stderr);
    assert!(run.stderr.contains("user alice from") && run.stderr.contains("check the credentials"), "{}", run.stderr);
    assert!(!run.stderr.contains("not-the-password-42"), "the password was printed: {}", run.stderr);
    assert_eq!(reg.count("POST", "/blobs/uploads/"), 0, "nothing was sent");

    // No credentials at all: says where it looked.
    let a = args(&["--ca-cert", reg.ca_cert().to_str().unwrap()]);
    let run = ferry_env(&a.iter().map(String::as_str).collect::<Vec<_>>(), &env);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(run.stderr.contains("no credentials"), "{}", run.stderr);

    let good = reg.auth_file(PASSWORD);
    let a = args(&["--registry-auth", good.to_str().unwrap()]);
    let run = ferry_env(&a.iter().map(String::as_str).collect::<Vec<_>>(), &env);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(run.stderr.contains("TLS") && run.stderr.contains("--ca-cert"), "{}", run.stderr);

    // No registry there at all: exit 4, and --json says so on stderr.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let down = format!("docker://127.0.0.1:{free}/x");
    let run = ferry_env(
        &["--json", "load", "--allow-unsigned", bundle.to_str().unwrap(), "--into", &down, "--plain-http", "--retries", "0"],
        &env,
    );
    assert_eq!(run.code, 4, "{}", run.stderr);
    let err: serde_json::Value = serde_json::from_str(run.stderr.trim()).unwrap_or_else(|e| panic!("{e}: {}", run.stderr));
    assert_eq!(err["exit"], 4);
    assert!(err["hint"].as_str().unwrap().contains("registry runs"), "{err}");

    // Credentials from $REGISTRY_AUTH_FILE work as --registry-auth does.
    let a = args(&["--ca-cert", reg.ca_cert().to_str().unwrap(), "-q"]);
    let run = ferry_env(&a.iter().map(String::as_str).collect::<Vec<_>>(), &[env[0], ("REGISTRY_AUTH_FILE", good.to_str().unwrap())]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

/// A ≥256 MiB bundle of four 64 MiB random layers, uncompressed.
fn big_bundle(work: &Path) -> (PathBuf, Vec<(String, u64)>) {
    let layout = work.join("big-oci");
    let layers = random_image(&layout, 4, 64);
    let bundle = save(&format!("oci:{}", layout.display()), &work.join("b"), "big", &["--compress", "none"]);
    std::fs::remove_dir_all(&layout).unwrap();
    (bundle, layers)
}

#[test]
fn registry_killed_mid_upload_then_a_rerun_sends_only_the_rest() {
    let mut reg = Registry::start(Mode::TlsAuth);
    let work = tempfile::tempdir().unwrap();
    let (bundle, layers) = big_bundle(work.path());
    let total: u64 = layers.iter().map(|(_, s)| s).sum();

    let flags = reg.ferry_args();
    let mut args: Vec<String> = ["--json", "load", "--allow-unsigned", bundle.to_str().unwrap(), "--into", &reg.url("r"), "--retries", "1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(flags);
    let home = work.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let cache = work.path().join("cache");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(&args)
        .env("HOME", &home)
        .env("XDG_CACHE_HOME", &cache)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the registry once two layers are stored and the third is on its way.
    let started = std::time::Instant::now();
    while reg.stored_blob_bytes() < 2 * (64 << 20) || reg.pending_upload_bytes() < 8 << 20 {
        assert!(child.try_wait().unwrap().is_none(), "ferry finished before the registry could be killed");
        assert!(started.elapsed() < std::time::Duration::from_secs(180), "the upload did not get going");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    reg.kill();
    let stored = reg.stored_blob_bytes();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "a killed registry is a transport failure: {stderr}");
    assert!(stderr.contains(&reg.host()), "{stderr}");
    assert_eq!(reg.count("PUT", "/manifests/"), 0, "no manifest went up");

    reg.restart();
    let run = ferry_env(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &[("HOME", home.to_str().unwrap()), ("XDG_CACHE_HOME", cache.to_str().unwrap())],
    );
    assert_eq!(run.code, 0, "the rerun failed: {}", run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let sent = report["registry"]["bytes_uploaded"].as_u64().unwrap();
    assert!(report["registry"]["blobs_skipped"].as_u64().unwrap() >= 2, "the stored layers were skipped: {report}");
    assert!(sent <= total - stored + (1 << 20), "the rerun sent {sent} bytes; the registry held {stored} of {total}: {report}");
    let (name, digest) = &pushed(&report)[0];
    assert_eq!(format!("sha256:{}", sha256_hex(&raw_manifest(&reg, name))), *digest);
    // skopeo reads the whole image back (the registry checked every layer's digest on its final PUT).
    skopeo_copies_back(&reg, name, &work.path().join("back"));
}

/// `skopeo copy docker://NAME oci:DIR:x` succeeds: the registry serves the whole image.
fn skopeo_copies_back(reg: &Registry, name: &str, dir: &Path) {
    let mut copy = vec!["copy".to_string()];
    copy.extend(reg.skopeo_args("src"));
    copy.push(format!("docker://{name}"));
    copy.push(format!("oci:{}:x", dir.display()));
    let out = skopeo(&copy);
    assert!(out.status.success(), "skopeo copy: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn an_upload_left_between_chunks_resumes_from_the_registrys_offset() {
    use ferry::registry::{upload::Sessions, Client, RegistryOptions};
    let reg = Registry::start(Mode::TlsAuth);
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("oci");
    let layers = random_image(&layout, 1, 40);
    let (hex, size) = layers[0].clone();
    let layer = std::fs::read(layout.join("blobs/sha256").join(&hex)).unwrap();
    let bundle = save(&format!("oci:{}", layout.display()), &work.path().join("b"), "one", &["--compress", "none"]);

    // An earlier run sent the first 16 MiB chunk and stopped (Ctrl-C, or a lost
    // registry between chunks): its session is remembered where ferry keeps them.
    let opts = RegistryOptions { ca_cert: Some(reg.ca_cert()), auth_file: Some(reg.auth_file(PASSWORD)), ..Default::default() };
    let client = Client::connect(&reg.host(), &opts).unwrap();
    let repo = "r/ferry/big";
    let digest = ferry::digest::Digest::parse(&format!("sha256:{hex}")).unwrap();
    let location = client.start_upload(repo).unwrap();
    let first = ferry::registry::upload::CHUNK;
    let next = client.patch_chunk(repo, &location, 0, bytes::Bytes::copy_from_slice(&layer[..first])).unwrap();
    Sessions::in_dir(work.path().join("cache/ferry/registry-uploads")).save(&reg.host(), repo, &digest, &next);

    let patches = reg.count("PATCH", "/blobs/uploads/");
    let report = push_ok(&reg, work.path(), &bundle, &reg.url("r"));
    assert_eq!(report["registry"]["bytes_resumed"].as_u64(), Some(first as u64), "{report}");
    let sent = report["registry"]["bytes_uploaded"].as_u64().unwrap();
    let config_size = std::fs::read_dir(layout.join("blobs/sha256")).unwrap().count() as u64; // a bound: config bytes are few
    assert!(sent >= size - first as u64 && sent < size - first as u64 + 4096 * config_size, "sent {sent}: {report}");
    let chunks = ((size - first as u64) / first as u64) as usize;
    assert_eq!(reg.count("PATCH", "/blobs/uploads/") - patches, chunks, "the rest in whole chunks, the last part with the final PUT");
    raw_manifest(&reg, &format!("{}/r/ferry/big:v1", reg.host()));
}

#[test]
fn a_delta_loads_only_where_its_base_is_and_mounts_it_from_there() {
    let reg = Registry::start(Mode::TlsAuth);
    let work = tempfile::tempdir().unwrap();
    let src = format!("docker-archive:{}", fixture("multi.docker.tar.gz").display());
    let base = save(&format!("{src}:ferry-fixture/docker20:v1"), &work.path().join("base"), "base", &[]);
    let have = work.path().join("base.have");
    ferry_ok(&["have", "--allow-unsigned", base.to_str().unwrap(), "-o", have.to_str().unwrap()]);
    let delta =
        save(&format!("{src}:ferry-fixture/docker20-child:v1"), &work.path().join("delta"), "delta", &["--have", have.to_str().unwrap()]);

    // An empty registry lacks the base: refused with exit 1 before any upload.
    let run = push(&reg, work.path(), &delta, &reg.url("site"), &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("lacks") && run.stderr.contains("nothing was written"), "{}", run.stderr);
    assert_eq!(reg.upload_requests(), 0, "nothing was uploaded:\n{:#?}", reg.requests());

    // With the base pushed (another repository under the same prefix) the delta loads,
    // its left-out layers mounted across.
    push_ok(&reg, work.path(), &base, &reg.url("site"));
    let report = push_ok(&reg, work.path(), &delta, &reg.url("site"));
    assert!(report["registry"]["blobs_mounted"].as_u64().unwrap() > 0, "{report}");
    let (name, digest) = &pushed(&report)[0];
    assert_eq!(name, &format!("{}/site/ferry-fixture/docker20-child:v1", reg.host()));
    assert_eq!(format!("sha256:{}", sha256_hex(&raw_manifest(&reg, name))), *digest);
    let mut args = vec!["copy".to_string()];
    args.extend(reg.skopeo_args("src"));
    args.push(format!("docker://{name}"));
    args.push(format!("oci:{}:child", work.path().join("child-oci").display()));
    let out = skopeo(&args);
    assert!(out.status.success(), "every layer of the delta's image is there: {}", String::from_utf8_lossy(&out.stderr));
}

/// A layout with an image (`docker.io/ferry/signed:v1`), a cosign-style
/// signature tag beside it and an OCI 1.1 referrer (an SBOM whose subject is
/// the image), as a registry-to-bundle save would hold them. Returns the
/// image's and the referrer's manifest digests.
fn signed_layout(dir: &Path) -> (String, String) {
    random_image(dir, 1, 1);
    let index_path = dir.join("index.json");
    let mut index: serde_json::Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let image = index["manifests"][0].clone();
    let image_digest = image["digest"].as_str().unwrap().to_string();
    let blobs = dir.join("blobs/sha256");
    let put = |bytes: &[u8]| -> String {
        let hex = sha256_hex(bytes);
        std::fs::write(blobs.join(&hex), bytes).unwrap();
        format!("sha256:{hex}")
    };
    let empty = put(b"{}");
    let payload =
        format!(r#"{{"critical":{{"image":{{"docker-manifest-digest":"{image_digest}"}},"type":"cosign container image signature"}}}}"#);
    let payload_digest = put(payload.as_bytes());
    let sig = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{empty}","size":2}},"layers":[{{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","digest":"{payload_digest}","size":{},"annotations":{{"dev.cosignproject.cosign/signature":"MEUCIQ=="}}}}]}}"#,
        payload.len()
    );
    let sig_digest = put(sig.as_bytes());
    let sbom = br#"{"spdxVersion":"SPDX-2.3","name":"ferry-test"}"#;
    let sbom_digest = put(sbom);
    let referrer = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/spdx+json","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{empty}","size":2}},"layers":[{{"mediaType":"application/spdx+json","digest":"{sbom_digest}","size":{}}}],"subject":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{image_digest}","size":{}}},"annotations":{{"org.opencontainers.image.created":"2026-01-01T00:00:00Z"}}}}"#,
        sbom.len(),
        image["size"]
    );
    let referrer_digest = put(referrer.as_bytes());
    let entry = |digest: &str, size: usize, name: &str, ref_name: &str| {
        serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size,
            "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": ref_name}})
    };
    let sig_tag = format!("sha256-{}.sig", &image_digest[7..]);
    index["manifests"][0]["annotations"]["io.containerd.image.name"] = "docker.io/ferry/signed:v1".into();
    index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] = "v1".into();
    let manifests = index["manifests"].as_array_mut().unwrap();
    manifests.push(entry(&sig_digest, sig.len(), &format!("docker.io/ferry/signed:{sig_tag}"), &sig_tag));
    manifests.push(entry(&referrer_digest, referrer.len(), &format!("docker.io/ferry/signed@{referrer_digest}"), "sbom"));
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    (image_digest, referrer_digest)
}

#[test]
fn signatures_and_referrers_travel_unless_left_out() {
    let reg = Registry::start(Mode::TlsAuth);
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("signed");
    let (image, referrer) = signed_layout(&layout);
    let bundle = save(&format!("oci:{}", layout.display()), &work.path().join("b"), "signed", &[]);

    let report = push_ok(&reg, work.path(), &bundle, &reg.url("m"));
    let repo = format!("{}/m/ferry/signed", reg.host());
    let sig_tag = format!("sha256-{}.sig", &image[7..]);
    let mut list = vec!["list-tags".to_string()];
    list.extend(reg.skopeo_args(""));
    list.push(format!("docker://{repo}"));
    let tags = String::from_utf8(skopeo(&list).stdout).unwrap();
    assert!(tags.contains("\"v1\"") && tags.contains(&sig_tag), "the signature tag went along: {tags}");
    // distribution 2.8 has no referrers API: the referrer is listed in the tag-schema fallback.
    assert_eq!(report["registry"]["referrers_indexed"], 1, "{report}");
    let fallback: serde_json::Value = serde_json::from_slice(&raw_manifest(&reg, &format!("{repo}:sha256-{}", &image[7..]))).unwrap();
    let listed = &fallback["manifests"][0];
    assert_eq!(listed["digest"], referrer.as_str(), "{fallback}");
    assert_eq!(listed["artifactType"], "application/spdx+json", "{fallback}");
    assert_eq!(format!("sha256:{}", sha256_hex(&raw_manifest(&reg, &format!("{repo}@{referrer}")))), referrer);

    // --no-referrers: only the image.
    let run = push(&reg, work.path(), &bundle, &reg.url("bare"), &["--no-referrers"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["registry"]["referrers_left_out"], 2, "{report}");
    let mut list = vec!["list-tags".to_string()];
    list.extend(reg.skopeo_args(""));
    list.push(format!("docker://{}/bare/ferry/signed", reg.host()));
    let tags: serde_json::Value = serde_json::from_slice(&skopeo(&list).stdout).unwrap();
    assert_eq!(tags["Tags"], serde_json::json!(["v1"]), "{tags}");
}

#[test]
fn a_registry_that_asks_for_a_client_certificate_gets_one() {
    let reg = Registry::start(Mode::MutualTls);
    let work = tempfile::tempdir().unwrap();
    let bundle =
        save(&format!("docker-archive:{}", fixture("docker20-whiteout.docker.tar.gz").display()), &work.path().join("b"), "b", &[]);
    // ferry_args() carries --cert and --cert-key for this mode.
    let report = push_ok(&reg, work.path(), &bundle, &reg.url("mtls"));
    let (name, digest) = &pushed(&report)[0];
    assert_eq!(format!("sha256:{}", sha256_hex(&raw_manifest(&reg, name))), *digest);
    let home = work.path().join("home");
    let run = ferry_env(
        &[
            "load",
            "--allow-unsigned",
            bundle.to_str().unwrap(),
            "--into",
            &reg.url("mtls2"),
            "--ca-cert",
            reg.ca_cert().to_str().unwrap(),
            "--registry-auth",
            reg.auth_file(PASSWORD).to_str().unwrap(),
        ],
        &[("HOME", home.to_str().unwrap())],
    );
    assert_eq!(run.code, 4, "without a client certificate: {}", run.stderr);
}

#[test]
fn a_registry_with_token_auth_takes_a_push() {
    let reg = Registry::start(Mode::TlsToken);
    let work = tempfile::tempdir().unwrap();
    let src = format!("docker-archive:{}", fixture("multi.docker.tar.gz").display());
    let bundle = save(&src, &work.path().join("b"), "b", &[]);
    // Two repositories: uploads, a cross-repository mount (a token for both scopes), tags.
    let report = push_ok(&reg, work.path(), &bundle, &reg.url("tok"));
    assert!(report["registry"]["blobs_mounted"].as_u64().unwrap() > 0, "{report}");
    for (name, digest) in pushed(&report) {
        let mut args = vec!["inspect".to_string(), "--raw".into(), "--cert-dir".into(), reg.cert_dir().display().to_string()];
        args.extend(["--creds".into(), format!("{}:{PASSWORD}", support::registry::USER), format!("docker://{name}")]);
        let out = skopeo(&args);
        assert!(out.status.success(), "skopeo inspect {name}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(format!("sha256:{}", sha256_hex(&out.stdout)), digest);
    }
}

/// Upload sessions (the `UUID` of `/blobs/uploads/UUID`) of the PATCHes in the access log, in log order.
fn patch_sessions(reg: &Registry) -> Vec<String> {
    reg.requests()
        .iter()
        .filter(|r| r.starts_with("PATCH "))
        .filter_map(|r| r.split("/blobs/uploads/").nth(1)?.split(['?', ' ']).next().map(str::to_string))
        .collect()
}

/// Whether some session's PATCHes have another session's PATCH between them.
fn interleaved(sessions: &[String]) -> bool {
    sessions.iter().enumerate().any(|(i, s)| {
        let last = sessions.iter().rposition(|t| t == s).unwrap();
        sessions[i..last].iter().any(|t| t != s)
    })
}

#[test]
fn four_jobs_and_one_push_the_same_image_and_four_overlap() {
    let reg = Registry::start(Mode::TlsAuth);
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("oci");
    // Four layers of three chunks each and more (chunked uploads), and a small config.
    let layers = random_image(&layout, 4, 20);
    let bundle = save(&format!("oci:{}", layout.display()), &work.path().join("b"), "four", &["--compress", "none"]);
    let want = bundle_digests(&bundle);

    let serial = push(&reg, work.path(), &bundle, &reg.url("serial"), &["-j", "1"]);
    assert_eq!(serial.code, 0, "{}", serial.stderr);
    let one = patch_sessions(&reg);
    assert!(!interleaved(&one), "-j 1 sends one blob after another: {one:#?}");
    let parallel = push(&reg, work.path(), &bundle, &reg.url("parallel"), &["-j", "4"]);
    assert_eq!(parallel.code, 0, "{}", parallel.stderr);
    let four = patch_sessions(&reg)[one.len()..].to_vec();
    assert!(interleaved(&four), "-j 4 has uploads in flight at once: {four:#?}");

    use ferry::registry::{Client, RegistryOptions};
    let opts = RegistryOptions { ca_cert: Some(reg.ca_cert()), auth_file: Some(reg.auth_file(PASSWORD)), ..Default::default() };
    let client = Client::connect(&reg.host(), &opts).unwrap();
    for (run, prefix) in [(&serial, "serial"), (&parallel, "parallel")] {
        let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(report["registry"]["blobs_uploaded"].as_u64(), Some(layers.len() as u64 + 1), "layers and config: {report}");
        let (name, digest) = &pushed(&report)[0];
        assert_eq!(name, &format!("{}/{prefix}/ferry/big:v1", reg.host()));
        assert_eq!(vec![digest.clone()], want);
        assert_eq!(format!("sha256:{}", sha256_hex(&raw_manifest(&reg, name))), *digest, "skopeo reads the bundle's manifest");
        for (hex, _) in &layers {
            let d = ferry::digest::Digest::parse(&format!("sha256:{hex}")).unwrap();
            assert!(client.blob_exists(&format!("{prefix}/ferry/big"), &d).unwrap(), "layer {hex} is in {prefix}");
        }
    }
    // skopeo copies the parallel push back whole (every layer's digest checked).
    skopeo_copies_back(&reg, &format!("{}/parallel/ferry/big:v1", reg.host()), &work.path().join("back"));
}

#[test]
fn a_tampered_layer_with_four_jobs_exits_3_finalizes_it_not_and_tags_nothing() {
    let reg = Registry::start(Mode::TlsAuth);
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("oci");
    let layers = random_image(&layout, 4, 20);
    let dir = work.path().join("b");
    let bundle = save(&format!("oci:{}", layout.display()), &dir, "t", &["--compress", "none"]);
    // A byte in the middle of the artifact (inside a layer), the checksum file made to agree.
    let artifact = dir.join("t.tar");
    let mut bytes = std::fs::read(&artifact).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x55;
    std::fs::write(&artifact, &bytes).unwrap();
    std::fs::write(&bundle, format!("{}  t.tar\n", sha256_hex(&bytes))).unwrap();

    let run = push(&reg, work.path(), &bundle, &reg.url("tampered"), &["-j", "4"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(reg.count("PUT", "/manifests/"), 0, "no manifest or tag was stored:\n{:#?}", reg.requests());
    use ferry::registry::{Client, RegistryOptions};
    let opts = RegistryOptions { ca_cert: Some(reg.ca_cert()), auth_file: Some(reg.auth_file(PASSWORD)), ..Default::default() };
    let client = Client::connect(&reg.host(), &opts).unwrap();
    let stored = layers
        .iter()
        .filter(|(hex, _)| {
            client.blob_exists("tampered/ferry/big", &ferry::digest::Digest::parse(&format!("sha256:{hex}")).unwrap()).unwrap()
        })
        .count();
    assert!(stored < layers.len(), "the damaged layer was not finalized ({stored} of {} stored)", layers.len());
    assert!(client.list_tags("tampered/ferry/big").unwrap().is_empty(), "a tag was left behind");
}
