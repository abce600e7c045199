//! The distribution API of a test registry spoken with reqwest, as a client
//! like oras or cosign would: blobs, manifests, tags, the referrers API; and
//! what the referrers tests plant beside an image (a cosign-style signature
//! and an OCI 1.1 SBOM referrer).
#![allow(dead_code)]

use reqwest::blocking::{Client, RequestBuilder};
use reqwest::Method;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const SBOM_TYPE: &str = "application/spdx+json";

pub fn digest_of(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

pub struct Api {
    /// `https://HOST` or `http://HOST`.
    base: String,
    /// `HOST:PORT`, as image references name it.
    pub host: String,
    creds: Option<(String, String)>,
    http: Client,
}

impl Api {
    /// A distribution 2.8 of [`super::registry`] (TLS with the test CA, alice's password).
    pub fn distribution(reg: &super::registry::Registry) -> Api {
        assert_eq!(reg.mode, super::registry::Mode::TlsAuth, "Api speaks TLS + basic auth or plain HTTP");
        let ca = reqwest::Certificate::from_pem(&std::fs::read(reg.ca_cert()).unwrap()).unwrap();
        let http = Client::builder().tls_certs_merge([ca]).build().unwrap();
        let creds = Some((super::registry::USER.to_string(), super::registry::PASSWORD.to_string()));
        Api { base: format!("https://{}", reg.host()), host: reg.host(), creds, http }
    }

    /// A ferro-oci-server of [`super::ferro`] (plain HTTP, no auth).
    pub fn ferro(reg: &super::ferro::FerroRegistry) -> Api {
        Api { base: format!("http://{}", reg.host()), host: reg.host(), creds: None, http: Client::new() }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v2/{path}", self.base)
    }

    fn request(&self, method: Method, url: impl reqwest::IntoUrl) -> RequestBuilder {
        let r = self.http.request(method, url);
        match &self.creds {
            Some((user, password)) => r.basic_auth(user, Some(password)),
            None => r,
        }
    }

    /// Upload `data` as a blob of `repo` (POST, then PUT with the digest): its digest.
    pub fn put_blob(&self, repo: &str, data: &[u8]) -> String {
        let digest = digest_of(data);
        let started = self.request(Method::POST, self.url(&format!("{repo}/blobs/uploads/"))).send().unwrap();
        assert_eq!(started.status(), 202, "starting an upload to {repo}");
        let location = started.headers()["Location"].to_str().unwrap();
        let mut url = reqwest::Url::parse(&self.url("")).unwrap().join(location).unwrap();
        url.query_pairs_mut().append_pair("digest", &digest);
        let done = self.request(Method::PUT, url).header("Content-Type", "application/octet-stream").body(data.to_vec()).send().unwrap();
        assert_eq!(done.status(), 201, "finishing the upload of {digest}: {}", done.text().unwrap_or_default());
        digest
    }

    /// Store a manifest or index under `reference` (tag or digest): its digest.
    pub fn put_manifest(&self, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) -> String {
        let resp = self
            .request(Method::PUT, self.url(&format!("{repo}/manifests/{reference}")))
            .header("Content-Type", media_type)
            .body(bytes.to_vec())
            .send()
            .unwrap();
        assert_eq!(resp.status(), 201, "storing {repo}:{reference}: {}", resp.text().unwrap_or_default());
        digest_of(bytes)
    }

    /// A manifest's bytes by tag or digest, `None` when the registry has none.
    pub fn manifest(&self, repo: &str, reference: &str) -> Option<Vec<u8>> {
        let resp = self
            .request(Method::GET, self.url(&format!("{repo}/manifests/{reference}")))
            .header("Accept", format!("{OCI_MANIFEST}, {OCI_INDEX}"))
            .send()
            .unwrap();
        match resp.status().as_u16() {
            200 => Some(resp.bytes().unwrap().to_vec()),
            404 => None,
            s => panic!("GET {repo}/manifests/{reference}: HTTP {s}"),
        }
    }

    pub fn delete_manifest(&self, repo: &str, digest: &str) {
        let resp = self.request(Method::DELETE, self.url(&format!("{repo}/manifests/{digest}"))).send().unwrap();
        assert_eq!(resp.status(), 202, "deleting {repo}@{digest}");
    }

    pub fn tags(&self, repo: &str) -> Vec<String> {
        let resp = self.request(Method::GET, self.url(&format!("{repo}/tags/list"))).send().unwrap();
        assert_eq!(resp.status(), 200, "tags of {repo}");
        let v: serde_json::Value = serde_json::from_slice(&resp.bytes().unwrap()).unwrap();
        let mut tags: Vec<String> = v["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
        tags.sort();
        tags
    }

    /// `GET /v2/REPO/referrers/SUBJECT`: the index's `manifests` (panics unless the API answers).
    pub fn referrers(&self, repo: &str, subject: &str) -> Vec<serde_json::Value> {
        let resp = self.request(Method::GET, self.url(&format!("{repo}/referrers/{subject}"))).send().unwrap();
        assert_eq!(resp.status(), 200, "the referrers API of {repo} for {subject}");
        let v: serde_json::Value = serde_json::from_slice(&resp.bytes().unwrap()).unwrap();
        assert_eq!(v["mediaType"], OCI_INDEX, "{v}");
        v["manifests"].as_array().unwrap().clone()
    }
}

/// What a test plants beside an image.
pub struct Planted {
    pub image: String,
    pub signature: String,
    pub sig_tag: String,
    pub referrer: String,
    /// `sha256-HEX` of the image (planted only with [`Fallback::Index`]).
    pub fallback_tag: String,
}

/// Whether the test also keeps the tag-schema fallback index, as a client
/// pushing a referrer to a registry without the referrers API must.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// The index `sha256-HEX` listing the referrer, and a referrer deleted since (the index is clients', stale entries happen).
    Index,
    /// Nothing but the referrer itself: the registry's referrers API lists it.
    None,
}

/// A cosign-style signature (simple signing payload, tag `sha256-HEX.sig`)
/// and an OCI 1.1 SBOM referrer (`artifactType`, `subject`) of `repo:tag`.
pub fn plant(api: &Api, repo: &str, tag: &str, fallback: Fallback) -> Planted {
    let image_bytes = api.manifest(repo, tag).expect("the image was pushed");
    let image = digest_of(&image_bytes);
    let hex = &image["sha256:".len()..];

    let payload = format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{}/{repo}"}},"image":{{"docker-manifest-digest":"{image}"}},"type":"cosign container image signature"}},"optional":null}}"#,
        api.host
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
    let fallback_tag = format!("sha256-{hex}");
    if fallback == Fallback::Index {
        // The fallback index is kept by clients: it may list a referrer deleted since (ferry passes it over).
        let deleted_bytes = referrer_bytes.replace("2026-01-01", "2025-01-01");
        let deleted = api.put_manifest(repo, &digest_of(deleted_bytes.as_bytes()), OCI_MANIFEST, deleted_bytes.as_bytes());
        let index = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": deleted, "size": deleted_bytes.len(), "artifactType": SBOM_TYPE},
            {"mediaType": OCI_MANIFEST, "digest": referrer, "size": referrer_bytes.len(), "artifactType": SBOM_TYPE}
        ]});
        api.put_manifest(repo, &fallback_tag, OCI_INDEX, &serde_json::to_vec(&index).unwrap());
        api.delete_manifest(repo, &deleted);
    }
    Planted { image, signature, sig_tag, referrer, fallback_tag }
}
