//! The library itself enforces the trust order: a `Trusted` bundle, which only
//! `TrustOptions::check` makes, is what every content reader takes (the
//! compile-time half is the `compile_fail` examples on `ferry::trust::Trusted`).
//! Here, at run time: a check that fails gives no `Trusted`, so nothing loads.
mod common;
use common::*;
use ferry::bundle::{self, NoProgress};
use ferry::reference::ImageRef;
use ferry::trust::{Policy, TrustOptions};
use std::path::Path;

fn locate(sums: &Path) -> ferry::bundle::BundleSource {
    let open = |loc: &str| -> ferry::Result<Box<dyn ferry_transports::Transport>> { Ok(ferry_transports::open(loc)?) };
    bundle::locate(sums.to_str().unwrap(), &open).unwrap()
}

#[test]
fn only_a_passed_check_lets_the_library_load() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    let other = tmp.path().join("other");
    ferry_ok(&["keygen", "--no-password", "-o", keys.to_str().unwrap()]);
    ferry_ok(&["keygen", "--no-password", "-o", other.to_str().unwrap()]);
    let image = format!("docker-archive:{}", fixture("docker20-whiteout.docker.tar.gz").display());
    let usb = tmp.path().join("usb");
    ferry_ok(&["save", &image, "-o", usb.to_str().unwrap(), "-n", "signed", "--sign", keys.join("ferry.key").to_str().unwrap()]);
    ferry_ok(&["save", &image, "-o", usb.to_str().unwrap(), "-n", "unsigned"]);
    let target = tmp.path().join("oci");
    let into = ImageRef::parse_target(&format!("oci:{}", target.display())).unwrap();
    let key = |dir: &Path| TrustOptions { keys: vec![dir.join("ferry.pub").display().to_string()], ..Default::default() };

    let signed = locate(&usb.join("signed.sha256"));
    let unsigned = locate(&usb.join("unsigned.sha256"));
    // No key given, a key that did not sign it, an unsigned bundle: no Trusted, nothing loaded.
    for (what, result) in [
        ("signed, no key", TrustOptions::default().check(&signed, Policy::RequireSignature).map(|_| ())),
        ("signed, another key", key(&other).check(&signed, Policy::RequireSignature).map(|_| ())),
        ("unsigned", TrustOptions::default().check(&unsigned, Policy::RequireSignature).map(|_| ())),
        ("unsigned, a key given", key(&keys).check(&unsigned, Policy::Report).map(|_| ())),
    ] {
        let e = result.expect_err(what);
        assert_eq!(e.kind().exit_code(), 3, "{what}: {e}");
    }
    assert!(!target.exists());

    // The publisher's key: the check passes and the library loads.
    let trusted = key(&keys).check(&signed, Policy::RequireSignature).unwrap();
    assert!(trusted.signature().describe().starts_with("signed by trusted key"));
    let report = ferry::targets::load(&trusted, &into, None, &NoProgress).unwrap();
    assert_eq!(report.images, ["ferry-fixture/docker20:v1"]);
    assert!(target.join("index.json").exists());

    // --allow-unsigned is a choice the caller states in the options, not a way around the check.
    let allowed = TrustOptions { allow_unsigned: true, ..Default::default() }.check(&unsigned, Policy::RequireSignature).unwrap();
    assert_eq!(allowed.signature().describe(), "unsigned");
}
