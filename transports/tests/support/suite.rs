//! The conformance suite: written once, run against every backend.
use super::data;
use ferry_transports::{partial_name, Entry, PutMode, Transport, TransportError};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Opens a new client of the same location (a second client is used to observe uploads).
pub type Factory = Box<dyn Fn() -> Box<dyn Transport> + Send + Sync>;

pub struct Backend {
    pub label: &'static str,
    pub open: Factory,
    /// Size of the large round trip, in bytes.
    pub big: u64,
}

/// Large round trips run one at a time, so their timings mean something.
static BIG_LOCK: Mutex<()> = Mutex::new(());

const MIB: u64 = 1024 * 1024;

/// Size of the large round trip: `FERRY_TEST_BIG_MIB` (default 200) MiB.
pub fn big_size() -> u64 {
    std::env::var("FERRY_TEST_BIG_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(200) * MIB
}

pub fn put_all(t: &dyn Transport, name: &str, data: &[u8]) -> Result<(), TransportError> {
    let mut up = t.put(name, PutMode::Fresh)?;
    up.write_all(data).map_err(|e| TransportError::io(t.describe(), "writing", e))?;
    up.commit()
}

pub fn get_all(t: &dyn Transport, name: &str, offset: u64) -> Result<Vec<u8>, TransportError> {
    let mut r = t.get(name, offset)?;
    let mut v = Vec::new();
    r.read_to_end(&mut v).map_err(|e| TransportError::io(t.describe(), "reading", e))?;
    Ok(v)
}

fn names(entries: &[Entry]) -> Vec<&str> {
    entries.iter().map(|e| e.name.as_str()).collect()
}

fn step(label: &str, what: &str, f: impl FnOnce()) {
    let start = Instant::now();
    f();
    eprintln!("[{label}] {what}: ok ({:.2} s)", start.elapsed().as_secs_f64());
}

pub fn run(b: &Backend) {
    let t = (b.open)();
    let started = Instant::now();
    eprintln!("[{}] {} capabilities {:?}", b.label, t.describe(), t.capabilities());
    step(b.label, "small files, binary bytes, empty file, stat, get at offset, list, not found", || small(&*t));
    step(b.label, "names with spaces, unicode and URL-special characters", || odd_names(&*t));
    step(b.label, "atomic commit (observer never sees a partial file under the final name)", || atomicity(b, &*t));
    step(b.label, "resume an interrupted upload", || resume(&*t));
    step(b.label, "fresh upload over a stale partial; resume without a partial", || fresh_over_partial(&*t));
    step(b.label, "overwrite (or its refusal)", || overwrite(&*t));
    step(b.label, "delete (or its refusal)", || delete(&*t));
    step(b.label, "move into a sub-folder (twice: the folder exists the second time)", || move_into(&*t));
    step(b.label, "large round trip", || big(b, &*t));
    step(b.label, "no temporary files left behind", || {
        let left: Vec<String> = t
            .list()
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .filter(|n| n.ends_with(".partial") && (t.capabilities().overwrite || n != &partial_name("over.bin")))
            .collect();
        assert!(left.is_empty(), "left-over temporary files: {left:?}");
    });
    eprintln!("[{}] conformance suite passed in {:.1} s", b.label, started.elapsed().as_secs_f64());
}

fn small(t: &dyn Transport) {
    let hello = b"hello, ferry\n".to_vec();
    put_all(t, "hello.txt", &hello).unwrap();
    assert_eq!(t.stat("hello.txt").unwrap(), Some(hello.len() as u64));
    assert_eq!(get_all(t, "hello.txt", 0).unwrap(), hello);
    assert_eq!(get_all(t, "hello.txt", 7).unwrap(), &hello[7..]);

    // Every byte value and bare CR/LF: catches ASCII-mode transfers.
    let mut binary: Vec<u8> = (0..=255u8).collect();
    binary.extend_from_slice(b"a\r\nb\nc\r\n\r\r\n\x00\x1a");
    binary.extend(data::bytes(3, 0, 100_000));
    put_all(t, "binary.bin", &binary).unwrap();
    assert_eq!(t.stat("binary.bin").unwrap(), Some(binary.len() as u64));
    assert!(get_all(t, "binary.bin", 0).unwrap() == binary, "binary content changed in transit");
    assert!(get_all(t, "binary.bin", 1000).unwrap() == binary[1000..], "get at offset 1000");

    put_all(t, "empty.bin", b"").unwrap();
    assert_eq!(t.stat("empty.bin").unwrap(), Some(0));
    assert!(get_all(t, "empty.bin", 0).unwrap().is_empty());

    let list = t.list().unwrap();
    for (name, size) in [("hello.txt", hello.len()), ("binary.bin", binary.len()), ("empty.bin", 0)] {
        assert!(list.iter().any(|e| e.name == name && e.size == size as u64), "list lacks {name} ({size} bytes): {list:?}");
    }
    assert!(!names(&list).contains(&partial_name("hello.txt").as_str()));

    assert_eq!(t.stat("missing.bin").unwrap(), None);
    match t.get("missing.bin", 0) {
        Err(e) => assert!(e.is_not_found(), "get of a missing file: expected NotFound, got {e:?}"),
        Ok(_) => panic!("get of a missing file succeeded"),
    }
    // Names that would leave the location are refused by every backend.
    for bad in ["../x", "a/b", "", ".."] {
        assert!(matches!(t.put(bad, PutMode::Fresh), Err(TransportError::InvalidName(_))), "name {bad:?} accepted");
    }
}

fn odd_names(t: &dyn Transport) {
    let odd = ["with space.bin", "ünïcødé ✓ 名前.txt", "a'b&c (1)+%20#x;y=z.tar"];
    for (i, name) in odd.iter().enumerate() {
        let content = data::bytes(100 + i as u64, 0, 5000 + i);
        put_all(t, name, &content).unwrap_or_else(|e| panic!("put {name:?}: {e}"));
        assert_eq!(t.stat(name).unwrap(), Some(content.len() as u64), "stat {name:?}");
        assert!(get_all(t, name, 0).unwrap() == content, "content of {name:?}");
    }
    let list = t.list().unwrap();
    for name in odd {
        assert!(names(&list).contains(&name), "list lacks {name:?}: {:?}", names(&list));
    }
}

fn atomicity(b: &Backend, t: &dyn Transport) {
    const NAME: &str = "atomic.bin";
    let total = 8 * MIB;
    let seed = 5;
    let observer = (b.open)();
    let stop = Arc::new(AtomicBool::new(false));
    let commit_started = Arc::new(AtomicBool::new(false));
    let poller = {
        let (stop, commit_started) = (stop.clone(), commit_started.clone());
        std::thread::spawn(move || {
            let (mut polls, mut violations, mut seen_final) = (0u32, Vec::new(), false);
            loop {
                let started = commit_started.load(Ordering::SeqCst);
                let done = stop.load(Ordering::SeqCst);
                match observer.stat(NAME) {
                    Ok(None) => {}
                    Ok(Some(n)) if !started => violations.push(format!("{NAME} visible ({n} bytes) before commit")),
                    Ok(Some(n)) if n != total => violations.push(format!("{NAME} visible with {n} of {total} bytes")),
                    Ok(Some(_)) => seen_final = true,
                    Err(e) => violations.push(format!("stat failed: {e}")),
                }
                polls += 1;
                if done {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            (polls, violations, seen_final)
        })
    };
    let mut up = t.put(NAME, PutMode::Fresh).unwrap();
    let half = total / 2;
    data::write_stream(&mut up, seed, 0, half).unwrap();
    up.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let listed = t.list().unwrap();
    assert!(!names(&listed).contains(&NAME), "{NAME} listed before commit: {listed:?}");
    if let Some(p) = listed.iter().find(|e| e.name == partial_name(NAME)) {
        assert!(p.size <= half, "temporary file larger than what was sent");
    }
    // Small writes, with pauses, so the observer polls throughout.
    let mut sent = half;
    while sent < total {
        let n = (total - sent).min(256 * 1024);
        data::write_stream(&mut up, seed, sent, n).unwrap();
        sent += n;
        std::thread::sleep(Duration::from_millis(5));
    }
    up.flush().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    commit_started.store(true, Ordering::SeqCst);
    up.commit().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::SeqCst);
    let (polls, violations, seen_final) = poller.join().unwrap();
    assert!(violations.is_empty(), "atomicity violated: {violations:?}");
    assert!(polls >= 20, "observer polled only {polls} times");
    assert!(seen_final, "observer never saw the committed file");
    let (n, h) = data::read_sha(&mut *t.get(NAME, 0).unwrap()).unwrap();
    assert_eq!(n, total);
    assert_eq!(h, data::stream_sha(seed, 0, total));
}

/// Counts what goes through to an upload.
struct Counting<'a> {
    inner: &'a mut dyn Write,
    count: u64,
}

impl Write for Counting<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn resume(t: &dyn Transport) {
    const NAME: &str = "resume.bin";
    let total = 3 * MIB + 123;
    let first = MIB + 7;
    let seed = 9;
    {
        let mut up = t.put(NAME, PutMode::Fresh).unwrap();
        assert_eq!(up.resumed_from(), 0);
        data::write_stream(&mut up, seed, 0, first).unwrap();
        up.flush().unwrap();
        // Dropped without commit: an interrupted upload.
    }
    assert_eq!(t.stat(NAME).unwrap(), None, "an uncommitted upload is visible under its final name");
    let caps = t.capabilities();
    if caps.resume_upload {
        assert_eq!(t.stat(&partial_name(NAME)).unwrap(), Some(first), "the server should hold the first part");
    }
    let mut up = t.put(NAME, PutMode::Resume).unwrap();
    let from = up.resumed_from();
    if caps.resume_upload {
        assert_eq!(from, first, "resumed_from must equal what the first attempt sent");
    } else {
        assert_eq!(from, 0, "a backend without resume_upload must start over");
    }
    let mut counting = Counting { inner: &mut up, count: 0 };
    data::write_stream(&mut counting, seed, from, total - from).unwrap();
    let sent = counting.count;
    assert_eq!(sent, total - from, "only the rest is sent");
    up.commit().unwrap();
    assert_eq!(t.stat(NAME).unwrap(), Some(total));
    let (n, h) = data::read_sha(&mut *t.get(NAME, 0).unwrap()).unwrap();
    assert_eq!((n, h), (total, data::stream_sha(seed, 0, total)), "resumed upload content");
    eprintln!("    resumed at byte {from}; sent {sent} of {total} bytes in the second attempt");
    // Download resume: from an offset inside the file.
    let off = total - 300_000;
    let (n, h) = data::read_sha(&mut *t.get(NAME, off).unwrap()).unwrap();
    assert_eq!((n, h), (total - off, data::stream_sha(seed, off, total - off)), "download from offset {off}");
}

fn fresh_over_partial(t: &dyn Transport) {
    const NAME: &str = "fresh.bin";
    {
        let mut up = t.put(NAME, PutMode::Fresh).unwrap();
        data::write_stream(&mut up, 21, 0, 200_000).unwrap();
        up.flush().unwrap();
    }
    let mut up = t.put(NAME, PutMode::Fresh).unwrap();
    assert_eq!(up.resumed_from(), 0, "Fresh must discard a partial upload");
    let want = data::bytes(22, 0, 50_000);
    up.write_all(&want).unwrap();
    up.commit().unwrap();
    assert!(get_all(t, NAME, 0).unwrap() == want, "fresh upload over a longer stale partial");

    let up = t.put("never-started.bin", PutMode::Resume).unwrap();
    assert_eq!(up.resumed_from(), 0, "Resume without a partial starts at 0");
    up.commit().unwrap();
    assert_eq!(t.stat("never-started.bin").unwrap(), Some(0));
}

fn overwrite(t: &dyn Transport) {
    const NAME: &str = "over.bin";
    let v1 = data::bytes(11, 0, 100_000);
    let v2 = data::bytes(12, 0, 10_000);
    put_all(t, NAME, &v1).unwrap();
    let second = put_all(t, NAME, &v2);
    if t.capabilities().overwrite {
        second.unwrap_or_else(|e| panic!("overwrite: {e}"));
        assert!(get_all(t, NAME, 0).unwrap() == v2, "overwritten file must hold the new (shorter) content");
    } else {
        match second {
            Err(TransportError::Unsupported { .. }) => {}
            other => panic!("overwrite without the capability: expected Unsupported, got {other:?}"),
        }
        assert!(get_all(t, NAME, 0).unwrap() == v1, "a refused overwrite must leave the old file");
    }
}

fn delete(t: &dyn Transport) {
    if t.capabilities().delete {
        t.delete("hello.txt").unwrap();
        assert_eq!(t.stat("hello.txt").unwrap(), None);
        match t.delete("hello.txt") {
            Err(e) => assert!(e.is_not_found(), "delete of a missing file: expected NotFound, got {e:?}"),
            Ok(()) => panic!("deleting a missing file succeeded"),
        }
    } else {
        match t.delete("hello.txt") {
            Err(e @ TransportError::Unsupported { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("delet"), "refusal should say what is refused: {msg}");
            }
            other => panic!("delete without the capability: expected Unsupported, got {other:?}"),
        }
        assert!(t.stat("hello.txt").unwrap().is_some());
    }
}

/// `move_to`: the file leaves the location's listing and lands in `done/set aside/`
/// (callers check the server's disk); a missing file and an escaping folder are refused.
fn move_into(t: &dyn Transport) {
    for name in ["moved-1.txt", "moved 2.txt"] {
        put_all(t, name, b"set aside").unwrap();
        t.move_to(name, "done/set aside").unwrap_or_else(|e| panic!("moving {name}: {e}"));
        assert_eq!(t.stat(name).unwrap(), None, "{name} is still at the location after the move");
        assert!(!names(&t.list().unwrap()).contains(&name), "{name} still listed after the move");
    }
    let missing = t.move_to("never-there.txt", "done").unwrap_err();
    assert!(missing.is_not_found() || matches!(missing, TransportError::Protocol { .. }), "moving a missing file: {missing}");
    put_all(t, "stay.txt", b"x").unwrap();
    for bad in ["../out", "/abs", "a/../../b", ""] {
        let e = t.move_to("stay.txt", bad).expect_err(bad);
        assert!(matches!(e, TransportError::InvalidName(_)), "folder {bad:?}: {e}");
    }
}

fn big(b: &Backend, t: &dyn Transport) {
    const NAME: &str = "big.bin";
    let size = b.big;
    let seed = 42;
    let _serial = BIG_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let start = Instant::now();
    let mut up = t.put(NAME, PutMode::Fresh).unwrap();
    let sent = data::write_stream(&mut up, seed, 0, size).unwrap();
    up.commit().unwrap();
    let upload = start.elapsed().as_secs_f64();
    assert_eq!(t.stat(NAME).unwrap(), Some(size));
    let start = Instant::now();
    let (n, got) = data::read_sha(&mut *t.get(NAME, 0).unwrap()).unwrap();
    let download = start.elapsed().as_secs_f64();
    assert_eq!(n, size, "downloaded size");
    assert_eq!(data::hex(&got), data::hex(&sent), "downloaded content differs (sha256)");
    let tail = (5 * MIB).min(size / 2);
    let (n, h) = data::read_sha(&mut *t.get(NAME, size - tail).unwrap()).unwrap();
    assert_eq!((n, h), (tail, data::stream_sha(seed, size - tail, tail)), "download of the last 5 MiB");
    let mb = size as f64 / 1e6;
    let line = format!(
        "{:<24} {:>5} MiB  upload {:>7.1} MB/s ({:>5.1} s)  download {:>7.1} MB/s ({:>5.1} s)  (sha256 + data generation included)",
        b.label,
        size / MIB,
        mb / upload,
        upload,
        mb / download,
        download
    );
    eprintln!("TIMING {line}");
    let file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("transport-timings.txt");
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(file) {
        let _ = writeln!(f, "{line}");
    }
    if t.capabilities().delete {
        t.delete(NAME).unwrap();
    }
}
