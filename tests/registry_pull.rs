//! `ferry save docker://…` and `ferry have docker://…` against a real
//! distribution 2.8 (Debian's docker-registry) with TLS and htpasswd auth.
//! Images get into the registry with skopeo (the reference producer); what
//! ferry pulls is checked against `skopeo inspect --raw`, `ferry verify` and
//! a real dockerd that runs it.
mod common;
mod support;

use common::*;
use std::path::Path;
use std::process::Command;
use support::dockerd::Dockerd;
use support::registry::{Mode, Registry};

/// `skopeo copy SRC docker://HOST/DEST` (all platforms).
fn push(reg: &Registry, src: &str, dest: &str) {
    require("skopeo");
    let out = Command::new("skopeo")
        .arg("copy")
        .arg("--all")
        .args(reg.skopeo_args("dest"))
        .arg(src)
        .arg(reg.url(dest))
        .output()
        .expect("run skopeo");
    assert!(out.status.success(), "skopeo copy {src} {dest}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The manifest bytes `skopeo inspect --raw` reads for `path` (REPO:TAG).
fn raw_manifest(reg: &Registry, path: &str) -> Vec<u8> {
    let out = Command::new("skopeo").args(["inspect", "--raw"]).args(reg.skopeo_args("")).arg(reg.url(path)).output().expect("run skopeo");
    assert!(out.status.success(), "skopeo inspect {path}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// `ferry ARGS` with the registry's CA and credentials.
fn ferry_reg(reg: &Registry, args: &[&str]) -> Run {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.extend(reg.ferry_args());
    ferry(&all.iter().map(String::as_str).collect::<Vec<_>>())
}

fn ferry_reg_ok(reg: &Registry, args: &[&str]) -> Run {
    let r = ferry_reg(reg, args);
    assert_eq!(r.code, 0, "ferry {args:?} failed:\n{}", r.stderr);
    r
}

/// The tar entries (name → bytes) of DIR/STEM.tar.zst.
fn bundle_files(dir: &Path, stem: &str) -> Vec<(String, Vec<u8>)> {
    let artifact = std::fs::read(dir.join(format!("{stem}.tar.zst"))).expect("the bundle's artifact");
    tar_files(&decompress(&artifact)).into_iter().map(|(name, _, data, _)| (name, data)).collect()
}

fn blob<'a>(files: &'a [(String, Vec<u8>)], digest: &str) -> Option<&'a [u8]> {
    let path = format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
    files.iter().find(|(n, _)| *n == path).map(|(_, d)| d.as_slice())
}

fn index_json(files: &[(String, Vec<u8>)]) -> serde_json::Value {
    serde_json::from_slice(&files.iter().find(|(n, _)| n == "index.json").expect("index.json").1).unwrap()
}

/// Every blob a manifest names is in the bundle, byte for byte what the registry has.
fn assert_manifest_carried(files: &[(String, Vec<u8>)], manifest: &[u8]) {
    assert_eq!(blob(files, &digest_of(manifest)), Some(manifest), "the manifest travels byte for byte");
    let m: serde_json::Value = serde_json::from_slice(manifest).unwrap();
    let config = &m["config"];
    let mut blobs = vec![config];
    blobs.extend(m["layers"].as_array().unwrap());
    for d in blobs {
        let digest = d["digest"].as_str().unwrap();
        let data = blob(files, digest).unwrap_or_else(|| panic!("blob {digest} is missing from the bundle"));
        assert_eq!(digest_of(data), digest, "blob {digest} keeps its digest");
    }
}

#[test]
fn save_from_registry_keeps_digests_verifies_and_runs_in_docker() {
    let reg = Registry::start(Mode::TlsAuth);
    let fx = fixture("skopeo-gzip.oci");
    push(&reg, &format!("oci:{}", fx.display()), "team/app:v1");
    let manifest = raw_manifest(&reg, "team/app:v1");
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("b");
    let r = ferry_reg_ok(&reg, &["save", &reg.url("team/app:v1"), "-o", out.to_str().unwrap(), "-n", "app", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&r.stdout).expect("--json prints one object");
    assert_eq!(report["stem"], "app", "{}", r.stdout);

    let files = bundle_files(&out, "app");
    assert_manifest_carried(&files, &manifest);
    let index = index_json(&files);
    let entry = &index["manifests"][0];
    assert_eq!(entry["digest"].as_str(), Some(digest_of(&manifest).as_str()), "index.json names the registry's manifest");
    assert_eq!(entry["annotations"]["io.containerd.image.name"].as_str(), Some(format!("{}/team/app:v1", reg.host()).as_str()));
    // Nothing but the bundle is left next to it (no spool files).
    let mut names: Vec<String> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["app.sha256", "app.tar.zst"], "only the bundle is written");

    ferry_ok(&["verify", out.join("app").to_str().unwrap()]);

    // A real dockerd loads it and runs it.
    let daemon = Dockerd::start();
    let loaded = ferry_env(
        &["load", out.join("app").to_str().unwrap(), "--into", "docker-daemon:", "--allow-unsigned"],
        &[("DOCKER_HOST", daemon.host.as_str())],
    );
    assert_eq!(loaded.code, 0, "load into dockerd: {}", loaded.stderr);
    let image = format!("{}/team/app:v1", reg.host());
    let run = daemon.docker_ok(&["run", "--rm", "--pull=never", "--network", "none", &image]);
    assert_eq!(run.trim_end(), "ferry fixture docker20: ok");
    let config = serde_json::from_slice::<serde_json::Value>(&manifest).unwrap()["config"]["digest"].as_str().unwrap().to_string();
    assert_eq!(
        daemon.docker_ok(&["image", "inspect", "-f", "{{.Id}}", &image]).trim(),
        config,
        "the image ID is the registry's config digest"
    );

    // By digest: the same manifest, the name kept with its digest.
    let by_digest = work.path().join("d");
    let pinned = reg.url(&format!("team/app@{}", digest_of(&manifest)));
    ferry_reg_ok(&reg, &["save", &pinned, "-o", by_digest.to_str().unwrap(), "-n", "app"]);
    let files = bundle_files(&by_digest, "app");
    assert_manifest_carried(&files, &manifest);
    assert_eq!(index_json(&files)["manifests"][0]["digest"].as_str(), Some(digest_of(&manifest).as_str()));
    ferry_ok(&["verify", by_digest.join("app").to_str().unwrap()]);

    // A digest the repository does not have: exit 1, nothing written.
    let missing = work.path().join("m");
    let r = ferry_reg(&reg, &["save", &reg.url(&format!("team/app@sha256:{}", "0".repeat(64))), "-o", missing.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("not found"), "{}", r.stderr);
}

#[test]
fn multi_arch_index_and_platform_selection() {
    let reg = Registry::start(Mode::TlsAuth);
    push(&reg, &format!("oci-archive:{}", fixture("multiarch.oci.tar").display()), "multi/arch:v1");
    let index = raw_manifest(&reg, "multi/arch:v1");
    let parsed: serde_json::Value = serde_json::from_slice(&index).unwrap();
    let arm64 =
        parsed["manifests"].as_array().unwrap().iter().find(|m| m["platform"]["architecture"] == "arm64").expect("an arm64 manifest");
    let arm64_digest = arm64["digest"].as_str().unwrap().to_string();
    let work = tempfile::tempdir().unwrap();

    // All platforms: the index itself, both manifests and their blobs.
    let all = work.path().join("all");
    ferry_reg_ok(&reg, &["save", &reg.url("multi/arch:v1"), "-o", all.to_str().unwrap(), "-n", "m"]);
    let files = bundle_files(&all, "m");
    assert_eq!(blob(&files, &digest_of(&index)), Some(index.as_slice()), "the index travels byte for byte");
    assert_eq!(index_json(&files)["manifests"][0]["digest"].as_str(), Some(digest_of(&index).as_str()));
    for m in parsed["manifests"].as_array().unwrap() {
        let digest = m["digest"].as_str().unwrap();
        assert_manifest_carried(&files, blob(&files, digest).expect("each platform's manifest"));
    }
    ferry_ok(&["verify", all.join("m").to_str().unwrap()]);

    // --platform linux/arm64: that manifest alone, its digest unchanged.
    let one = work.path().join("one");
    ferry_reg_ok(&reg, &["save", &reg.url("multi/arch:v1"), "--platform", "linux/arm64", "-o", one.to_str().unwrap(), "-n", "m"]);
    let files = bundle_files(&one, "m");
    assert_eq!(index_json(&files)["manifests"][0]["digest"].as_str(), Some(arm64_digest.as_str()));
    assert!(blob(&files, &digest_of(&index)).is_none(), "the index is left out");
    let other = parsed["manifests"].as_array().unwrap().iter().find(|m| m["digest"] != arm64_digest.as_str()).unwrap();
    assert!(blob(&files, other["digest"].as_str().unwrap()).is_none(), "the other platform is left out");
    let inspect: serde_json::Value =
        serde_json::from_str(&ferry_ok(&["inspect", one.join("m").to_str().unwrap(), "--json"]).stdout).unwrap();
    assert_eq!(inspect["images"][0]["manifests"][0]["platform"], "linux/arm64", "{inspect}");
}

/// Upload `data` as a blob of `repo` with curl (the registry's own API): its digest.
fn curl_blob(reg: &Registry, repo: &str, data: &[u8]) -> String {
    let digest = digest_of(data);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), data).unwrap();
    let base = format!("https://{}/v2/{repo}/blobs/uploads/", reg.host());
    let location = sh(&format!(
        "curl -sS -f --cacert {} -u alice:s3cret -X POST -D - -o /dev/null '{base}' | tr -d '\\r' | sed -n 's/^[Ll]ocation: //p'",
        reg.ca_cert().display()
    ));
    let location = location.trim();
    let sep = if location.contains('?') { '&' } else { '?' };
    let url = if location.starts_with("http") { location.to_string() } else { format!("https://{}{location}", reg.host()) };
    sh(&format!(
        "curl -sS -f --cacert {} -u alice:s3cret -X PUT -H 'Content-Type: application/octet-stream' --data-binary @{} '{url}{sep}digest={digest}'",
        reg.ca_cert().display(),
        file.path().display()
    ));
    digest
}

/// A cosign-style signature of `subject` in `repo`, under the tag `sha256-HEX.sig`: the signature manifest's digest.
fn plant_signature(reg: &Registry, repo: &str, subject: &str) -> String {
    let payload = format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{}/{repo}"}},"image":{{"docker-manifest-digest":"{subject}"}},"type":"cosign container image signature"}},"optional":null}}"#,
        reg.host()
    );
    let payload_digest = curl_blob(reg, repo, payload.as_bytes());
    let config = format!(
        r#"{{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{{"created":"0001-01-01T00:00:00Z"}}],"os":"","rootfs":{{"type":"layers","diff_ids":["{payload_digest}"]}},"config":{{}}}}"#
    );
    let config_digest = curl_blob(reg, repo, config.as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","size":{},"digest":"{config_digest}"}},"layers":[{{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","size":{},"digest":"{payload_digest}","annotations":{{"dev.cosignproject.cosign/signature":"MEUCIQDtest"}}}}]}}"#,
        config.len(),
        payload.len()
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &manifest).unwrap();
    let tag = format!("sha256-{}.sig", subject.trim_start_matches("sha256:"));
    sh(&format!(
        "curl -sS -f --cacert {} -u alice:s3cret -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary @{} 'https://{}/v2/{repo}/manifests/{tag}'",
        reg.ca_cert().display(),
        file.path().display(),
        reg.host()
    ));
    digest_of(manifest.as_bytes())
}

