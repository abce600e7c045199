//! Pipelining: stages on their own threads, joined by bounded channels of
//! large buffers.
//!
//! - [`ReadAhead`]: a producer thread fills buffers from a reader, so that
//!   reading and checksumming the artifact, decrypting and decompressing it,
//!   and verifying its tar entries run on separate cores.
//! - [`WriteBehind`]: a consumer thread writes buffers to a file, so that a
//!   load's writes into the page cache overlap its hashing.
//!
//! Buffers are recycled (no allocation per chunk) and channels are bounded:
//! memory stays at a few chunks whatever the size of the stream.
use std::io::{self, BufRead, Read, Write};
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
    fn stopped() -> Failure {
        Failure { kind: io::ErrorKind::Other, msg: "the writing thread stopped unexpectedly".into(), os: None }
    }
    fn to_io(&self) -> io::Error {
        match self.os {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(self.kind, self.msg.clone()),
        }
    }
}

enum Job {
    Data(Vec<u8>),
    /// Answer once everything before it was written (or failed).
    Flush(SyncSender<Result<(), Failure>>),
}

/// Writes on a thread of its own: `write` copies into a buffer that is handed
/// over when full; `flush` waits until every byte was written and reports the
/// first failure. Dropping it without `flush` lets the thread finish what was
/// handed over; errors are then lost, so callers flush.
pub struct WriteBehind {
    tx: Option<SyncSender<Job>>,
    recycled: Receiver<Vec<u8>>,
    cur: Vec<u8>,
    chunk: usize,
    failed: Option<Failure>,
}

impl WriteBehind {
    pub fn spawn<W: Write + Send + 'static>(name: &str, inner: W) -> io::Result<WriteBehind> {
        Self::with_sizes(name, inner, CHUNK, DEPTH)
    }

    pub fn with_sizes<W: Write + Send + 'static>(name: &str, mut inner: W, chunk: usize, depth: usize) -> io::Result<WriteBehind> {
        let (tx, rx) = sync_channel::<Job>(depth);
        let (back, recycled) = sync_channel::<Vec<u8>>(depth + 2);
        thread::Builder::new().name(name.to_string()).spawn(move || {
            let mut failure: Option<Failure> = None;
            for job in rx {
                match job {
                    Job::Data(mut buf) => {
                        if failure.is_none() {
                            if let Err(e) = inner.write_all(&buf) {
                                failure = Some(Failure::of(&e));
                            }
                        }
                        buf.clear();
                        let _ = back.try_send(buf);
                    }
                    Job::Flush(ack) => {
                        if failure.is_none() {
                            if let Err(e) = inner.flush() {
                                failure = Some(Failure::of(&e));
                            }
                        }
                        let _ = ack.send(failure.clone().map_or(Ok(()), Err));
                    }
                }
            }
        })?;
        Ok(WriteBehind { tx: Some(tx), recycled, cur: Vec::with_capacity(chunk), chunk, failed: None })
    }

    fn fail(&mut self, f: Failure) -> io::Error {
        let e = f.to_io();
        self.failed = Some(f);
        e
    }

    fn hand_over(&mut self) -> io::Result<()> {
        if self.cur.is_empty() {
            return Ok(());
        }
        let next = self.recycled.try_recv().unwrap_or_else(|_| Vec::with_capacity(self.chunk));
        let full = std::mem::replace(&mut self.cur, next);
        let sent = self.tx.as_ref().map(|tx| tx.send(Job::Data(full)).is_ok()).unwrap_or(false);
        if !sent {
            return Err(self.fail(Failure::stopped()));
        }
        Ok(())
    }
}

impl Write for WriteBehind {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(f) = &self.failed {
            return Err(f.to_io());
        }
        let n = buf.len().min(self.chunk - self.cur.len());
        self.cur.extend_from_slice(&buf[..n]);
        if self.cur.len() == self.chunk {
            self.hand_over()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Some(f) = &self.failed {
            return Err(f.to_io());
        }
        self.hand_over()?;
        let (ack, answer) = sync_channel(1);
        let asked = self.tx.as_ref().map(|tx| tx.send(Job::Flush(ack)).is_ok()).unwrap_or(false);
        match (asked, answer.recv()) {
            (true, Ok(Ok(()))) => Ok(()),
            (true, Ok(Err(e))) => Err(self.fail(e)),
            _ => Err(self.fail(Failure::stopped())),
        }
    }
}

impl Drop for WriteBehind {
    fn drop(&mut self) {
        if self.failed.is_none() {
            let _ = self.hand_over();
        }
        // Closing the channel ends the thread once it has written what it holds.
        self.tx.take();
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
    fn writes_everything_by_flush_and_reports_failures() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone)]
        struct Shared(Arc<Mutex<Vec<u8>>>, usize);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                let mut v = self.0.lock().unwrap();
                if v.len() + b.len() > self.1 {
                    return Err(io::Error::new(io::ErrorKind::StorageFull, "full"));
                }
                v.extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let data: Vec<u8> = (0..1_000_003u32).map(|i| (i % 251) as u8).collect();
        let out = Shared(Arc::new(Mutex::new(Vec::new())), usize::MAX);
        let mut w = WriteBehind::with_sizes("t", out.clone(), 4096, 2).unwrap();
        for piece in data.chunks(7000) {
            w.write_all(piece).unwrap();
        }
        w.flush().unwrap();
        assert_eq!(*out.0.lock().unwrap(), data);

        let small = Shared(Arc::new(Mutex::new(Vec::new())), 10_000);
        let mut w = WriteBehind::with_sizes("t", small, 4096, 2).unwrap();
        let mut result = Ok(());
        for piece in data.chunks(5000) {
            result = w.write_all(piece);
            if result.is_err() {
                break;
            }
        }
        let err = result.and_then(|_| w.flush()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        assert!(w.flush().is_err());
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
