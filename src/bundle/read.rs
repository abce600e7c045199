//! Opening the artifact stream of a bundle: parts (checksummed as they are
//! read) → [age decryption] → decompression (detected by magic bytes).
use super::locate::BundleSource;
use super::parts::PartsReader;
use crate::compress::{self, Compression};
use crate::error::{Error, Result};
use std::io::{self, BufRead, BufReader, Read};
use std::sync::{Arc, Mutex};

pub const AGE_MAGIC: &[u8] = b"age-encryption.org/v1";

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
        match self.0.lock().unwrap().drain_and_check() {
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

pub fn open_artifact(bundle: &BundleSource, decryptor: Option<Decryptor>) -> Result<ArtifactStream> {
    let lines = bundle.checksums.lines.clone();
    let parts = SharedParts(Arc::new(Mutex::new(PartsReader::new(bundle.transport.clone(), lines))));
    let mut raw = BufReader::with_capacity(1 << 20, parts.clone());
    let head = raw.fill_buf().map_err(|e| parts.explain(Error::io(format!("reading {}", bundle.describe()), e)))?;
    let encrypted = head.starts_with(AGE_MAGIC);
    let plain: Box<dyn Read + Send> = if encrypted {
        let decrypt = decryptor.ok_or_else(|| {
            Error::integrity(format!(
                "{} is encrypted: give the identity it was encrypted to with -i IDENTITY (or --passphrase)",
                bundle.describe()
            ))
        })?;
        decrypt(Box::new(raw))?
    } else {
        Box::new(raw)
    };
    let (compression, reader) = compress::auto_decoder(plain).map_err(|e| parts.explain(Error::io("reading the artifact", e)))?;
    Ok(ArtifactStream { parts, reader, compression, encrypted })
}
