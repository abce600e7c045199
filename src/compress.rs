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

    /// If this is a zstd compressor: end the current frame, write all of
    /// `from` (data already compressed: a gzip or zstd layer) mostly as stored
    /// frames (see [`StoredFrames`]), and return the bytes read. Otherwise read
    /// nothing and return `None`.
    fn store(&mut self, _from: &mut dyn Read) -> io::Result<Option<u64>> {
        Ok(None)
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
    /// Made when the first already-compressed blob arrives.
    stored: Option<StoredFrames>,
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

    fn store(&mut self, from: &mut dyn Read) -> io::Result<Option<u64>> {
        while self.step(|enc, dst| enc.finish(dst, true))?.0 != 0 {}
        self.enc.reinit()?;
        let stored = match &mut self.stored {
            Some(stored) => stored,
            None => self.stored.insert(StoredFrames::new()?),
        };
        stored.write(from, &mut self.out).map(Some)
    }
}

/// Already-compressed data (gzip, zstd layers) written in segments of
/// [`STORE_SEGMENT`]: each segment as one frame of raw (stored) blocks,
/// unless a quick zstd pass at [`PROBE_LEVEL`] saves 1/[`PROBE_KEEP`] of it,
/// then as that frame. zstd -3 barely shrinks most gzip layers (0.3–0.5 % on
/// four of the bench image's five), but it costs a core; some shrink 10 %
/// (the bench's layer of jars and .gz files, copies of files a few MiB apart
/// that gzip's 32 KiB window cannot see). A sample of a blob's first MiB does
/// not tell them apart (0.99 for that layer too): the probe runs on every
/// segment and its output is used, not thrown away. Neither frame kind has a
/// content checksum: the artifact's sha256 and each blob's digest cover them.
///
/// Why by hand: libzstd has no stored mode; every level searches for
/// matches. Measured with bench/stored_frames_speed.rs on 256 MiB of the bench
/// image's gzip layers (one thread, load 3–8 on 2 cores, so MB/s are rough):
/// level 3 815 MB/s (NbWorkers 2: 530 MB/s wall), level 1 1.3 GB/s, level -5
/// 2.1 GB/s, the lowest level (-131072) 3.1 GB/s, sizes 0.992–1.000; raw
/// blocks 9.3 GB/s (a copy), 1.000. The probe (level -1, window and segment
/// 4 MiB): 2.0–3.0 GB/s of CPU; 0.998 of the size there, 0.924 on the jar
/// layer (zstd -3: 0.896).
struct StoredFrames {
    probe: zstd::bulk::Compressor<'static>,
    segment: Box<[u8]>,
    frame: Vec<u8>,
}

/// How much of a blob is decided (stored or probe-compressed) at a time.
const STORE_SEGMENT: usize = 4 << 20;
/// A fast negative level: it finds repeats, not much more.
const PROBE_LEVEL: i32 = -1;
/// A probe's frame is kept if it is at least this fraction (1/50) smaller.
const PROBE_KEEP: usize = 50;
/// Probes that did not pay, in a row, before probing thins out to every
/// [`PROBE_EVERY`]-th segment (1 in 8: 32 MiB apart).
const PROBE_TRIES: usize = 2;
const PROBE_EVERY: usize = 8;
/// RFC 8878 §3.1.1.2: a block holds at most min(window, 128 KiB).
const RAW_BLOCK: usize = 128 << 10;
/// Frame header descriptor: no content size, not single-segment, no checksum, no dictionary.
const STORED_FRAME_DESCRIPTOR: u8 = 0x00;
/// Window descriptor: exponent 7, mantissa 0 → 2^(10+7) = 128 KiB (far below
/// [`crate::decompress::MAX_ZSTD_WINDOW`]).
const STORED_WINDOW_DESCRIPTOR: u8 = 0x38;

impl StoredFrames {
    fn new() -> io::Result<Self> {
        let mut probe = zstd::bulk::Compressor::new(PROBE_LEVEL)?;
        // The whole segment, not the level's 512 KiB: repeats a few MiB apart are what it finds.
        probe.set_parameter(CParameter::WindowLog(STORE_SEGMENT.ilog2()))?;
        Ok(StoredFrames {
            probe,
            segment: vec![0u8; STORE_SEGMENT].into_boxed_slice(),
            frame: Vec::with_capacity(zstd::zstd_safe::compress_bound(STORE_SEGMENT).max(stored_frame_len(STORE_SEGMENT))),
        })
    }

