//! Bounded decoders for the compressed streams ferry reads (artifacts,
//! archive sources, layers). A zstd frame may ask for a window of at most
//! [`MAX_ZSTD_WINDOW`] (the decoder allocates it): ferry writes level-3
//! frames with 2 MiB windows, stored frames of already-compressed layers with
//! 128 KiB windows and their probe frames with at most 4 MiB
//! (src/compress.rs), and no `zstd` level without `--long` asks for more than
//! 128 MiB. What is wrong with the compressed bytes themselves (a
//! window over the cap, data between or after frames that is not a frame, a
//! truncated or corrupt frame, a bad gzip stream) is a [`CorruptStream`]
//! error, told apart from errors of the reader below, which pass unchanged.
use std::fmt;
use std::io::{self, BufRead, Read};
use zstd::stream::raw::{DParameter, InBuffer, Operation, OutBuffer};

/// log2 of the largest zstd window ferry accepts.
pub const MAX_ZSTD_WINDOW_LOG: u32 = 27;
pub const MAX_ZSTD_WINDOW: u64 = 1 << MAX_ZSTD_WINDOW_LOG;

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// Skippable frames: magic 0x184D2A50..=0x184D2A5F, then a 4-byte length.
fn is_skippable(magic: &[u8]) -> bool {
    magic.len() == 4 && magic[0] & 0xf0 == 0x50 && magic[1..] == [0x2a, 0x4d, 0x18]
}
/// Longest zstd frame header: magic, descriptor, window, dictionary id, content size.
const MAX_FRAME_HEADER: usize = 4 + 1 + 1 + 4 + 8;

/// The compressed data is damaged or hostile (not an error of the reader below).
#[derive(Debug)]
pub struct CorruptStream(pub String);

impl fmt::Display for CorruptStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for CorruptStream {}

fn corrupt(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, CorruptStream(msg))
}

/// The [`CorruptStream`] an error of a decoder of this module carries, if any.
pub fn corrupt_stream(e: &io::Error) -> Option<&CorruptStream> {
    e.get_ref()?.downcast_ref::<CorruptStream>()
}

/// Reads a stream of zstd frames (and skippable frames), checking each
/// frame's header before the decoder sees it.
pub struct ZstdFrames<R> {
    reader: R,
    dctx: zstd::stream::raw::Decoder<'static>,
    /// Bytes taken from `reader` so far (the offset of what it gives next).
    pos: u64,
    /// Where the current frame starts.
    frame_start: u64,
    /// A frame's header, taken from `reader` to check it, not yet given to the decoder.
    head: [u8; MAX_FRAME_HEADER],
    head_len: usize,
    head_pos: usize,
    in_frame: bool,
}

impl<R: BufRead> ZstdFrames<R> {
    pub fn new(reader: R) -> io::Result<Self> {
        let mut dctx = zstd::stream::raw::Decoder::new()?;
        // A second line of defence: libzstd refuses larger windows itself.
        dctx.set_parameter(DParameter::WindowLogMax(MAX_ZSTD_WINDOW_LOG))?;
        Ok(ZstdFrames { reader, dctx, pos: 0, frame_start: 0, head: [0; MAX_FRAME_HEADER], head_len: 0, head_pos: 0, in_frame: false })
    }

    /// Take bytes from `reader` into `head` until it holds `want` (or the stream ends).
    fn gather(&mut self, want: usize) -> io::Result<()> {
        while self.head_len < want {
            let avail = self.reader.fill_buf()?;
            if avail.is_empty() {
                return Ok(());
            }
            let n = (want - self.head_len).min(avail.len());
            self.head[self.head_len..self.head_len + n].copy_from_slice(&avail[..n]);
            self.reader.consume(n);
            self.head_len += n;
            self.pos += n as u64;
        }
        Ok(())
    }

    /// At a frame boundary: skip skippable frames and check the next frame's
    /// header. `false` at the clean end of the stream.
    fn next_frame(&mut self) -> io::Result<bool> {
        loop {
            self.frame_start = self.pos;
            self.head_len = 0;
            self.head_pos = 0;
            self.gather(4)?;
            let start = self.frame_start;
            match self.head_len {
                0 => return Ok(false),
                4 => {}
                _ => return Err(corrupt(format!("the data at byte {start} is not a zstd frame"))),
            }
            if is_skippable(&self.head[..4]) {
                self.gather(8)?;
                if self.head_len < 8 {
                    return Err(truncated());
                }
                let len = u32::from_le_bytes(self.head[4..8].try_into().expect("4 bytes")) as u64;
                self.skip(len)?;
                continue;
            }
            if self.head[..4] != ZSTD_MAGIC {
                return Err(corrupt(format!("the data at byte {start} is not a zstd frame")));
            }
            self.gather(5)?;
            if self.head_len < 5 {
                return Err(truncated());
            }
            let header_len = frame_header_len(self.head[4]);
            self.gather(header_len)?;
            if self.head_len < header_len {
                return Err(truncated());
            }
            let window = window_size(&self.head[..header_len]);
            if window > MAX_ZSTD_WINDOW {
                return Err(corrupt(format!(
                    "the zstd frame at byte {start} asks for a {} MiB window, more than the {} MiB ferry accepts",
                    window.div_ceil(1 << 20),
                    MAX_ZSTD_WINDOW >> 20
                )));
            }
            self.dctx.reinit()?;
            self.in_frame = true;
            return Ok(true);
        }
    }

