//! A download that goes silent fails instead of hanging: the body is read on a
//! thread of its own and each block must arrive within the silence limit.
//!
//! For HTTP(S) bodies: reqwest's blocking client only has a total-request
//! timeout (which would cut off any large download) and TCP keepalives are
//! answered by the kernel of a server whose process has stalled. FTP and SFTP
//! bound each socket read themselves (read timeouts, ssh2's session timeout).
use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::time::Duration;

/// Bytes handed over at a time.
const BLOCK: usize = 256 << 10;

enum Msg {
    Data(Vec<u8>),
    End,
    Failed(io::Error),
}

pub(crate) struct SilenceLimited {
    rx: Receiver<Msg>,
    recycle: SyncSender<Vec<u8>>,
    limit: Duration,
    what: String,
    cur: Vec<u8>,
    pos: usize,
    done: bool,
}

impl SilenceLimited {
    /// Read `inner` on its own thread; a read of this reader that waits more than
    /// `limit` for the next bytes fails with `TimedOut`. A zero limit returns `inner` as is.
    /// (A reader thread stuck on a silent server ends when the process does: the
    /// connection cannot be closed from outside reqwest's blocking client.)
    pub(crate) fn wrap<R: Read + Send + 'static>(inner: R, limit: Duration, what: String) -> io::Result<Box<dyn Read + Send>> {
        if limit.is_zero() {
            return Ok(Box::new(inner));
        }
        let (tx, rx) = sync_channel::<Msg>(2);
        let (recycle, recycled) = sync_channel::<Vec<u8>>(4);
        let mut inner = inner;
        std::thread::Builder::new().name("ferry-http-body".into()).spawn(move || loop {
            let mut buf = recycled.try_recv().unwrap_or_else(|_| vec![0u8; BLOCK]);
            buf.resize(BLOCK, 0);
            let msg = match inner.read(&mut buf) {
                Ok(0) => Msg::End,
                Ok(n) => {
                    buf.truncate(n);
                    Msg::Data(buf)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Msg::Failed(e),
            };
            let last = !matches!(msg, Msg::Data(_));
            if tx.send(msg).is_err() || last {
                return;
            }
        })?;
        Ok(Box::new(SilenceLimited { rx, recycle, limit, what, cur: Vec::new(), pos: 0, done: false }))
    }
}

impl Read for SilenceLimited {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            if self.done {
                return Ok(0);
            }
            let block = match self.rx.recv_timeout(self.limit) {
                Ok(Msg::Data(b)) => b,
                Ok(Msg::End) => {
                    self.done = true;
                    return Ok(0);
                }
                Ok(Msg::Failed(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("{}: the server sent nothing for {} (--timeout)", self.what, humanize(self.limit)),
                    ))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.done = true;
                    return Err(io::Error::other(format!("{}: the reading thread stopped", self.what)));
                }
            };
            let old = std::mem::replace(&mut self.cur, block);
            let _ = self.recycle.try_send(old);
            self.pos = 0;
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// `60 s`, `1.5 s`.
pub(crate) fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn passes_every_byte_then_end() {
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut r = SilenceLimited::wrap(io::Cursor::new(data.clone()), Duration::from_secs(5), "x".into()).unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn a_silent_source_times_out() {
        struct Stalls(bool);
        impl Read for Stalls {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if std::mem::replace(&mut self.0, true) {
                    std::thread::sleep(Duration::from_secs(30));
                }
                buf[..10].fill(1);
                Ok(10)
            }
        }
        let mut r = SilenceLimited::wrap(Stalls(false), Duration::from_millis(300), "downloading f".into()).unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(r.read(&mut buf).unwrap(), 10);
        let started = Instant::now();
        let e = r.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(e.to_string().contains("sent nothing for 0.3 s"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
