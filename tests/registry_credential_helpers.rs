//! Docker credential helpers (`credHelpers`, `credsStore` in
//! ~/.docker/config.json) against a real distribution 2.8 with htpasswd auth.
//! The helpers are small shell scripts on PATH speaking the protocol of
//! docker/docker-credential-helpers: `get`, the server on stdin, JSON
//! `{ServerURL, Username, Secret}` on stdout, or exit 1 with
//! `credentials not found in native keychain`.
mod common;
mod support;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use support::registry::{Mode, Registry, PASSWORD, USER};

/// `DIR/bin/docker-credential-NAME`: answers alice's credentials for `host`
/// (logging each server it is asked about to `DIR/NAME.log`), not found for any other.
fn helper(dir: &Path, name: &str, host: &str) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = dir.join(format!("{name}.log"));
    let script = format!(
        r#"#!/bin/sh
[ "$1" = get ] || {{ echo "only get is implemented" >&2; exit 2; }}
server=$(cat)
echo "$server" >> '{log}'
if [ "$server" = '{host}' ]; then
  printf '{{"ServerURL":"%s","Username":"{USER}","Secret":"{PASSWORD}"}}\n' "$server"
else
  echo 'credentials not found in native keychain'
  exit 1
fi
"#,
        log = log.display()
    );
    let path = bin.join(format!("docker-credential-{name}"));
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `ferry ARGS` with HOME at `home` (its .docker/config.json holding `config`), the helpers first on PATH, the test CA.
fn ferry_with_config(reg: &Registry, work: &Path, config: &str, args: &[&str]) -> Run {
    let home = work.join("home");
    std::fs::create_dir_all(home.join(".docker")).unwrap();
    std::fs::write(home.join(".docker/config.json"), config).unwrap();
    let path = format!("{}:{}", work.join("bin").display(), std::env::var("PATH").unwrap_or_default());
    let ca = reg.ca_cert().display().to_string();
    let mut all = args.to_vec();
    all.extend(["--ca-cert", &ca]);
    let no_runtime_dir = work.join("no-runtime-dir");
    ferry_env(
        &all,
        &[
            ("HOME", home.to_str().unwrap()),
            ("PATH", &path),
            ("REGISTRY_AUTH_FILE", ""),
            ("XDG_RUNTIME_DIR", no_runtime_dir.to_str().unwrap()),
            ("XDG_CACHE_HOME", work.join("cache").to_str().unwrap()),
        ],
    )
}

#[test]
fn credentials_from_a_helper_push_and_pull_and_not_found_is_a_clear_401() {
    let reg = Registry::start(Mode::TlsAuth);
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let host = reg.host();
    helper(w, "ferrytest", &host);
    helper(w, "ferrynone", "some.other.registry");
    let bundles = w.join("bundles");
    ferry_ok(&["save", &format!("oci:{}", fixture("skopeo-gzip.oci").display()), "-o", bundles.to_str().unwrap(), "-n", "app"]);
    let bundle = bundles.join("app");
    let target = reg.url("helped/app:v1");

    // credHelpers names the helper for this host; the auths entry docker login leaves is empty.
    let config = format!(r#"{{"auths": {{"{host}": {{}}}}, "credHelpers": {{"{host}": "ferrytest"}}}}"#);
    let r = ferry_with_config(&reg, w, &config, &["load", "--allow-unsigned", bundle.to_str().unwrap(), "--into", &target]);
    assert_eq!(r.code, 0, "push with the helper's credentials: {}", r.stderr);
    assert!(!r.stdout.contains(PASSWORD) && !r.stderr.contains(PASSWORD), "the secret is never printed");
    let asked = std::fs::read_to_string(w.join("ferrytest.log")).unwrap();
    assert_eq!(asked.lines().next(), Some(host.as_str()), "the helper was asked about the registry's host");
    let mut inspect = vec!["inspect".to_string(), "--raw".into()];
    inspect.extend(reg.skopeo_args(""));
    inspect.push(target.clone());
    let out = std::process::Command::new("skopeo").args(&inspect).output().expect("run skopeo");
    assert!(out.status.success(), "skopeo sees the pushed image: {}", String::from_utf8_lossy(&out.stderr));
    assert!(source_digests(&fixture("skopeo-gzip.oci")).contains(&format!("sha256:{}", sha256_hex(&out.stdout))));

    // credsStore: the store for every host; save reads through it too.
    let store = r#"{"credsStore": "ferrytest"}"#;
    let pulled = w.join("pulled");
    let r = ferry_with_config(&reg, w, store, &["save", &target, "-o", pulled.to_str().unwrap(), "-n", "p"]);
    assert_eq!(r.code, 0, "save with the store's credentials: {}", r.stderr);
    assert!(!r.stderr.contains(PASSWORD));
    ferry_ok(&["verify", pulled.join("p").to_str().unwrap()]);

    // A store that has nothing for this host: 401, exit 4, naming the helper and the file.
    let none = r#"{"credsStore": "ferrynone"}"#;
    let r = ferry_with_config(&reg, w, none, &["load", "--allow-unsigned", bundle.to_str().unwrap(), "--into", &reg.url("denied/app:v1")]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    let config_path = w.join("home/.docker/config.json").display().to_string();
    for part in [host.as_str(), "401", "docker-credential-ferrynone (credsStore in", config_path.as_str(), "credentials not found"] {
        assert!(r.stderr.contains(part), "{part:?} is missing from: {}", r.stderr);
    }
    assert_eq!(std::fs::read_to_string(w.join("ferrynone.log")).unwrap().trim(), host, "the helper was asked");

    // A helper that is not installed: the same 401, saying so.
    let missing = r#"{"credHelpers": {"HOST": "not-installed"}}"#.replace("HOST", &host);
    let r = ferry_with_config(&reg, w, &missing, &["save", &target, "-o", w.join("x").to_str().unwrap()]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(r.stderr.contains("docker-credential-not-installed is not on PATH"), "{}", r.stderr);
}