    fn skip(&mut self, mut len: u64) -> io::Result<()> {
        while len > 0 {
            let avail = self.reader.fill_buf()?.len();
            if avail == 0 {
                return Err(truncated());
            }
            let n = (avail as u64).min(len) as usize;
            self.reader.consume(n);
            self.pos += n as u64;
            len -= n as u64;
        }
        Ok(())
    }

    /// One step of the decoder over `input` into `out`: (input used, output written, frame done).
    fn step(
        dctx: &mut zstd::stream::raw::Decoder<'static>,
        input: &[u8],
        out: &mut [u8],
        frame_start: u64,
    ) -> io::Result<(usize, usize, bool)> {
        let mut src = InBuffer::around(input);
        let mut dst = OutBuffer::around(out);
        let hint = dctx.run(&mut src, &mut dst).map_err(|e| corrupt(format!("the zstd frame at byte {frame_start} is corrupt ({e})")))?;
        Ok((src.pos(), dst.pos(), hint == 0))
    }
}

fn truncated() -> io::Error {
    corrupt("the zstd stream ends in the middle of a frame (it is truncated)".into())
}

/// Length of a frame header from its descriptor byte (RFC 8878 §3.1.1.1).
fn frame_header_len(descriptor: u8) -> usize {
    let single_segment = descriptor & 0x20 != 0;
    let dictionary_id = [0, 1, 2, 4][(descriptor & 3) as usize];
    let content_size = match descriptor >> 6 {
        0 => single_segment as usize,
        1 => 2,
        2 => 4,
        _ => 8,
    };
    4 + 1 + (!single_segment) as usize + dictionary_id + content_size
}

/// The window a frame header asks for: its window descriptor, or for a
/// single-segment frame its content size.
fn window_size(header: &[u8]) -> u64 {
    let descriptor = header[4];
    if descriptor & 0x20 == 0 {
        let w = header[5];
        let base = 1u64 << (10 + (w >> 3) as u32);
        return base + (base / 8) * (w & 7) as u64;
    }
    let at = 5 + [0, 1, 2, 4][(descriptor & 3) as usize];
    let field = &header[at..];
    match descriptor >> 6 {
        0 => field[0] as u64,
        1 => u16::from_le_bytes([field[0], field[1]]) as u64 + 256,
        2 => u32::from_le_bytes(field[..4].try_into().expect("4 bytes")) as u64,
        _ => u64::from_le_bytes(field[..8].try_into().expect("8 bytes")),
    }
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            if !self.in_frame && !self.next_frame()? {
                return Ok(0);
            }
            let (_, written, done) = if self.head_pos < self.head_len {
                let r = Self::step(&mut self.dctx, &self.head[self.head_pos..self.head_len], out, self.frame_start)?;
                self.head_pos += r.0;
                r
            } else {
                let input = self.reader.fill_buf()?;
                let at_end = input.is_empty();
                let r = Self::step(&mut self.dctx, input, out, self.frame_start)?;
                self.reader.consume(r.0);
                self.pos += r.0 as u64;
                if at_end && r.1 == 0 && !r.2 {
                    return Err(truncated());
                }
                r
            };
            if done {
                self.in_frame = false;
            }
            if written > 0 {
                return Ok(written);
            }
        }
    }
}

/// Marks errors of the reader under a gzip decoder, so that everything else
/// the decoder returns is known to be about the compressed data.
struct FromBelow<R>(R);

#[derive(Debug)]
struct BelowError(io::Error);
impl fmt::Display for BelowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
impl std::error::Error for BelowError {}

fn mark(e: io::Error) -> io::Error {
    io::Error::new(e.kind(), BelowError(e))
}

impl<R: Read> Read for FromBelow<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(mark)
    }
}
impl<R: BufRead> BufRead for FromBelow<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.0.fill_buf().map_err(mark)
    }
    fn consume(&mut self, n: usize) {
        self.0.consume(n)
    }
}

/// A gzip stream (any number of members; `cat a.gz b.gz` is valid gzip).
pub struct Gzip<R: BufRead>(flate2::bufread::MultiGzDecoder<FromBelow<R>>);

