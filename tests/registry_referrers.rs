//! Signatures and OCI 1.1 referrers travel registry → bundle → another
//! registry (issue 16 item 3), both registries real distribution 2.8
//! (Debian's docker-registry, TLS + htpasswd). distribution 2.8 has no
//! referrers API, so the test keeps the tag-schema fallback on A itself, as a
//! client pushing a referrer must (OCI distribution spec 1.1, "Referrers tag
//! schema"), and ferry must keep it on B.
mod common;
mod support;

use common::*;
use reqwest::blocking::Client;
use std::process::Command;
use support::registry::{Mode, Registry, PASSWORD, USER};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const SBOM_TYPE: &str = "application/spdx+json";

fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// The distribution API of one registry, spoken with reqwest as a client
/// like oras or cosign would (basic auth, the test CA).
struct Api<'a> {
    reg: &'a Registry,
    http: Client,
}

impl<'a> Api<'a> {
    fn new(reg: &'a Registry) -> Api<'a> {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(reg.ca_cert()).unwrap()).unwrap();
        let http = Client::builder().tls_certs_merge([ca]).build().unwrap();
        Api { reg, http }
    }

    fn url(&self, path: &str) -> String {
        format!("https://{}/v2/{path}", self.reg.host())
    }

    /// Upload `data` as a blob of `repo` (POST, then PUT with the digest): its digest.
    fn put_blob(&self, repo: &str, data: &[u8]) -> String {
        let digest = digest_of(data);
        let started = self.http.post(self.url(&format!("{repo}/blobs/uploads/"))).basic_auth(USER, Some(PASSWORD)).send().unwrap();
        assert_eq!(started.status(), 202, "starting an upload to {repo}");
        let location = started.headers()["Location"].to_str().unwrap();
        let mut url = reqwest::Url::parse(&self.url("")).unwrap().join(location).unwrap();
        url.query_pairs_mut().append_pair("digest", &digest);
        let done = self
            .http
            .put(url)
            .basic_auth(USER, Some(PASSWORD))
            .header("Content-Type", "application/octet-stream")
            .body(data.to_vec())
            .send()
            .unwrap();
        assert_eq!(done.status(), 201, "finishing the upload of {digest}: {}", done.text().unwrap_or_default());
        digest
    }

    /// Store a manifest or index under `reference` (tag or digest): its digest.
    fn put_manifest(&self, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) -> String {
        let resp = self
            .http
            .put(self.url(&format!("{repo}/manifests/{reference}")))
            .basic_auth(USER, Some(PASSWORD))
            .header("Content-Type", media_type)
            .body(bytes.to_vec())
            .send()
            .unwrap();
        assert_eq!(resp.status(), 201, "storing {repo}:{reference}: {}", resp.text().unwrap_or_default());
        digest_of(bytes)
    }

    /// A manifest's bytes by tag or digest, `None` when the registry has none.
    fn manifest(&self, repo: &str, reference: &str) -> Option<Vec<u8>> {
        let resp = self
            .http
            .get(self.url(&format!("{repo}/manifests/{reference}")))
            .basic_auth(USER, Some(PASSWORD))
            .header("Accept", format!("{OCI_MANIFEST}, {OCI_INDEX}"))
            .send()
            .unwrap();
        match resp.status().as_u16() {
            200 => Some(resp.bytes().unwrap().to_vec()),
            404 => None,
            s => panic!("GET {repo}/manifests/{reference}: HTTP {s}"),
        }
    }

    fn delete_manifest(&self, repo: &str, digest: &str) {
        let resp = self.http.delete(self.url(&format!("{repo}/manifests/{digest}"))).basic_auth(USER, Some(PASSWORD)).send().unwrap();
        assert_eq!(resp.status(), 202, "deleting {repo}@{digest}");
    }

