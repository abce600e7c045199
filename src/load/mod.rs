//! `ferry load`: verify a bundle while streaming it into a target, committing
//! only when every check passed.
mod archive_file;
mod oci_dir;

pub use archive_file::ArchiveFileSink;
pub use oci_dir::OciDirSink;

use crate::bundle::read::{open_artifact, Decryptor};
use crate::bundle::verify::{verify_stream, NullSink, Sink, Verified};
use crate::bundle::{BundleSource, Progress};
use crate::compress::Compression;
use crate::error::{Error, Result};
use crate::reference::ImageRef;
use std::io::{self, Read};

#[derive(Debug, Clone)]
pub struct LoadReport {
    pub target: String,
    pub images: Vec<String>,
    pub blobs: usize,
    pub content_bytes: u64,
    pub compression: Compression,
    pub encrypted: bool,
}

/// Verify `bundle` completely into `sink`. On any failure the sink is aborted
/// and a damaged part is reported as the cause when it is one.
pub fn verify_into(
    bundle: &BundleSource,
    decryptor: Option<Decryptor>,
    sink: &mut dyn Sink,
    tee: Option<&mut dyn io::Write>,
    progress: &dyn Progress,
) -> Result<(Verified, Compression, bool)> {
    let stream = match open_artifact(bundle, decryptor) {
        Ok(s) => s,
        Err(e) => {
            sink.abort();
            return Err(e);
        }
    };
    progress.start(&format!("verifying {}", bundle.describe()), bundle.artifact_size());
    let parts = stream.parts.clone();
    let counted = CountingReader { inner: stream.reader, progress, parts: parts.clone(), last: 0 };
    let result = match tee {
        Some(out) => verify_stream(&mut TeeReader { inner: counted, out }, sink),
        None => verify_stream(&mut { counted }, sink),
    };
    progress.finish();
    match result {
        Ok(v) => Ok((v, stream.compression, stream.encrypted)),
        Err(e) => Err(parts.explain(e)),
    }
}

/// Checksums only (an encrypted bundle without an identity): reads every
/// artifact file once.
pub fn verify_checksums(bundle: &BundleSource, progress: &dyn Progress) -> Result<u64> {
    let mut parts =
        crate::bundle::parts::PartsReader::new(bundle.transport.clone(), bundle.checksums.lines.clone()).with_read_ahead();
    progress.start(&format!("checking {}", bundle.describe()), bundle.artifact_size());
    parts.drain_and_check()?;
    progress.finish();
    Ok(parts.bytes)
}

/// `ferry verify`: every check, nothing written.
pub fn verify(bundle: &BundleSource, decryptor: Option<Decryptor>, progress: &dyn Progress) -> Result<LoadReport> {
    let (v, compression, encrypted) = verify_into(bundle, decryptor, &mut NullSink, None, progress)?;
    Ok(report(bundle.describe(), &v, compression, encrypted))
}

/// `ferry load --into TARGET` for file-based targets.
pub fn load(bundle: &BundleSource, into: &ImageRef, decryptor: Option<Decryptor>, progress: &dyn Progress) -> Result<LoadReport> {
    match into {
        ImageRef::OciDir { path, reference } => {
            let mut sink = OciDirSink::new(path, reference.clone())?;
            let (v, c, e) = verify_into(bundle, decryptor, &mut sink, None, progress)?;
            Ok(report(format!("oci:{}", path.display()), &v, c, e))
        }
        ImageRef::OciArchive { path, reference } | ImageRef::DockerArchive { path, reference } => {
            if reference.is_some() {
                return Err(Error::usage(
                    "archive targets keep the bundle's image names; give only a path (e.g. oci-archive:out.tar)",
                ));
            }
            let mut sink = ArchiveFileSink::new(path)?;
            let mut file = sink.take_file();
            let result = verify_into(bundle, decryptor, &mut NullSink, Some(&mut file), progress);
            match result {
                Ok((v, c, e)) => {
                    sink.commit_file(file)?;
                    let kind = if matches!(into, ImageRef::OciArchive { .. }) { "oci-archive" } else { "docker-archive" };
                    Ok(report(format!("{kind}:{}", path.display()), &v, c, e))
                }
                Err(e) => {
                    drop(file);
                    sink.abort();
                    Err(e)
                }
            }
        }
        ImageRef::DockerDaemon(name) if name.is_empty() => crate::engine::load_into_daemon(bundle, decryptor, progress),
        ImageRef::DockerDaemon(name) => Err(Error::usage(format!(
            "--into docker-daemon:{name}: the daemon target takes no name (images keep the names the bundle records); use --into docker-daemon:"
        ))),
    }
}

pub fn report(target: String, v: &Verified, compression: Compression, encrypted: bool) -> LoadReport {
    LoadReport {
        target,
        images: image_names(v),
        blobs: v.blobs,
        content_bytes: v.content_bytes,
        compression,
        encrypted,
    }
}

/// Image names recorded in a verified bundle's index.json.
pub fn image_names(v: &Verified) -> Vec<String> {
    use crate::image::media_types::{ANN_CONTAINERD_NAME, ANN_REF_NAME};
    v.index
        .iter()
        .flat_map(|i| &i.manifests)
        .map(|d| {
            // A name that is no valid reference is shown as recorded (callers escape it).
            d.annotation(ANN_CONTAINERD_NAME)
                .map(|n| crate::reference::ImageName::parse(n).map(|n| n.familiar()).unwrap_or_else(|| n.to_string()))
                .or_else(|| d.annotation(ANN_REF_NAME).map(str::to_string))
                .unwrap_or_else(|| format!("<untagged {}>", d.digest.short()))
        })
        .collect()
}

struct CountingReader<'a> {
    inner: Box<dyn Read + Send>,
    progress: &'a dyn Progress,
    parts: crate::bundle::read::SharedParts,
    last: u64,
}
impl Read for CountingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        // Progress counts artifact bytes (what the user sees on disk).
        if let Ok(p) = self.parts.0.try_lock() {
            let now = p.bytes;
            self.progress.advance(now - self.last);
            self.last = now;
        }
        Ok(n)
    }
}

struct TeeReader<'a, R> {
    inner: R,
    out: &'a mut dyn io::Write,
}
impl<R: Read> Read for TeeReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Free bytes on the filesystem holding `path`.
pub fn free_space(path: &std::path::Path) -> Option<u64> {
    let st = rustix::fs::statvfs(path).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Refuse content that cannot fit (a decompression bomb declares what it will write).
pub fn check_space(dir: &std::path::Path, total: u64) -> Result<()> {
    if let Some(free) = free_space(dir) {
        if total > free {
            return Err(Error::integrity(format!(
                "the bundle declares {total} bytes of content but only {free} bytes are free at {}: refused before writing",
                dir.display()
            )));
        }
    }
    Ok(())
}
