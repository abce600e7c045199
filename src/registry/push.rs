//! `load --into docker://HOST[:PORT][/PREFIX]` and `--into docker://HOST/REPO:TAG`:
//! the verified stream pushed as it arrives. Blobs go up in bundle order (HEAD
//! first to skip what the repository has; a cross-repository mount when the
//! registry has the blob in another repository of this bundle; one PUT for a
//! small blob, chunked PATCHes for a large one); manifests and indexes (held
//! in memory: they are small and bounded by the verifier) go up only at
//! `commit`, by digest, children before parents, and the tags last. A bundle
//! that fails verification leaves no manifest and no tag, only blobs nothing
//! refers to (harmless; a registry's garbage collection removes them).
use super::client::{Client, RegistryOptions};
use super::pool::Pool;
use super::reference::RegistryRef;
use super::upload::{ChunkWriter, ChunkedUpload, Sender, Sessions, Uploaded, CHUNK};
use crate::bundle::verify::{Sink, Verified};
use crate::delta::Delta;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::media_types::{is_index, ANN_CONTAINERD_NAME, ANN_REF_NAME};
use crate::image::{Descriptor, Index};
use crate::reference::Reference;
use bytes::Bytes;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::io::{self, Write};
use std::sync::Arc;

/// What a push did (`load --json` shows it as `registry`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct PushReport {
    /// Each image pushed.
    pub pushed: Vec<PushedImage>,
    /// Blobs uploaded (wholly or the rest of an earlier run's upload).
    pub blobs_uploaded: usize,
    /// Bytes sent in this run.
    pub bytes_uploaded: u64,
    /// Bytes an earlier run's unfinished upload held already (not sent again).
    pub bytes_resumed: u64,
    /// Blobs the repository had already.
    pub blobs_skipped: usize,
    /// Blobs mounted from another repository of the registry.
    pub blobs_mounted: usize,
    pub manifests_pushed: usize,
    /// Manifests the repository had already.
    pub manifests_skipped: usize,
    /// Referrers (manifests with a subject) listed in a fallback `sha256-<hex>` index.
    pub referrers_indexed: usize,
    /// Signatures, attestations, SBOMs and referrers left out (`--no-referrers`).
    pub referrers_left_out: usize,
}

/// An index.json entry's repository path and tag (`REPO@DIGEST` has no tag):
/// its full name, or a ref.name that is a whole image name (not just `v1`).
fn entry_name(d: &Descriptor) -> Option<(String, Option<String>)> {
    let parse = |n: &str| Reference::parse(n).ok().map(|r| (r.path, r.tag));
    d.annotation(ANN_CONTAINERD_NAME)
        .and_then(parse)
        .or_else(|| d.annotation(ANN_REF_NAME).filter(|n| n.contains('/') || n.contains(':')).and_then(parse))
}

/// The tag-schema tag (`sha256-<hex>.sig`, ...) a referrer entry without a
/// repository name keeps in its ref.name.
fn referrer_tag(d: &Descriptor) -> Option<String> {
    d.annotation(ANN_REF_NAME).filter(|t| super::referrers::is_referrer_tag(t)).map(str::to_string)
}

/// Repositories searched for a delta's base layers outside the bundle's own.
const MAX_CATALOG: usize = 1000;

#[derive(Debug, Clone, Serialize)]
pub struct PushedImage {
    /// `HOST/REPO:TAG` (or `HOST/REPO@DIGEST` for an image without a tag).
    pub name: String,
    /// Its manifest (or index) digest, as in the bundle.
    pub digest: Digest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Manifest,
    Index,
    Blob,
}

/// A bundle image's place in the registry.
struct Root {
    descriptor: Descriptor,
    repo: String,
    tag: Option<String>,
}

