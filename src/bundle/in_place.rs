//! Building a zstd artifact in the spool file that already holds its layers
//! (a Docker Engine export saved to a local directory), instead of copying
//! the layers into a new file after the export: the spool becomes the artifact.
//!
//! The spool holds each layer as zstd frames starting at a multiple of
//! [`SPOOL_ALIGN`], with room left free before each (src/engine/export.rs):
//! [`head_room`] before the first, [`LAYER_ROOM`] before the others. The tar
//! bytes that go between the layers (the metadata before the first one, each
//! layer's header, the padding after the one before) are compressed into
//! frames of their own and written into that room, a skippable frame filling
//! the rest of it; the end-of-archive marker is appended. Nothing moves, and
//! the file stays in the page cache to be hashed. Where the room is too small
//! (metadata larger than foreseen) it is grown with
//! `fallocate(FALLOC_FL_INSERT_RANGE)`, which shifts the rest of the file
//! without copying it (ext4, XFS; other file systems take the copying path),
//! but drops the page cache of what it shifts. Layers stay in the order Docker
//! sent them, after every document (docs/FORMAT.md). Remote outputs,
//! encryption and parts take the copying path.
use super::layout::BundleMeta;
use super::parts::PartRecord;
use super::progress::Progress;
use super::tarstream::{entry_header, TarWriter, BLOCK};
use super::write::{write_head, SaveOptions};
use crate::compress::{self, Compression};
use crate::digest::{Digest, HashingReader};
use crate::error::{Error, Result};
use crate::image::{BlobSource, ImageSet};
use ferry_transports::Transport;
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Where each layer starts in a zstd spool: a multiple of the file system
/// block, as `FALLOC_FL_INSERT_RANGE` needs.
pub const SPOOL_ALIGN: u64 = 4096;

/// Room a Docker export leaves before its first layer for the compressed
/// metadata of `images` images: about 2 KB each (1.7 KB for one image of five
/// layers), so 8 KiB each is generous; more is grown at the cost of a reread.
pub fn head_room(images: usize) -> u64 {
    SPOOL_ALIGN * (1 + 2 * images as u64)
}

/// Room before each later layer: its tar header and the padding of the layer
/// before (at most 1023 bytes), compressed.
pub const LAYER_ROOM: u64 = SPOOL_ALIGN;

/// A layer's place in the spool.
struct Layer<'a> {
    digest: &'a Digest,
    size: u64,
    offset: u64,
    /// Free bytes right before it, for the tar bytes that precede it.
    room: u64,
}

/// What the artifact is made of, when it can be built in place.
pub(super) struct Plan<'a> {
    spool: PathBuf,
    documents: Vec<(&'a Digest, Arc<Vec<u8>>)>,
    layers: Vec<Layer<'a>>,
    /// The zstd level of the layers' frames, and of the bundle.
    level: i32,
}

/// A plan if every blob is a document in memory or a layer in one spool file
/// inside the output directory, compressed at the bundle's level, and the
/// layers and the room before each fill that file; else `None` (the copying path).
pub(super) fn plan<'a>(set: &ImageSet, order: &'a [Digest], opts: &SaveOptions, transport: &dyn Transport) -> Option<Plan<'a>> {
    if !cfg!(target_os = "linux") || opts.compression != Compression::Zstd || opts.encryptor.is_some() || opts.split.is_some() {
        return None;
    }
    let dir = transport.local_dir()?;
    let mut spool: Option<&PathBuf> = None;
    let mut documents = Vec::new();
    let mut spans = Vec::new();
    for digest in order {
        let blob = set.blob(digest)?;
        match &blob.source {
            BlobSource::Bytes(bytes) if spans.is_empty() => documents.push((digest, bytes.clone())),
            BlobSource::Zstd { path, offset, stored, level, digest: hashed } => {
                // Only layers: they go in spool order, which need not be the order
                // documents must keep (a Docker 25+ export spools its manifests
                // and configs too). A damaged layer is reported by the copying path.
                if !crate::image::media_types::is_layer(&blob.media_type)
                    || *level != opts.level
                    || hashed != digest
                    || spool.is_some_and(|p| p != path)
                {
                    return None;
                }
                spool = Some(path);
                spans.push((*stored, Layer { digest, size: blob.size, offset: *offset, room: 0 }));
            }
            _ => return None,
        }
    }
    let spool = spool?.clone();
    if spool.parent()?.canonicalize().ok()? != dir.canonicalize().ok()? || !SPOOL_ALIGN.is_multiple_of(block_size(&spool)?) {
        return None;
    }
    // The layers, each with its padding and the room before it, must be the
    // whole file (the room is overwritten: nothing else may end up in the artifact).
    spans.sort_by_key(|s| s.1.offset);
    let mut end = 0;
    for (stored, layer) in &mut spans {
        if layer.offset < end {
            return None;
        }
        layer.room = layer.offset - end;
        end = layer.offset + *stored + compress::zstd_padding(layer.offset + *stored, SPOOL_ALIGN).len() as u64;
    }
    if std::fs::symlink_metadata(&spool).ok().filter(|m| m.file_type().is_file())?.len() != end {
        return None;
    }
    Some(Plan { spool, documents, layers: spans.into_iter().map(|s| s.1).collect(), level: opts.level })
}

