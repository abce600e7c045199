//! `load --into docker-daemon:`: verify the bundle while streaming it into
//! `/images/load`.
//!
//! [`DaemonSink`] re-serializes what the verifier hands it into a docker-archive
//! tar (`blobs/sha256/<hex>` for the configs and layers manifest.json names,
//! then `manifest.json`, written only on commit). The stream keeps its last
//! [`HOLD_BACK`] bytes until commit: the final bytes of a blob leave ferry only
//! after its digest checked out, and on any failure the upload is cut with an
//! error, so Docker reads a truncated request and loads nothing. (Go's tar
//! reader takes a stream that stops at an entry boundary as a clean end, which
//! is why holding back only the end-of-archive marker would not do.)
//!
//! Daemons older than API 1.42 cannot read zstd layers: those are converted to
//! gzip as they pass (decompressed, recompressed into a temporary file, since
//! a tar header needs the size first), and manifest.json points at the
//! converted entries. The image ID (config) and diff_ids do not change.
//!
//! manifest.json goes to Docker without RepoTags; once the load succeeded and
//! every image is there, ferry tags them as the bundle records. A failed load
//! therefore leaves nothing tagged.
use super::client::Engine;
use super::tarw;
use crate::bundle::layout::DockerManifestEntry;
use crate::bundle::read::Decryptor;
use crate::bundle::verify::{Sink, Verified};
use crate::bundle::Progress;
use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, Result};
use crate::image::media_types::{ANN_CONTAINERD_NAME, ANN_REF_NAME};
use crate::image::parse_json;
use crate::reference::ImageName;
use crate::trust::Trusted;
use crate::verified::{verify_into, LoadReport};
use bytes::Bytes;
use futures_util::StreamExt;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufWriter, Seek, Write};
use std::path::PathBuf;

/// Bytes of the upload kept back until the whole bundle verified.
pub const HOLD_BACK: usize = 64 << 10;
/// Size of the chunks handed to the HTTP body.
const CHUNK: usize = 1 << 20;
/// Chunks in flight between the verifier and the runtime.
const CHANNEL_DEPTH: usize = 8;

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

type BodyItem = io::Result<Bytes>;

/// The tar stream to Docker, minus its last [`HOLD_BACK`] bytes until released.
struct HoldBack {
    pending: Vec<u8>,
    tx: Option<tokio::sync::mpsc::Sender<BodyItem>>,
    /// Sending failed: the daemon stopped reading (its own error explains why).
    broken: bool,
}

impl HoldBack {
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.pending.extend_from_slice(data);
        if self.pending.len() >= HOLD_BACK + CHUNK {
            let keep = self.pending.split_off(self.pending.len() - HOLD_BACK);
            let chunk = std::mem::replace(&mut self.pending, keep);
            self.pending.reserve(CHUNK);
            self.send(Ok(Bytes::from(chunk)))?;
        }
        Ok(())
    }

    fn send(&mut self, item: BodyItem) -> io::Result<()> {
        let tx = self.tx.as_ref().ok_or_else(|| io::Error::other("the upload to the Docker Engine was already closed"))?;
        if tx.blocking_send(item).is_err() {
            self.broken = true;
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "the Docker Engine stopped reading the upload"));
        }
        Ok(())
    }

    /// Everything verified: send the rest and end the body.
    fn release(&mut self) -> io::Result<()> {
        let rest = std::mem::take(&mut self.pending);
        if !rest.is_empty() {
            self.send(Ok(Bytes::from(rest)))?;
        }
        self.tx = None;
        Ok(())
    }

    /// Something failed: drop what is held and end the body with an error, so
    /// the HTTP request is aborted rather than ended.
    fn cut(&mut self) {
        self.pending = Vec::new();
        if let Some(tx) = self.tx.take() {
            let _ = tx.blocking_send(Err(io::Error::other("ferry: the bundle failed verification; upload aborted")));
        }
    }
}

impl Drop for HoldBack {
    /// Never end the body cleanly unless it was released.
    fn drop(&mut self) {
        self.cut();
    }
}

/// zstd in, gzip out to a spool file, hashed on the way, bounded in size.
type ZstdToGzip = zstd::stream::write::Decoder<'static, Bounded<flate2::write::GzEncoder<HashingWriter<BufWriter<File>>>>>;

/// A zstd layer being converted to gzip.
struct Conversion {
    decoder: Option<ZstdToGzip>,
    error: Option<io::Error>,
}