/// The blob being received.
enum Current {
    /// Already in the repository (or mounted): its bytes pass by.
    Skip,
    /// Held whole: a document (pushed at commit) or a small blob (one PUT when verified).
    Held { role: Role, bytes: Vec<u8> },
    /// Chunks going to the sending thread; `skip` bytes the registry holds already.
    Chunked { skip: u64, buf: Vec<u8> },
    /// Spooled for the upload workers (`-j N`, N > 1): blob `id` of the pool.
    Spooled { id: usize },
}

/// Who sends the blobs.
enum Uploads {
    /// `-j 1`: one thread, fed chunks as the verified stream delivers them
    /// (nothing spooled: with one upload at a time, running ahead of it would
    /// buy nothing but disk use).
    Streamed(Sender),
    /// `-j N`: N workers uploading blobs spooled as they stream.
    Pooled(Pool),
}

impl Uploads {
    fn wait(&mut self) -> Result<Vec<Uploaded>> {
        match self {
            Uploads::Streamed(sender) => sender.wait(),
            Uploads::Pooled(pool) => pool.finish(),
        }
    }

    fn abort(&mut self) {
        match self {
            Uploads::Streamed(sender) => {
                let _ = sender.wait();
            }
            Uploads::Pooled(pool) => pool.abort(),
        }
    }

    fn sender(&mut self) -> &mut Sender {
        match self {
            Uploads::Streamed(sender) => sender,
            Uploads::Pooled(_) => unreachable!("chunks go to the sending thread only with -j 1"),
        }
    }
}

pub struct RegistryPush<'a> {
    client: &'a Arc<Client>,
    sessions: &'a Arc<Sessions>,
    uploads: Uploads,
    target: RegistryRef,
    retries: u32,
    roots: Vec<Root>,
    roles: HashMap<Digest, Role>,
    /// The repositories each blob and document is pushed to, first one first.
    repos: HashMap<Digest, Vec<String>>,
    /// Documents with their media types, for commit.
    documents: HashMap<Digest, (String, Bytes)>,
    /// Children of each document (config and layers, or the index's entries).
    children: HashMap<Digest, Vec<Digest>>,
    /// Blobs known to be in a repository.
    present: HashSet<(String, Digest)>,
    delta: Option<Delta>,
    current: Option<Current>,
    no_referrers: bool,
    /// Manifests with a subject, pushed and then listed for their subjects.
    referrers: Vec<super::referrers::Referrer>,
    /// Documents not pushed (`--no-referrers`).
    left_out: HashSet<Digest>,
    /// The `OCI-Subject` a registry answered a manifest's PUT with, by repository and manifest.
    oci_subjects: HashMap<(String, Digest), String>,
    pub report: PushReport,
}

/// A client and a session store for pushing to `target`.
pub struct PushTarget {
    pub client: Arc<Client>,
    pub sessions: Arc<Sessions>,
}

impl PushTarget {
    pub fn connect(target: &RegistryRef, opts: &RegistryOptions) -> Result<PushTarget> {
        let client = Client::connect(&target.registry, opts)?;
        // TLS and credentials checked before the bundle is read.
        client.ping()?;
        Ok(PushTarget { client: Arc::new(client), sessions: Arc::new(Sessions::new()) })
    }
}

impl<'a> RegistryPush<'a> {
    pub fn new(to: &'a PushTarget, target: &RegistryRef, opts: &RegistryOptions) -> Self {
        RegistryPush {
            client: &to.client,
            sessions: &to.sessions,
            uploads: if opts.jobs > 1 {
                Uploads::Pooled(Pool::spawn(to.client.clone(), to.sessions.clone(), opts.jobs, opts.retries))
            } else {
                Uploads::Streamed(Sender::spawn(to.client.clone()))
            },
            target: target.clone(),
            retries: opts.retries,
            roots: Vec::new(),
            roles: HashMap::new(),
            repos: HashMap::new(),
            documents: HashMap::new(),
            children: HashMap::new(),
            present: HashSet::new(),
            delta: None,
            current: None,
            no_referrers: opts.no_referrers,
            referrers: Vec::new(),
            left_out: HashSet::new(),
            oci_subjects: HashMap::new(),
            report: PushReport::default(),
        }
    }

