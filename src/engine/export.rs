//! `save docker-daemon:NAME...`: one `/images/get` call for every name, read as
//! it streams. Docker 20.10 writes each image's layer dirs first and
//! `manifest.json` last, so layer tars go to one spool file (offsets recorded)
//! while small JSON entries stay in memory; the result is then read as any
//! docker-archive (or OCI layout, for Docker 25+ exports). When the bundle is
//! zstd, layers are compressed and hashed on their way into the spool, so
//! compression overlaps the export instead of following it, and the bundle
//! writer copies the frames (see [`BlobSource::Zstd`]).
use super::client::Engine;
use crate::bundle::in_place::{self, SPOOL_ALIGN};
use crate::bundle::Progress;
use crate::compress::{self, Compression};
use crate::digest::{Digest, HashingReader};
use crate::error::{Error, Result};
use crate::image::archive::normalize;
use crate::image::files::SourceFiles;
use crate::image::{docker_archive, oci, BlobSource, ImageSet, SourceOptions, MAX_DOCUMENT};
use crate::reference::{ImageName, Reference};
use bytes::Bytes;
use ferry_transports::WritebackFile;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;

/// Chunks in flight between the runtime and the reader.
const CHANNEL_DEPTH: usize = 16;

/// Export `names` from the daemon `DOCKER_HOST` names into an image set.
pub fn export_images(names: &[String], opts: &SourceOptions, progress: &dyn Progress) -> Result<ImageSet> {
    let engine = Engine::connect()?;
    let mut wanted: Vec<String> = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    for given in names {
        let mut name = daemon_name(given)?;
        let (id, tags) = resolve(&engine, &name)?;
        if let Some(tagged) = tag_beside_digest(given) {
            // Docker looks `NAME:TAG@DIGEST` up by the digest alone: the tag is ferry's to check.
            if !tags.iter().any(|t| ImageName::parse(t).as_ref() == Some(&tagged)) {
                return Err(Error::ImageNotFound(format!(
                    "docker-daemon:{}: image {name} in the Docker Engine at {} is not tagged {} (its tags: {})",
                    crate::untrusted::shown(given),
                    engine.host.describe(),
                    tagged.familiar(),
                    if tags.is_empty() {
                        "none".to_string()
                    } else {
                        tags.iter().map(|t| crate::untrusted::shown(t).into_owned()).collect::<Vec<_>>().join(", ")
                    }
                )));
            }
            // Export it by its tag, so that the bundle records the name.
            name = tagged.familiar();
        }
        if !wanted.contains(&name) {
            wanted.push(name);
        }
        ids.push(id);
    }
    let dir = opts.spool_dir.clone().unwrap_or_else(std::env::temp_dir);
    let mut builder = tempfile::Builder::new();
    if opts.spool_in_place {
        // It may become the artifact: the mode a file the directory transport makes gets (umask applies).
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    }
    // A random name created with O_CREAT|O_EXCL (tempfile's create_new): nothing planted
    // in a shared output directory is opened or written through.
    let spool = builder
        .prefix(".ferry-spool-")
        .tempfile_in(&dir)
        .map_err(|e| Error::io(format!("creating a spool file in {}", dir.display()), e))?;
    let (file, spool_path) = spool.into_parts();
    let label = format!("exporting {} from {}", wanted.join(", "), engine.host.url);
    let distinct = ids.iter().collect::<std::collections::HashSet<_>>().len();
    let room = opts.spool_in_place.then(|| in_place::head_room(distinct));
    let spool = Spool { file, offset: 0, buf: vec![0u8; COPY_BUFFER], head_room: room };
    let files = stream_export(&engine, &wanted, spool, spool_path.to_path_buf(), opts.spool_zstd_level, &label, progress)?;

    let mut set = ImageSet::default();
    if files.exists("index.json") && files.exists("oci-layout") {
        // Docker 25+ exports an OCI layout (with manifest.json beside it).
        oci::read_layout(&files, None, &opts.platforms, &mut set)?;
    } else if files.exists("manifest.json") {
        docker_archive::read_docker_archive(&files, None, &mut set)?;
    } else {
        return Err(Error::EngineFailed(format!("the export from {} holds no manifest.json", engine.host.url)));
    }
    set.spools.push(spool_path);
    // Keep the order the user gave (it names the bundle).
    let position = |img: &crate::image::Image| {
        img.docker.as_ref().and_then(|d| ids.iter().position(|id| id == d.config.as_str())).unwrap_or(usize::MAX)
    };
    set.images.sort_by_key(position);
    Ok(set)
}