fn block_size(path: &std::path::Path) -> Option<u64> {
    rustix::fs::statvfs(path).ok().map(|st| st.f_bsize).filter(|&b| b > 0)
}

/// Build the artifact `name` in the spool and publish it. `Ok(None)`: the
/// room had to grow and the file system cannot insert ranges; nothing was changed.
pub(super) fn write(
    plan: Plan<'_>,
    set: &ImageSet,
    meta: &BundleMeta,
    mtime: u64,
    name: &str,
    transport: &dyn Transport,
    progress: &dyn Progress,
) -> Result<Option<(PartRecord, u64)>> {
    let spool = &plan.spool;
    let io_err = |e: io::Error| Error::io(format!("writing {name} in {}", spool.display()), e);
    // The spool sits in the output directory, which others may write to: open it only
    // as the regular file of ours it was made as, never through a link swapped in for it.
    let file = own_file(spool, true).map_err(io_err)?;

    // Tar bytes not written yet: the head and the documents, then what goes between layers.
    let mut between = Vec::new();
    let mut tar = TarWriter::new(&mut between, mtime);
    write_head(&mut tar, set, meta).map_err(io_err)?;
    for (digest, bytes) in &plan.documents {
        let actual = Digest::of_bytes(bytes);
        if actual != **digest {
            return Err(Error::damaged_source(digest, &actual));
        }
        tar.add_bytes(&digest.blob_path(), bytes).map_err(io_err)?;
    }
    drop(tar);

    progress.start(&format!("writing {name}"), Some(set.total_size()));
    let mut tar_bytes = 0;
    let mut chunks = Vec::with_capacity(plan.layers.len());
    for layer in &plan.layers {
        between.extend_from_slice(
            entry_header(&layer.digest.blob_path(), layer.size, 0o644, mtime, tar::EntryType::Regular).map_err(io_err)?.as_bytes(),
        );
        chunks.push(compress::zstd_frame(&between, plan.level).map_err(io_err)?);
        tar_bytes += between.len() as u64 + layer.size;
        between.clear();
        between.resize(((BLOCK - layer.size % BLOCK) % BLOCK) as usize, 0);
    }
    between.extend_from_slice(&[0u8; 1024]);
    tar_bytes += between.len() as u64;
    let end_marker = compress::zstd_frame(&between, plan.level).map_err(io_err)?;

    // Grow the room that is too small, before anything is written: a file
    // system that cannot is then left with the spool as it was.
    let mut shift = 0;
    let mut rooms = Vec::with_capacity(plan.layers.len());
    for (layer, chunk) in plan.layers.iter().zip(&chunks) {
        let at = layer.offset - layer.room + shift;
        let grow = room_to_add(chunk.len() as u64, layer.room);
        if grow > 0 {
            if let Err(e) = insert_range(&file, at, grow) {
                let unsupported = matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP) | Some(libc::EINVAL) | Some(libc::ENOSYS));
                if shift == 0 && unsupported {
                    return Ok(None);
                }
                return Err(io_err(e));
            }
            shift += grow;
        }
        rooms.push((at, layer.room + grow));
    }
    for ((at, room), mut chunk) in rooms.into_iter().zip(chunks) {
        chunk.extend(compress::zstd_skippable(room - chunk.len() as u64));
        write_all_at(&file, &chunk, at).map_err(io_err)?;
    }
    let end = file.metadata().map_err(io_err)?.len();
    write_all_at(&file, &end_marker, end).map_err(io_err)?;
    progress.advance(set.total_size());
    progress.finish();

    // Hash it from the page cache while the kernel writes the rest of it to disk.
    let (digest, size) = std::thread::scope(|s| {
        let syncing = s.spawn(|| file.sync_all());
        let hashed = hash_file(spool);
        let synced = syncing.join().expect("fsync does not panic");
        let hashed = hashed?;
        synced.map(|_| hashed)
    })
    .map_err(io_err)?;
    drop(file);
    transport.adopt(spool, name)?;
    Ok(Some((PartRecord { name: name.to_string(), size, digest }, tar_bytes)))
}