    fn tags(&self, repo: &str) -> Vec<String> {
        let resp = self.http.get(self.url(&format!("{repo}/tags/list"))).basic_auth(USER, Some(PASSWORD)).send().unwrap();
        assert_eq!(resp.status(), 200, "tags of {repo}");
        let v: serde_json::Value = serde_json::from_slice(&resp.bytes().unwrap()).unwrap();
        let mut tags: Vec<String> = v["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
        tags.sort();
        tags
    }
}

/// What the test plants on A beside the image.
struct Planted {
    image: String,
    signature: String,
    sig_tag: String,
    referrer: String,
    fallback_tag: String,
}

/// A cosign-style signature (simple signing payload, tag `sha256-HEX.sig`)
/// and an OCI 1.1 SBOM referrer of `repo:tag`, with the fallback index
/// `sha256-HEX` listing the referrer.
fn plant(api: &Api, repo: &str, tag: &str) -> Planted {
    let image_bytes = api.manifest(repo, tag).expect("the image was pushed");
    let image = digest_of(&image_bytes);
    let hex = &image["sha256:".len()..];

    let payload = format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{}/{repo}"}},"image":{{"docker-manifest-digest":"{image}"}},"type":"cosign container image signature"}},"optional":null}}"#,
        api.reg.host()
    );
    let payload_digest = api.put_blob(repo, payload.as_bytes());
    let config = format!(
        r#"{{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{{"created":"0001-01-01T00:00:00Z"}}],"os":"","rootfs":{{"type":"layers","diff_ids":["{payload_digest}"]}},"config":{{}}}}"#
    );
    let config_digest = api.put_blob(repo, config.as_bytes());
    let sig = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","size":{},"digest":"{config_digest}"}},"layers":[{{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","size":{},"digest":"{payload_digest}","annotations":{{"dev.cosignproject.cosign/signature":"MEUCIQDtest"}}}}]}}"#,
        config.len(),
        payload.len()
    );
    let sig_tag = format!("sha256-{hex}.sig");
    let signature = api.put_manifest(repo, &sig_tag, OCI_MANIFEST, sig.as_bytes());

    let empty = api.put_blob(repo, b"{}");
    let sbom = br#"{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","name":"ferry-referrers-test"}"#;
    let sbom_digest = api.put_blob(repo, sbom);
    let referrer_bytes = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"{SBOM_TYPE}","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{empty}","size":2}},"layers":[{{"mediaType":"{SBOM_TYPE}","digest":"{sbom_digest}","size":{}}}],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{image}","size":{}}},"annotations":{{"org.opencontainers.image.created":"2026-01-01T00:00:00Z"}}}}"#,
        sbom.len(),
        image_bytes.len()
    );
    let referrer = digest_of(referrer_bytes.as_bytes());
    api.put_manifest(repo, &referrer, OCI_MANIFEST, referrer_bytes.as_bytes());
    // The fallback index is kept by clients: it may list a referrer deleted since (ferry passes it over).
    let deleted_bytes = referrer_bytes.replace("2026-01-01", "2025-01-01");
    let deleted = api.put_manifest(repo, &digest_of(deleted_bytes.as_bytes()), OCI_MANIFEST, deleted_bytes.as_bytes());
    let fallback = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": deleted, "size": deleted_bytes.len(), "artifactType": SBOM_TYPE},
        {"mediaType": OCI_MANIFEST, "digest": referrer, "size": referrer_bytes.len(), "artifactType": SBOM_TYPE}
    ]});
    let fallback_tag = format!("sha256-{hex}");
    api.put_manifest(repo, &fallback_tag, OCI_INDEX, &serde_json::to_vec(&fallback).unwrap());
    api.delete_manifest(repo, &deleted);
    Planted { image, signature, sig_tag, referrer, fallback_tag }
}