/// The name Docker is asked for: `NAME` means `NAME:latest` (as skopeo's
/// docker-daemon: does); IDs pass as they are; `NAME[:TAG]@DIGEST` is asked
/// for as `NAME@DIGEST` (the daemon's RepoDigests), see [`tag_beside_digest`].
fn daemon_name(name: &str) -> Result<String> {
    let is_hex = |s: &str| s.len() >= 12 && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    if name.starts_with("sha256:") || is_hex(name) {
        return Ok(name.to_string());
    }
    let reference = Reference::parse(name).map_err(|e| Error::usage(format!("docker-daemon: {e}")))?;
    Ok(match reference.digest {
        Some(_) => Reference { tag: None, ..reference }.familiar(),
        None => reference.familiar(),
    })
}

/// The tag that `NAME:TAG@DIGEST` expects the digest's image to carry.
fn tag_beside_digest(name: &str) -> Option<ImageName> {
    Reference::parse(name).ok().filter(|r| r.digest.is_some())?.name()
}

/// The image ID of `name` and its tags, or a clear "not found".
fn resolve(engine: &Engine, name: &str) -> Result<(String, Vec<String>)> {
    match engine.block_on(engine.docker().inspect_image(name)) {
        Ok(info) => {
            let id =
                info.id.ok_or_else(|| Error::EngineFailed(format!("the Docker Engine at {} gave no ID for {name}", engine.host.url)))?;
            Ok((id, info.repo_tags.unwrap_or_default()))
        }
        Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {
            Err(Error::ImageNotFound(format!("image {name} not found in the Docker Engine at {}", engine.host.describe())))
        }
        Err(e) => Err(engine.error(&format!("looking up image {name}"), &e)),
    }
}

/// One entry of the export.
enum Entry {
    Bytes(Arc<Vec<u8>>),
    Spooled { offset: u64, len: u64 },
    Compressed { offset: u64, stored: u64, len: u64, level: i32, digest: Digest },
    Symlink(String),
    Hardlink(String),
    Other,
}

/// The export's files: small ones in memory, the rest in the spool file.
pub(super) struct ExportFiles {
    describe: String,
    spool: PathBuf,
    entries: HashMap<String, Entry>,
}

impl ExportFiles {
    fn resolve(&self, path: &str) -> Result<(&Entry, String)> {
        let mut current = normalize(path);
        for _ in 0..16 {
            let entry = self.entries.get(&current).ok_or_else(|| Error::format(format!("{}: no entry {current:?}", self.describe)))?;
            match entry {
                Entry::Symlink(target) => {
                    let base = current.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                    current = crate::image::archive::resolve_relative(base, target)
                        .ok_or_else(|| Error::format(format!("{}: link {current:?} points outside the export", self.describe)))?;
                }
                Entry::Hardlink(target) => current = normalize(target),
                Entry::Other => return Err(Error::format(format!("{}: {current:?} is not a file", self.describe))),
                _ => return Ok((entry, current)),
            }
        }
        Err(Error::format(format!("{}: too many links at {path:?}", self.describe)))
    }
}

impl SourceFiles for ExportFiles {
    fn describe(&self) -> String {
        self.describe.clone()
    }
    fn exists(&self, path: &str) -> bool {
        self.resolve(path).is_ok()
    }
    fn locate(&self, path: &str) -> Result<(BlobSource, u64)> {
        match self.resolve(path)?.0 {
            Entry::Bytes(b) => Ok((BlobSource::Bytes(b.clone()), b.len() as u64)),
            Entry::Spooled { offset, len } => Ok((BlobSource::FileRange { path: self.spool.clone(), offset: *offset, len: *len }, *len)),
            Entry::Compressed { offset, stored, len, level, digest } => Ok((
                BlobSource::Zstd { path: self.spool.clone(), offset: *offset, stored: *stored, level: *level, digest: digest.clone() },
                *len,
            )),
            _ => unreachable!("resolve returns files only"),
        }
    }
}

