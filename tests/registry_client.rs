//! ferry's registry client (src/registry/client.rs) against a real
//! distribution 2.8 (Debian docker-registry) with TLS and htpasswd auth.
mod support;

use bytes::Bytes;
use ferry::digest::Digest;
use ferry::error::ErrorKind;
use ferry::registry::{Client, RegistryError, RegistryOptions};
use support::registry::{Mode, Registry, PASSWORD};

fn options(reg: &Registry, password: &str) -> RegistryOptions {
    RegistryOptions {
        ca_cert: Some(reg.ca_cert()),
        auth_file: Some(reg.auth_file(password)),
        plain_http: reg.mode == Mode::Plain,
        retries: 0,
        ..Default::default()
    }
}

#[test]
fn blobs_manifests_and_tags_round_trip() {
    let reg = Registry::start(Mode::TlsAuth);
    let client = Client::connect(&reg.host(), &options(&reg, PASSWORD)).unwrap();
    client.ping().unwrap();

    let config = Bytes::from_static(b"{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}");
    let config_digest = Digest::of_bytes(&config);
    assert!(!client.blob_exists("team/app", &config_digest).unwrap());
    client.upload_blob("team/app", &config_digest, config.clone()).unwrap();
    assert!(client.blob_exists("team/app", &config_digest).unwrap());

    // Chunked, with the registry's offset asked in between (what a resume does).
    let layer: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let layer_digest = Digest::of_bytes(&layer);
    let location = client.start_upload("team/app").unwrap();
    let next = client.patch_chunk("team/app", &location, 0, Bytes::copy_from_slice(&layer[..1_000_000])).unwrap();
    let (offset, next) = client.upload_offset("team/app", &next).unwrap().expect("the session is known");
    assert_eq!(offset, 1_000_000);
    let next = client.patch_chunk("team/app", &next, offset, Bytes::copy_from_slice(&layer[1_000_000..2_500_000])).unwrap();
    client.finish_upload("team/app", &next, &layer_digest, Bytes::copy_from_slice(&layer[2_500_000..])).unwrap();
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut client.get_blob("team/app", &layer_digest).unwrap(), &mut got).unwrap();
    assert!(got == layer, "the blob reads back as uploaded");

    // Cross-repository mount.
    assert!(client.mount_blob("other/repo", &layer_digest, "team/app").unwrap());
    assert!(client.blob_exists("other/repo", &layer_digest).unwrap());

    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_digest}","size":{}}}]}}"#,
        config.len(),
        layer.len()
    );
    let manifest_digest = Digest::of_bytes(manifest.as_bytes());
    let media = "application/vnd.oci.image.manifest.v1+json";
    client.put_manifest("team/app", manifest_digest.as_str(), media, Bytes::from(manifest.clone())).unwrap();
    client.put_manifest("team/app", "v1", media, Bytes::from(manifest.clone())).unwrap();
    assert_eq!(client.manifest_digest("team/app", "v1").unwrap().as_deref(), Some(manifest_digest.as_str()));
    let fetched = client.get_manifest("team/app", "v1", 1 << 20).unwrap();
    assert_eq!(fetched.bytes, manifest.as_bytes());
    assert_eq!(fetched.media_type.as_deref(), Some(media));
    assert_eq!(client.list_tags("team/app").unwrap(), vec!["v1".to_string()]);
    assert_eq!(client.manifest_digest("team/app", "nope").unwrap(), None);

    // skopeo, the reference client, sees the same image.
    let out = std::process::Command::new("skopeo")
        .arg("inspect")
        .args(reg.skopeo_args(""))
        .arg("--raw")
        .arg(reg.url("team/app:v1"))
        .output()
        .expect("run skopeo");
    assert!(out.status.success(), "skopeo inspect: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, manifest.as_bytes());
}

#[test]
fn wrong_password_is_an_auth_error_without_the_password() {
    let reg = Registry::start(Mode::TlsAuth);
    let client = Client::connect(&reg.host(), &options(&reg, "wrong-pass-123")).unwrap();
    let err = client.ping().unwrap_err();
    assert!(matches!(err, RegistryError::Auth { status: 401, .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&reg.host()) && text.contains("user alice from"), "{text}");
    assert!(!text.contains("wrong-pass-123"), "{text}");
    let err = ferry::Error::from(err);
    assert_eq!(err.kind(), ErrorKind::Transport);
    assert!(err.hint().unwrap().contains("credentials"));
}

#[test]
fn unknown_ca_is_a_tls_error() {
    let reg = Registry::start(Mode::TlsAuth);
    let opts = RegistryOptions { ca_cert: None, ..options(&reg, PASSWORD) };
    let err = Client::connect(&reg.host(), &opts).unwrap().ping().unwrap_err();
    assert!(matches!(err, RegistryError::Tls { .. }), "{err:?}");
    assert!(err.hint().contains("--ca-cert"));
    assert_eq!(ferry::Error::from(err).kind(), ErrorKind::Transport);
}

#[test]
fn client_certificates() {
    let reg = Registry::start(Mode::MutualTls);
    let without = Client::connect(&reg.host(), &options(&reg, PASSWORD)).unwrap().ping().unwrap_err();
    assert!(matches!(without, RegistryError::Tls { .. } | RegistryError::Network { .. }), "{without:?}");
    let (cert, key) = reg.client_cert();
    let opts = RegistryOptions { cert: Some(cert), key: Some(key), ..options(&reg, PASSWORD) };
    Client::connect(&reg.host(), &opts).unwrap().ping().unwrap();
}

#[test]
fn plain_http_only_when_asked() {
    let reg = Registry::start(Mode::Plain);
    Client::connect(&reg.host(), &options(&reg, PASSWORD)).unwrap().ping().unwrap();
    let tls = RegistryOptions { plain_http: false, ..options(&reg, PASSWORD) };
    let err = Client::connect(&reg.host(), &tls).unwrap().ping().unwrap_err();
    assert_eq!(ferry::Error::from(err).kind(), ErrorKind::Transport, "no silent fallback to HTTP");
}

#[test]
fn bearer_tokens_from_the_realm_the_registry_names() {
    let reg = Registry::start(Mode::TlsToken);
    let client = Client::connect(&reg.host(), &options(&reg, PASSWORD)).unwrap();
    let blob = Bytes::from_static(b"token-flow");
    let digest = Digest::of_bytes(&blob);
    client.upload_blob("team/tok", &digest, blob).unwrap();
    assert!(client.blob_exists("team/tok", &digest).unwrap());
    assert!(client.mount_blob("team/other", &digest, "team/tok").unwrap());
    let issued = reg.token.as_ref().unwrap().issued.load(std::sync::atomic::Ordering::SeqCst);
    assert!(issued >= 2, "tokens were fetched per scope ({issued})");

    let wrong = Client::connect(&reg.host(), &options(&reg, "nope-nope")).unwrap();
    let err = wrong.blob_exists("team/tok", &digest).unwrap_err();
    assert!(matches!(err, RegistryError::Auth { .. }), "{err:?}");
    assert!(!err.to_string().contains("nope-nope"));
}
