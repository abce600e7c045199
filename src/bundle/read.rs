//! Opening the artifact stream of a bundle: parts (checksummed as they are
//! read) → [age decryption] → decompression (detected by magic bytes).
//!
//! Three stages on three threads, joined by bounded channels of large buffers
//! ([`ReadAhead`]): reading and checksumming the parts; decrypting and
//! decompressing; and the caller's verification of the tar stream.
use super::locate::BundleSource;
use super::parts::PartsReader;
use super::pipeline::ReadAhead;
use crate::compress::{self, Compression};
use crate::error::{unwrap_io, Error, ErrorKind, Result};
use crate::seal::{self, SealError};
use std::io::{self, BufRead, Read};
use std::sync::{Arc, Mutex};

/// Turns the encrypted stream into plaintext.
pub type Decryptor = Box<dyn FnOnce(Box<dyn Read + Send>) -> Result<Box<dyn Read + Send>>>;

/// The parts reader, shared so that after a failure its remaining checksums can be checked.
#[derive(Clone)]
pub struct SharedParts(pub Arc<Mutex<PartsReader>>);

impl Read for SharedParts {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.lock().unwrap().read(buf)
    }
}

impl SharedParts {
    /// Prefer a checksum failure over a downstream symptom of it.
    pub fn explain(&self, downstream: Error) -> Error {
        if matches!(downstream, Error::Integrity(_)) && downstream.to_string().contains("checksum mismatch") {
            return downstream;
        }
        // The location failed (gone, silent): reading on would only wait on it again.
        if matches!(downstream, Error::Transport(_)) {
            return downstream;
        }
        // The reading thread may still be between two reads; the lock orders us after it.
        match self.0.lock().unwrap_or_else(|p| p.into_inner()).drain_and_check() {
            Err(e @ Error::Integrity(_)) => e,
            _ => downstream,
        }
    }
}

pub struct ArtifactStream {
    pub parts: SharedParts,
    pub reader: Box<dyn Read + Send>,
    pub compression: Compression,
    pub encrypted: bool,
}

/// `rebuild`: the data parts to rebuild from parity ([`crate::parity::rebuild::plan`]).
pub fn open_artifact(
    bundle: &BundleSource,
    decryptor: Option<Decryptor>,
    rebuild: Option<Arc<crate::parity::rebuild::RebuildPlan>>,
) -> Result<ArtifactStream> {
    let lines = bundle.data_lines().to_vec();
    let parts = SharedParts(Arc::new(Mutex::new(PartsReader::new(bundle.transport.clone(), lines).with_rebuild(rebuild))));
    let mut raw = ReadAhead::spawn("ferry-read", parts.clone()).map_err(|e| Error::io("starting a reader thread", e))?;
    let head = raw.fill_buf().map_err(|e| parts.explain(Error::io(format!("reading {}", bundle.describe()), e)))?;
    let encrypted = seal::is_age(head);
    if seal::is_armored_age(head) {
        return Err(decryption_failure(&parts, bundle, Error::Seal(SealError::Armored)));
    }
    let mut plain = if encrypted {
        let decrypt = decryptor.ok_or_else(|| {
            Error::integrity(format!(
                "{} is encrypted: give the identity it was encrypted to with -i IDENTITY (or --passphrase)",
                bundle.describe()
            ))
        })?;
        let decrypted = decrypt(Box::new(raw)).map_err(|e| decryption_failure(&parts, bundle, e))?;
        ReadAhead::spawn("ferry-decrypt", decrypted).map_err(|e| Error::io("starting a reader thread", e))?
    } else {
        raw
    };
    // Decompress straight from the previous stage's buffers (no copy).
    let explain = |e| parts.explain(Error::io("reading the artifact", e));
    let compression = Compression::detect(&compress::peek(&mut plain).map_err(explain)?);
    let decoder = compress::decoder(compression, plain).map_err(explain)?;
    let reader = decompressing_stage(compression, decoder)?;
    Ok(ArtifactStream { parts, reader, compression, encrypted })
}

/// A failure of the age layer. When the artifact's bytes could have caused
/// it (a bad header, no stanza that opens), the first checksum mismatch is
/// reported instead if there is one (reading the rest of the artifact to
/// know); otherwise the error is named after the artifact file. An error of
/// the reading stage (a checksum mismatch found while the header was read, a
/// transport failure) comes out as itself; a missing key or a bad setting
/// costs no read.
fn decryption_failure(parts: &SharedParts, bundle: &BundleSource, e: Error) -> Error {
    let file = || match bundle.checksums.lines.first() {
        Some(first) => format!("{}/{}", bundle.transport.describe().trim_end_matches('/'), first.name),
        None => bundle.describe(),
    };
    let (e, symptom) = match e {
        Error::Seal(SealError::Stream { action, source }) => match unwrap_io(source) {
            Ok(reading) => {
                let symptom = reading.kind() == ErrorKind::Integrity;
                (reading, symptom)
            }
            Err(source) => (Error::Seal(SealError::Stream { action, source }), false),
        },
        Error::Seal(source) => {
            let symptom = source.is_integrity_failure();
            (Error::SealIn { file: file(), source }, symptom)
        }
        other => (other, false),
    };
    if symptom {
        parts.explain(e)
    } else {
        e
    }
}

/// Decompression on its own thread; an uncompressed stream needs none.
fn decompressing_stage(compression: Compression, decoder: Box<dyn Read + Send>) -> Result<Box<dyn Read + Send>> {
    Ok(match compression {
        Compression::None => decoder,
        _ => {
            let decoder = ArtifactDecoder { inner: decoder, compression };
            Box::new(ReadAhead::spawn("ferry-decompress", decoder).map_err(|e| Error::io("starting a reader thread", e))?)
        }
    })
}

/// Damaged or hostile compressed bytes are bytes that travelled: an integrity failure.
struct ArtifactDecoder {
    inner: Box<dyn Read + Send>,
    compression: Compression,
}

impl Read for ArtifactDecoder {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| match crate::decompress::corrupt_stream(&e) {
            Some(why) => Error::integrity(format!("decompressing the artifact ({}) failed: {why}", self.compression.name())).into_io(),
            None => e,
        })
    }
}