/// `ferry ARGS` with `reg`'s CA and credentials.
fn ferry_reg_ok(reg: &Registry, args: &[&str]) -> Run {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.extend(reg.ferry_args());
    let r = ferry(&all.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(r.code, 0, "ferry {args:?} failed:\n{}", r.stderr);
    r
}

/// `skopeo copy oci:FIXTURE docker://REG/DEST`.
fn skopeo_push(reg: &Registry, fixture_name: &str, dest: &str) {
    require("skopeo");
    let out = Command::new("skopeo")
        .arg("copy")
        .args(reg.skopeo_args("dest"))
        .arg(format!("oci:{}", fixture(fixture_name).display()))
        .arg(reg.url(dest))
        .output()
        .expect("run skopeo");
    assert!(out.status.success(), "skopeo copy to {dest}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The digests `ferry inspect --json` lists, each with its referrer kind and subject (if any).
fn inspected(bundle: &std::path::Path) -> Vec<(String, Option<(String, String)>)> {
    let v: serde_json::Value = serde_json::from_str(&ferry_ok(&["inspect", bundle.to_str().unwrap(), "--json"]).stdout).unwrap();
    v["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let referrer = i["referrer"].as_object().map(|r| (r["kind"].as_str().unwrap().into(), r["subject"].as_str().unwrap().into()));
            (i["digest"].as_str().unwrap().to_string(), referrer)
        })
        .collect()
}

#[test]
fn signature_and_oci_referrer_travel_from_one_registry_to_another() {
    let a = Registry::start(Mode::TlsAuth);
    let b = Registry::start(Mode::TlsAuth);
    let (api_a, api_b) = (Api::new(&a), Api::new(&b));
    skopeo_push(&a, "skopeo-gzip.oci", "signed/app:v1");
    let planted = plant(&api_a, "signed/app", "v1");
    let work = tempfile::tempdir().unwrap();

    // A → bundle: the image, the signature and the referrer.
    let dir = work.path().join("bundle");
    ferry_reg_ok(&a, &["save", &a.url("signed/app:v1"), "-o", dir.to_str().unwrap(), "-n", "s"]);
    let stem = dir.join("s");
    let listed = inspected(&stem);
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert!(listed.contains(&(planted.image.clone(), None)), "{listed:?}");
    assert!(listed.contains(&(planted.signature.clone(), Some(("signature".into(), planted.image.clone())))), "{listed:?}");
    assert!(listed.contains(&(planted.referrer.clone(), Some((SBOM_TYPE.into(), planted.image.clone())))), "{listed:?}");
    let text = ferry_ok(&["inspect", stem.to_str().unwrap()]).stdout;
    assert!(text.contains(&format!("signature {} ({}) attached to {}", planted.sig_tag, planted.signature, planted.image)), "{text}");
    assert!(text.contains(&format!("({}) attached to {}", planted.referrer, planted.image)), "{text}");
    // Found through the fallback tag: distribution 2.8 has no referrers API.
    assert!(a.count("GET", &format!("/v2/signed/app/referrers/{}", planted.image)) >= 1, "the API is asked first");
    assert!(a.count("GET", &format!("/v2/signed/app/manifests/{}", planted.fallback_tag)) >= 1, "then the fallback index is read");
    ferry_ok(&["verify", stem.to_str().unwrap()]);

    // bundle → B: the same documents under the same names, the fallback index kept.
    let load = ferry_reg_ok(&b, &["--json", "load", "--allow-unsigned", stem.to_str().unwrap(), "--into", &b.url("mirror")]);
    let report: serde_json::Value = serde_json::from_str(&load.stdout).unwrap();
    assert_eq!(report["registry"]["referrers_indexed"], 1, "{report}");
    let repo = "mirror/signed/app";
    let image_b = api_b.manifest(repo, "v1").expect("the image reached B");
    assert_eq!(digest_of(&image_b), planted.image, "the image keeps its digest");
    let sig_b = api_b.manifest(repo, &planted.sig_tag).expect("the .sig tag reached B");
    assert_eq!(digest_of(&sig_b), planted.signature, "the signature keeps its digest");
    assert_eq!(Some(sig_b), api_a.manifest("signed/app", &planted.sig_tag), "byte for byte");
    let referrer_b = api_b.manifest(repo, &planted.referrer).expect("the referrer reached B by digest");
    assert_eq!(digest_of(&referrer_b), planted.referrer);
    assert_eq!(Some(referrer_b), api_a.manifest("signed/app", &planted.referrer), "byte for byte");
    let fallback: serde_json::Value =
        serde_json::from_slice(&api_b.manifest(repo, &planted.fallback_tag).expect("B has the fallback index")).unwrap();
    let entries = fallback["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{fallback}");
    assert_eq!(entries[0]["digest"], planted.referrer.as_str(), "{fallback}");
    assert_eq!(entries[0]["artifactType"], SBOM_TYPE, "{fallback}");
    assert_eq!(api_b.tags(repo), {
        let mut t = vec!["v1".to_string(), planted.sig_tag.clone(), planted.fallback_tag.clone()];
        t.sort();
        t
    });
    // And skopeo reads B's copy of everything.
    let mut args = vec!["inspect".to_string(), "--raw".into()];
    args.extend(b.skopeo_args(""));
    args.push(b.url(&format!("{repo}@{}", planted.referrer)));
    let out = Command::new("skopeo").args(&args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(digest_of(&out.stdout), planted.referrer);

    // Into one named repository and tag: the signature and the referrer go along.
    ferry_reg_ok(&b, &["load", "--allow-unsigned", stem.to_str().unwrap(), "--into", &b.url("renamed/app:v2")]);
    let mut want = vec!["v2".to_string(), planted.sig_tag.clone(), planted.fallback_tag.clone()];
    want.sort();
    assert_eq!(api_b.tags("renamed/app"), want);
    assert_eq!(api_b.manifest("renamed/app", &planted.sig_tag).map(|m| digest_of(&m)), Some(planted.signature.clone()));
    assert_eq!(api_b.manifest("renamed/app", &planted.referrer).map(|m| digest_of(&m)), Some(planted.referrer.clone()));

    // Saved again from B: the same set (B's fallback index is found like A's).
    let again = work.path().join("again");
    ferry_reg_ok(&b, &["save", &b.url(&format!("{repo}:v1")), "-o", again.to_str().unwrap(), "-n", "s"]);
    let mut first = listed.clone();
    let mut second = inspected(&again.join("s"));
    first.sort();
    second.sort();
    assert_eq!(first, second, "B holds what A held");

    // --no-referrers on save: none of them reach the bundle, nor B.
    let bare = work.path().join("bare");
    ferry_reg_ok(&a, &["save", &a.url("signed/app:v1"), "--no-referrers", "-o", bare.to_str().unwrap(), "-n", "s"]);
    assert_eq!(inspected(&bare.join("s")), vec![(planted.image.clone(), None)]);
    let artifact = decompress(&std::fs::read(bare.join("s.tar.zst")).unwrap());
    let names: Vec<String> = tar_files(&artifact).into_iter().map(|(n, ..)| n).collect();
    for left_out in [&planted.signature, &planted.referrer] {
        let path = format!("blobs/sha256/{}", &left_out["sha256:".len()..]);
        assert!(!names.contains(&path), "{left_out} is left out of the bundle");
    }
    ferry_reg_ok(&b, &["load", "--allow-unsigned", bare.join("s").to_str().unwrap(), "--into", &b.url("bare")]);
    assert_eq!(api_b.tags("bare/signed/app"), ["v1"]);
}
