//! In-memory backend for fast unit tests. Stores are shared per name within a process.
use crate::{check_name, partial_name, Capabilities, Entry, PutMode, Result, Transport, TransportError, Upload};
use std::collections::{BTreeMap, HashMap};
use std::io::{self, Cursor, Read, Write};
use std::sync::{Arc, Mutex, OnceLock};

type Store = Arc<Mutex<BTreeMap<String, Vec<u8>>>>;

#[derive(Clone)]
pub struct MemoryTransport {
    name: String,
    store: Store,
    caps: Capabilities,
}

fn registry() -> &'static Mutex<HashMap<String, Store>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Store>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

impl MemoryTransport {
    /// The process-wide store called `name` (created empty on first use).
    pub fn named(name: &str) -> Self {
        let store = registry().lock().unwrap().entry(name.to_string()).or_default().clone();
        MemoryTransport { name: name.to_string(), store, caps: Capabilities::ALL }
    }

    /// A store with restricted capabilities, to test refusals (e.g. an FTP incoming folder).
    pub fn with_capabilities(mut self, caps: Capabilities) -> Self {
        self.caps = caps;
        self
    }

    fn unsupported(&self, operation: &'static str) -> TransportError {
        TransportError::Unsupported { location: self.describe(), operation }
    }
}

impl Transport for MemoryTransport {
    fn describe(&self) -> String {
        format!("memory:{}", self.name)
    }

    fn capabilities(&self) -> Capabilities {
        self.caps
    }

    fn put(&self, name: &str, mode: PutMode) -> Result<Box<dyn Upload>> {
        check_name(name)?;
        let temp = partial_name(name);
        let mut store = self.store.lock().unwrap();
        let existing = match mode {
            PutMode::Resume if self.caps.resume_upload => store.get(&temp).map(|v| v.len() as u64).unwrap_or(0),
            _ => 0,
        };
        let buf = store.entry(temp.clone()).or_default();
        buf.truncate(existing as usize);
        Ok(Box::new(MemoryUpload { transport: self.clone(), temp, name: name.to_string(), resumed_from: existing }))
    }

    fn get(&self, name: &str, offset: u64) -> Result<Box<dyn Read + Send>> {
        check_name(name)?;
        let store = self.store.lock().unwrap();
        let data = store.get(name).ok_or_else(|| TransportError::NotFound { location: self.describe(), name: name.to_string() })?;
        let start = (offset as usize).min(data.len());
        Ok(Box::new(Cursor::new(data[start..].to_vec())))
    }

    fn stat(&self, name: &str) -> Result<Option<u64>> {
        check_name(name)?;
        Ok(self.store.lock().unwrap().get(name).map(|v| v.len() as u64))
    }

    fn list(&self) -> Result<Vec<Entry>> {
        if !self.caps.list {
            return Err(self.unsupported("listing"));
        }
        Ok(self.store.lock().unwrap().iter().map(|(name, data)| Entry { name: name.clone(), size: data.len() as u64 }).collect())
    }

    fn delete(&self, name: &str) -> Result<()> {
        check_name(name)?;
        if !self.caps.delete {
            return Err(self.unsupported("deleting files"));
        }
        self.store
            .lock()
            .unwrap()
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| TransportError::NotFound { location: self.describe(), name: name.to_string() })
    }

    /// The folder is the store named `NAME/DIR`.
    fn move_to(&self, name: &str, dir: &str) -> Result<()> {
        check_name(name)?;
        let folder = MemoryTransport::named(&format!("{}/{}", self.name, crate::subdir_parts(dir)?.join("/")));
        let data = self
            .store
            .lock()
            .unwrap()
            .remove(name)
            .ok_or_else(|| TransportError::NotFound { location: self.describe(), name: name.to_string() })?;
        folder.store.lock().unwrap().insert(name.to_string(), data);
        Ok(())
    }
}

struct MemoryUpload {
    transport: MemoryTransport,
    temp: String,
    name: String,
    resumed_from: u64,
}

impl Write for MemoryUpload {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut store = self.transport.store.lock().unwrap();
        store.entry(self.temp.clone()).or_default().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Upload for MemoryUpload {
    fn resumed_from(&self) -> u64 {
        self.resumed_from
    }

    fn commit(self: Box<Self>) -> Result<()> {
        let mut store = self.transport.store.lock().unwrap();
        if store.contains_key(&self.name) && !self.transport.caps.overwrite {
            return Err(TransportError::Unsupported { location: self.transport.describe(), operation: "overwriting files" });
        }
        let data = store.remove(&self.temp).unwrap_or_default();
        store.insert(self.name.clone(), data);
        Ok(())
    }
}
