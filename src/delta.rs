//! Delta bundles (SPEC §6): the layers that have-lists prove a target holds
//! are left out of the artifact and recorded in index.json's annotations
//! (docs/FORMAT.md "Delta bundles"), so that the verifier accepts exactly
//! those as absent and `load` can check the target before writing anything.
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::have::{chain_ids, HaveList};
use crate::image::classify::{classify, Claim, Kind};
use crate::image::{parse_json, Descriptor, ImageSet, Index, Manifest};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet, VecDeque};

/// index.json annotation: the digests of the have-lists a delta was made against, comma-separated.
pub const ANN_DELTA_BASE: &str = "dev.ferry.bundle.delta-base";
/// index.json annotation: the left-out layers, a JSON array of [`LeftOut`] (as a string: annotations are strings).
pub const ANN_LEFT_OUT: &str = "dev.ferry.bundle.left-out";

/// A delta's record comes from a bundle, so it is bounded (and sorted by
/// digest, looked up by binary search): at most this many left-out layers ...
pub const MAX_LEFT_OUT: usize = 1 << 16;
/// ... this many chain IDs (places) per layer ...
pub const MAX_PLACES: usize = 1024;
/// ... and this many have-lists (also the most `save --have` takes).
pub const MAX_BASES: usize = 256;

/// One layer a delta bundle does not carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeftOut {
    /// The layer blob's digest and size (as its manifests describe it).
    pub digest: Digest,
    pub size: u64,
    /// Its uncompressed digest (the config's `rootfs.diff_ids` entry).
    #[serde(rename = "diffID")]
    pub diff_id: Digest,
    /// The chain ID of the stack up to and including it, once per distinct
    /// place it has in the bundle's images (what a Docker target must hold).
    #[serde(rename = "chainIDs")]
    pub chain_ids: Vec<Digest>,
    /// The digest of the have-list that proved the target holds it.
    pub have: Digest,
}

/// What a delta leaves out, against which have-lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delta {
    pub bases: Vec<Digest>,
    pub left_out: Vec<LeftOut>,
}

impl Delta {
    pub fn is_empty(&self) -> bool {
        self.left_out.is_empty()
    }

    pub fn contains(&self, digest: &Digest) -> bool {
        self.get(digest).is_some()
    }

    /// The record of a left-out layer (the record is sorted by digest).
    pub fn get(&self, digest: &Digest) -> Option<&LeftOut> {
        self.left_out.binary_search_by(|l| l.digest.cmp(digest)).ok().map(|i| &self.left_out[i])
    }

    pub fn saved_bytes(&self) -> u64 {
        self.left_out.iter().fold(0u64, |sum, l| sum.saturating_add(l.size))
    }