    /// Where an index.json entry goes: `PREFIX/PATH[:TAG]`, or the one
    /// `REPO:TAG` named; `None` for an entry without a repository name (a
    /// referrer goes where its subject goes, found when its bytes arrive).
    fn place(&self, d: &Descriptor, all: &[Descriptor]) -> Result<(Option<String>, Option<String>)> {
        let named = entry_name(d);
        if !self.target.is_single_image() {
            let Some((path, tag)) = named else { return Ok((None, referrer_tag(d))) };
            let repo = if self.target.repository.is_empty() { path } else { format!("{}/{path}", self.target.repository) };
            return Ok((Some(repo), tag));
        }
        // One image: signatures and referrers beside it keep their own tags.
        let repo = Some(self.target.repository.clone());
        match named {
            Some((_, Some(tag))) if super::referrers::is_referrer_tag(&tag) => return Ok((repo, Some(tag))),
            None if referrer_tag(d).is_some() => return Ok((repo, referrer_tag(d))),
            None if all.len() > 1 => return Ok((None, None)),
            _ => {}
        }
        let images =
            all.iter().filter(|e| entry_name(e).is_some_and(|(_, t)| !t.as_deref().is_some_and(super::referrers::is_referrer_tag))).count();
        if images > 1 {
            return Err(Error::usage(format!(
                "{}: the bundle holds {images} images; a target naming one repository and tag takes one (use docker://{}[/PREFIX] to keep their names)",
                self.target.display(),
                self.target.registry
            )));
        }
        Ok((repo, self.target.tag.clone()))
    }

    /// An entry that named no repository and turned out to be a referrer: it goes with its subject.
    fn place_unnamed(&mut self, digest: &Digest, subject: Option<&Digest>) -> Result<()> {
        let Some(root) = self.roots.iter_mut().find(|r| r.repo.is_empty() && &r.descriptor.digest == digest) else { return Ok(()) };
        let repos = subject.and_then(|s| self.repos.get(s)).cloned().unwrap_or_default();
        let Some(first) = repos.first() else {
            return Err(Error::usage(format!(
                "image {digest} of the bundle has no repository name to push it under: name it with --into docker://{}/REPO:TAG",
                self.target.registry
            )));
        };
        root.repo = first.clone();
        self.repos.insert(digest.clone(), repos);
        Ok(())
    }

    /// The subject index.json gives an entry that named no repository (docs/FORMAT.md "Referrers").
    fn unnamed_subject(&self, digest: &Digest) -> Option<Digest> {
        let root = self.roots.iter().find(|r| r.repo.is_empty() && &r.descriptor.digest == digest)?;
        Digest::parse(root.descriptor.annotation(super::pull::ANN_REFERRER_SUBJECT)?).ok()
    }

    fn expect(&mut self, d: &Descriptor, role: Role, repos: &[String]) {
        self.roles.entry(d.digest.clone()).or_insert(role);
        let have = self.repos.entry(d.digest.clone()).or_default();
        for r in repos {
            if !have.contains(r) {
                have.push(r.clone());
            }
        }
    }

