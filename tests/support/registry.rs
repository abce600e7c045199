//! A private registry (Debian docker-registry, distribution 2.8) per test, as
//! TESTBED.md "Registry" describes: TLS with a server certificate signed by a
//! test CA, htpasswd basic auth (alice / s3cret), on a free 127.0.0.1 port,
//! storage and logs in its own temp dir. The access log (one line per request)
//! lets a test count uploads. `kill`/`restart` keep the storage (an upload in
//! progress survives: `http.secret` is fixed, so upload state tokens stay valid);
//! dropping it stops the process.
#![allow(dead_code)]

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const REGISTRY_BIN: &str = "docker-registry";
pub const USER: &str = "alice";
pub const PASSWORD: &str = "s3cret";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// TLS + htpasswd basic auth.
    TlsAuth,
    /// TLS + htpasswd, and a client certificate signed by the test CA is required.
    MutualTls,
    /// Plain HTTP, no auth.
    Plain,
    /// TLS + Bearer tokens from a token issuer ([`super::token::TokenServer`]) that knows alice.
    TlsToken,
}

pub struct Registry {
    dir: tempfile::TempDir,
    pub port: u16,
    pub mode: Mode,
    child: Option<Child>,
    /// Log files of earlier runs (before a restart), kept for counting.
    runs: usize,
    pub token: Option<super::token::TokenServer>,
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(out.status.success(), "{what} failed: {}", String::from_utf8_lossy(&out.stderr));
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Registry {
    pub fn start(mode: Mode) -> Registry {
        super::require(REGISTRY_BIN);
        super::require("openssl");
        super::require("htpasswd");
        let dir = tempfile::Builder::new().prefix("ferry-registry").tempdir().expect("temp dir for the registry");
        let d = dir.path();
        std::fs::create_dir_all(d.join("data")).unwrap();
        std::fs::create_dir_all(d.join("certs")).unwrap();
        make_certs(d);
        let htpasswd = Command::new("htpasswd").args(["-Bbn", USER, PASSWORD]).output().expect("run htpasswd");
        assert!(htpasswd.status.success(), "htpasswd failed");
        std::fs::write(d.join("htpasswd"), htpasswd.stdout).unwrap();
        let port = free_port();
        let token = (mode == Mode::TlsToken).then(|| super::token::TokenServer::start(dir.path()));
        let mut reg = Registry { dir, port, mode, child: None, runs: 0, token };
        reg.write_config();
        reg.spawn();
        reg
    }

    fn write_config(&self) {
        let d = self.dir.path().display();
        let tls = match self.mode {
            Mode::Plain => String::new(),
            Mode::TlsAuth | Mode::TlsToken => format!("\n  tls:\n    certificate: {d}/cert.pem\n    key: {d}/key.pem"),
            Mode::MutualTls => format!("\n  tls:\n    certificate: {d}/cert.pem\n    key: {d}/key.pem\n    clientcas:\n      - {d}/ca.crt"),
        };
        let auth = match (&self.token, self.mode) {
            (Some(t), _) => t.registry_auth_config(),
            (None, Mode::Plain) => String::new(),
            (None, _) => format!("auth:\n  htpasswd:\n    realm: test\n    path: {d}/htpasswd\n"),
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {d}/data\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: 127.0.0.1:{}\n  secret: ferry-test-secret{tls}\n{auth}",
            self.port
        );
        std::fs::write(self.dir.path().join("config.yml"), config).unwrap();
    }

    fn log_path(&self, run: usize) -> PathBuf {
        self.dir.path().join(format!("registry.{run}.log"))
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.log_path(self.runs)).unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {REGISTRY_BIN}: {e}"));
        self.child = Some(child);
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("{REGISTRY_BIN} exited ({status}) before listening:\n{}", self.log());
            }
            assert!(started.elapsed() < Duration::from_secs(20), "{REGISTRY_BIN} did not listen within 20 s:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL the registry (storage kept).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.runs += 1;
    }