/// Small metadata files of an export, kept in memory.
fn is_document(name: &str) -> bool {
    name == "manifest.json"
        || name == "repositories"
        || name == "index.json"
        || name == "oci-layout"
        || name.ends_with("json")
        || name.ends_with("VERSION")
}

/// Reads the export's bytes as the runtime thread receives them.
struct ChannelReader<'a> {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes>>,
    current: Bytes,
    progress: &'a dyn Progress,
}

impl Read for ChannelReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(e.into_io()),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        self.progress.advance(n as u64);
        Ok(n)
    }
}

fn stream_export(
    engine: &Engine,
    names: &[String],
    spool: Spool,
    spool_path: PathBuf,
    zstd_level: Option<i32>,
    label: &str,
    progress: &dyn Progress,
) -> Result<ExportFiles> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes>>(CHANNEL_DEPTH);
    let docker = engine.streaming();
    let doing = format!("exporting {}", names.join(", "));
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            engine.block_on(async move {
                let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                let mut stream = docker.export_images(&refs);
                while let Some(item) = stream.next().await {
                    let item = item.map_err(|e| engine.error(&doing, &e));
                    let failed = item.is_err();
                    if tx.send(item).await.is_err() || failed {
                        break;
                    }
                }
            })
        });
        progress.start(label, None);
        let reader = ChannelReader { rx, current: Bytes::new(), progress };
        let result = read_export(reader, spool, spool_path, zstd_level, &engine.host.url);
        progress.finish();
        // The reader (and so the receiver) is gone: the worker cannot block.
        worker.join().expect("export thread does not panic");
        result
    })
}

fn read_export(
    reader: ChannelReader<'_>,
    mut spool: Spool,
    spool_path: PathBuf,
    zstd_level: Option<i32>,
    host: &str,
) -> Result<ExportFiles> {
    let describe = format!("the export from the Docker Engine at {host}");
    let bad = |e: io::Error| match crate::error::unwrap_io(e) {
        Ok(ours) => ours,
        Err(e) => Error::EngineFailed(format!("{describe} is not a valid tar stream: {e}")),
    };
    let mut entries = HashMap::new();
    let mut archive = crate::bounded_tar::archive(reader);
    {
        for entry in archive.entries().map_err(bad)? {
            let mut entry = entry.map_err(bad)?;
            let name = normalize(&String::from_utf8_lossy(&entry.path_bytes()));
            let size = entry.size();
            let link = || entry.link_name_bytes().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
            let kind = entry.header().entry_type();
            let value = match kind {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    if is_document(&name) && size <= MAX_DOCUMENT {
                        let mut buf = Vec::with_capacity(size as usize);
                        entry.read_to_end(&mut buf).map_err(bad)?;
                        Entry::Bytes(Arc::new(buf))
                    } else {
                        let spooling = |e: io::Error| match crate::error::unwrap_io(e) {
                            Ok(ours) => ours,
                            Err(e) => Error::io(format!("spooling {name} to {}", spool_path.display()), e),
                        };
                        match zstd_level {
                            Some(level) => spool.compressed(&mut entry, level).map_err(spooling)?,
                            None => spool.plain(&mut entry).map_err(spooling)?,
                        }
                    }
                }
                tar::EntryType::Symlink => Entry::Symlink(link()),
                tar::EntryType::Link => Entry::Hardlink(link()),
                _ => Entry::Other,
            };
            entries.insert(name, value);
        }
    }
    // Read to the end: the stream must finish cleanly (an error mid-export shows up here).
    io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(bad)?;
    // No fsync: the spool is read back at once (from the page cache) and
    // deleted; write errors surfaced above.
    Ok(ExportFiles { describe, spool: spool_path, entries })
}

/// Bytes copied at a time into the spool.
const COPY_BUFFER: usize = 1 << 20;

/// The spool file, appended to entry by entry.
struct Spool {
    file: File,
    /// Where the next entry starts.
    offset: u64,
    buf: Vec<u8>,
    /// Set when the spool may become the artifact (see [`crate::bundle::in_place`]):
    /// compressed entries are written to disk as they come, and room is left for
    /// the tar bytes that go before each of them — this much before the first,
    /// [`in_place::LAYER_ROOM`] before each later one — so the artifact is built
    /// around them without moving them.
    head_room: Option<u64>,
}