    /// The index.json annotations that record it.
    pub fn annotations(&self) -> [(&'static str, String); 2] {
        let bases: Vec<&str> = self.bases.iter().map(Digest::as_str).collect();
        [(ANN_DELTA_BASE, bases.join(",")), (ANN_LEFT_OUT, serde_json::to_string(&self.left_out).expect("json serializes"))]
    }

    /// Read the record from index.json's annotations (already bounded by the
    /// verifier's document limits); `None` for a full bundle.
    pub fn from_annotations(annotations: Option<&BTreeMap<String, String>>) -> Result<Option<Delta>> {
        let Some(annotations) = annotations else { return Ok(None) };
        let bad = |why: String| Error::integrity(format!("index.json in the artifact records its left-out layers wrongly: {why}"));
        let (bases, left_out) = match (annotations.get(ANN_DELTA_BASE), annotations.get(ANN_LEFT_OUT)) {
            (None, None) => return Ok(None),
            (Some(bases), Some(left_out)) => (bases, left_out),
            _ => return Err(bad(format!("{ANN_DELTA_BASE} and {ANN_LEFT_OUT} go together"))),
        };
        if bases.split(',').count() > MAX_BASES {
            return Err(bad(format!("more than {MAX_BASES} have-lists")));
        }
        let bases = bases.split(',').map(Digest::parse).collect::<Result<Vec<_>>>().map_err(|e| bad(e.to_string()))?;
        let known: HashSet<&Digest> = bases.iter().collect();
        let left_out: Vec<LeftOut> = serde_json::from_str(left_out).map_err(|e| bad(e.to_string()))?;
        if left_out.len() > MAX_LEFT_OUT {
            return Err(bad(format!("more than {MAX_LEFT_OUT} layers")));
        }
        // Sorted by digest, each once: looked up by binary search.
        if let Some(pair) = left_out.windows(2).find(|p| p[0].digest >= p[1].digest) {
            return Err(bad(format!("{} is listed twice or out of order", pair[1].digest)));
        }
        for l in &left_out {
            if !known.contains(&l.have) {
                return Err(bad(format!("{} names a have-list {} that is not a base", l.digest, l.have)));
            }
            if l.chain_ids.is_empty() || l.chain_ids.len() > MAX_PLACES {
                return Err(bad(format!("{} has {} chain IDs (1 to {MAX_PLACES})", l.digest, l.chain_ids.len())));
            }
        }
        if left_out.is_empty() {
            return Err(bad("a delta leaves out at least one layer".into()));
        }
        Ok(Some(Delta { bases, left_out }))
    }
}

/// The load-time check: `Ok` when `holds` says the target holds every
/// left-out layer, else [`Error::MissingBase`] naming what it lacks (exit 1;
/// called before anything is written).
pub fn check_target(delta: &Delta, target: &str, mut holds: impl FnMut(&LeftOut) -> Result<bool>) -> Result<()> {
    let mut missing = Vec::new();
    for l in &delta.left_out {
        if !holds(l)? {
            missing.push(l);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    const SHOWN: usize = 10;
    let mut names: Vec<String> = missing.iter().take(SHOWN).map(|l| l.digest.to_string()).collect();
    if missing.len() > SHOWN {
        names.push(format!("and {} more", missing.len() - SHOWN));
    }
    Err(Error::MissingBase(format!(
        "{target} lacks {} of the {} layer(s) this delta bundle leaves out: {}; nothing was written",
        missing.len(),
        delta.left_out.len(),
        names.join(", ")
    )))
}

/// A have-list given to `save --have`, with the digest of its bytes.
pub struct Base {
    pub digest: Digest,
    pub list: HaveList,
}

/// Read the `--have` files (strictly, see [`crate::have::parse`]).
pub fn read_bases(paths: &[std::path::PathBuf]) -> Result<Vec<Base>> {
    if paths.len() > MAX_BASES {
        return Err(Error::usage(format!("{} have-lists given: a delta is made against at most {MAX_BASES}", paths.len())));
    }
    paths
        .iter()
        .map(|path| {
            let (list, digest) = crate::have::read_file_hashed(path)?;
            Ok(Base { digest, list })
        })
        .collect()
}

/// The layers of `set` the bases prove the target holds: a layer is left out
/// when, at every place it has in the set's images, a base holds its blob or
/// the chain ID up to and including it. Configs and manifests always stay.
pub fn plan(set: &ImageSet, bases: &[Base]) -> Result<Delta> {
    /// One layer digest over all its places in the set.
    struct Places {
        size: u64,
        diff_id: Option<Digest>,
        chain_ids: Vec<Digest>,
        /// The base proving the first place, while every place is proven.
        proof: Option<usize>,
    }
    let mut layers: BTreeMap<Digest, Places> = BTreeMap::new();
    for (manifest, config) in manifests_with_configs(set)? {
        let diff_ids = config_diff_ids(&config, &manifest.config.digest)?;
        let chains = if diff_ids.len() == manifest.layers.len() { chain_ids(&diff_ids) } else { Vec::new() };
        for (i, layer) in manifest.layers.iter().enumerate() {
            let chain = chains.get(i);
            let proof = bases.iter().position(|b| b.list.blobs.contains(&layer.digest) || chain.is_some_and(|c| b.list.chains.contains(c)));
            let places = layers.entry(layer.digest.clone()).or_insert_with(|| Places {
                size: layer.size,
                diff_id: diff_ids.get(i).cloned(),
                chain_ids: Vec::new(),
                proof,
            });
            places.proof = places.proof.and(proof);
            match chain {
                Some(c) if !places.chain_ids.contains(c) => places.chain_ids.push(c.clone()),
                Some(_) => {}
                // Without a diff_id and chain the load could not check it: it stays in.
                None => places.proof = None,
            }
        }
    }
    let left_out: Vec<LeftOut> = layers
        .into_iter()
        .filter(|(_, p)| p.chain_ids.len() <= MAX_PLACES)
        .filter_map(|(digest, p)| {
            Some(LeftOut { digest, size: p.size, diff_id: p.diff_id?, chain_ids: p.chain_ids, have: bases[p.proof?].digest.clone() })
        })
        // A verifier refuses a record over the cap: past it, layers stay in.
        .take(MAX_LEFT_OUT)
        .collect();
    let mut used: Vec<Digest> = Vec::new();
    for base in bases {
        if left_out.iter().any(|l| l.have == base.digest) && !used.contains(&base.digest) {
            used.push(base.digest.clone());
        }
    }
    Ok(Delta { bases: used, left_out })
}

/// Every single-platform manifest the set's images reach, with its config's bytes.
fn manifests_with_configs(set: &ImageSet) -> Result<Vec<(Manifest, Vec<u8>)>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut queue: VecDeque<Descriptor> = set.images.iter().map(|i| i.descriptor.clone()).collect();
    while let Some(desc) = queue.pop_front() {
        if !seen.insert(desc.digest.clone()) {
            continue;
        }
        let bytes = set.document(&desc.digest)?;
        match classify(Claim::of_index_entry(&desc), &bytes).map_err(|why| Error::format(format!("blob {} {why}", desc.digest)))? {
            Kind::Index => queue.extend(parse_json::<Index>(&bytes, "index")?.manifests),
            Kind::Manifest => {
                let manifest: Manifest = parse_json(&bytes, "manifest")?;
                let config = set.document(&manifest.config.digest)?;
                out.push((manifest, config));
            }
            _ => {}
        }
    }
    Ok(out)
}

/// An image config's `rootfs.diff_ids`; none for configs that have no rootfs
/// (OCI artifacts with an empty `{}` config, Helm charts): with no diff_ids there
/// is no chain to prove, so such layers are never left out for Docker targets.
pub fn config_diff_ids(config: &[u8], digest: &Digest) -> Result<Vec<Digest>> {
    #[derive(Deserialize)]
    struct Config {
        #[serde(default)]
        rootfs: RootFs,
    }
    #[derive(Deserialize, Default)]
    struct RootFs {
        #[serde(default)]
        diff_ids: Vec<Digest>,
    }
    let config: Config = parse_json(config, &format!("the config {digest}"))?;
    Ok(config.rootfs.diff_ids)
}

/// Check, once a delta's documents are all verified, that what it records
/// agrees with them: every left-out blob is a layer of a manifest with the
/// recorded size, diff_id and chain IDs. `layers` are the verified manifests
/// with their configs.
pub fn check_record<'a>(delta: &Delta, manifests: impl Iterator<Item = (&'a Manifest, Option<&'a Vec<u8>>)>) -> Result<()> {
    let bad = |why: String| Error::integrity(format!("the delta's record of its left-out layers disagrees with its manifests: {why}"));
    let mut places: BTreeMap<&Digest, Vec<Digest>> = BTreeMap::new();
    for (manifest, config) in manifests {
        let config = config.ok_or_else(|| bad(format!("the config {} is not in the bundle", manifest.config.digest)))?;
        let diff_ids = config_diff_ids(config, &manifest.config.digest).map_err(|e| bad(e.to_string()))?;
        let chains = chain_ids(&diff_ids);
        for (i, layer) in manifest.layers.iter().enumerate() {
            let Some(recorded) = delta.get(&layer.digest) else { continue };
            if recorded.size != layer.size {
                return Err(bad(format!("{} is {} bytes, the record says {}", layer.digest, layer.size, recorded.size)));
            }
            let (Some(diff_id), Some(chain)) = (diff_ids.get(i), chains.get(i)) else {
                return Err(bad(format!("{} has no diff_id in its config {}", layer.digest, manifest.config.digest)));
            };
            if diff_id != &recorded.diff_id || !recorded.chain_ids.contains(chain) {
                return Err(bad(format!("{} has diff_id {diff_id} and chain ID {chain} here", layer.digest)));
            }
            places.entry(&layer.digest).or_default().push(chain.clone());
        }
    }
    for l in &delta.left_out {
        let Some(chains) = places.get(&l.digest) else { return Err(bad(format!("{} is no layer of the bundle's images", l.digest))) };
        if let Some(extra) = l.chain_ids.iter().find(|c| !chains.contains(c)) {
            return Err(bad(format!("{} records chain ID {extra}, which none of its places has", l.digest)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn configs_without_rootfs_have_no_diff_ids() {
        let d = crate::digest::Digest::from_hex(&"0".repeat(64)).unwrap();
        assert!(super::config_diff_ids(b"{}", &d).unwrap().is_empty());
        assert!(super::config_diff_ids(br#"{"rootfs":{"type":"layers"}}"#, &d).unwrap().is_empty());
        let id = format!("sha256:{}", "a".repeat(64));
        let one = super::config_diff_ids(format!(r#"{{"rootfs":{{"type":"layers","diff_ids":["{id}"]}}}}"#).as_bytes(), &d).unwrap();
        assert_eq!(one.len(), 1);
    }

    use super::*;

    fn d(c: char) -> Digest {
        Digest::from_hex(&c.to_string().repeat(64)).unwrap()
    }

    fn two(c: char) -> LeftOut {
        LeftOut { digest: d(c), size: 7, diff_id: d('2'), chain_ids: vec![d('2')], have: d('f') }
    }

    fn delta() -> Delta {
        Delta {
            bases: vec![d('f')],
            left_out: vec![LeftOut { digest: d('1'), size: 7, diff_id: d('2'), chain_ids: vec![d('2')], have: d('f') }],
        }
    }

    #[test]
    fn the_record_reads_back_as_written() {
        let annotations: BTreeMap<String, String> = delta().annotations().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        assert_eq!(Delta::from_annotations(Some(&annotations)).unwrap(), Some(delta()));
        assert_eq!(Delta::from_annotations(None).unwrap(), None);
    }

    #[test]
    fn a_wrong_record_is_an_integrity_failure() {
        let cases: Vec<(&str, String)> = vec![
            (ANN_LEFT_OUT, "[]".into()),
            (ANN_LEFT_OUT, "{".into()),
            (
                ANN_LEFT_OUT,
                format!(
                    "[{},{}]",
                    serde_json::to_string(&delta().left_out[0]).unwrap(),
                    serde_json::to_string(&delta().left_out[0]).unwrap()
                ),
            ),
            (ANN_DELTA_BASE, d('e').to_string()),
            (ANN_DELTA_BASE, vec![d('f').to_string(); MAX_BASES + 1].join(",")),
            (ANN_LEFT_OUT, serde_json::to_string(&[two('3'), two('2')]).unwrap()),
            (ANN_LEFT_OUT, serde_json::to_string(&[LeftOut { chain_ids: vec![d('2'); MAX_PLACES + 1], ..two('3') }]).unwrap()),
            (ANN_DELTA_BASE, "sha256:zz".into()),
        ];
        for (key, value) in cases {
            let mut annotations: BTreeMap<String, String> = delta().annotations().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            annotations.insert(key.to_string(), value.clone());
            let e = Delta::from_annotations(Some(&annotations)).expect_err(&value);
            assert_eq!(e.kind().exit_code(), 3, "{e}");
        }
        let only_one: BTreeMap<String, String> = [(ANN_DELTA_BASE.to_string(), d('f').to_string())].into();
        assert!(Delta::from_annotations(Some(&only_one)).is_err());
    }
}