/// Refuses to take more than `left` bytes: a layer that decompresses to more
/// than the spool directory can hold is refused (a decompression bomb).
struct Bounded<W> {
    inner: W,
    left: u64,
    dir: PathBuf,
}

impl<W: Write> Write for Bounded<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() as u64 > self.left {
            return Err(Error::integrity(format!(
                "a zstd layer decompresses to more than the free space in {}: refused (decompression bomb?)",
                self.dir.display()
            ))
            .into_io());
        }
        let n = self.inner.write(buf)?;
        self.left -= n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

enum Current {
    None,
    /// Not sent (not in manifest.json).
    Skip,
    /// First bytes not seen yet (compression unknown).
    Undecided {
        digest: Digest,
        size: u64,
        head: Vec<u8>,
    },
    /// Sent as it is: the header is out, data follows.
    Pass {
        size: u64,
    },
    Convert {
        digest: Digest,
        conversion: Box<Conversion>,
    },
}

/// Streams verified blobs into the tar sent to `/images/load`.
pub struct DaemonSink {
    out: HoldBack,
    convert_zstd: bool,
    spool_dir: PathBuf,
    entries: Vec<DockerManifestEntry>,
    wanted: HashSet<Digest>,
    current: Current,
    /// zstd layer → its gzip conversion.
    converted: HashMap<Digest, Digest>,
    /// For messages: "Docker Engine 20.10.24 (API 1.41)".
    daemon: String,
    /// Asked whether it holds a delta's left-out layers.
    host: super::EngineHost,
}

impl DaemonSink {
    fn new(
        tx: tokio::sync::mpsc::Sender<BodyItem>,
        convert_zstd: bool,
        spool_dir: PathBuf,
        daemon: String,
        host: super::EngineHost,
    ) -> Self {
        DaemonSink {
            out: HoldBack { pending: Vec::with_capacity(HOLD_BACK + CHUNK), tx: Some(tx), broken: false },
            convert_zstd,
            spool_dir,
            entries: Vec::new(),
            wanted: HashSet::new(),
            current: Current::None,
            converted: HashMap::new(),
            daemon,
            host,
        }
    }

    fn write_blob(&mut self, data: &[u8]) -> io::Result<()> {
        match &mut self.current {
            Current::None | Current::Skip => Ok(()),
            Current::Pass { .. } => self.out.write(data),
            Current::Convert { conversion, .. } => {
                if conversion.error.is_none() {
                    if let Some(d) = conversion.decoder.as_mut() {
                        if let Err(e) = d.write_all(data) {
                            // Reported once the digest checked out: a corrupt blob is an integrity failure first.
                            conversion.error = Some(e);
                        }
                    }
                }
                Ok(())
            }
            Current::Undecided { head, .. } => {
                head.extend_from_slice(data);
                if head.len() >= ZSTD_MAGIC.len() {
                    self.decide()?;
                }
                Ok(())
            }
        }
    }

    /// Pass the blob through, or start converting it, once its first bytes are known.
    fn decide(&mut self) -> io::Result<()> {
        let Current::Undecided { digest, size, head } = std::mem::replace(&mut self.current, Current::None) else {
            return Ok(());
        };
        if self.convert_zstd && head.starts_with(&ZSTD_MAGIC) {
            let file = tempfile::tempfile_in(&self.spool_dir)?;
            let gz =
                flate2::write::GzEncoder::new(HashingWriter::new(BufWriter::with_capacity(1 << 20, file)), flate2::Compression::fast());
            let free = crate::disk::free_space(&self.spool_dir).unwrap_or(u64::MAX);
            let gz = Bounded { inner: gz, left: free.saturating_sub(64 << 20), dir: self.spool_dir.clone() };
            let mut conversion = Box::new(Conversion { decoder: Some(zstd::stream::write::Decoder::new(gz)?), error: None });
            if let Err(e) = conversion.decoder.as_mut().expect("just made").write_all(&head) {
                conversion.error = Some(e);
            }
            self.current = Current::Convert { digest, conversion };
        } else {
            self.out.write(&tarw::file_header(&digest.blob_path(), size))?;
            self.out.write(&head)?;
            self.current = Current::Pass { size };
        }
        Ok(())
    }

