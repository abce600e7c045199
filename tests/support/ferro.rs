//! A registry WITH the OCI 1.1 referrers API, per test: ferro-oci-server
//! (crates.io, OCI distribution spec v1.1; plain HTTP, no auth), built by
//! scripts/install-deps.sh into `target/tools/bin` (or `$FERRY_FERRO_OCI_SERVER`).
//! On a free 127.0.0.1 port, its blobs and metadata in its own temp dir, its
//! log in a file there; killed on drop. It logs no requests, so a test counts
//! them from its Prometheus counters (`/metrics`, by method and handler).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const FERRO_ENV: &str = "FERRY_FERRO_OCI_SERVER";

pub struct FerroRegistry {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

/// Where the binary is: `$FERRY_FERRO_OCI_SERVER`, else `<repo>/target/tools/bin`.
pub fn binary() -> PathBuf {
    match std::env::var_os(FERRO_ENV) {
        Some(p) => PathBuf::from(p),
        None => super::repo_root().join("target/tools/bin/ferro-oci-server"),
    }
}

impl FerroRegistry {
    /// Start it and wait for `/healthz`; panics (never skips) when the binary is missing.
    pub fn start() -> FerroRegistry {
        let bin = binary();
        if super::which(&bin.display().to_string()).is_none() {
            panic!(
                "missing ferro-oci-server at {} (or set ${FERRO_ENV}): run scripts/install-deps.sh, which builds it there with cargo install",
                bin.display()
            );
        }
        let dir = tempfile::Builder::new().prefix("ferry-ferro").tempdir().expect("temp dir for ferro-oci-server");
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::fs::File::create(dir.path().join("ferro.log")).unwrap();
        let child = Command::new(&bin)
            .env("FERRO_OCI_LISTEN", format!("127.0.0.1:{port}"))
            .env("FERRO_OCI_STORAGE_DIR", dir.path().join("data"))
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let mut reg = FerroRegistry { dir, port, child };
        let started = Instant::now();
        while reg.get("/healthz").is_none_or(|(status, _)| status != 200) {
            if let Some(status) = reg.child.try_wait().unwrap() {
                panic!("ferro-oci-server exited ({status}) before it was healthy:\n{}", reg.log());
            }
            assert!(started.elapsed() < Duration::from_secs(20), "ferro-oci-server not healthy within 20 s:\n{}", reg.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    /// `GET path` over plain HTTP/1.1: status and body, `None` when nothing listens.
    fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(s, "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", self.host()).ok()?;
        let mut answer = String::new();
        s.read_to_string(&mut answer).ok()?;
        let status = answer.split(' ').nth(1)?.parse().ok()?;
        let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        Some((status, body))
    }

    /// `127.0.0.1:PORT`
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `docker://127.0.0.1:PORT/PATH`
    pub fn url(&self, path: &str) -> String {
        if path.is_empty() {
            format!("docker://{}", self.host())
        } else {
            format!("docker://{}/{path}", self.host())
        }
    }

    /// The flags ferry needs for it.
    pub fn ferry_args(&self) -> Vec<String> {
        vec!["--plain-http".into()]
    }

    /// skopeo's flags for it (`src` or `dest` prefix, or none for inspect).
    pub fn skopeo_args(&self, prefix: &str) -> Vec<String> {
        let p = if prefix.is_empty() { String::new() } else { format!("{prefix}-") };
        vec![format!("--{p}tls-verify=false")]
    }

    /// Requests served so far with `method` by `handler` (ferro's names:
    /// `referrers`, `manifests`, `tags`, `blobs`, `uploads`, ...), any status.
    pub fn requests(&self, method: &str, handler: &str) -> u64 {
        let (status, metrics) = self.get("/metrics").expect("ferro-oci-server answers /metrics");
        assert_eq!(status, 200, "GET /metrics: {metrics}");
        let labels = [format!("handler=\"{handler}\""), format!("method=\"{method}\"")];
        metrics
            .lines()
            .filter(|l| l.starts_with("ferrooci_http_requests_total{"))
            .filter(|l| labels.iter().all(|want| l.contains(want.as_str())))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("ferro.log")).unwrap_or_default()
    }
}

impl Drop for FerroRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
