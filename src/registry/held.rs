//! `ferry have docker://HOST[/PREFIX]`: the blobs a registry holds under a
//! prefix (every repository `/v2/_catalog` lists there, every tag, the
//! manifests and indexes they resolve to, their configs and layers), so that
//! `save --have` leaves out what the air-gapped registry has already.
use super::{Client, RegistryOptions, RegistryRef};
use crate::digest::Digest;
use crate::error::Result;
use crate::have::HaveList;
use crate::image::{parse_document, Index, Manifest, MAX_DOCUMENT};
use std::collections::HashSet;

pub fn held_by_registry(target: &RegistryRef, opts: &RegistryOptions) -> Result<HaveList> {
    let client = Client::connect(&target.registry, opts)?;
    let prefix = target.repository.as_str();
    let repositories: Vec<String> = if target.tag.is_some() {
        vec![prefix.to_string()]
    } else {
        match client.catalog() {
            Ok(all) => all.into_iter().filter(|r| prefix.is_empty() || r == prefix || r.starts_with(&format!("{prefix}/"))).collect(),
            // A registry that keeps its catalog to itself: the prefix is then taken as one repository.
            Err(_) if !prefix.is_empty() => vec![prefix.to_string()],
            Err(e) => return Err(e.into()),
        }
    };
    let mut list = HaveList::default();
    for repo in &repositories {
        let tags = match &target.tag {
            Some(tag) => vec![tag.clone()],
            None => client.list_tags(repo)?,
        };
        let mut seen = HashSet::new();
        for tag in tags {
            walk(&client, repo, &tag, &mut seen, &mut list)?;
        }
    }
    Ok(list)
}

/// Add the manifest or index `reference` names and everything under it.
fn walk(client: &Client, repo: &str, reference: &str, seen: &mut HashSet<Digest>, list: &mut HaveList) -> Result<()> {
    let fetched = client.get_manifest(repo, reference, MAX_DOCUMENT)?;
    let digest = Digest::of_bytes(&fetched.bytes);
    if !seen.insert(digest.clone()) {
        return Ok(());
    }
    list.blobs.insert(digest);
    if let Ok(index) = parse_document::<Index>(&fetched.bytes) {
        for child in index.manifests {
            if !seen.contains(&child.digest) {
                walk(client, repo, child.digest.as_str(), seen, list)?;
            }
        }
    } else if let Ok(manifest) = parse_document::<Manifest>(&fetched.bytes) {
        list.blobs.insert(manifest.config.digest);
        list.blobs.extend(manifest.layers.into_iter().map(|l| l.digest));
    }
    // Anything else (a schema 1 manifest) names no content-addressed blobs ferry would send.
    Ok(())
}