    /// Finish a conversion: write the gzip entry and remember its digest.
    fn finish_conversion(&mut self, digest: Digest, mut conversion: Box<Conversion>) -> Result<()> {
        let failed = |e: io::Error| match crate::error::unwrap_io(e) {
            Ok(ours) => ours,
            Err(e) => Error::format(format!("layer {digest} is not a valid zstd stream; cannot convert it for Docker: {e}")),
        };
        if let Some(e) = conversion.error.take() {
            return Err(failed(e));
        }
        let mut decoder = conversion.decoder.take().expect("set until finished");
        decoder.flush().map_err(failed)?;
        let gz = decoder.into_inner().inner;
        let hashing = gz.finish().map_err(|e| Error::io("writing a converted layer", e))?;
        let (gz_digest, gz_size, buffered) = hashing.finish();
        let mut file = buffered.into_inner().map_err(|e| Error::io("writing a converted layer", e.into_error()))?;
        file.rewind().map_err(|e| Error::io("reading a converted layer", e))?;
        let send = |e: io::Error| Error::io("sending a converted layer to the Docker Engine", e);
        self.out.write(&tarw::file_header(&gz_digest.blob_path(), gz_size)).map_err(send)?;
        let mut buf = vec![0u8; CHUNK];
        let mut left = gz_size;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = io::Read::read(&mut file, &mut buf[..want]).map_err(|e| Error::io("reading a converted layer", e))?;
            if n == 0 {
                return Err(Error::io("reading a converted layer", io::ErrorKind::UnexpectedEof.into()));
            }
            self.out.write(&buf[..n]).map_err(send)?;
            left -= n as u64;
        }
        self.out.write(tarw::padding(gz_size)).map_err(send)?;
        self.converted.insert(digest, gz_digest);
        Ok(())
    }

    /// manifest.json as Docker gets it: converted layers, no RepoTags (ferry tags after the load).
    fn manifest_for_docker(&self) -> Vec<u8> {
        let entries: Vec<DockerManifestEntry> = self
            .entries
            .iter()
            .map(|e| DockerManifestEntry {
                config: e.config.clone(),
                repo_tags: None,
                layers: e
                    .layers
                    .iter()
                    .map(|l| match blob_digest(l).and_then(|d| self.converted.get(&d)) {
                        Some(gz) => gz.blob_path(),
                        None => l.clone(),
                    })
                    .collect(),
            })
            .collect();
        serde_json::to_vec(&entries).expect("json serializes")
    }
}

fn blob_digest(path: &str) -> Option<Digest> {
    Digest::from_hex(path.strip_prefix("blobs/sha256/")?).ok()
}

struct BlobWriter<'a>(&'a mut DaemonSink);
impl Write for BlobWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_blob(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Sink for DaemonSink {
    fn document(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        if name == "manifest.json" {
            let entries: Vec<DockerManifestEntry> = parse_json(bytes, "manifest.json")?;
            if entries.is_empty() {
                return Err(Error::format(
                    "the bundle holds no image Docker can load (its manifest.json is empty, e.g. no image for this machine's platform)",
                ));
            }
            for e in &entries {
                for p in std::iter::once(&e.config).chain(&e.layers) {
                    if let Some(d) = blob_digest(p) {
                        self.wanted.insert(d);
                    }
                }
            }
            self.entries = entries;
        }
        Ok(())
    }

    fn begin_blob(&mut self, digest: &Digest, size: u64) -> Result<Box<dyn Write + '_>> {
        self.current = if self.wanted.contains(digest) {
            Current::Undecided { digest: digest.clone(), size, head: Vec::with_capacity(ZSTD_MAGIC.len()) }
        } else {
            Current::Skip
        };
        Ok(Box::new(BlobWriter(self)))
    }

    fn blob_verified(&mut self, _digest: &Digest) -> Result<()> {
        if matches!(self.current, Current::Undecided { .. }) {
            self.decide().map_err(|e| Error::io("sending to the Docker Engine", e))?;
        }
        match std::mem::replace(&mut self.current, Current::None) {
            Current::Pass { size } => self.out.write(tarw::padding(size)).map_err(|e| Error::io("sending to the Docker Engine", e))?,
            Current::Convert { digest, conversion } => self.finish_conversion(digest, conversion)?,
            _ => {}
        }
        Ok(())
    }

    fn commit(&mut self, _verified: &Verified) -> Result<()> {
        let manifest = self.manifest_for_docker();
        let send = |e: io::Error| Error::io("sending to the Docker Engine", e);
        self.out.write(&tarw::file_header("manifest.json", manifest.len() as u64)).map_err(send)?;
        self.out.write(&manifest).map_err(send)?;
        self.out.write(tarw::padding(manifest.len() as u64)).map_err(send)?;
        self.out.write(&tarw::END).map_err(send)?;
        self.out.release().map_err(send)
    }

    fn abort(&mut self) {
        self.current = Current::None;
        self.out.cut();
    }

    /// A delta loads when the engine holds every chain its left-out layers
    /// complete (Docker's loader then skips them). Asked before any layer is
    /// sent; a refusal cuts the upload, so Docker loads nothing.
    fn delta(&mut self, delta: &crate::delta::Delta) -> Result<()> {
        let held = super::held::chains_held(&self.host)?;
        crate::delta::check_target(delta, &format!("the Docker Engine at {}", self.host.url), |l| {
            Ok(l.chain_ids.iter().all(|c| held.contains(c)))
        })
    }
}