impl Spool {
    /// Copy an entry as it is.
    fn plain(&mut self, entry: &mut dyn Read) -> io::Result<Entry> {
        let mut out = io::BufWriter::with_capacity(COPY_BUFFER, &self.file);
        io::copy(entry, &mut out)?;
        out.into_inner().map_err(|e| e.into_error())?;
        let (offset, len) = self.written()?;
        Ok(Entry::Spooled { offset, len })
    }

    /// Compress an entry into zstd frames at `level`, hashing what goes in.
    /// Each entry starts at a multiple of [`SPOOL_ALIGN`] (a skippable frame
    /// pads the one before), so the bundle writer can build its artifact
    /// around the frames where they are (see [`crate::bundle::in_place`]).
    fn compressed(&mut self, entry: &mut dyn Read, level: i32) -> io::Result<Entry> {
        if let Some(head_room) = self.head_room {
            // Left unwritten (a hole) until the artifact is built.
            self.offset += if self.offset == 0 { head_room } else { in_place::LAYER_ROOM };
            self.file.seek(SeekFrom::Start(self.offset))?;
        }
        // A clone of the handle shares the file position with `self.file`.
        let file = self.file.try_clone()?;
        let file: Box<dyn Write + Send> =
            if self.head_room.is_some() { Box::new(WritebackFile::new(file, self.offset)) } else { Box::new(file) };
        let out = io::BufWriter::with_capacity(COPY_BUFFER, file);
        let mut encoder = compress::encoder(Compression::Zstd, level, compress::plain(out))?;
        let mut hashing = HashingReader::new(entry);
        let len = compress::copy_with_buffer(&mut self.buf, &mut hashing, &mut encoder)?;
        encoder.finish_box()?;
        let digest = hashing.finish().0;
        let (offset, stored) = self.written()?;
        let pad = compress::zstd_padding(offset + stored, SPOOL_ALIGN);
        self.file.write_all(&pad)?;
        self.offset += pad.len() as u64;
        Ok(Entry::Compressed { offset, stored, len, level, digest })
    }

    /// Start and length of what was just appended.
    fn written(&mut self) -> io::Result<(u64, u64)> {
        let end = (&self.file).stream_position()?;
        let start = std::mem::replace(&mut self.offset, end);
        Ok((start, end - start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_default_to_latest_and_ids_pass() {
        assert_eq!(daemon_name("busybox").unwrap(), "busybox:latest");
        assert_eq!(daemon_name("ferry/x:1").unwrap(), "ferry/x:1");
        assert_eq!(daemon_name("localhost:5000/a").unwrap(), "localhost:5000/a:latest");
        assert_eq!(daemon_name("sha256:abcd").unwrap(), "sha256:abcd");
        assert_eq!(daemon_name("0123456789ab").unwrap(), "0123456789ab");
    }

    #[test]
    fn digests_are_looked_up_alone_and_the_tag_checked() {
        let digest = "sha256:9be0d52d4e23497618b6afb36b61030337f3d548de05cb40ab3cdd4891357a0d";
        assert_eq!(daemon_name(&format!("busybox@{digest}")).unwrap(), format!("busybox@{digest}"));
        assert_eq!(daemon_name(&format!("docker.io/library/busybox:1.36@{digest}")).unwrap(), format!("busybox@{digest}"));
        assert_eq!(tag_beside_digest(&format!("busybox:1.36@{digest}")).map(|n| n.familiar()).as_deref(), Some("busybox:1.36"));
        assert_eq!(tag_beside_digest(&format!("busybox@{digest}")), None);
        assert_eq!(tag_beside_digest("busybox:1.36"), None);
        for bad in ["busybox@sha256:abcd", "Busybox", "busybox@sha512:00"] {
            let e = daemon_name(bad).unwrap_err();
            assert_eq!(e.kind(), crate::error::ErrorKind::Usage, "{bad}");
        }
    }

    #[test]
    fn links_resolve_inside_the_export() {
        assert_eq!(crate::image::archive::resolve_relative("abc", "../def/layer.tar").as_deref(), Some("def/layer.tar"));
        assert_eq!(crate::image::archive::resolve_relative("", "../x"), None);
    }
}