    /// A document checked out: note what it refers to, and where that goes.
    fn read_document(&mut self, digest: &Digest, role: Role, bytes: Vec<u8>) -> Result<()> {
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| Error::integrity(format!("document {digest}: {e}")))?;
        let media_type = value.get("mediaType").and_then(|m| m.as_str()).map(str::to_string);
        if self.left_out.contains(digest) {
            return Ok(());
        }
        let subject = value.get("subject").and_then(|s| s.get("digest")).and_then(|d| d.as_str()).and_then(|d| Digest::parse(d).ok());
        // A cosign-style signature names its image only in index.json (a bundle saved from a registry).
        let subject = subject.or_else(|| self.unnamed_subject(digest));
        if !self.no_referrers || subject.is_none() {
            self.place_unnamed(digest, subject.as_ref())?;
        }
        let repos = self.repos.get(digest).cloned().unwrap_or_default();
        if value.get("subject").is_some() {
            if self.no_referrers {
                self.left_out.insert(digest.clone());
                self.report.referrers_left_out += 1;
                return Ok(());
            }
            let media = media_type.as_deref().unwrap_or(crate::image::media_types::OCI_MANIFEST);
            self.referrers.extend(super::referrers::referrer_of(digest, media, &bytes));
        }
        let mut kids = Vec::new();
        if role == Role::Index {
            let index: Index = serde_json::from_value(value).map_err(|e| Error::integrity(format!("index {digest}: {e}")))?;
            for d in &index.manifests {
                self.expect(d, if is_index(&d.media_type) { Role::Index } else { Role::Manifest }, &repos);
                kids.push(d.digest.clone());
            }
        } else {
            let m: crate::image::Manifest =
                serde_json::from_value(value).map_err(|e| Error::integrity(format!("manifest {digest}: {e}")))?;
            for d in std::iter::once(&m.config).chain(&m.layers) {
                self.expect(d, Role::Blob, &repos);
                kids.push(d.digest.clone());
            }
        }
        let fallback = || {
            if role == Role::Index {
                crate::image::media_types::OCI_INDEX.to_string()
            } else {
                crate::image::media_types::OCI_MANIFEST.to_string()
            }
        };
        self.children.insert(digest.clone(), kids);
        self.documents.insert(digest.clone(), (media_type.unwrap_or_else(fallback), Bytes::from(bytes)));
        Ok(())
    }

    /// Make `digest` present in `repo`: known, HEAD, or mounted from a repository that has it.
    fn ensure_blob(&mut self, repo: &str, digest: &Digest) -> Result<bool> {
        if self.present.contains(&(repo.to_string(), digest.clone())) {
            return Ok(true);
        }
        if self.client.blob_exists(repo, digest)? {
            self.present.insert((repo.to_string(), digest.clone()));
            self.report.blobs_skipped += 1;
            return Ok(true);
        }
        let from: Vec<String> = self.present.iter().filter(|(r, d)| d == digest && r != repo).map(|(r, _)| r.clone()).collect();
        for source in from {
            if self.client.mount_blob(repo, digest, &source)? {
                self.present.insert((repo.to_string(), digest.clone()));
                self.report.blobs_mounted += 1;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Documents below `digest` first, then `digest` itself, in every repository it goes to.
    fn push_document(&mut self, digest: &Digest, done: &mut HashSet<Digest>) -> Result<()> {
        if !done.insert(digest.clone()) {
            return Ok(());
        }
        let kids = self.children.get(digest).cloned().unwrap_or_default();
        for kid in &kids {
            match self.roles.get(kid) {
                Some(Role::Manifest | Role::Index) => self.push_document(kid, done)?,
                _ => {
                    for repo in self.repos.get(digest).cloned().unwrap_or_default() {
                        if !self.ensure_blob(&repo, kid)? {
                            return Err(Error::MissingBase(format!(
                                "{}: blob {kid} is not in {repo} and could not be mounted there; nothing was tagged",
                                self.target.registry
                            )));
                        }
                    }
                }
            }
        }
        let (media_type, bytes) = self
            .documents
            .get(digest)
            .cloned()
            .ok_or_else(|| Error::MissingBase(format!("manifest {digest} is not in the bundle (a delta leaves out layers only)")))?;
        for repo in self.repos.get(digest).cloned().unwrap_or_default() {
            if self.client.manifest_digest(&repo, digest.as_str())?.is_some() {
                self.report.manifests_skipped += 1;
                continue;
            }
            if let Some(subject) = self.client.put_manifest(&repo, digest.as_str(), &media_type, bytes.clone())? {
                self.oci_subjects.insert((repo, digest.clone()), subject);
            }
            self.report.manifests_pushed += 1;
        }
        Ok(())
    }

    /// A delta loads when every left-out layer is in (or can be mounted into) the
    /// repositories of the bundle's images: checked before any blob is sent.
    fn check_delta(&mut self) -> Result<()> {
        let Some(delta) = self.delta.clone() else { return Ok(()) };
        let repos: Vec<String> = self.roots.iter().map(|r| r.repo.clone()).collect();
        let target = self.target.display();
        let client = self.client;
        let mut found = Vec::new();
        // Elsewhere in the registry (under the prefix): a base pushed as another repository mounts.
        let mut elsewhere: Option<Vec<String>> = None;
        let prefix = self.target.repository.clone();
        crate::delta::check_target(&delta, &target, |l| {
            for repo in &repos {
                if client.blob_exists(repo, &l.digest)? {
                    found.push((repo.clone(), l.digest.clone()));
                    return Ok(true);
                }
            }
            if elsewhere.is_none() {
                // A registry that keeps its catalog to itself offers no other repositories to mount from.
                let mut all = client.catalog().unwrap_or_default();
                all.truncate(MAX_CATALOG);
                elsewhere = Some(
                    all.into_iter()
                        .filter(|r| prefix.is_empty() || r.starts_with(&format!("{prefix}/")))
                        .filter(|r| !repos.contains(r))
                        .collect(),
                );
            }
            for repo in elsewhere.as_deref().unwrap_or_default() {
                if client.blob_exists(repo, &l.digest)? {
                    found.push((repo.clone(), l.digest.clone()));
                    return Ok(true);
                }
            }
            Ok(false)
        })?;
        self.present.extend(found);
        Ok(())
    }
}

impl<'a> Sink for RegistryPush<'a> {
    fn document(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        if name != "index.json" {
            return Ok(());
        }
        let index: Index = serde_json::from_slice(bytes).map_err(|e| Error::integrity(format!("index.json: {e}")))?;
        for d in &index.manifests {
            let (repo, tag) = self.place(d, &index.manifests)?;
            if self.no_referrers && tag.as_deref().is_some_and(super::referrers::is_referrer_tag) {
                self.report.referrers_left_out += 1;
                self.left_out.insert(d.digest.clone());
                continue;
            }
            let role = if is_index(&d.media_type) { Role::Index } else { Role::Manifest };
            self.expect(d, role, repo.as_slice());
            self.roots.push(Root { descriptor: d.clone(), repo: repo.unwrap_or_default(), tag });
        }
        self.check_delta()
    }

    fn begin_blob(&mut self, digest: &Digest, size: u64) -> Result<Box<dyn Write + '_>> {
        let role = self.roles.get(digest).copied().unwrap_or(Role::Blob);
        let current = if role != Role::Blob {
            Current::Held { role, bytes: Vec::with_capacity(size as usize) }
        } else {
            // No repository: it belongs only to what --no-referrers leaves out.
            let repo = self.repos.get(digest).and_then(|r| r.first()).cloned();
            let Some(repo) = repo else {
                self.current = Some(Current::Skip);
                return Ok(Box::new(io::sink()));
            };
            if self.ensure_blob(&repo, digest)? {
                Current::Skip
            } else if let Uploads::Pooled(pool) = &self.uploads {
                Current::Spooled { id: pool.begin(&repo, digest, size)? }
            } else if size <= CHUNK as u64 {
                Current::Held { role, bytes: Vec::with_capacity(size as usize) }
            } else {
                let upload = ChunkedUpload::open(self.client, self.sessions, &repo, digest, size, self.retries)?;
                let skip = upload.offset();
                self.uploads.sender().start(upload)?;
                Current::Chunked { skip, buf: Vec::new() }
            }
        };
        self.current = Some(current);
        match self.current.as_mut().expect("just set") {
            Current::Chunked { skip, buf } => Ok(Box::new(ChunkWriter { sender: self.uploads.sender(), skip, buf })),
            Current::Spooled { id } => match &self.uploads {
                Uploads::Pooled(pool) => Ok(Box::new(pool.writer(*id))),
                Uploads::Streamed(_) => unreachable!("spooled only with -j N"),
            },
            other => Ok(Box::new(CurrentWriter(other))),
        }
    }

    fn blob_verified(&mut self, digest: &Digest) -> Result<()> {
        match self.current.take() {
            None | Some(Current::Skip) => {}
            Some(Current::Held { role: Role::Blob, bytes }) => {
                let repo = self.repos.get(digest).and_then(|r| r.first()).cloned().expect("placed in begin_blob");
                self.uploads.sender().small(&repo, digest, Bytes::from(bytes))?;
            }
            Some(Current::Held { role, bytes }) => return self.read_document(digest, role, bytes),
            // Finished by the sending thread; other repositories get it (mounted) at commit.
            Some(Current::Chunked { buf, .. }) => self.uploads.sender().finish(Bytes::from(buf))?,
            Some(Current::Spooled { id }) => match &self.uploads {
                Uploads::Pooled(pool) => pool.verified(id)?,
                Uploads::Streamed(_) => unreachable!("spooled only with -j N"),
            },
        }
        Ok(())
    }

    fn commit(&mut self, _verified: &Verified) -> Result<()> {
        for up in self.uploads.wait()? {
            self.present.insert((up.repo, up.digest));
            self.report.blobs_uploaded += 1;
            self.report.bytes_uploaded += up.sent.bytes;
            self.report.bytes_resumed += up.sent.resumed;
        }
        let mut done = HashSet::new();
        let mut roots: Vec<(Digest, String, Option<String>)> =
            self.roots.iter().map(|r| (r.descriptor.digest.clone(), r.repo.clone(), r.tag.clone())).collect();
        roots.retain(|(d, _, _)| !self.left_out.contains(d));
        for (digest, _, _) in &roots {
            self.push_document(digest, &mut done)?;
        }
        // Tags last: until now no name in the registry pointed at anything new.
        for (digest, repo, tag) in roots {
            let name = format!("{}/{repo}", self.target.registry);
            let Some(tag) = tag else {
                self.report.pushed.push(PushedImage { name: format!("{name}@{digest}"), digest });
                continue;
            };
            if self.client.manifest_digest(&repo, &tag)?.as_deref() != Some(digest.as_str()) {
                let (media_type, bytes) = self.documents.get(&digest).cloned().expect("pushed by digest above");
                self.client.put_manifest(&repo, &tag, &media_type, bytes)?;
            }
            self.report.pushed.push(PushedImage { name: format!("{name}:{tag}"), digest });
        }
        for referrer in std::mem::take(&mut self.referrers) {
            for repo in self.repos.get(&referrer.descriptor.digest).cloned().unwrap_or_default() {
                let oci_subject = self.oci_subjects.get(&(repo.clone(), referrer.descriptor.digest.clone()));
                if super::referrers::attach(self.client, &repo, &referrer, oci_subject.map(String::as_str))? {
                    self.report.referrers_indexed += 1;
                }
            }
        }
        Ok(())
    }

    fn abort(&mut self) {
        // An unfinished upload stays open on the registry (and remembered): a rerun resumes it.
        self.current = None;
        self.uploads.abort();
    }

    fn delta(&mut self, delta: &Delta) -> Result<()> {
        // Checked when index.json names the repositories (still before any blob).
        self.delta = Some(delta.clone());
        Ok(())
    }
}

struct CurrentWriter<'b>(&'b mut Current);

impl Write for CurrentWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if let Current::Held { bytes, .. } = self.0 {
            bytes.extend_from_slice(data);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