impl<R: BufRead> Gzip<R> {
    pub fn new(reader: R) -> Self {
        Gzip(flate2::bufread::MultiGzDecoder::new(FromBelow(reader)))
    }
}

impl<R: BufRead> Read for Gzip<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|e| {
            if e.get_ref().is_some_and(|inner| inner.is::<BelowError>()) {
                let inner = e.into_inner().expect("checked above");
                return inner.downcast::<BelowError>().expect("checked above").0;
            }
            corrupt(format!("the gzip stream is corrupt ({e})"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(r: &mut dyn Read) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        r.read_to_end(&mut v)?;
        Ok(v)
    }

    fn zstd_read(data: &[u8]) -> io::Result<Vec<u8>> {
        // A tiny buffer: frame headers straddle the reader's buffer boundaries.
        read_all(&mut ZstdFrames::new(io::BufReader::with_capacity(3, data))?)
    }

    #[test]
    fn reads_frames_and_skippable_frames_across_small_buffers() {
        let a: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut stream = zstd::encode_all(&a[..], 3).unwrap();
        stream.extend(crate::compress::zstd_skippable(100));
        stream.extend(zstd::encode_all(&b"second"[..], 19).unwrap());
        stream.extend(crate::compress::zstd_frame(b"third", 3).unwrap());
        let mut expected = a.clone();
        expected.extend_from_slice(b"secondthird");
        assert!(zstd_read(&stream).unwrap() == expected);
    }

    #[test]
    fn refuses_large_windows_garbage_and_truncation() {
        // A frame asking for 2^31 (window descriptor (31-10) << 3), one empty last raw block.
        let big = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 21 << 3, 0x01, 0x00, 0x00];
        let e = zstd_read(&big).unwrap_err();
        assert!(corrupt_stream(&e).is_some());
        assert_eq!(e.to_string(), "the zstd frame at byte 0 asks for a 2048 MiB window, more than the 128 MiB ferry accepts");
        // Single-segment frame whose content size (the window) is 4 GiB.
        let single = [0x28, 0xb5, 0x2f, 0xfd, 0xe0, 0, 0, 0, 0, 1, 0, 0, 0, 0x01, 0x00, 0x00];
        assert!(zstd_read(&single).unwrap_err().to_string().contains("asks for a 4096 MiB window"));
        // At the cap: read.
        let at_cap = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 17 << 3, 0x01, 0x00, 0x00];
        assert_eq!(zstd_read(&at_cap).unwrap(), b"");

        let good = zstd::encode_all(&b"hello"[..], 3).unwrap();
        // The second frame's header is checked too, though both frames are in one buffer.
        let mut two = good.clone();
        two.extend_from_slice(&big);
        let e = read_all(&mut ZstdFrames::new(&two[..]).unwrap()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("the zstd frame at byte {} asks for a 2048 MiB window, more than the 128 MiB ferry accepts", good.len())
        );
        let mut garbage = good.clone();
        garbage.extend_from_slice(b"junk");
        assert_eq!(zstd_read(&garbage).unwrap_err().to_string(), format!("the data at byte {} is not a zstd frame", good.len()));
        let mut short = good.clone();
        short.extend_from_slice(&[0x28, 0xb5]);
        assert_eq!(zstd_read(&short).unwrap_err().to_string(), format!("the data at byte {} is not a zstd frame", good.len()));
        let e = zstd_read(&good[..good.len() - 2]).unwrap_err();
        assert!(e.to_string().contains("ends in the middle of a frame"), "{e}");
        let mut flipped = zstd::encode_all(&vec![7u8; 10_000][..], 3).unwrap();
        let n = flipped.len();
        flipped[n / 2] ^= 0xff;
        assert!(corrupt_stream(&zstd_read(&flipped).unwrap_err()).is_some());
    }

    #[test]
    fn gzip_errors_of_the_data_and_of_the_reader_below_are_told_apart() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&vec![5u8; 50_000]).unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(read_all(&mut Gzip::new(&gz[..])).unwrap(), vec![5u8; 50_000]);
        let mut trailing = gz.clone();
        trailing.extend_from_slice(b"not gzip");
        assert!(corrupt_stream(&read_all(&mut Gzip::new(&trailing[..])).unwrap_err()).is_some());
        let e = read_all(&mut Gzip::new(&gz[..gz.len() - 5])).unwrap_err();
        assert!(corrupt_stream(&e).is_some(), "{e}");

        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::ConnectionReset, "the server hung up"))
            }
        }
        let e = read_all(&mut Gzip::new(io::BufReader::new(Failing))).unwrap_err();
        assert!(corrupt_stream(&e).is_none());
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(e.to_string(), "the server hung up");
    }
}