/// SHA-256 of a file, read through a 1 MiB buffer: as fast here as through a
/// mapping of the whole file (0.59 s for 827 MB in the page cache either
/// way), whose pages would count in ferry's peak RSS.
fn hash_file(path: &std::path::Path) -> io::Result<(Digest, u64)> {
    let mut reader = HashingReader::new(io::BufReader::with_capacity(1 << 20, own_file(path, false)?));
    io::copy(&mut reader, &mut io::sink())?;
    let (digest, size, _) = reader.finish();
    Ok((digest, size))
}

/// `path`, a file ferry made: a regular file of ours, not a link (see
/// [`ferry_transports::local_file::open_own`]).
fn own_file(path: &std::path::Path, write: bool) -> io::Result<File> {
    ferry_transports::local_file::open_own(path, write)?
        .ok_or_else(|| io::Error::other(format!("{} is no longer a regular file of ours", path.display())))
}

/// What the room before a layer must grow by to hold `chunk` bytes, the rest
/// of it filled by a skippable frame (8 bytes at least): a multiple of
/// [`SPOOL_ALIGN`], or 0 when it is large enough.
fn room_to_add(chunk: u64, room: u64) -> u64 {
    if room == chunk || room >= chunk + 8 {
        return 0;
    }
    (chunk + 8 - room).div_ceil(SPOOL_ALIGN) * SPOOL_ALIGN
}

fn write_all_at(file: &File, data: &[u8], at: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, data, at)
}

/// Make room for `len` bytes at `at`, moving what follows up (no data copied).
#[cfg(target_os = "linux")]
fn insert_range(file: &File, at: u64, len: u64) -> io::Result<()> {
    Ok(rustix::fs::fallocate(file, rustix::fs::FallocateFlags::INSERT_RANGE, at, len)?)
}

