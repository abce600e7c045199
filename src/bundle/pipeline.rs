//! Pipelining: stages on their own threads, joined by bounded channels of
//! large buffers. [`ReadAhead`]: a producer thread fills buffers from a
//! reader, so that reading and checksumming the artifact, decrypting and
//! decompressing it, and verifying its tar entries run on separate cores.
//! (Writing a load's blobs stays on the verifying thread: on 2 cores a
//! writer thread gained nothing, and handing it 1 MiB buffers tripled the
//! kernel's copy cost.)
//!
//! Buffers are recycled (no allocation per chunk) and channels are bounded:
//! memory stays at a few chunks whatever the size of the stream.
use std::io::{self, BufRead, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::thread;

/// Size of one buffer handed between threads.
pub const CHUNK: usize = 1 << 20;
/// Buffers in flight per stage (besides the one being filled and the one being read).
pub const DEPTH: usize = 4;

enum Msg {
    Data(Vec<u8>, usize),
    Eof,
    Failed(io::Error),
}

/// The consuming end: reads what the producer thread read, in order.
/// Dropping it stops the producer at its next hand-over.
pub struct ReadAhead {
    rx: Receiver<Msg>,
    back: SyncSender<Vec<u8>>,
    cur: Vec<u8>,
    len: usize,
    pos: usize,
    end: Option<Result<(), Failure>>,
}

impl ReadAhead {
    /// Read `inner` on a new thread named `name`, `CHUNK` bytes at a time.
    pub fn spawn<R: Read + Send + 'static>(name: &str, inner: R) -> io::Result<ReadAhead> {
        Self::with_sizes(name, inner, CHUNK, DEPTH)
    }

    pub fn with_sizes<R: Read + Send + 'static>(name: &str, mut inner: R, chunk: usize, depth: usize) -> io::Result<ReadAhead> {
        let (tx, rx) = sync_channel::<Msg>(depth);
        let (back, recycled) = sync_channel::<Vec<u8>>(depth + 2);
        thread::Builder::new().name(name.to_string()).spawn(move || loop {
            let mut buf = match recycled.try_recv() {
                Ok(b) => b,
                Err(TryRecvError::Empty) => vec![0u8; chunk],
                Err(TryRecvError::Disconnected) => return, // the consumer is gone
            };
            let mut len = 0;
            let mut failure = None;
            let mut eof = false;
            while len < buf.len() {
                match inner.read(&mut buf[len..]) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => len += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            if len > 0 && tx.send(Msg::Data(buf, len)).is_err() {
                return;
            }
            if let Some(e) = failure {
                let _ = tx.send(Msg::Failed(e));
                return;
            }
            if eof {
                let _ = tx.send(Msg::Eof);
                return;
            }
        })?;
        Ok(ReadAhead { rx, back, cur: Vec::new(), len: 0, pos: 0, end: None })
    }

    fn next_chunk(&mut self) -> io::Result<bool> {
        if let Some(end) = &self.end {
            return match end {
                Ok(()) => Ok(false),
                Err(f) => Err(f.to_io()),
            };
        }
        if self.cur.capacity() > 0 {
            let _ = self.back.try_send(std::mem::take(&mut self.cur));
        }
        match self.rx.recv() {
            Ok(Msg::Data(buf, len)) => {
                self.cur = buf;
                self.len = len;
                self.pos = 0;
                Ok(true)
            }
            Ok(Msg::Eof) => {
                self.end = Some(Ok(()));
                Ok(false)
            }
            Ok(Msg::Failed(e)) => {
                self.end = Some(Err(Failure::of(&e)));
                Err(e)
            }
            Err(_) => {
                let f = Failure { kind: io::ErrorKind::Other, msg: "the reading thread stopped unexpectedly".into(), os: None };
                self.end = Some(Err(f.clone()));
                Err(f.to_io())
            }
        }
    }
}

impl Read for ReadAhead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for ReadAhead {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos == self.len {
            if !self.next_chunk()? {
                return Ok(&[]);
            }
        }
        Ok(&self.cur[self.pos..self.len])
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.len);
    }
}

/// An I/O failure that can be reported more than once (an OS error keeps its
/// code, so "disk full" stays recognisable).
#[derive(Clone, Debug)]
struct Failure {
    kind: io::ErrorKind,
    msg: String,
    os: Option<i32>,
}

impl Failure {
    fn of(e: &io::Error) -> Failure {
        Failure { kind: e.kind(), msg: e.to_string(), os: e.raw_os_error() }
    }
    fn to_io(&self) -> io::Error {
        match self.os {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(self.kind, self.msg.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_every_byte_in_order_then_eof() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        let mut r = ReadAhead::with_sizes("t", io::Cursor::new(data.clone()), 4096 * 3 + 1, 2).unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
        assert_eq!(r.read(&mut [0u8; 10]).unwrap(), 0);
    }

    #[test]
    fn reports_the_producers_error_after_its_data() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "broken"));
                }
                let n = buf.len().min(self.0);
                buf[..n].fill(7);
                self.0 -= n;
                Ok(n)
            }
        }
        let mut r = ReadAhead::with_sizes("t", Failing(10_000), 4096, 2).unwrap();
        let mut out = Vec::new();
        let err = r.read_to_end(&mut out).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(out.len(), 10_000);
        assert!(r.read(&mut [0u8; 4]).is_err());
    }
}
