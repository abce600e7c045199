//! Signatures and OCI 1.1 referrers travel registry → bundle → another
//! registry (issue 16 item 3), both registries real distribution 2.8
//! (Debian's docker-registry, TLS + htpasswd). distribution 2.8 has no
//! referrers API, so the test keeps the tag-schema fallback on A itself, as a
//! client pushing a referrer must (OCI distribution spec 1.1, "Referrers tag
//! schema"), and ferry must keep it on B.
mod common;
mod support;

use common::*;
use std::process::Command;
use support::oci_api::{digest_of, plant, Api, Fallback, SBOM_TYPE};
use support::registry::{Mode, Registry};

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
    let (api_a, api_b) = (Api::distribution(&a), Api::distribution(&b));
    skopeo_push(&a, "skopeo-gzip.oci", "signed/app:v1");
    let planted = plant(&api_a, "signed/app", "v1", Fallback::Index);
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