#[cfg(not(target_os = "linux"))]
fn insert_range(_file: &File, _at: u64, _len: u64) -> io::Result<()> {
    Err(io::Error::from_raw_os_error(libc::ENOSYS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::write::write_bundle;
    use crate::bundle::NoProgress;
    use crate::image::Blob;
    use crate::image::{open_source, SourceOptions};
    use crate::reference::ImageRef;
    use ferry_transports::DirTransport;
    use std::collections::BTreeMap;
    use std::fs::OpenOptions;
    use std::io::{Read, Seek, SeekFrom, Write};
    use std::path::Path;

    const LEVEL: i32 = 3;

    /// Room before the layers in [`exported_fixture`]'s spool.
    #[derive(Clone, Copy, PartialEq)]
    enum Room {
        /// As a Docker export leaves it.
        Left,
        /// None: the artifact must be built by inserting ranges.
        None,
    }

    /// The multi-image fixture as a Docker export leaves it: documents in
    /// memory, layers as aligned zstd frames in one spool file in `dir`.
    fn exported_fixture(dir: &Path, scratch: &Path, room: Room) -> (ImageSet, PathBuf) {
        let fixture = format!("docker-archive:{}/fixtures/multi.docker.tar.gz", env!("CARGO_MANIFEST_DIR"));
        let opened =
            open_source(&ImageRef::parse(&fixture).unwrap(), &SourceOptions { spool_dir: Some(scratch.into()), ..Default::default() })
                .unwrap();
        let spool = dir.join(".ferry-spool-test");
        let mut file = File::create(&spool).unwrap();
        let mut set = ImageSet::default();
        set.images = opened.images.clone();
        for blob in opened.blobs() {
            let mut bytes = Vec::new();
            blob.source.open().unwrap().read_to_end(&mut bytes).unwrap();
            let source = if blob.media_type.contains("layer") {
                if room == Room::Left {
                    let first = file.stream_position().unwrap() == 0;
                    file.seek(SeekFrom::Current(if first { head_room(set.images.len()) } else { LAYER_ROOM } as i64)).unwrap();
                }
                let offset = file.stream_position().unwrap();
                let frames = compress::zstd_frame(&bytes, LEVEL).unwrap();
                file.write_all(&frames).unwrap();
                file.write_all(&compress::zstd_padding(offset + frames.len() as u64, SPOOL_ALIGN)).unwrap();
                BlobSource::Zstd { path: spool.clone(), offset, stored: frames.len() as u64, level: LEVEL, digest: blob.digest.clone() }
            } else {
                BlobSource::Bytes(Arc::new(bytes))
            };
            set.add_blob(Blob { source, ..blob.clone() });
        }
        (set, spool)
    }

    /// A directory on the file system of the build (ext4 or XFS, which insert ranges; /tmp may be tmpfs).
    fn on_disk() -> tempfile::TempDir {
        tempfile::tempdir_in(std::env::current_exe().unwrap().parent().unwrap()).unwrap()
    }

    /// Every tar entry of a zstd artifact, by name.
    fn entries(artifact: &Path) -> BTreeMap<String, Vec<u8>> {
        let mut archive = tar::Archive::new(zstd::stream::read::Decoder::new(File::open(artifact).unwrap()).unwrap());
        let mut out = BTreeMap::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            out.insert(entry.path().unwrap().to_string_lossy().into_owned(), data);
        }
        out
    }

    fn save(set: &ImageSet, dir: &Path) -> PathBuf {
        // One creation time for both saves: index.json records it.
        let created = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let opts = SaveOptions { level: LEVEL, created, ..SaveOptions::new("b") };
        let report = write_bundle(set, Arc::new(DirTransport::new(dir)), opts, &NoProgress).unwrap();
        let artifact = dir.join(&report.parts[0].name);
        let (digest, _) = hash_file(&artifact).unwrap();
        assert_eq!(digest, report.parts[0].digest, "STEM.sha256 names the bytes on disk");
        artifact
    }

    #[test]
    fn the_spool_becomes_an_artifact_with_the_same_entries_as_a_copied_one() {
        let (out, copied, scratch) = (on_disk(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (set, spool) = exported_fixture(out.path(), scratch.path(), Room::None);
        assert!(plan(
            &set,
            &crate::bundle::layout::blob_order(&set).unwrap(),
            &SaveOptions { level: LEVEL, ..SaveOptions::new("b") },
            &DirTransport::new(out.path())
        )
        .is_some());
        let in_place = save(&set, out.path());
        assert!(!spool.exists(), "the spool was published as {}", in_place.display());
        let names: Vec<String> =
            std::fs::read_dir(out.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names.len(), 2, "artifact and b.sha256 only: {names:?}");
        assert_same_as_copied(&in_place, scratch.path(), copied.path());
    }

    /// An artifact built in place has the entries of one written by copying
    /// (the spool elsewhere), and the zstd CLI reads it whole (it skips the
    /// padding frames).
    fn assert_same_as_copied(in_place: &Path, scratch: &Path, copied: &Path) {
        let (set_elsewhere, _spool) = exported_fixture(scratch, scratch, Room::None);
        assert_eq!(entries(in_place), entries(&save(&set_elsewhere, copied)));
        let status = std::process::Command::new("zstd").arg("-tq").arg(in_place).status().expect("zstd CLI (scripts/install-deps.sh)");
        assert!(status.success());
    }

    /// The artifact built in a spool with room left as the export leaves it:
    /// nothing inserted, so it works on any file system, here ext4 and tmpfs.
    #[test]
    fn the_room_left_before_each_layer_takes_the_tar_bytes_and_nothing_moves() {
        for out in [on_disk(), tempfile::tempdir_in("/dev/shm").unwrap()] {
            let (copied, scratch) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
            let (set, spool) = exported_fixture(out.path(), scratch.path(), Room::Left);
            let layers: Vec<(u64, u64)> = set
                .blobs()
                .iter()
                .filter_map(|b| match &b.source {
                    BlobSource::Zstd { offset, stored, .. } => Some((*offset, *stored)),
                    _ => None,
                })
                .collect();
            let before = std::fs::read(&spool).unwrap();
            let in_place = save(&set, out.path());
            assert!(!spool.exists(), "the spool was published as {}", in_place.display());
            let after = std::fs::read(&in_place).unwrap();
            assert!(after.len() > before.len() && after.len() < before.len() + 100, "only the end marker was appended");
            for (offset, stored) in layers {
                let range = offset as usize..(offset + stored) as usize;
                assert!(before[range.clone()] == after[range], "the layer at {offset} stayed where it was");
            }
            assert_same_as_copied(&in_place, scratch.path(), copied.path());
        }
    }

    #[test]
    fn room_grows_only_when_the_tar_bytes_do_not_fit() {
        assert_eq!(room_to_add(1000, 4096), 0);
        assert_eq!(room_to_add(4096, 4096), 0, "exactly full: no padding frame");
        assert_eq!(room_to_add(4090, 4096), 4096, "6 bytes left: too few for a skippable frame");
        assert_eq!(room_to_add(5000, 4096), 4096);
        assert_eq!(room_to_add(1000, 0), 4096);
    }

    #[test]
    fn a_file_system_that_cannot_insert_ranges_gets_a_copied_artifact() {
        // tmpfs has no FALLOC_FL_INSERT_RANGE: without room before the layers,
        // the first insert fails and nothing was changed.
        let shm = Path::new("/dev/shm");
        let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: a NUL-terminated path and a zeroed struct the call fills in.
        assert_eq!(unsafe { libc::statfs(c"/dev/shm".as_ptr(), &mut fs) }, 0, "this test needs /dev/shm");
        assert_eq!(fs.f_type, libc::TMPFS_MAGIC, "this test needs /dev/shm to be a tmpfs");
        let (out, scratch) = (tempfile::tempdir_in(shm).unwrap(), tempfile::tempdir().unwrap());
        let (set, spool) = exported_fixture(out.path(), scratch.path(), Room::None);
        let before = std::fs::read(&spool).unwrap();
        let artifact = save(&set, out.path());
        assert_eq!(std::fs::read(&spool).unwrap(), before, "the spool was left as it was");
        let (copied, other) = (on_disk(), tempfile::tempdir().unwrap());
        let (set_elsewhere, _spool) = exported_fixture(other.path(), other.path(), Room::None);
        assert_eq!(entries(&artifact), entries(&save(&set_elsewhere, copied.path())));
    }

    #[test]
    fn a_spool_swapped_for_a_symlink_is_not_written_through() {
        let (out, scratch) = (on_disk(), tempfile::tempdir().unwrap());
        let (set, spool) = exported_fixture(out.path(), scratch.path(), Room::Left);
        let order = crate::bundle::layout::blob_order(&set).unwrap();
        let opts = SaveOptions { level: LEVEL, ..SaveOptions::new("b") };
        let transport = DirTransport::new(out.path());
        let planned = plan(&set, &order, &opts, &transport).expect("the spool can become the artifact");
        // Between the plan and the write, the spool is replaced by a link to someone's file.
        let victim = scratch.path().join("victim");
        std::fs::rename(&spool, &victim).unwrap();
        let before = std::fs::read(&victim).unwrap();
        std::os::unix::fs::symlink(&victim, &spool).unwrap();
        assert!(plan(&set, &order, &opts, &transport).is_none(), "a symlinked spool is not planned for");
        let meta = BundleMeta { created: "2023-11-14T22:13:20Z".into(), flattened: false, delta: None };
        let err = write(planned, &set, &meta, 0, "b.tar.zst", &transport, &crate::bundle::NoProgress).expect_err("refused");
        assert!(err.to_string().contains("no longer a regular file of ours"), "{err}");
        assert!(std::fs::read(&victim).unwrap() == before, "the link's target kept its bytes");
        assert!(!out.path().join("b.tar.zst").exists());
    }

    #[test]
    fn a_spool_holding_more_than_the_layers_is_copied_not_published() {
        let (out, scratch) = (on_disk(), tempfile::tempdir().unwrap());
        let (set, spool) = exported_fixture(out.path(), scratch.path(), Room::None);
        OpenOptions::new().append(true).open(&spool).unwrap().write_all(b"not a layer").unwrap();
        let artifact = save(&set, out.path());
        assert!(spool.exists(), "the spool was left alone");
        assert!(entries(&artifact).keys().any(|k| k == "manifest.json"));
    }
}
