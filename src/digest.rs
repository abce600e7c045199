//! Content digests (`sha256:<hex>`) and adapters that hash bytes as they stream.
use crate::error::{Error, Result};
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::io::{self, Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// A validated `sha256:<64 lowercase hex>` digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    pub fn parse(s: &str) -> Result<Digest> {
        let hex = s.strip_prefix("sha256:").ok_or_else(|| Error::format(format!("unsupported digest {s:?}: only sha256 is supported")))?;
        Digest::from_hex(hex)
    }

    pub fn from_hex(hex: &str) -> Result<Digest> {
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(Error::format(format!("invalid sha256 digest {hex:?}")));
        }
        Ok(Digest(format!("sha256:{hex}")))
    }

    pub fn of_bytes(data: &[u8]) -> Digest {
        Digest(format!("sha256:{}", hex::encode(Sha256::digest(data))))
    }

    pub fn hex(&self) -> &str {
        &self.0[7..]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The blob's path inside an OCI layout.
    pub fn blob_path(&self) -> String {
        format!("blobs/sha256/{}", self.hex())
    }

    /// Short form for messages (`sha256:0123456789ab`).
    pub fn short(&self) -> &str {
        &self.0[..19]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A running SHA-256.
#[derive(Clone, Default)]
pub struct Hasher(Sha256);

impl Hasher {
    pub fn new() -> Self {
        Hasher(Sha256::new())
    }
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data)
    }
    pub fn finish(self) -> Digest {
        Digest(format!("sha256:{}", hex::encode(self.0.finalize())))
    }
}

/// Hashes and counts every byte read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader { inner, hasher: Hasher::new(), count: 0 }
    }
    pub fn count(&self) -> u64 {
        self.count
    }
    pub fn finish(self) -> (Digest, u64, R) {
        (self.hasher.finish(), self.count, self.inner)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Hashes and counts every byte written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter { inner, hasher: Hasher::new(), count: 0 }
    }
    pub fn count(&self) -> u64 {
        self.count
    }
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }
    pub fn finish(self) -> (Digest, u64, W) {
        (self.hasher.finish(), self.count, self.inner)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// SHA-256 on a thread of its own: `update` copies the bytes into recycled
/// 1 MiB buffers and hands them over, so hashing overlaps the caller's work
/// (writing the artifact). Memory: a few buffers, whatever the length.
pub struct BackgroundHasher {
    buf: Vec<u8>,
    tx: SyncSender<Vec<u8>>,
    recycled: Receiver<Vec<u8>>,
    thread: std::thread::JoinHandle<Digest>,
}

const BACKGROUND_CHUNK: usize = 1 << 20;
/// Buffers queued for the hashing thread.
const BACKGROUND_DEPTH: usize = 2;

impl BackgroundHasher {
    pub fn new() -> io::Result<Self> {
        let (tx, rx) = sync_channel::<Vec<u8>>(BACKGROUND_DEPTH);
        let (back, recycled) = sync_channel::<Vec<u8>>(BACKGROUND_DEPTH + 1);
        let thread = std::thread::Builder::new().name("sha256".into()).spawn(move || {
            let mut hasher = Hasher::new();
            for mut buf in rx {
                hasher.update(&buf);
                buf.clear();
                let _ = back.try_send(buf);
            }
            hasher.finish()
        })?;
        Ok(BackgroundHasher { buf: Vec::new(), tx, recycled, thread })
    }

    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.buf.capacity() == 0 {
                self.buf = self.recycled.try_recv().unwrap_or_else(|_| Vec::with_capacity(BACKGROUND_CHUNK));
            }
            let take = (BACKGROUND_CHUNK - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == BACKGROUND_CHUNK {
                self.send();
            }
        }
    }

    fn send(&mut self) {
        // The thread only stops once `tx` is dropped (or it panicked, which `finish` reports).
        let _ = self.tx.send(std::mem::take(&mut self.buf));
    }

    pub fn finish(mut self) -> Digest {
        if !self.buf.is_empty() {
            self.send();
        }
        let BackgroundHasher { tx, thread, .. } = self;
        drop(tx);
        thread.join().expect("the hashing thread does not panic")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_empty_input() {
        assert_eq!(Digest::of_bytes(b"").as_str(), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }

    #[test]
    fn background_hasher_matches_inline_hashing() {
        let data: Vec<u8> = (0..3_500_000u32).map(|i| (i % 251) as u8).collect();
        let mut bg = BackgroundHasher::new().unwrap();
        // Pieces of odd sizes, across buffer boundaries.
        for piece in data.chunks(777_777) {
            bg.update(piece);
        }
        assert_eq!(bg.finish(), Digest::of_bytes(&data));
        assert_eq!(BackgroundHasher::new().unwrap().finish(), Digest::of_bytes(b""));
    }

    #[test]
    fn rejects_bad_digests() {
        assert!(Digest::parse("sha512:00").is_err());
        assert!(Digest::parse("sha256:XYZ").is_err());
        assert!(Digest::from_hex(&"A".repeat(64)).is_err());
        assert!(Digest::from_hex(&"../".repeat(21)).is_err());
    }
}
