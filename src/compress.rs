//! Compression: detection by magic bytes, streaming decoders and encoders.
use crate::error::{Error, Result};
use std::io::{self, BufRead, BufReader, Read, Write};
use zstd::stream::raw::{CParameter, InBuffer, Operation, OutBuffer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

impl Compression {
    pub fn parse(s: &str) -> Result<Compression> {
        match s {
            "zstd" => Ok(Compression::Zstd),
            "gzip" => Ok(Compression::Gzip),
            "none" => Ok(Compression::None),
            other => Err(Error::usage(format!("unknown compression {other:?}: use zstd, gzip or none"))),
        }
    }

    /// Identify a stream by its first bytes.
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&ZSTD_MAGIC) {
            Compression::Zstd
        } else if head.starts_with(&GZIP_MAGIC) {
            Compression::Gzip
        } else {
            Compression::None
        }
    }

    /// File name extension of an artifact compressed this way.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => ".gz",
            Compression::Zstd => ".zst",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }

    pub fn default_level(self) -> i32 {
        match self {
            Compression::Zstd => 3,
            Compression::Gzip => 6,
            Compression::None => 0,
        }
    }
}

/// Peek at the first bytes of a stream without consuming them.
pub fn peek<R: BufRead>(reader: &mut R) -> io::Result<Vec<u8>> {
    // fill_buf may return fewer bytes than the magic; that is fine for detection
    // of anything but pathological readers, which BufReader is not.
    Ok(reader.fill_buf()?.iter().take(8).copied().collect())
}

/// Wrap `reader` in the decoder its magic bytes call for.
pub fn auto_decoder<'a, R: Read + Send + 'a>(reader: R) -> io::Result<(Compression, Box<dyn Read + Send + 'a>)> {
    let mut buffered = BufReader::with_capacity(1 << 20, reader);
    let compression = Compression::detect(&peek(&mut buffered)?);
    Ok((compression, decoder(compression, buffered)?))
}

/// A decoder with bounded memory (see [`crate::decompress`]): what is wrong
/// with the compressed data is a [`crate::decompress::CorruptStream`] error.
pub fn decoder<'a, R: BufRead + Send + 'a>(compression: Compression, reader: R) -> io::Result<Box<dyn Read + Send + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(reader),
        // Several members: `cat a.gz b.gz` is valid gzip and pigz may write members.
        Compression::Gzip => Box::new(crate::decompress::Gzip::new(reader)),
        Compression::Zstd => Box::new(crate::decompress::ZstdFrames::new(reader)?),
    })
}

/// A writer that must be finished to write its trailer (a compressor, an
/// encryptor); finishing one finishes the writers below it.
pub trait FinishWrite: Write + Send {
    fn finish_box(self: Box<Self>) -> io::Result<()>;

    /// If this is a zstd compressor at `level`: end the current frame, copy
    /// `frames` (whole zstd frames of that level) through as they are, and
    /// return `true`. A concatenation of frames is one zstd stream, so data
    /// compressed earlier need not be compressed again. Otherwise read
    /// nothing and return `false`.
    fn splice_zstd_frames(&mut self, _level: i32, _frames: &mut dyn Read) -> io::Result<bool> {
        Ok(false)
    }
}

/// The bottom of a chain: finishing only flushes.
struct Plain<W: Write + Send>(W);
impl<W: Write + Send> Write for Plain<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}
impl<W: Write + Send> FinishWrite for Plain<W> {
    fn finish_box(mut self: Box<Self>) -> io::Result<()> {
        self.0.flush()
    }
}

pub fn plain<W: Write + Send + 'static>(out: W) -> Box<dyn FinishWrite> {
    Box::new(Plain(out))
}

struct Gzip(flate2::write::GzEncoder<Box<dyn FinishWrite>>);
impl Write for Gzip {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}
impl FinishWrite for Gzip {
    fn finish_box(self: Box<Self>) -> io::Result<()> {
        self.0.finish()?.finish_box()
    }
}

/// zstd on its worker threads, drained promptly into a large buffer. (The
/// `zstd` crate's writer drains at most 32 KiB per call: finished jobs then
/// wait with their 8 MiB output buffers, and peak memory grows by tens of MiB.)
struct Zstd {
    enc: zstd::stream::raw::Encoder<'static>,
    level: i32,
    out: Box<dyn FinishWrite>,
    buf: Box<[u8]>,
}

/// Compressed bytes taken from zstd per call.
const ZSTD_OUT_BUFFER: usize = 2 << 20;

impl Zstd {
    /// Run one step of `op` into the buffer and pass on what it produced;
    /// `true` if the buffer was filled (more may be waiting).
    fn step(
        &mut self,
        op: impl FnOnce(&mut zstd::stream::raw::Encoder<'static>, &mut OutBuffer<'_, [u8]>) -> io::Result<usize>,
    ) -> io::Result<(usize, bool)> {
        let mut dst = OutBuffer::around(&mut self.buf[..]);
        let hint = op(&mut self.enc, &mut dst)?;
        let n = dst.pos();
        if n > 0 {
            self.out.write_all(&self.buf[..n])?;
        }
        Ok((hint, n == self.buf.len()))
    }
}

impl Write for Zstd {
    fn write(&mut self, input: &[u8]) -> io::Result<usize> {
        let mut src = InBuffer::around(input);
        loop {
            let (_, full) = self.step(|enc, dst| enc.run(&mut src, dst))?;
            if src.pos() == input.len() && !full {
                return Ok(input.len());
            }
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        while self.step(|enc, dst| enc.flush(dst))?.0 != 0 {}
        self.out.flush()
    }
}

impl FinishWrite for Zstd {
    fn finish_box(mut self: Box<Self>) -> io::Result<()> {
        while self.step(|enc, dst| enc.finish(dst, true))?.0 != 0 {}
        self.out.finish_box()
    }