/// What the runtime thread reports while Docker loads.
enum Event {
    Progress { id: String, current: u64, total: Option<u64> },
    Line(String),
}

/// `ferry load SOURCE` (into the Docker Engine of `DOCKER_HOST`).
pub fn load_into_daemon(bundle: &Trusted, decryptor: Option<Decryptor>, progress: &dyn Progress) -> Result<LoadReport> {
    let engine = Engine::connect()?;
    let convert = !engine.reads_zstd_layers();
    let (tx, rx) = tokio::sync::mpsc::channel::<BodyItem>(CHANNEL_DEPTH);
    let (events_tx, events) = std::sync::mpsc::channel::<Event>();
    let docker = engine.streaming();
    let host = engine.host.url.clone();

    let (verified, compression, encrypted) = std::thread::scope(|scope| -> Result<_> {
        let engine = &engine;
        let worker = scope.spawn(move || {
            engine.block_on(async move {
                let body = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
                let options = bollard::query_parameters::ImportImageOptions { quiet: false, ..Default::default() };
                let mut responses = docker.import_image_stream(options, body, None);
                while let Some(item) = responses.next().await {
                    let info = item.map_err(|e| engine.error("loading the images (nothing was tagged)", &e))?;
                    if let Some(detail) = &info.progress_detail {
                        if let Some(current) = detail.current {
                            let _ = events_tx.send(Event::Progress {
                                id: info.id.clone().unwrap_or_default(),
                                current: current.max(0) as u64,
                                total: detail.total.filter(|t| *t > 0).map(|t| t as u64),
                            });
                            continue;
                        }
                    }
                    if let Some(line) = info.stream.as_deref().or(info.status.as_deref()) {
                        let _ = events_tx.send(Event::Line(line.trim().to_string()));
                    }
                }
                Ok::<(), Error>(())
            })
        });

        let spool_dir = std::env::temp_dir();
        let daemon = format!("{} (API {})", engine.server, engine.api_version());
        let mut sink = DaemonSink::new(tx, convert, spool_dir, daemon, engine.host.clone());
        let result = verify_into(bundle, decryptor, &mut sink, None, progress);
        let broken = sink.out.broken;
        let mut notes = Vec::new();
        if !sink.converted.is_empty() {
            let mut pairs: Vec<String> = sink.converted.iter().map(|(z, g)| format!("{} -> {}", z.short(), g.short())).collect();
            pairs.sort();
            notes.push(format!(
                "converted {} zstd layer(s) to gzip ({}): {} cannot read zstd layers (API 1.42 / Docker 23+ can); image IDs and diff_ids are unchanged",
                pairs.len(),
                pairs.join(", "),
                sink.daemon
            ));
        }
        drop(sink); // ends the body if it is not ended yet
        match result {
            Err(e) => {
                let engine_result = worker.join().expect("load thread does not panic");
                // The daemon hanging up explains a failed send better than the send does.
                match engine_result {
                    Err(engine_error) if broken => Err(engine_error),
                    _ => Err(e),
                }
            }
            Ok((v, c, enc)) => {
                for note in &notes {
                    progress.note(note);
                }
                show_daemon_progress(&events, progress);
                worker.join().expect("load thread does not panic")?;
                Ok((v, c, enc))
            }
        }
    })?;

    // Every image is in the daemon: tag them as the bundle records.
    let entries = &verified.docker_manifest;
    let mut loaded = Vec::new();
    for entry in entries {
        let id = blob_digest(&entry.config).expect("verified").to_string();
        engine.block_on(engine.docker().inspect_image(&id)).map_err(|e| {
            Error::EngineFailed(format!(
                "the Docker Engine at {host} accepted the upload but has no image {id} afterwards ({}); nothing was tagged",
                super::client::chain(&e)
            ))
        })?;
    }
    for entry in entries {
        let id = blob_digest(&entry.config).expect("verified");
        let tags: Vec<String> = entry.repo_tags.clone().unwrap_or_default();
        for tag in &tags {
            let name = ImageName::parse(tag).ok_or_else(|| Error::format(format!("manifest.json has an invalid tag {tag:?}")))?;
            let options = bollard::query_parameters::TagImageOptions { repo: Some(repository(&name)), tag: Some(name.tag.clone()) };
            engine
                .block_on(engine.docker().tag_image(id.as_str(), Some(options)))
                .map_err(|e| engine.error(&format!("tagging {} as {tag}", id.short()), &e))?;
        }
        if tags.is_empty() {
            let why = match untagged_ref_name(&verified, &id) {
                Some(r) => format!("the bundle records only the tag {r:?}, no repository name"),
                None => "the bundle records no name for it".to_string(),
            };
            progress.note(&format!("loaded image {id} untagged ({why}); name it with `docker tag {} NAME:TAG`", id.short()));
            loaded.push(format!("<untagged {}>", id.short()));
        } else {
            progress.note(&format!("loaded {} (image {id})", tags.join(", ")));
            loaded.extend(tags);
        }
    }
    let mut report = crate::verified::report(
        format!("docker-daemon: ({}, {}, API {})", host, engine.server, engine.api_version()),
        &verified,
        compression,
        encrypted,
    );
    report.images = loaded;
    Ok(report)
}