    /// Start it again on the same port, with the same storage.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
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

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The test CA's certificate (PEM), for `--ca-cert`.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// A directory holding `ca.crt` (and, for mTLS, `client.cert`/`client.key`), for skopeo's `--cert-dir`.
    pub fn cert_dir(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    /// Client certificate and key (PEM, PKCS#8) signed by the test CA.
    pub fn client_cert(&self) -> (PathBuf, PathBuf) {
        (self.dir.path().join("client.pem"), self.dir.path().join("client.key"))
    }

    /// A Docker config.json with alice's credentials (or `password` instead).
    pub fn auth_file(&self, password: &str) -> PathBuf {
        let path = self.dir.path().join(format!("auth-{}.json", password.len()));
        let b64 = super::token::b64std(format!("{USER}:{password}").as_bytes());
        std::fs::write(&path, format!(r#"{{"auths": {{"{}": {{"auth": "{b64}"}}}}}}"#, self.host())).unwrap();
        path
    }

    /// The flags ferry needs for this registry: CA, credentials (or plain HTTP).
    pub fn ferry_args(&self) -> Vec<String> {
        match self.mode {
            Mode::Plain => vec!["--plain-http".into()],
            _ => {
                let mut a = vec![
                    "--ca-cert".into(),
                    self.ca_cert().display().to_string(),
                    "--registry-auth".into(),
                    self.auth_file(PASSWORD).display().to_string(),
                ];
                if self.mode == Mode::MutualTls {
                    let (c, k) = self.client_cert();
                    a.extend(["--cert".into(), c.display().to_string(), "--cert-key".into(), k.display().to_string()]);
                }
                a
            }
        }
    }

    /// skopeo's flags for this registry (`src` or `dest` prefix, or none for inspect).
    pub fn skopeo_args(&self, prefix: &str) -> Vec<String> {
        let p = if prefix.is_empty() { String::new() } else { format!("{prefix}-") };
        match self.mode {
            Mode::Plain => vec![format!("--{p}tls-verify=false")],
            _ => vec![format!("--{p}cert-dir"), self.cert_dir().display().to_string(), format!("--{p}creds"), format!("{USER}:{PASSWORD}")],
        }
    }

    /// The access log of every run so far.
    pub fn log(&self) -> String {
        let mut all = String::new();
        for run in 0..=self.runs {
            if let Ok(mut f) = std::fs::File::open(self.log_path(run)) {
                let _ = f.read_to_string(&mut all);
            }
        }
        all
    }

    /// Access-log request lines (`"METHOD /v2/..."`) so far.
    pub fn requests(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter_map(|l| {
                let start = l.find("\"")? + 1;
                let rest = &l[start..];
                let end = rest.find('"')?;
                let req = &rest[..end];
                (req.contains(" /v2/") && (req.ends_with("HTTP/1.1") || req.ends_with("HTTP/2.0"))).then(|| req.to_string())
            })
            .collect()
    }

    /// Blob upload requests (POST/PATCH/PUT on `/blobs/uploads/`) so far.
    pub fn upload_requests(&self) -> usize {
        self.requests().iter().filter(|r| r.contains("/blobs/uploads/") && !r.starts_with("GET ") && !r.starts_with("HEAD ")).count()
    }

    /// Requests whose line starts with `method` and contains `part`.
    pub fn count(&self, method: &str, part: &str) -> usize {
        self.requests().iter().filter(|r| r.starts_with(&format!("{method} ")) && r.contains(part)).count()
    }

    /// Bytes of the blobs the registry has stored (finished uploads).
    pub fn stored_blob_bytes(&self) -> u64 {
        walk(&self.dir.path().join("data/docker/registry/v2/blobs"))
            .into_iter()
            .filter(|p| p.ends_with("data"))
            .filter_map(|p| p.metadata().ok())
            .map(|m| m.len())
            .sum()
    }

    /// Bytes of upload data the registry holds in unfinished uploads.
    pub fn pending_upload_bytes(&self) -> u64 {
        walk(&self.dir.path().join("data"))
            .into_iter()
            .filter(|p| p.ends_with("data") && p.to_string_lossy().contains("/_uploads/"))
            .filter_map(|p| p.metadata().ok())
            .map(|m| m.len())
            .sum()
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The test CA, the server certificate (localhost, 127.0.0.1) it signs, and a client certificate.
fn make_certs(d: &Path) {
    let openssl = |args: &[&str]| run(Command::new("openssl").args(args).current_dir(d), &format!("openssl {}", args.join(" ")));
    // A key and a request for `subject`, signed by the CA with the extensions in `ext`.
    let issue = |key: &str, csr: &str, subject: &str, cert: &str, ext: &str, extensions: &str| {
        openssl(&["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", subject]);
        std::fs::write(d.join(ext), extensions).unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            cert,
            "-days",
            "3",
            "-extfile",
            ext,
        ]);
    };
    self_signed(d, "ca.key", "ca.crt", "/CN=ferry-test-ca");
    let server = "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n";
    issue("key.pem", "srv.csr", "/CN=localhost", "cert.pem", "ext.cnf", server);
    issue(
        "client.key",
        "client.csr",
        "/CN=ferry-client",
        "client.pem",
        "client.cnf",
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    );
    std::fs::copy(d.join("ca.crt"), d.join("certs/ca.crt")).unwrap();
    std::fs::copy(d.join("client.pem"), d.join("certs/client.cert")).unwrap();
    std::fs::copy(d.join("client.key"), d.join("certs/client.key")).unwrap();
}

/// A fresh RSA key and a self-signed certificate for `subject` in `dir`.
pub fn self_signed(dir: &Path, key: &str, cert: &str, subject: &str) {
    let args = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "3", "-subj", subject];
    run(Command::new("openssl").args(args).current_dir(dir), &format!("openssl {}", args.join(" ")));
}
