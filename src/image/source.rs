//! Opening an image reference as an [`ImageSet`].
use super::archive::ArchiveIndex;
use super::files::{DirFiles, SourceFiles};
use super::{docker_archive, oci, ImageSet, PlatformFilter};
use crate::compress::{self, Compression};
use crate::error::{Error, Result};
use crate::reference::ImageRef;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default)]
pub struct SourceOptions {
    pub platforms: PlatformFilter,
    /// Where a compressed archive is spooled, uncompressed, so its entries can be
    /// read in the order the bundle needs (next to the output, not in RAM).
    pub spool_dir: Option<PathBuf>,
    /// Spool a Docker Engine export's layers zstd-compressed at this level as
    /// they arrive (set when the bundle is zstd at that level: compression
    /// then overlaps the export, and the bundle writer takes the frames).
    pub spool_zstd_level: Option<i32>,
    /// That spool may become the bundle's artifact (a local, unencrypted,
    /// unsplit zstd bundle; see [`crate::bundle::in_place`]): write it to disk
    /// as it comes (it must be on disk before it is published) and leave room
    /// for the tar bytes around its layers.
    pub spool_in_place: bool,
    /// The containerd socket of `containerd:` sources.
    pub containerd: crate::containerd::Endpoint,
    /// How `docker://` sources are reached (TLS, credentials, jobs, referrers).
    pub registry: crate::registry::RegistryOptions,
}

pub fn open_source(image: &ImageRef, opts: &SourceOptions) -> Result<ImageSet> {
    let mut set = ImageSet::default();
    match image {
        ImageRef::OciDir { path, reference } => {
            let files = DirFiles { root: path.clone() };
            if !files.exists("index.json") {
                return Err(Error::format(format!("{} is not an OCI image layout (no index.json)", path.display())));
            }
            oci::read_layout(&files, reference.as_deref(), &opts.platforms, &mut set)?;
        }
        ImageRef::OciArchive { path, reference } => {
            let archive = open_archive(path, opts, &mut set)?;
            if !archive.exists("index.json") {
                return Err(Error::format(format!("{} is not an oci-archive (no index.json)", path.display())));
            }
            oci::read_layout(&archive, reference.as_deref(), &opts.platforms, &mut set)?;
        }
        ImageRef::DockerArchive { path, reference } => {
            let archive = open_archive(path, opts, &mut set)?;
            if archive.exists("index.json") && archive.exists("oci-layout") {
                // Docker 25+ (and ferry's own artifacts): an OCI layout as well.
                oci::read_layout(&archive, reference.as_deref(), &opts.platforms, &mut set)?;
            } else if archive.exists("manifest.json") {
                docker_archive::read_docker_archive(&archive, reference.as_deref(), &mut set)?;
            } else {
                return Err(Error::format(format!("{} is not a docker-archive (no manifest.json)", path.display())));
            }
        }
        ImageRef::Containerd { namespace, name } => {
            let files = crate::containerd::ContainerdFiles::open(&opts.containerd, namespace)?;
            oci::read_layout(&files, name.as_deref(), &opts.platforms, &mut set)?;
        }
        ImageRef::DockerDaemon(_) => {
            return Err(Error::usage("docker-daemon: sources are handled by the engine module"));
        }
        ImageRef::Registry(r) => crate::registry::pull::read_registry(r, opts, &mut set)?,
    }
    Ok(set)
}

/// Index an archive file; a compressed one is first decompressed to a spool file.
fn open_archive(path: &Path, opts: &SourceOptions, set: &mut ImageSet) -> Result<ArchiveIndex> {
    let ctx = || format!("reading {}", path.display());
    let mut head = [0u8; 8];
    let n = File::open(path).and_then(|mut f| f.read(&mut head)).map_err(|e| Error::io(ctx(), e))?;
    let compression = Compression::detect(&head[..n]);
    if compression == Compression::None {
        return ArchiveIndex::scan(path);
    }
    let dir = opts.spool_dir.clone().unwrap_or_else(std::env::temp_dir);
    let mut spool = tempfile::Builder::new()
        .prefix(".ferry-spool-")
        .tempfile_in(&dir)
        .map_err(|e| Error::io(format!("creating a spool file in {}", dir.display()), e))?;
    let file = File::open(path).map_err(|e| Error::io(ctx(), e))?;
    let mut decoder = compress::decoder(compression, BufReader::with_capacity(1 << 20, file)).map_err(|e| Error::io(ctx(), e))?;
    // A read error is the archive's (exit 1, format); a write error is the spool's
    // disk (full, read-only), which must not be blamed on the archive.
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match decoder.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::format(format!("{}: cannot decompress ({}): {e}", path.display(), compression.name()))),
        };
        std::io::Write::write_all(spool.as_file_mut(), &buf[..n])
            .map_err(|e| Error::io(format!("writing a spool file in {}", dir.display()), e))?;
    }
    let spool_path = spool.into_temp_path();
    let index = ArchiveIndex::scan(&spool_path)?;
    set.spools.push(spool_path);
    Ok(index)
}
