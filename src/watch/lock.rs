//! `STATE/lock`: one watcher per state directory. A non-blocking `flock`; the
//! holder writes its pid into the file so a second watcher can name it. The
//! kernel drops the lock when the holder dies (kill -9 included): no stale locks.
use crate::error::{Error, Result};
use rustix::fs::{flock, FlockOperation};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::Path;

pub struct StateLock {
    _file: File,
}

impl StateLock {
    pub fn acquire(dir: &Path) -> Result<StateLock> {
        let path = dir.join("lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        if let Err(e) = flock(&file, FlockOperation::NonBlockingLockExclusive) {
            let e = io::Error::from(e);
            if e.kind() != io::ErrorKind::WouldBlock {
                return Err(Error::io(format!("locking {}", path.display()), e));
            }
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let who = match holder.trim().parse::<u32>() {
                Ok(pid) => format!("process {pid}"),
                Err(_) => "another process".to_string(),
            };
            return Err(Error::io(format!("{} is in use by {who} (another ferry watch)", dir.display()), e)
                .with_hint(format!("stop the other watcher ({who}) or give this one its own --state DIR")));
        }
        let mut write_pid = || -> io::Result<()> {
            file.set_len(0)?;
            file.rewind()?;
            writeln!(file, "{}", std::process::id())?;
            file.sync_data()
        };
        write_pid().map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        Ok(StateLock { _file: file })
    }
}
