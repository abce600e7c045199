//! One connection to containerd's gRPC API (containerd-client over tonic): the
//! socket and namespace, the lease every write of a load runs under, and the
//! few calls of the content, leases, images, snapshots and diff services that
//! ferry makes. Each [`Containerd`] owns a small tokio runtime, so the rest of
//! ferry stays synchronous; streams (content writes and reads) run as tasks
//! on it and meet ferry's threads through bounded channels.
use crate::digest::Digest;
use crate::error::{Error, Result};
use containerd_client::services::v1 as api;
use containerd_client::services::v1::snapshots as snap;
use containerd_client::tonic::{Code, Request, Status};
use containerd_client::types::{Descriptor as ApiDescriptor, Mount};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

pub const DEFAULT_ADDRESS: &str = "/run/containerd/containerd.sock";
/// The namespace Kubernetes' CRI (and k3s, RKE2) reads images from.
pub const DEFAULT_NAMESPACE: &str = "k8s.io";
pub const DEFAULT_SNAPSHOTTER: &str = "overlayfs";

/// How long containerd may keep the lease of a load that died half-way.
const LEASE_EXPIRY: Duration = Duration::from_secs(24 * 3600);
/// The wait for the socket to answer at all.
const CONNECT: Duration = Duration::from_secs(30);
/// Messages in flight between ferry's thread and a stream's task.
const CHANNEL_DEPTH: usize = 8;

/// Where containerd is and which snapshotter unpacks.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub address: PathBuf,
    /// For messages: `--containerd-address`, `CONTAINERD_ADDRESS` or the default.
    pub from: &'static str,
    pub snapshotter: String,
}

impl Default for Endpoint {
    fn default() -> Self {
        Endpoint::new(None, None)
    }
}

impl Endpoint {
    /// `address` (the flag), else `$CONTAINERD_ADDRESS`, else the default socket.
    pub fn new(address: Option<PathBuf>, snapshotter: Option<String>) -> Endpoint {
        let env = std::env::var_os("CONTAINERD_ADDRESS").filter(|a| !a.is_empty()).map(PathBuf::from);
        let (address, from) = match (address, env) {
            (Some(a), _) => (a, "--containerd-address"),
            (None, Some(a)) => (a, "CONTAINERD_ADDRESS"),
            (None, None) => (PathBuf::from(DEFAULT_ADDRESS), "the default"),
        };
        // ctr and crictl also take unix:///path.
        let address = address.to_str().and_then(|a| a.strip_prefix("unix://")).map(PathBuf::from).unwrap_or(address);
        Endpoint { address, from, snapshotter: snapshotter.unwrap_or_else(|| DEFAULT_SNAPSHOTTER.to_string()) }
    }

    pub fn describe(&self) -> String {
        format!("{} ({})", self.address.display(), self.from)
    }
}

/// A client bound to one namespace (and, while loading, one lease).
pub struct Containerd {
    rt: tokio::runtime::Runtime,
    client: containerd_client::Client,
    pub endpoint: Endpoint,
    pub namespace: String,
    lease: Option<String>,
}

const UNREACHABLE_HINT: &str = "check that containerd runs and that --containerd-address (or CONTAINERD_ADDRESS) names its socket (default /run/containerd/containerd.sock); the socket is usually root's only, so run ferry as root (or with sudo)";

