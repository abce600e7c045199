//! Stopping cleanly: SIGINT and SIGTERM set a flag that the watcher checks
//! between steps (and a pull checks on every block: a pull resumes, so it may
//! stop anywhere). A load is never interrupted: a target is never half-loaded.
//! A second signal while the first is being honoured ends the process at once.
use crate::error::{Error, Result};
use ferry_transports::{Capabilities, DirTransport, Entry, PutMode, Transport, Upload};
use signal_hook::consts::{SIGINT, SIGTERM};
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Default)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    /// A flag that SIGINT and SIGTERM raise.
    pub fn on_signals() -> Result<Stop> {
        let stop = Stop::default();
        for sig in [SIGINT, SIGTERM] {
            // Registered first, so it sees the flag before this signal raises it.
            signal_hook::flag::register_conditional_shutdown(sig, 130, stop.0.clone())
                .and_then(|_| signal_hook::flag::register(sig, stop.0.clone()))
                .map_err(|e| Error::io("installing signal handlers", e))?;
        }
        Ok(stop)
    }

    pub fn requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Sleep for `d`, waking early when a stop is requested; true when it was.
    pub fn sleep(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        while !self.requested() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            std::thread::sleep(left.min(Duration::from_millis(100)));
        }
        true
    }
}

/// The state's `incoming/` directory, whose uploads fail once a stop is requested
/// (what they wrote stays as a `.partial` to resume from).
pub struct StoppableDir {
    dir: DirTransport,
    stop: Stop,
}

impl StoppableDir {
    pub fn new(root: &Path, stop: Stop) -> Self {
        StoppableDir { dir: DirTransport::new(root), stop }
    }
}

impl Transport for StoppableDir {
    fn describe(&self) -> String {
        self.dir.describe()
    }
    fn capabilities(&self) -> Capabilities {
        self.dir.capabilities()
    }
    fn put(&self, name: &str, mode: PutMode) -> ferry_transports::Result<Box<dyn Upload>> {
        Ok(Box::new(StoppableUpload { inner: self.dir.put(name, mode)?, stop: self.stop.clone() }))
    }
    fn get(&self, name: &str, offset: u64) -> ferry_transports::Result<Box<dyn Read + Send>> {
        self.dir.get(name, offset)
    }
    fn stat(&self, name: &str) -> ferry_transports::Result<Option<u64>> {
        self.dir.stat(name)
    }
    fn list(&self) -> ferry_transports::Result<Vec<Entry>> {
        self.dir.list()
    }
    fn delete(&self, name: &str) -> ferry_transports::Result<()> {
        self.dir.delete(name)
    }
}

struct StoppableUpload {
    inner: Box<dyn Upload>,
    stop: Stop,
}

impl Write for StoppableUpload {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.stop.requested() {
            // Not `Interrupted`: `write_all` would retry that for ever.
            return Err(io::Error::other("stopped by a signal"));
        }
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Upload for StoppableUpload {
    fn resumed_from(&self) -> u64 {
        self.inner.resumed_from()
    }
    fn commit(self: Box<Self>) -> ferry_transports::Result<()> {
        self.inner.commit()
    }
}