#[test]
fn cosign_signature_travels_and_no_referrers_leaves_it_out() {
    require("curl");
    let reg = Registry::start(Mode::TlsAuth);
    push(&reg, &format!("oci:{}", fixture("skopeo-gzip.oci").display()), "signed/app:v1");
    let subject = digest_of(&raw_manifest(&reg, "signed/app:v1"));
    let signature = plant_signature(&reg, "signed/app", &subject);
    let work = tempfile::tempdir().unwrap();

    let out = work.path().join("s");
    ferry_reg_ok(&reg, &["save", &reg.url("signed/app:v1"), "-o", out.to_str().unwrap(), "-n", "s"]);
    let files = bundle_files(&out, "s");
    let sig_manifest = blob(&files, &signature).expect("the signature manifest travels");
    assert_manifest_carried(&files, sig_manifest);
    let index = index_json(&files);
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{index}");
    let sig = entries.iter().find(|e| e["digest"] == signature.as_str()).expect("an index.json entry for the signature");
    assert_eq!(sig["annotations"]["dev.ferry.referrer.subject"].as_str(), Some(subject.as_str()));
    assert_eq!(sig["annotations"]["dev.ferry.referrer.kind"], "signature");
    let tag = format!("sha256-{}.sig", subject.trim_start_matches("sha256:"));
    assert_eq!(sig["annotations"]["org.opencontainers.image.ref.name"].as_str(), Some(tag.as_str()));
    // The registry has no referrers API (distribution 2.8): ferry asked, then read the tags.
    assert!(reg.count("GET", &format!("/v2/signed/app/referrers/{subject}")) >= 1, "the referrers API is tried first");
    assert!(reg.count("GET", "/v2/signed/app/tags/list") >= 1);
    ferry_ok(&["verify", out.join("s").to_str().unwrap()]);

    // inspect lists it, text and JSON.
    let text = ferry_ok(&["inspect", out.join("s").to_str().unwrap()]).stdout;
    assert!(text.contains(&format!("signature {tag} ({signature}) attached to {subject}")), "{text}");
    let info: serde_json::Value = serde_json::from_str(&ferry_ok(&["inspect", out.join("s").to_str().unwrap(), "--json"]).stdout).unwrap();
    let listed = info["images"].as_array().unwrap().iter().find(|i| i["digest"] == signature.as_str()).expect("inspect --json lists it");
    assert_eq!(listed["referrer"]["subject"].as_str(), Some(subject.as_str()));
    assert_eq!(listed["referrer"]["kind"], "signature");

    // The docker view (manifest.json) holds only the image: docker load takes the bundle.
    let docker: serde_json::Value = serde_json::from_slice(&files.iter().find(|(n, _)| n == "manifest.json").unwrap().1).unwrap();
    assert_eq!(docker.as_array().unwrap().len(), 1, "{docker}");

    // Other targets take a bundle with referrers: oci: keeps the signature beside the image.
    let layout = work.path().join("layout");
    ferry_ok(&["load", out.join("s").to_str().unwrap(), "--into", &format!("oci:{}", layout.display()), "--allow-unsigned"]);
    assert!(layout.join("blobs/sha256").join(signature.trim_start_matches("sha256:")).is_file());
    let listed = std::fs::read_to_string(layout.join("index.json")).unwrap();
    assert!(listed.contains(&signature) && listed.contains(&subject), "{listed}");

    let bare = work.path().join("n");
    ferry_reg_ok(&reg, &["save", &reg.url("signed/app:v1"), "--no-referrers", "-o", bare.to_str().unwrap(), "-n", "s"]);
    let files = bundle_files(&bare, "s");
    assert!(blob(&files, &signature).is_none(), "--no-referrers leaves the signature out");
    assert_eq!(index_json(&files)["manifests"].as_array().unwrap().len(), 1);
}

