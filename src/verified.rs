//! Reading a bundle's artifact once, checking everything as it streams: the
//! parts against `STEM.sha256`, decryption, decompression, every tar entry and
//! blob. Every entry point takes a [`Trusted`] bundle: the signature policy has
//! run before the first artifact byte is read.
use crate::bundle::read::{open_artifact, Decryptor};
use crate::bundle::verify::{verify_stream_copying, NullSink, Sink, Verified};
use crate::bundle::Progress;
use crate::compress::Compression;
use crate::error::Result;
use crate::trust::Trusted;
use std::io::{self, Read};

#[derive(Debug, Clone)]
pub struct LoadReport {
    pub target: String,
    pub images: Vec<String>,
    pub blobs: usize,
    pub content_bytes: u64,
    pub compression: Compression,
    pub encrypted: bool,
    /// Blobs the target held already and was not sent again (containerd).
    pub skipped_blobs: usize,
    /// What a push into a registry did.
    pub registry: Option<crate::registry::push::PushReport>,
}

/// Verify `bundle` completely into `sink`, and write the verified tar to
/// `copy` (its entries and an end-of-archive marker) when given. On any
/// failure the sink is aborted and a damaged part is reported as the cause
/// when it is one.
pub fn verify_into(
    bundle: &Trusted,
    decryptor: Option<Decryptor>,
    sink: &mut dyn Sink,
    copy: Option<&mut dyn io::Write>,
    progress: &dyn Progress,
) -> Result<(Verified, Compression, bool)> {
    // A parity bundle: find its bad parts first, and rebuild the data parts among them as they come.
    let stream =
        match crate::parity::rebuild::plan(bundle.bundle(), progress).and_then(|plan| open_artifact(bundle.bundle(), decryptor, plan)) {
            Ok(s) => s,
            Err(e) => {
                sink.abort();
                return Err(e);
            }
        };
    progress.start(&format!("verifying {}", bundle.describe()), bundle.artifact_size());
    let parts = stream.parts.clone();
    let mut counted = CountingReader { inner: stream.reader, progress, parts: parts.clone(), last: 0 };
    let result = verify_stream_copying(&mut counted, sink, copy);
    progress.finish();
    match result {
        Ok(v) => Ok((v, stream.compression, stream.encrypted)),
        Err(e) => Err(parts.explain(e)),
    }
}

/// Checksums only (an encrypted bundle without an identity): reads every
/// artifact file once.
pub fn verify_checksums(bundle: &Trusted, progress: &dyn Progress) -> Result<u64> {
    let plan = crate::parity::rebuild::plan(bundle.bundle(), progress)?;
    let mut parts =
        crate::bundle::parts::PartsReader::new(bundle.transport.clone(), bundle.data_lines().to_vec()).with_read_ahead().with_rebuild(plan);
    progress.start(&format!("checking {}", bundle.describe()), bundle.artifact_size());
    parts.drain_and_check()?;
    progress.finish();
    Ok(parts.bytes)
}

/// `ferry verify`: every check, nothing written.
pub fn verify(bundle: &Trusted, decryptor: Option<Decryptor>, progress: &dyn Progress) -> Result<LoadReport> {
    let (v, compression, encrypted) = verify_into(bundle, decryptor, &mut NullSink, None, progress)?;
    Ok(report(bundle.describe(), &v, compression, encrypted))
}

pub fn report(target: String, v: &Verified, compression: Compression, encrypted: bool) -> LoadReport {
    LoadReport {
        target,
        images: image_names(v),
        blobs: v.blobs,
        content_bytes: v.content_bytes,
        compression,
        encrypted,
        skipped_blobs: 0,
        registry: None,
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
