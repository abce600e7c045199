//! Signatures and OCI 1.1 referrers through a registry that HAS the
//! referrers API (issue 16 item 3): ferro-oci-server (OCI distribution spec
//! v1.1, plain HTTP; built by scripts/install-deps.sh), beside the real
//! distribution 2.8 that has not (tests/registry_referrers.rs). On ferro the
//! test plants no fallback index: ferry must find the referrer through
//! `GET /v2/REPO/referrers/DIGEST`, and must write no `sha256-HEX` index
//! where the registry indexes referrers itself; across the two kinds a
//! referrer moves from one listing to the other.
mod common;
mod support;

use common::*;
use std::path::Path;
use std::process::Command;
use support::ferro::FerroRegistry;
use support::oci_api::{digest_of, plant, Api, Fallback, Planted, SBOM_TYPE};
use support::registry::{Mode, Registry};

/// `ferry ARGS FLAGS`, which must succeed.
fn ferry_with(flags: &[String], args: &[&str]) -> Run {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(flags.iter().map(String::as_str));
    let r = ferry(&all);
    assert_eq!(r.code, 0, "ferry {all:?} failed:\n{}", r.stderr);
    r
}

/// `skopeo copy oci:FIXTURE DEST` with skopeo's `flags` for the registry.
fn skopeo_push(flags: &[String], fixture_name: &str, dest: &str) {
    require("skopeo");
    let out = Command::new("skopeo")
        .arg("copy")
        .args(flags)
        .arg(format!("oci:{}", fixture(fixture_name).display()))
        .arg(dest)
        .output()
        .expect("run skopeo");
    assert!(out.status.success(), "skopeo copy to {dest}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The digests `ferry inspect --json` lists, each with its referrer kind and subject (if any), sorted.
fn inspected(bundle: &Path) -> Vec<(String, Option<(String, String)>)> {
    let v: serde_json::Value = serde_json::from_str(&ferry_ok(&["inspect", bundle.to_str().unwrap(), "--json"]).stdout).unwrap();
    let mut listed: Vec<_> = v["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let referrer = i["referrer"].as_object().map(|r| (r["kind"].as_str().unwrap().into(), r["subject"].as_str().unwrap().into()));
            (i["digest"].as_str().unwrap().to_string(), referrer)
        })
        .collect();
    listed.sort();
    listed
}

/// What a bundle saved with its referrers lists: the image, its signature, its SBOM referrer.
fn all_three(p: &Planted) -> Vec<(String, Option<(String, String)>)> {
    let mut want = vec![
        (p.image.clone(), None),
        (p.signature.clone(), Some(("signature".into(), p.image.clone()))),
        (p.referrer.clone(), Some((SBOM_TYPE.into(), p.image.clone()))),
    ];
    want.sort();
    want
}

/// The referrers ferro's API lists for `subject` in `repo`: (digest, artifactType).
fn listed_by_api(api: &Api, repo: &str, subject: &str) -> Vec<(String, String)> {
    api.referrers(repo, subject)
        .iter()
        .map(|d| (d["digest"].as_str().unwrap().to_string(), d["artifactType"].as_str().unwrap_or_default().to_string()))
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// `skopeo inspect` of `image`: the digest skopeo reports (it reads the config too).
fn skopeo_digest(flags: &[String], image: &str) -> String {
    let out = Command::new("skopeo").arg("inspect").args(flags).arg(image).output().expect("run skopeo");
    assert!(out.status.success(), "skopeo inspect {image}: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["Digest"].as_str().unwrap().to_string()
}

#[test]
fn referrers_found_and_kept_through_the_referrers_api() {
    let src = FerroRegistry::start();
    let api_src = Api::ferro(&src);
    skopeo_push(&src.skopeo_args("dest"), "skopeo-gzip.oci", &src.url("signed/app:v1"));
    let planted = plant(&api_src, "signed/app", "v1", Fallback::None);
    // ferro indexed the referrer itself; nothing else names it.
    assert_eq!(listed_by_api(&api_src, "signed/app", &planted.image), [(planted.referrer.clone(), SBOM_TYPE.to_string())]);
    assert_eq!(api_src.tags("signed/app"), sorted(vec!["v1".into(), planted.sig_tag.clone()]));
    let work = tempfile::tempdir().unwrap();

    // Pull side: the referrer comes from the API, the signature from its tag.
    let asked = src.requests("GET", "referrers");
    let dir = work.path().join("bundle");
    ferry_with(&src.ferry_args(), &["save", &src.url("signed/app:v1"), "-o", dir.to_str().unwrap(), "-n", "s"]);
    assert!(src.requests("GET", "referrers") > asked, "ferry asked ferro's referrers API");
    let stem = dir.join("s");
    assert_eq!(inspected(&stem), all_three(&planted));
    let text = ferry_ok(&["inspect", stem.to_str().unwrap()]).stdout;
    assert!(text.contains(&format!("signature {} ({}) attached to {}", planted.sig_tag, planted.signature, planted.image)), "{text}");
    assert!(text.contains(&format!("({}) attached to {}", planted.referrer, planted.image)), "{text}");
    ferry_ok(&["verify", stem.to_str().unwrap()]);

    // --no-referrers: neither is in the bundle, and the API is not even asked.
    let asked = src.requests("GET", "referrers");
    let bare = work.path().join("bare");
    ferry_with(&src.ferry_args(), &["save", &src.url("signed/app:v1"), "--no-referrers", "-o", bare.to_str().unwrap(), "-n", "s"]);
    assert_eq!(src.requests("GET", "referrers"), asked, "--no-referrers asks for no referrers");
    assert_eq!(inspected(&bare.join("s")), vec![(planted.image.clone(), None)]);

    // Push side: into another ferro, which lists the referrer itself — no fallback index is written.
    let dst = FerroRegistry::start();
    let api_dst = Api::ferro(&dst);
    let load = ferry_with(&dst.ferry_args(), &["--json", "load", "--allow-unsigned", stem.to_str().unwrap(), "--into", &dst.url("mirror")]);
    let report: serde_json::Value = serde_json::from_str(&load.stdout).unwrap();
    assert_eq!(report["registry"]["referrers_indexed"], 0, "the registry has the API: {report}");
    assert_eq!(dst.requests("GET", "referrers"), 0, "the OCI-Subject answer to the PUT was enough");
    let repo = "mirror/signed/app";
    assert_eq!(listed_by_api(&api_dst, repo, &planted.image), [(planted.referrer.clone(), SBOM_TYPE.to_string())]);
    assert_eq!(api_dst.tags(repo), sorted(vec!["v1".into(), planted.sig_tag.clone()]), "no sha256-HEX fallback tag");
    assert_eq!(api_dst.manifest(repo, &planted.fallback_tag), None);
    let sig = api_dst.manifest(repo, &planted.sig_tag).expect("the .sig tag arrived");
    assert_eq!(Some(sig), api_src.manifest("signed/app", &planted.sig_tag), "the signature byte for byte");
    let referrer = api_dst.manifest(repo, &planted.referrer).expect("the referrer arrived by digest");
    assert_eq!(Some(referrer), api_src.manifest("signed/app", &planted.referrer), "the referrer byte for byte");

    // skopeo reads what ferry pushed into ferro: the bundle's digests.
    let inspect = dst.skopeo_args("");
    assert_eq!(skopeo_digest(&inspect, &dst.url(&format!("{repo}:v1"))), planted.image);
    assert_eq!(skopeo_digest(&inspect, &dst.url(&format!("{repo}:{}", planted.sig_tag))), planted.signature);
    let out = Command::new("skopeo")
        .args(["inspect", "--raw"])
        .args(&inspect)
        .arg(dst.url(&format!("{repo}@{}", planted.referrer)))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(digest_of(&out.stdout), planted.referrer);

    // A second load finds everything there: no upload, the listing unchanged.
    let uploads = dst.requests("POST", "uploads");
    ferry_with(&dst.ferry_args(), &["load", "--allow-unsigned", stem.to_str().unwrap(), "--into", &dst.url("mirror")]);
    assert_eq!(dst.requests("POST", "uploads"), uploads, "nothing uploaded again");
    // The referrer was not PUT again, so no OCI-Subject: the API is asked instead, and says it lists it.
    assert!(dst.requests("GET", "referrers") > 0, "without an OCI-Subject the API is asked");
    assert_eq!(listed_by_api(&api_dst, repo, &planted.image), [(planted.referrer.clone(), SBOM_TYPE.to_string())]);
    assert_eq!(api_dst.tags(repo), sorted(vec!["v1".into(), planted.sig_tag.clone()]));

    // --no-referrers on load: only the image.
    ferry_with(&dst.ferry_args(), &["load", "--allow-unsigned", "--no-referrers", stem.to_str().unwrap(), "--into", &dst.url("bare")]);
    assert_eq!(api_dst.tags("bare/signed/app"), ["v1"]);
    assert_eq!(listed_by_api(&api_dst, "bare/signed/app", &planted.image), []);
}

#[test]
fn referrers_cross_between_the_fallback_tag_and_the_referrers_api() {
    // distribution 2.8 (fallback index) → bundle → ferro (API) → bundle → distribution 2.8 (fallback index).
    let dist = Registry::start(Mode::TlsAuth);
    let api_dist = Api::distribution(&dist);
    skopeo_push(&dist.skopeo_args("dest"), "skopeo-gzip.oci", &dist.url("signed/app:v1"));
    let planted = plant(&api_dist, "signed/app", "v1", Fallback::Index);
    let work = tempfile::tempdir().unwrap();

    let from_dist = work.path().join("from-dist");
    ferry_with(&dist.ferry_args(), &["save", &dist.url("signed/app:v1"), "-o", from_dist.to_str().unwrap(), "-n", "s"]);
    assert_eq!(inspected(&from_dist.join("s")), all_three(&planted));

    let ferro = FerroRegistry::start();
    let api_ferro = Api::ferro(&ferro);
    let load = ferry_with(
        &ferro.ferry_args(),
        &["--json", "load", "--allow-unsigned", from_dist.join("s").to_str().unwrap(), "--into", &ferro.url("mirror")],
    );
    let report: serde_json::Value = serde_json::from_str(&load.stdout).unwrap();
    assert_eq!(report["registry"]["referrers_indexed"], 0, "{report}");
    assert_eq!(ferro.requests("GET", "referrers"), 0, "the OCI-Subject answer to the PUT was enough");
    let repo = "mirror/signed/app";
    assert_eq!(listed_by_api(&api_ferro, repo, &planted.image), [(planted.referrer.clone(), SBOM_TYPE.to_string())]);
    assert_eq!(api_ferro.tags(repo), sorted(vec!["v1".into(), planted.sig_tag.clone()]), "the fallback index stays behind");

    let asked = ferro.requests("GET", "referrers");
    let from_ferro = work.path().join("from-ferro");
    ferry_with(&ferro.ferry_args(), &["save", &ferro.url(&format!("{repo}:v1")), "-o", from_ferro.to_str().unwrap(), "-n", "s"]);
    assert!(ferro.requests("GET", "referrers") > asked, "found through the API");
    assert_eq!(inspected(&from_ferro.join("s")), all_three(&planted), "ferro holds what distribution held");

    let load = ferry_with(
        &dist.ferry_args(),
        &["--json", "load", "--allow-unsigned", from_ferro.join("s").to_str().unwrap(), "--into", &dist.url("back")],
    );
    let report: serde_json::Value = serde_json::from_str(&load.stdout).unwrap();
    assert_eq!(report["registry"]["referrers_indexed"], 1, "{report}");
    let back = "back/mirror/signed/app";
    assert_eq!(api_dist.tags(back), sorted(vec!["v1".into(), planted.sig_tag.clone(), planted.fallback_tag.clone()]));
    let index: serde_json::Value = serde_json::from_slice(&api_dist.manifest(back, &planted.fallback_tag).unwrap()).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{index}");
    assert_eq!(entries[0]["digest"], planted.referrer.as_str(), "{index}");
    assert_eq!(entries[0]["artifactType"], SBOM_TYPE, "{index}");
    assert_eq!(api_dist.manifest(back, &planted.referrer).map(|m| digest_of(&m)), Some(planted.referrer.clone()));
    assert_eq!(api_dist.manifest(back, &planted.sig_tag).map(|m| digest_of(&m)), Some(planted.signature.clone()));
}