#[test]
fn jobs_do_not_change_the_bundle() {
    let reg = Registry::start(Mode::TlsAuth);
    let work = tempfile::tempdir().unwrap();
    // skopeo reads docker-archives uncompressed only.
    let tar = work.path().join("links.tar");
    sh(&format!("gzip -dc {} > {}", fixture("podman-links.docker.tar.gz").display(), tar.display()));
    push(&reg, &format!("docker-archive:{}", tar.display()), "links/app:v1");
    let mut contents = Vec::new();
    for jobs in ["1", "4"] {
        let out = work.path().join(jobs);
        ferry_reg_ok(&reg, &["save", &reg.url("links/app:v1"), "-j", jobs, "-o", out.to_str().unwrap(), "-n", "l"]);
        let mut files = bundle_files(&out, "l");
        // index.json records when the bundle was made: that alone may differ.
        for (name, data) in files.iter_mut() {
            if name == "index.json" {
                let mut v: serde_json::Value = serde_json::from_slice(data).unwrap();
                v["annotations"].as_object_mut().unwrap().remove("dev.ferry.bundle.created");
                *data = serde_json::to_vec(&v).unwrap();
            }
        }
        contents.push(files);
    }
    assert!(contents[0].len() > 3);
    assert!(contents[0] == contents[1], "-j 1 and -j 4 write the same entries in the same order");

    // flatten takes the same sources: one layer, which skopeo reads back.
    let flat = work.path().join("flat");
    ferry_reg_ok(&reg, &["flatten", &reg.url("links/app:v1"), &format!("oci:{}:flat", flat.display())]);
    let out = Command::new("skopeo").args(["inspect", "--raw", &format!("oci:{}:flat", flat.display())]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(m["layers"].as_array().unwrap().len(), 1, "{m}");
}

#[test]
fn auth_and_tls_failures_are_clear() {
    let reg = Registry::start(Mode::TlsAuth);
    push(&reg, &format!("oci:{}", fixture("skopeo-gzip.oci").display()), "team/app:v1");
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("x");
    let ca = reg.ca_cert().display().to_string();

    let wrong = reg.auth_file("not-the-password").display().to_string();
    let r = ferry(&["save", &reg.url("team/app:v1"), "-o", out.to_str().unwrap(), "--ca-cert", &ca, "--registry-auth", &wrong]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(r.stderr.contains(&reg.host()) && r.stderr.contains("access denied"), "{}", r.stderr);
    assert!(r.stderr.contains(&wrong), "the auth source tried is named: {}", r.stderr);
    assert!(!r.stderr.contains("not-the-password"), "no password printed: {}", r.stderr);
    assert!(!out.exists() || std::fs::read_dir(&out).unwrap().next().is_none(), "nothing written");

    let auth = reg.auth_file(support::registry::PASSWORD).display().to_string();
    let r = ferry(&["save", &reg.url("team/app:v1"), "-o", out.to_str().unwrap(), "--registry-auth", &auth]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(r.stderr.contains("TLS") && r.stderr.contains("--ca-cert"), "{}", r.stderr);
    assert!(!out.exists() || std::fs::read_dir(&out).unwrap().next().is_none(), "nothing written");

    // A registry that is down: exit 4, naming it.
    let mut reg = reg;
    reg.kill();
    let r = ferry_reg(&reg, &["save", &reg.url("team/app:v1"), "--retries", "0", "-o", out.to_str().unwrap()]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(r.stderr.contains(&reg.host()), "{}", r.stderr);
}

#[test]
fn a_blob_that_does_not_match_its_digest_fails_with_nothing_written() {
    let reg = Registry::start(Mode::TlsAuth);
    push(&reg, &format!("oci:{}", fixture("skopeo-gzip.oci").display()), "team/app:v1");
    let manifest: serde_json::Value = serde_json::from_slice(&raw_manifest(&reg, "team/app:v1")).unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_string();
    // Damage the registry's stored copy (same length, one byte changed).
    let data = reg.dir().join(format!("data/docker/registry/v2/blobs/sha256/{}/{layer}/data", &layer[..2]));
    let mut bytes = std::fs::read(&data).expect("the registry's blob file");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&data, bytes).unwrap();

    let work = tempfile::tempdir().unwrap();
    for jobs in ["1", "4"] {
        let out = work.path().join(jobs);
        let r = ferry_reg(&reg, &["save", &reg.url("team/app:v1"), "-j", jobs, "-o", out.to_str().unwrap(), "-n", "t"]);
        assert_eq!(r.code, 3, "-j {jobs}: {}", r.stderr);
        assert!(r.stderr.contains(&layer), "the blob is named: {}", r.stderr);
        let left: Vec<_> = std::fs::read_dir(&out).map(|d| d.map(|e| e.unwrap().file_name()).collect()).unwrap_or_default();
        assert!(left.is_empty(), "-j {jobs}: nothing is left behind: {left:?}");
    }
}

#[test]
fn have_lists_every_blob_of_the_registry() {
    let reg = Registry::start(Mode::TlsAuth);
    push(&reg, &format!("oci:{}", fixture("skopeo-gzip.oci").display()), "team/app:v1");
    push(&reg, &format!("oci-archive:{}", fixture("multiarch.oci.tar").display()), "other/multi:v1");
    let mut expected = Vec::new();
    let app = raw_manifest(&reg, "team/app:v1");
    expected.push(digest_of(&app));
    let m: serde_json::Value = serde_json::from_slice(&app).unwrap();
    expected.push(m["config"]["digest"].as_str().unwrap().to_string());
    expected.extend(m["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_string()));
    let multi = raw_manifest(&reg, "other/multi:v1");
    expected.push(digest_of(&multi));
    let idx: serde_json::Value = serde_json::from_slice(&multi).unwrap();
    let platform_manifests: Vec<String> =
        idx["manifests"].as_array().unwrap().iter().map(|m| m["digest"].as_str().unwrap().to_string()).collect();
    expected.extend(platform_manifests.iter().cloned());

    let work = tempfile::tempdir().unwrap();
    let list = work.path().join("have.txt");
    let r = ferry_reg_ok(&reg, &["have", &reg.url(""), "-o", list.to_str().unwrap(), "--json"]);
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let text = std::fs::read_to_string(&list).unwrap();
    assert!(text.starts_with("# ferry have v1\n"), "{text}");
    for d in &expected {
        assert!(text.lines().any(|l| l == d), "{d} is missing from the have-list:\n{text}");
    }
    // The layers of the platform manifests too.
    for pm in &platform_manifests {
        let out = Command::new("skopeo")
            .args(["inspect", "--raw"])
            .args(reg.skopeo_args(""))
            .arg(reg.url(&format!("other/multi@{pm}")))
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for l in v["layers"].as_array().unwrap() {
            assert!(text.lines().any(|x| x == l["digest"].as_str().unwrap()));
        }
    }
    assert_eq!(report["blobs"].as_u64(), Some(text.lines().filter(|l| l.starts_with("sha256:")).count() as u64), "{report}");

    // Under a prefix: only that repository's blobs.
    let prefixed = work.path().join("team.txt");
    ferry_reg_ok(&reg, &["have", &reg.url("team"), "-o", prefixed.to_str().unwrap()]);
    let text = std::fs::read_to_string(&prefixed).unwrap();
    assert!(text.lines().any(|l| l == digest_of(&app)));
    assert!(!text.lines().any(|l| l == digest_of(&multi)), "other/ is not under team/:\n{text}");

    // A have-list from the registry makes a delta: save leaves out what it holds.
    let delta = work.path().join("delta");
    ferry_reg_ok(&reg, &["save", &reg.url("team/app:v1"), "--have", list.to_str().unwrap(), "-o", delta.to_str().unwrap(), "-n", "d"]);
    let files = bundle_files(&delta, "d");
    for l in m["layers"].as_array().unwrap() {
        assert!(blob(&files, l["digest"].as_str().unwrap()).is_none(), "the registry's layer is left out");
    }
}

#[test]
fn pulls_from_a_registry_that_wants_a_client_certificate() {
    let reg = Registry::start(Mode::MutualTls);
    push(&reg, &format!("oci:{}", fixture("skopeo-gzip.oci").display()), "team/app:v1");
    let manifest = raw_manifest(&reg, "team/app:v1");
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("c");
    ferry_reg_ok(&reg, &["save", &reg.url("team/app:v1"), "-o", out.to_str().unwrap(), "-n", "c"]);
    assert_manifest_carried(&bundle_files(&out, "c"), &manifest);
    // Without the certificate the handshake is refused: a transport failure.
    let auth = reg.auth_file(support::registry::PASSWORD).display().to_string();
    let ca = reg.ca_cert().display().to_string();
    let r = ferry(&[
        "save",
        &reg.url("team/app:v1"),
        "-o",
        work.path().join("n").to_str().unwrap(),
        "--ca-cert",
        &ca,
        "--registry-auth",
        &auth,
    ]);
    assert_eq!(r.code, 4, "{}", r.stderr);
}

/// Bytes in the files of `dir` (a save's output growing).
fn bytes_in(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map(|rd| rd.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum()).unwrap_or(0)
}

#[test]
fn a_pull_cut_off_by_a_registry_restart_resumes_where_it_stopped() {
    // The peers' users lose whole layers at "EOF at 3.4 of 3.9 GiB": ferry asks
    // again from the byte it reached (Range), so only the rest travels twice.
    let mut reg = Registry::start(Mode::TlsAuth);
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("big-oci");
    random_image(&layout, 1, 192);
    push(&reg, &format!("oci:{}:big", layout.display()), "big/one:1");
    // The layer as the registry holds it (skopeo may have compressed it on the way).
    let manifest: serde_json::Value = serde_json::from_slice(&raw_manifest(&reg, "big/one:1")).unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_string();
    let size = manifest["layers"][0]["size"].as_u64().unwrap();

    let mut args: Vec<String> = ["-q", "save", &reg.url("big/one:1"), "-o", work.path().join("out").to_str().unwrap(), "-n", "one"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    // One job streams the layer straight into the bundle (the spooled path resumes the same way).
    args.extend(["-j", "1", "--retries", "8"].map(String::from));
    args.extend(reg.ferry_args());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while bytes_in(&work.path().join("out")) < 48 << 20 {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            panic!("ferry finished before the registry could be restarted ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(120), "the download did not get going");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    reg.restart();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "the pull did not survive the restart: {stderr}");

    // The restarted registry served the rest of the layer, not all of it again.
    let log = reg.log();
    let served: Vec<&str> = log.lines().filter(|l| l.contains(&format!("GET /v2/big/one/blobs/sha256:{layer}"))).collect();
    let partial =
        served.iter().find(|l| l.contains("\" 206 ")).unwrap_or_else(|| panic!("no ranged GET of the layer:\n{}", served.join("\n")));
    let sent: u64 = partial.split("\" 206 ").nth(1).and_then(|r| r.split_whitespace().next()).and_then(|n| n.parse().ok()).unwrap();
    assert!(sent < size - (32 << 20), "the restarted registry sent {sent} of the layer's {size} bytes: the pull started over");

    // And the bundle is whole: verify hashes every blob again.
    ferry_ok(&["verify", work.path().join("out/one.sha256").to_str().unwrap()]);
    let files = bundle_files(&work.path().join("out"), "one");
    assert!(blob(&files, &format!("sha256:{layer}")).is_some_and(|b| b.len() as u64 == size));
}