impl Containerd {
    pub fn connect(endpoint: &Endpoint, namespace: &str) -> Result<Containerd> {
        let unreachable = |why: String| {
            Error::Containerd(format!("cannot reach containerd at {}: {why}", endpoint.describe())).with_hint(UNREACHABLE_HINT)
        };
        // The socket's own error says more than the channel's ("transport error").
        if let Err(e) = std::os::unix::net::UnixStream::connect(&endpoint.address) {
            return Err(unreachable(crate::error::plain_io(&e)));
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the containerd client", e))?;
        let path = endpoint.address.clone();
        let client = rt
            .block_on(async { tokio::time::timeout(CONNECT, containerd_client::Client::from_path(path)).await })
            .map_err(|_| unreachable(format!("no answer within {}s", CONNECT.as_secs())))?
            .map_err(|e| unreachable(crate::engine::chain(&e)))?;
        let ctd = Containerd { rt, client, endpoint: endpoint.clone(), namespace: namespace.to_string(), lease: None };
        let mut version = ctd.client.version();
        ctd.rt
            .block_on(async { tokio::time::timeout(CONNECT, version.version(ctd.req(()))).await })
            .map_err(|_| unreachable(format!("no answer within {}s", CONNECT.as_secs())))?
            .map_err(|s| unreachable(s.message().to_string()))?;
        Ok(ctd)
    }

    /// A request in this client's namespace (and lease).
    fn req<T>(&self, message: T) -> Request<T> {
        let mut req = Request::new(message);
        let md = req.metadata_mut();
        if let Ok(ns) = self.namespace.parse() {
            md.insert("containerd-namespace", ns);
        }
        if let Some(lease) = self.lease.as_ref().and_then(|l| l.parse().ok()) {
            md.insert("containerd-lease", lease);
        }
        req
    }

    /// containerd answered `status` while `doing` something.
    pub fn failed(&self, doing: &str, status: &Status) -> Error {
        Error::Containerd(format!("{doing}: containerd at {} answered: {}", self.endpoint.address.display(), status.message()))
            .with_hint("containerd's log (e.g. `journalctl -u containerd`) may say more")
    }

    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Start the lease every following write and snapshot is held by; it
    /// expires by itself if ferry dies before deleting it.
    pub fn begin_lease(&mut self) -> Result<()> {
        let expire = humantime::format_rfc3339_seconds(SystemTime::now() + LEASE_EXPIRY).to_string();
        let id = format!("ferry-load-{}-{}", std::process::id(), nanos());
        let labels = HashMap::from([("containerd.io/gc.expire".to_string(), expire)]);
        let mut leases = self.client.leases();
        let req = self.req(api::CreateRequest { id, labels });
        let lease = self.block_on(leases.create(req)).map_err(|s| self.failed("creating a lease", &s))?.into_inner().lease;
        self.lease = lease.map(|l| l.id);
        Ok(())
    }

    /// End the lease: what no image record references is garbage from now on.
    pub fn end_lease(&mut self) -> Result<()> {
        let Some(id) = self.lease.take() else { return Ok(()) };
        let mut leases = self.client.leases();
        let req = self.req(api::DeleteRequest { id, sync: false });
        self.block_on(leases.delete(req)).map_err(|s| self.failed("deleting the lease", &s))?;
        Ok(())
    }

    /// Hold content that is already there under the lease too.
    pub fn lease_content(&self, digest: &Digest) -> Result<()> {
        let Some(id) = self.lease.clone() else { return Ok(()) };
        let mut leases = self.client.leases();
        let resource = api::Resource { id: digest.to_string(), r#type: "content".into() };
        let req = self.req(api::AddResourceRequest { id, resource: Some(resource) });
        self.block_on(leases.add_resource(req)).map_err(|s| self.failed(&format!("leasing {digest}"), &s))?;
        Ok(())
    }

    /// The size of a committed blob, or `None` when the namespace lacks it.
    pub fn content_size(&self, digest: &Digest) -> Result<Option<u64>> {
        let mut content = self.client.content();
        match self.block_on(content.info(self.req(api::InfoRequest { digest: digest.to_string() }))) {
            Ok(r) => Ok(r.into_inner().info.map(|i| i.size.max(0) as u64)),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(self.failed(&format!("looking up {digest}"), &s)),
        }
    }

    /// Set labels on a committed blob (the others stay).
    pub fn set_labels(&self, digest: &Digest, labels: HashMap<String, String>) -> Result<()> {
        if labels.is_empty() {
            return Ok(());
        }
        let paths = labels.keys().map(|k| format!("labels.{k}")).collect();
        let info = api::Info { digest: digest.to_string(), labels, ..Default::default() };
        let req = self.req(api::UpdateRequest { info: Some(info), update_mask: Some(prost_types::FieldMask { paths }) });
        let mut content = self.client.content();
        self.block_on(content.update(req)).map_err(|s| self.failed(&format!("labelling {digest}"), &s))?;
        Ok(())
    }

    /// Start writing the blob `digest` of `size` bytes.
    pub fn upload(&self, digest: &Digest, size: u64) -> Upload {
        let reference = format!("ferry-{}-{}", std::process::id(), digest.hex());
        let (tx, rx) = tokio::sync::mpsc::channel::<api::WriteContentRequest>(CHANNEL_DEPTH);
        let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
        let req = self.req(stream);
        let mut content = self.client.content();
        let task = self.rt.spawn(async move {
            let mut responses = content.write(req).await?.into_inner();
            while let Some(r) = responses.message().await? {
                if r.action == api::WriteAction::Commit as i32 {
                    return Ok(());
                }
            }
            Err(Status::aborted("containerd ended the write before the commit"))
        });
        Upload {
            handle: self.rt.handle().clone(),
            tx: Some(tx),
            task: Some(task),
            reference,
            digest: digest.clone(),
            size,
            offset: 0,
            already_there: false,
            address: self.endpoint.address.clone(),
        }
    }

    /// Write a small blob whole and commit it.
    pub fn put(&self, digest: &Digest, bytes: &[u8]) -> Result<()> {
        let mut upload = self.upload(digest, bytes.len() as u64);
        upload.write_all(bytes).map_err(|e| Error::io(format!("writing {digest} to containerd"), e))?;
        upload.commit()
    }

    /// Stream a committed blob's bytes.
    pub fn read(&self, digest: &Digest) -> BlobReader {
        let (tx, rx) = tokio::sync::mpsc::channel::<std::result::Result<Vec<u8>, Status>>(CHANNEL_DEPTH);
        let req = self.req(api::ReadContentRequest { digest: digest.to_string(), offset: 0, size: 0 });
        let mut content = self.client.content();
        self.rt.spawn(async move {
            let mut stream = match content.read(req).await {
                Ok(r) => r.into_inner(),
                Err(s) => return drop(tx.send(Err(s)).await),
            };
            loop {
                match stream.message().await {
                    Ok(Some(m)) => {
                        if tx.send(Ok(m.data)).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(s) => return drop(tx.send(Err(s)).await),
                }
            }
        });
        BlobReader { rx, buf: Vec::new(), pos: 0, digest: digest.clone() }
    }

    pub fn images(&self) -> Result<Vec<api::Image>> {
        let mut images = self.client.images();
        let req = self.req(api::ListImagesRequest { filters: vec![] });
        Ok(self.block_on(images.list(req)).map_err(|s| self.failed("listing images", &s))?.into_inner().images)
    }

    /// Create the image record, or point an existing one at the new target.
    pub fn put_image(&self, name: &str, target: ApiDescriptor) -> Result<()> {
        let image = api::Image { name: name.to_string(), target: Some(target), ..Default::default() };
        let mut images = self.client.images();
        let doing = format!("recording the image {name}");
        match self.block_on(images.create(self.req(api::CreateImageRequest { image: Some(image.clone()), source_date_epoch: None }))) {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::AlreadyExists => {
                let mask = prost_types::FieldMask { paths: vec!["target".into()] };
                let req = self.req(api::UpdateImageRequest { image: Some(image), update_mask: Some(mask), source_date_epoch: None });
                self.block_on(images.update(req)).map_err(|s| self.failed(&doing, &s))?;
                Ok(())
            }
            Err(s) => Err(self.failed(&doing, &s)),
        }
    }

    /// Whether the snapshotter has a snapshot of that name (a chain ID).
    pub fn has_snapshot(&self, key: &str) -> Result<bool> {
        let mut snapshots = self.client.snapshots();
        let req = self.req(snap::StatSnapshotRequest { snapshotter: self.endpoint.snapshotter.clone(), key: key.to_string() });
        match self.block_on(snapshots.stat(req)) {
            Ok(_) => Ok(true),
            Err(s) if s.code() == Code::NotFound => Ok(false),
            Err(s) => Err(self.snapshot_failed("looking up a snapshot", &s)),
        }
    }

    pub fn prepare(&self, key: &str, parent: &str) -> Result<Vec<Mount>> {
        let mut snapshots = self.client.snapshots();
        let req = self.req(snap::PrepareSnapshotRequest {
            snapshotter: self.endpoint.snapshotter.clone(),
            key: key.to_string(),
            parent: parent.to_string(),
            labels: HashMap::new(),
        });
        Ok(self.block_on(snapshots.prepare(req)).map_err(|s| self.snapshot_failed("preparing a snapshot", &s))?.into_inner().mounts)
    }

    /// Commit the active snapshot `key` as `name`; `false` when another
    /// client committed that name first.
    pub fn commit_snapshot(&self, key: &str, name: &str) -> Result<bool> {
        let mut snapshots = self.client.snapshots();
        let req = self.req(snap::CommitSnapshotRequest {
            snapshotter: self.endpoint.snapshotter.clone(),
            name: name.to_string(),
            key: key.to_string(),
            labels: HashMap::new(),
        });
        match self.block_on(snapshots.commit(req)) {
            Ok(_) => Ok(true),
            Err(s) if s.code() == Code::AlreadyExists => Ok(false),
            Err(s) => Err(self.snapshot_failed("committing a snapshot", &s)),
        }
    }

    pub fn remove_snapshot(&self, key: &str) {
        let mut snapshots = self.client.snapshots();
        let req = self.req(snap::RemoveSnapshotRequest { snapshotter: self.endpoint.snapshotter.clone(), key: key.to_string() });
        let _ = self.block_on(snapshots.remove(req));
    }

    /// Apply a layer blob onto mounts; the digest of what was applied (the diff_id).
    pub fn apply(&self, layer: ApiDescriptor, mounts: Vec<Mount>) -> Result<String> {
        let mut diff = self.client.diff();
        let doing = format!("unpacking layer {}", layer.digest);
        let req = self.req(api::ApplyRequest { diff: Some(layer), mounts, payloads: HashMap::new(), sync_fs: false });
        let applied = self.block_on(diff.apply(req)).map_err(|s| self.failed(&doing, &s))?.into_inner().applied;
        Ok(applied.map(|d| d.digest).unwrap_or_default())
    }

    fn snapshot_failed(&self, doing: &str, status: &Status) -> Error {
        self.failed(&format!("{doing} ({} snapshotter)", self.endpoint.snapshotter), status).with_hint(format!(
            "check that containerd has the {} snapshotter (`ctr plugins ls`); --snapshotter native works on any file system",
            self.endpoint.snapshotter
        ))
    }
}

fn nanos() -> u128 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default()
}

/// A blob being written through the content service's Write stream.
pub struct Upload {
    handle: tokio::runtime::Handle,
    tx: Option<tokio::sync::mpsc::Sender<api::WriteContentRequest>>,
    task: Option<tokio::task::JoinHandle<std::result::Result<(), Status>>>,
    reference: String,
    digest: Digest,
    size: u64,
    offset: u64,
    /// containerd said it holds the blob already: the rest is not sent.
    already_there: bool,
    address: PathBuf,
}

impl Upload {
    fn message(&self, action: api::WriteAction, data: Vec<u8>) -> api::WriteContentRequest {
        api::WriteContentRequest {
            action: action as i32,
            r#ref: self.reference.clone(),
            total: self.size as i64,
            expected: self.digest.to_string(),
            offset: self.offset as i64,
            data,
            labels: HashMap::new(),
        }
    }

    fn send(&mut self, message: api::WriteContentRequest) -> Result<()> {
        let sent = self.tx.as_ref().map(|tx| tx.blocking_send(message).is_ok()).unwrap_or(false);
        if sent {
            return Ok(());
        }
        // The stream ended early: its task knows why.
        self.tx = None;
        match self.finish() {
            Err(s) if s.code() == Code::AlreadyExists => {
                self.already_there = true;
                Ok(())
            }
            Err(s) => Err(self.failed(&s)),
            Ok(()) => Err(Error::Containerd(format!("containerd at {} ended the write of {} early", self.address.display(), self.digest))),
        }
    }

    fn finish(&mut self) -> std::result::Result<(), Status> {
        match self.task.take() {
            Some(task) => self.handle.block_on(task).unwrap_or_else(|e| Err(Status::internal(e.to_string()))),
            None => Ok(()),
        }
    }

    fn failed(&self, status: &Status) -> Error {
        Error::Containerd(format!("writing {} to containerd at {}: {}", self.digest, self.address.display(), status.message()))
            .with_hint("containerd's log (e.g. `journalctl -u containerd`) may say more; check the free space of its root")
    }

    /// Every byte was sent and checked: commit it under its digest.
    pub fn commit(mut self) -> Result<()> {
        if !self.already_there {
            let commit = self.message(api::WriteAction::Commit, Vec::new());
            self.send(commit)?;
        }
        self.tx = None;
        match self.finish() {
            Ok(()) => Ok(()),
            Err(s) if s.code() == Code::AlreadyExists => Ok(()),
            Err(s) => Err(self.failed(&s)),
        }
    }
}

impl Write for Upload {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.already_there && !buf.is_empty() {
            let message = self.message(api::WriteAction::Write, buf.to_vec());
            self.send(message).map_err(Error::into_io)?;
            self.offset += buf.len() as u64;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Upload {
    /// Not committed: end the stream without a commit (the lease's end
    /// releases the partial ingest).
    fn drop(&mut self) {
        self.tx = None;
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A committed blob's bytes, as containerd streams them.
pub struct BlobReader {
    rx: tokio::sync::mpsc::Receiver<std::result::Result<Vec<u8>, Status>>,
    buf: Vec<u8>,
    pos: usize,
    digest: Digest,
}

impl Read for BlobReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(data)) => {
                    self.buf = data;
                    self.pos = 0;
                }
                Some(Err(s)) => return Err(io::Error::other(format!("reading {} from containerd: {}", self.digest, s.message()))),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The containerd form of a descriptor.
pub fn descriptor(d: &crate::image::Descriptor) -> ApiDescriptor {
    ApiDescriptor {
        media_type: d.media_type.clone(),
        digest: d.digest.to_string(),
        size: d.size as i64,
        annotations: d.annotations.clone().unwrap_or_default().into_iter().collect(),
    }
}