    fn splice_zstd_frames(&mut self, level: i32, frames: &mut dyn Read) -> io::Result<bool> {
        if level != self.level {
            return Ok(false);
        }
        while self.step(|enc, dst| enc.finish(dst, true))?.0 != 0 {}
        self.enc.reinit()?;
        copy_with_buffer(&mut self.buf, frames, &mut self.out)?;
        Ok(true)
    }
}

/// `io::copy` through `buf` (large, and reused by the caller) rather than an
/// 8 KiB stack buffer; returns the bytes copied.
pub fn copy_with_buffer(buf: &mut [u8], from: &mut dyn Read, to: &mut dyn Write) -> io::Result<u64> {
    let mut total = 0u64;
    loop {
        let n = match from.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// A zstd skippable frame (magic 0x184D2A50, then its length) that, written
/// after `len` bytes, ends them at a multiple of `align`: empty if they already
/// do, else at least its 8-byte header long. Every zstd reader skips it.
pub fn zstd_padding(len: u64, align: u64) -> Vec<u8> {
    let mut pad = (align - len % align) % align;
    if pad == 0 {
        return Vec::new();
    }
    while pad < 8 {
        pad += align;
    }
    zstd_skippable(pad)
}

/// A zstd skippable frame `len` bytes long (its content zeros); nothing for 0.
/// Panics below 8 bytes, the frame's header.
pub fn zstd_skippable(len: u64) -> Vec<u8> {
    if len == 0 {
        return Vec::new();
    }
    assert!(len >= 8, "a zstd skippable frame is at least 8 bytes, not {len}");
    let mut frame = vec![0u8; len as usize];
    frame[..4].copy_from_slice(&0x184D_2A50u32.to_le_bytes());
    frame[4..8].copy_from_slice(&((len - 8) as u32).to_le_bytes());
    frame
}

/// `data` as one zstd frame at `level`, with a checksum as the streaming
/// encoder writes them.
pub fn zstd_frame(data: &[u8], level: i32) -> io::Result<Vec<u8>> {
    let mut c = zstd::bulk::Compressor::new(level)?;
    c.set_parameter(CParameter::ChecksumFlag(true))?;
    c.compress(data)
}

/// A compressing writer over `out`. zstd uses every core (`zstd -T0`).
pub fn encoder(compression: Compression, level: i32, out: Box<dyn FinishWrite>) -> io::Result<Box<dyn FinishWrite>> {
    Ok(match compression {
        Compression::None => out,
        Compression::Gzip => Box::new(Gzip(flate2::write::GzEncoder::new(out, flate2::Compression::new(level.clamp(0, 9) as u32)))),
        Compression::Zstd => {
            let mut enc = zstd::stream::raw::Encoder::new(level)?;
            let workers = std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1);
            enc.set_parameter(CParameter::NbWorkers(workers))?;
            enc.set_parameter(CParameter::ChecksumFlag(true))?;
            Box::new(Zstd { enc, level, out, buf: vec![0u8; ZSTD_OUT_BUFFER].into_boxed_slice() })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink the test can read back after the writer chain is finished.
    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn spliced_frames_read_back_as_one_stream() {
        let middle: Vec<u8> = (0..300_000u32).flat_map(|i| (i % 97).to_le_bytes()).collect();
        let frames = zstd::encode_all(&middle[..], 3).unwrap();
        let out = Shared::default();
        let mut enc = encoder(Compression::Zstd, 3, plain(out.clone())).unwrap();
        enc.write_all(b"before ").unwrap();
        // Another level: not taken, nothing read.
        let mut untouched = &frames[..];
        assert!(!enc.splice_zstd_frames(19, &mut untouched).unwrap());
        assert_eq!(untouched.len(), frames.len());
        assert!(enc.splice_zstd_frames(3, &mut &frames[..]).unwrap());
        enc.write_all(b" after").unwrap();
        enc.finish_box().unwrap();
        let encoded = out.0.lock().unwrap().clone();
        let mut decoded = Vec::new();
        decoder(Compression::Zstd, &encoded[..]).unwrap().read_to_end(&mut decoded).unwrap();
        let mut expected = b"before ".to_vec();
        expected.extend_from_slice(&middle);
        expected.extend_from_slice(b" after");
        assert!(decoded == expected, "decoded {} bytes, expected {}", decoded.len(), expected.len());
        // Gzip cannot take zstd frames.
        let mut gz = encoder(Compression::Gzip, 6, plain(Shared::default())).unwrap();
        assert!(!gz.splice_zstd_frames(3, &mut &frames[..]).unwrap());
    }

    #[test]
    fn round_trips_and_detects_each_compression() {
        let data: Vec<u8> = (0..200_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let buf = Shared::default();
            let mut enc = encoder(c, c.default_level(), plain(buf.clone())).unwrap();
            enc.write_all(&data).unwrap();
            enc.finish_box().unwrap();
            let encoded = buf.0.lock().unwrap().clone();
            let (detected, mut dec) = auto_decoder(&encoded[..]).unwrap();
            assert_eq!(detected, c);
            let mut out = Vec::new();
            dec.read_to_end(&mut out).unwrap();
            assert_eq!(out, data);
        }
    }
}