/// `docker.io/library/busybox` → `busybox`; others stay full.
fn repository(name: &ImageName) -> String {
    if name.domain == "docker.io" {
        name.path.strip_prefix("library/").unwrap_or(&name.path).to_string()
    } else {
        format!("{}/{}", name.domain, name.path)
    }
}

/// The `ref.name` of the index.json entry that leads to config `id`, when it has no full name.
fn untagged_ref_name(v: &Verified, id: &Digest) -> Option<String> {
    let manifests: HashMap<&Digest, &Digest> = v.manifests.iter().map(|(d, m)| (d, &m.config.digest)).collect();
    let leads_to = |d: &Digest| -> bool {
        if manifests.get(d) == Some(&id) {
            return true;
        }
        v.indexes.iter().filter(|(i, _)| i == d).flat_map(|(_, index)| &index.manifests).any(|m| manifests.get(&m.digest) == Some(&id))
    };
    v.index.as_ref()?.manifests.iter().find_map(|d| {
        (d.annotation(ANN_CONTAINERD_NAME).is_none() && leads_to(&d.digest)).then(|| d.annotation(ANN_REF_NAME).map(str::to_string))?
    })
}

/// Docker's own progress while it loads the layers (after the upload).
fn show_daemon_progress(events: &std::sync::mpsc::Receiver<Event>, progress: &dyn Progress) {
    let mut current_id: Option<String> = None;
    let mut done = 0u64;
    for event in events.iter() {
        match event {
            Event::Progress { id, current, total } => {
                if current_id.as_deref() != Some(id.as_str()) {
                    if current_id.is_some() {
                        progress.finish();
                    }
                    progress.start(&format!("docker: loading layer {id}"), total);
                    current_id = Some(id);
                    done = 0;
                }
                if current > done {
                    progress.advance(current - done);
                    done = current;
                }
            }
            Event::Line(line) => {
                if current_id.take().is_some() {
                    progress.finish();
                }
                // ferry reports each image itself once it is tagged.
                if !line.is_empty() && !line.starts_with("Loaded image") {
                    progress.note(&format!("docker: {line}"));
                }
            }
        }
    }
    if current_id.is_some() {
        progress.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_back_keeps_the_tail_until_released() {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<BodyItem>(64);
        let mut hb = HoldBack { pending: Vec::new(), tx: Some(tx), broken: false };
        let data = vec![7u8; 3 * CHUNK + 12345];
        for piece in data.chunks(100_000) {
            hb.write(piece).unwrap();
        }
        let mut sent = 0;
        while let Ok(Ok(b)) = rx.try_recv() {
            sent += b.len();
        }
        assert!(sent <= data.len() - HOLD_BACK, "at least HOLD_BACK bytes held");
        assert!(sent > 0);
        hb.cut();
        assert!(matches!(rx.try_recv(), Ok(Err(_))), "a cut ends the body with an error");
    }

    #[test]
    fn release_sends_everything() {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<BodyItem>(64);
        let mut hb = HoldBack { pending: Vec::new(), tx: Some(tx), broken: false };
        hb.write(&[1u8; 1000]).unwrap();
        hb.release().unwrap();
        let mut total = 0;
        while let Ok(Ok(b)) = rx.try_recv() {
            total += b.len();
        }
        assert_eq!(total, 1000);
        assert!(rx.try_recv().is_err());
    }
}