    fn write(&mut self, from: &mut dyn Read, out: &mut dyn Write) -> io::Result<u64> {
        let mut total = 0u64;
        // Probes in a row that did not pay: after PROBE_TRIES of them only every
        // PROBE_EVERY-th segment is probed (most gzip layers never pay, and the
        // probe runs on the writer's thread); one that pays probes every segment again.
        let mut misses = 0usize;
        for segment in 0usize.. {
            let n = read_full(from, &mut self.segment)?;
            if n == 0 {
                return Ok(total);
            }
            let data = &self.segment[..n];
            self.frame.clear();
            let probe = misses < PROBE_TRIES || segment % PROBE_EVERY == 0;
            let paid = probe && self.probe.compress_to_buffer(data, &mut self.frame)? <= n - n / PROBE_KEEP;
            if paid {
                misses = 0;
            } else {
                misses += usize::from(probe);
                self.frame.clear();
                stored_frame(data, &mut self.frame);
            }
            out.write_all(&self.frame)?;
            total += n as u64;
        }
        unreachable!("segments are counted until the blob ends")
    }
}

/// Fill `buf` from `from` unless it ends first; the bytes read.
fn read_full(from: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match from.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Bytes of the stored frame of `len` bytes: magic, two descriptor bytes, 3 per block.
fn stored_frame_len(len: usize) -> usize {
    4 + 2 + 3 * len.div_ceil(RAW_BLOCK).max(1) + len
}

/// Append `data` as one zstd frame of raw blocks (RFC 8878 §3.1.1): block
/// header 3 bytes LE, bit 0 last block, bits 1–2 type (0 = raw), bits 3–23 size.
pub fn stored_frame(data: &[u8], frame: &mut Vec<u8>) {
    frame.reserve(stored_frame_len(data.len()));
    frame.extend_from_slice(&ZSTD_MAGIC);
    frame.extend_from_slice(&[STORED_FRAME_DESCRIPTOR, STORED_WINDOW_DESCRIPTOR]);
    let mut blocks = data.chunks(RAW_BLOCK).peekable();
    if blocks.peek().is_none() {
        frame.extend_from_slice(&[1, 0, 0]); // one empty last block
    }
    while let Some(block) = blocks.next() {
        let last = blocks.peek().is_none() as u32;
        frame.extend_from_slice(&((block.len() as u32) << 3 | last).to_le_bytes()[..3]);
        frame.extend_from_slice(block);
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
            Box::new(Zstd { enc, level, out, buf: vec![0u8; ZSTD_OUT_BUFFER].into_boxed_slice(), stored: None })
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

    /// Incompressible bytes (xorshift), like a gzip layer's.
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    /// The block types of a stream of zstd frames: (raw bytes, other blocks).
    fn block_kinds(mut s: &[u8]) -> (usize, usize) {
        let (mut raw, mut other) = (0, 0);
        while !s.is_empty() {
            assert_eq!(s[..4], ZSTD_MAGIC);
            let fhd = s[4];
            let fcs = [0, 2, 4, 8][(fhd >> 6) as usize];
            let single = fhd & 0x20 != 0;
            let fcs = if fhd >> 6 == 0 && single { 1 } else { fcs };
            let dict = [0, 1, 2, 4][(fhd & 3) as usize];
            s = &s[5 + !single as usize + dict + fcs..];
            loop {
                let h = u32::from_le_bytes([s[0], s[1], s[2], 0]);
                let (last, kind, size) = (h & 1 == 1, (h >> 1) & 3, (h >> 3) as usize);
                let payload = if kind == 1 { 1 } else { size };
                if kind == 0 {
                    raw += size;
                } else {
                    other += 1;
                }
                s = &s[3 + payload..];
                if last {
                    break;
                }
            }
            if fhd & 4 != 0 {
                s = &s[4..];
            }
        }
        (raw, other)
    }

    fn zstd_cli(args: &[&str], input: &[u8]) -> std::process::Output {
        let mut child = std::process::Command::new("zstd")
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("zstd CLI (scripts/install-deps.sh)");
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        let feeder = std::thread::spawn(move || stdin.write_all(&input));
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap().unwrap();
        assert!(out.status.success(), "zstd {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out
    }

    /// Every reader ferry and users have takes it: ferry's bounded decoder,
    /// the zstd crate's, `zstd -t` and `zstd -dc`.
    fn assert_decodes_to(encoded: &[u8], expected: &[u8]) {
        let mut ours = Vec::new();
        decoder(Compression::Zstd, encoded).unwrap().read_to_end(&mut ours).unwrap();
        assert!(ours == expected, "ferry's decoder: {} bytes, expected {}", ours.len(), expected.len());
        assert!(zstd::decode_all(encoded).unwrap() == expected, "the zstd crate decodes something else");
        zstd_cli(&["-t", "-q"], encoded);
        assert!(zstd_cli(&["-dc"], encoded).stdout == expected, "zstd -dc decodes something else");
    }

    #[test]
    fn stored_frames_decode_everywhere_at_block_and_segment_boundaries() {
        for len in [
            0,
            1,
            RAW_BLOCK - 1,
            RAW_BLOCK,
            RAW_BLOCK + 1,
            2 * RAW_BLOCK,
            STORE_SEGMENT - 1,
            STORE_SEGMENT,
            STORE_SEGMENT + 1,
            2 * STORE_SEGMENT + RAW_BLOCK,
        ] {
            let data = noise(len, len as u64);
            let mut frame = Vec::new();
            stored_frame(&data, &mut frame);
            assert_eq!(frame.len(), stored_frame_len(len));
            assert_eq!(block_kinds(&frame), (len, 0), "one frame of {len} bytes is raw blocks only");
            assert_decodes_to(&frame, &data);

            // Through the encoder: nothing but stored frames after the empty first one.
            let out = Shared::default();
            let mut enc = encoder(Compression::Zstd, 3, plain(out.clone())).unwrap();
            assert_eq!(enc.store(&mut &data[..]).unwrap(), Some(len as u64));
            enc.finish_box().unwrap();
            let encoded = out.0.lock().unwrap().clone();
            assert_eq!(block_kinds(&encoded).0, len);
            assert!(encoded.len() <= len + len / 1000 + 64, "{len} bytes stored as {}", encoded.len());
            assert_decodes_to(&encoded, &data);
        }
    }

    #[test]
    fn compressed_stored_and_probed_segments_decode_as_one_stream() {
        let gzipped = noise(STORE_SEGMENT + 5000, 7);
        // Repeats the probe finds: kept as its frame, not stored.
        let repetitive: Vec<u8> = noise(1 << 20, 9).repeat(5);
        let out = Shared::default();
        let mut enc = encoder(Compression::Zstd, 3, plain(out.clone())).unwrap();
        enc.write_all(b"tar header before ").unwrap();
        assert_eq!(enc.store(&mut &gzipped[..]).unwrap(), Some(gzipped.len() as u64));
        enc.write_all(b" between ").unwrap();
        assert_eq!(enc.store(&mut &repetitive[..]).unwrap(), Some(repetitive.len() as u64));
        assert_eq!(enc.store(&mut &b""[..]).unwrap(), Some(0));
        enc.write_all(b" after").unwrap();
        enc.finish_box().unwrap();
        let encoded = out.0.lock().unwrap().clone();
        let expected = [&b"tar header before "[..], &gzipped, b" between ", &repetitive, b" after"].concat();
        assert_decodes_to(&encoded, &expected);
        // Raw: all of `gzipped`; of `repetitive`, its first MiB (in the probe's
        // frame, which libzstd stores as it finds no match) and its last segment.
        let (raw, _) = block_kinds(&encoded);
        assert!(raw >= gzipped.len() + (2 << 20) && raw < gzipped.len() + (2 << 20) + 4096, "{raw} raw bytes");
        assert!(encoded.len() < gzipped.len() + repetitive.len() / 2, "the repeats were compressed: {} bytes", encoded.len());

        // Not a zstd encoder: nothing read.
        for c in [Compression::None, Compression::Gzip] {
            let mut other = encoder(c, c.default_level(), plain(Shared::default())).unwrap();
            let mut untouched = &gzipped[..];
            assert_eq!(other.store(&mut untouched).unwrap(), None);
            assert_eq!(untouched.len(), gzipped.len());
        }
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
