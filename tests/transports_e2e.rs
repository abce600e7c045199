//! ferry end to end against real servers on 127.0.0.1 (vsftpd, OpenSSH sshd with
//! internal-sftp, nginx WebDAV — the transports crate's harness): `save -o URL`, `load
//! URL/STEM` on the consumer side, `ls`, `push`, `pull`, `verify`; then faults seen from
//! the command line: a server killed mid-upload (then `push` resumes, or restarts on
//! WebDAV), a file corrupted on the server (exit 3, nothing committed), unknown host keys,
//! wrong passwords, servers that are down.
//!
//! Every ferry run is isolated from the user's environment: its own `$HOME` (no
//! ~/.netrc, ~/.ssh), no SSH agent, no `FERRY_*` secrets unless a test sets them.
mod common;
#[path = "../transports/tests/support/mod.rs"]
mod servers;

use common::{fixture, flip_byte, layout_blobs, sh, source_digests};
use servers::{free_port, Nginx, Sshd, Vsftpd, TEST_PASSWORD, TEST_USER};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MIB: u64 = 1024 * 1024;
const FIXTURE: &str = "multi.docker.tar.gz";

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// A ferry command with the user's environment kept out.
fn ferry_cmd(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.args(args).stdin(Stdio::null()).env("HOME", home);
    for var in [
        "SSH_AUTH_SOCK",
        "NETRC",
        "FERRY_FTP_PASSWORD",
        "FERRY_SFTP_PASSWORD",
        "FERRY_HTTP_PASSWORD",
        "FERRY_HTTP_TOKEN",
        "FERRY_SSH_KEY_PASSPHRASE",
        "FERRY_KEY_PASSWORD",
        "FERRY_PASSPHRASE",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn ferry_in(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let out = ferry_cmd(home, args, env).output().expect("run ferry");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// One consumer/producer site: a server, its location URL and where its files land on disk.
struct Site {
    label: &'static str,
    /// Location URL ending in '/'.
    url: String,
    data_dir: PathBuf,
    /// Global ferry options this site needs (`--ssh-key`, `--known-hosts`).
    net: Vec<String>,
    home: tempfile::TempDir,
}

impl Site {
    fn args<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        self.net.iter().map(String::as_str).chain(args.iter().copied()).collect()
    }
    fn run(&self, args: &[&str]) -> Out {
        ferry_in(self.home.path(), &self.args(args), &[])
    }
    fn ok(&self, args: &[&str]) -> Out {
        let r = self.run(args);
        assert_eq!(r.code, 0, "[{}] ferry {args:?} failed (exit {}):\n{}", self.label, r.code, r.stderr);
        r
    }
    fn loc(&self, stem: &str) -> String {
        format!("{}{stem}", self.url)
    }
    fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = match fs::read_dir(&self.data_dir) {
            Ok(rd) => rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
            Err(_) => vec![],
        };
        v.sort();
        v
    }
}

fn home() -> tempfile::TempDir {
    servers::tempdir("ferry-e2e-home-")
}

fn ftp_site(server: &Vsftpd) -> Site {
    Site { label: "ftp", url: server.url(), data_dir: server.data_dir.clone(), net: vec![], home: home() }
}

fn sftp_site(server: &Sshd) -> Site {
    Site {
        label: "sftp",
        url: format!("{}/", server.url()),
        data_dir: server.data_dir.clone(),
        net: vec!["--ssh-key".into(), server.key.display().to_string(), "--known-hosts".into(), server.known_hosts.display().to_string()],
        home: home(),
    }
}

fn http_site(server: &Nginx) -> Site {
    Site { label: "http", url: server.url("drop/"), data_dir: server.www.join("drop"), net: vec![], home: home() }
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match fs::read_dir(dir) {
        Ok(rd) => rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => vec![],
    };
    v.sort();
    v
}

// ------------------------------------------------------------------ round trips

/// save → server → load on the consumer side (digests kept), ls (complete bundles
/// only), push of a local split bundle, pull back, verify (remote and pulled).
fn round_trip(site: &Site, seal: bool) {
    let label = site.label;
    let work = servers::tempdir("ferry-e2e-work-");
    let w = work.path();
    let fx = fixture(FIXTURE);
    let image = format!("docker-archive:{}", fx.display());

    // Keys for the sealed variant: -k/-i on the consumer side.
    let keys = w.join("keys");
    let mut seal_args: Vec<String> = vec![];
    let mut trust_args: Vec<String> = vec!["--allow-unsigned".into()];
    if seal {
        let out = ferry_in(site.home.path(), &["keygen", "--no-password", "-o", keys.to_str().unwrap()], &[]);
        assert_eq!(out.code, 0, "keygen: {}", out.stderr);
        let recipient = out.stdout.lines().find_map(|l| l.strip_prefix("age recipient:")).unwrap().trim().to_string();
        seal_args = vec!["--sign".into(), keys.join("ferry.key").display().to_string(), "-r".into(), recipient];
        trust_args =
            vec!["-k".into(), keys.join("ferry.pub").display().to_string(), "-i".into(), keys.join("ferry.age").display().to_string()];
    }

    // 1. save straight to the server.
    let mut args = vec!["save", image.as_str(), "-o", site.url.as_str(), "-n", "e2e-save"];
    args.extend(seal_args.iter().map(String::as_str));
    site.ok(&args);
    let on_server = site.names();
    let artifact = if seal { "e2e-save.tar.zst.age" } else { "e2e-save.tar.zst" };
    assert!(on_server.contains(&"e2e-save.sha256".to_string()), "[{label}] {on_server:?}");
    assert!(on_server.contains(&artifact.to_string()), "[{label}] {on_server:?}");
    assert_eq!(on_server.contains(&"e2e-save.sha256.minisig".to_string()), seal, "[{label}] {on_server:?}");
    assert!(!on_server.iter().any(|n| n.ends_with(".partial")), "[{label}] temporary files left: {on_server:?}");
    // Standard tools check what landed on the server.
    sh(&format!("cd '{}' && sha256sum -c e2e-save.sha256", site.data_dir.display()));

    // 2. the consumer loads it from the server; every source digest survives.
    let consumer = w.join("consumer-oci");
    let into = format!("oci:{}", consumer.display());
    let src = site.loc("e2e-save");
    let mut args = vec!["load", src.as_str(), "--into", into.as_str()];
    args.extend(trust_args.iter().map(String::as_str));
    site.ok(&args);
    let have = layout_blobs(&consumer);
    let want = source_digests(&fx);
    for d in &want {
        assert!(have.contains(d), "[{label}] digest {d} of the source is missing after save to / load from {}", site.url);
    }
    eprintln!("[{label}] save -o {} then load: {} source digests kept", site.url, want.len());
    let mut args = vec!["verify", src.as_str()];
    if seal {
        args.extend(trust_args.iter().map(String::as_str));
    }
    site.ok(&args);

    // 3. push a local split bundle.
    let local = w.join("local");
    site.ok(&["save", &image, "-o", local.to_str().unwrap(), "-n", "e2e-split", "--compress", "none", "--split", "700K"]);
    let local_files = files_in(&local);
    let parts: Vec<&String> = local_files.iter().filter(|n| n.starts_with("e2e-split.tar.")).collect();
    assert!(parts.len() >= 3, "split into several parts: {local_files:?}");
    let pushed = json(&site.ok(&["push", local.join("e2e-split.sha256").to_str().unwrap(), &site.url, "--json"]).stdout);
    let files = pushed["files"].as_array().unwrap();
    assert_eq!(files.len(), parts.len() + 1, "[{label}] {pushed}");
    for f in files {
        assert_eq!(f["sent"], f["size"], "[{label}] fresh push sends everything: {f}");
        assert_eq!(f["resumed_from"], 0);
    }
    assert_eq!(files.last().unwrap()["name"], "e2e-split.sha256", "STEM.sha256 is published last");
    for n in &local_files {
        assert_eq!(fs::read(local.join(n)).unwrap(), fs::read(site.data_dir.join(n)).unwrap(), "[{label}] {n} on the server");
    }

    // 4. ls: complete bundles only. An artifact without its STEM.sha256 (a save that
    // stopped, or still running) is not listed; neither are temporary names.
    fs::write(site.data_dir.join("e2e-half.tar.zst"), b"not finished").unwrap();
    fs::write(site.data_dir.join("e2e-half.tar.zst.partial"), b"not finished").unwrap();
    fs::write(site.data_dir.join("e2e-tmp.sha256.partial"), b"x").unwrap();
    let listed = json(&site.ok(&["ls", &site.url, "--json"]).stdout);
    let stems: Vec<&str> = listed.as_array().unwrap().iter().map(|b| b["stem"].as_str().unwrap()).collect();
    assert_eq!(stems.len(), 2, "[{label}] ls: {listed}");
    assert!(stems.contains(&"e2e-save") && stems.contains(&"e2e-split"), "[{label}] ls: {listed}");
    let split = listed.as_array().unwrap().iter().find(|b| b["stem"] == "e2e-split").unwrap();
    assert_eq!(split["files"].as_array().unwrap().len(), parts.len(), "[{label}] {split}");
    let local_size: u64 = parts.iter().map(|p| fs::metadata(local.join(p)).unwrap().len()).sum();
    assert_eq!(split["size"].as_u64().unwrap(), local_size);
    let saved = listed.as_array().unwrap().iter().find(|b| b["stem"] == "e2e-save").unwrap();
    assert_eq!(saved["signed"], seal);
    assert_eq!(saved["encrypted"], seal);
    let plain = site.ok(&["ls", &site.url]).stdout;
    assert!(!plain.contains("e2e-half") && plain.contains("e2e-split"), "[{label}] ls:\n{plain}");

    // 5. pull it back, byte for byte; verify remote and pulled copies.
    let pulled = w.join("pulled");
    let report = json(&site.ok(&["pull", &site.loc("e2e-split"), "-o", pulled.to_str().unwrap(), "--json"]).stdout);
    assert_eq!(report["files"].as_array().unwrap().len(), parts.len() + 1);
    assert_eq!(files_in(&pulled), local_files, "[{label}] pulled files");
    for n in &local_files {
        assert_eq!(fs::read(local.join(n)).unwrap(), fs::read(pulled.join(n)).unwrap(), "[{label}] pulled {n}");
    }
    sh(&format!("cd '{}' && sha256sum -c e2e-split.sha256", pulled.display()));
    site.ok(&["verify", &site.loc("e2e-split")]);
    site.ok(&["verify", pulled.to_str().unwrap()]);
    // A pull again finds everything there and sends nothing.
    let again = json(&site.ok(&["pull", &site.loc("e2e-split"), "-o", pulled.to_str().unwrap(), "--json"]).stdout);
    for f in again["files"].as_array().unwrap().iter().filter(|f| f["name"].as_str().unwrap().contains(".tar")) {
        assert_eq!(f["sent"], 0, "[{label}] already pulled: {f}");
    }
    eprintln!("[{label}] push of {} parts, ls, pull and verify: ok", parts.len());
}

#[test]
fn ftp_save_load_ls_push_pull_verify() {
    let server = Vsftpd::anonymous();
    round_trip(&ftp_site(&server), false);
}

#[test]
fn sftp_signed_encrypted_save_load_ls_push_pull_verify() {
    let server = Sshd::start();
    round_trip(&sftp_site(&server), true);
}

#[test]
fn http_webdav_save_load_ls_push_pull_verify() {
    let server = Nginx::start();
    round_trip(&http_site(&server), false);
}

// ------------------------------------------------------------------ killed mid-upload

/// Bytes a process has read through read(2) (files; socket send(2)s are not counted,
/// so the source file's bytes are what tells how far a push got).
fn read_by(pid: u32) -> u64 {
    io_counter(pid, "rchar:")
}

/// A local bundle whose artifact is `size` bytes of random data (push/pull only look
/// at checksums, not at what is inside).
fn big_bundle(dir: &Path, stem: &str, size: u64) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    let name = format!("{stem}.tar.zst");
    sh(&format!("head -c {size} /dev/urandom > '{}'", dir.join(&name).display()));
    let hex = sh(&format!("sha256sum '{}'", dir.join(&name).display())).split_whitespace().next().unwrap().to_string();
    fs::write(dir.join(format!("{stem}.sha256")), format!("{hex}  {name}\n")).unwrap();
    dir.join(format!("{stem}.sha256"))
}

/// `ferry push` of a 256 MiB artifact; the server is killed (SIGKILL, every process it
/// forked) once ferry has read a few MiB of it. Nothing may appear under a final name; the
/// same `push` after a restart resumes where the server stopped (or, on a backend that
/// cannot append, starts over) and the result is checked byte for byte.
fn killed_then_push_resumes(site: &Site, server: &mut servers::Proc, can_resume: bool) {
    let label = site.label;
    let work = servers::tempdir("ferry-e2e-kill-");
    let size = 256 * MIB;
    let sums = big_bundle(work.path(), "big", size);
    let artifact = "big.tar.zst";

    let mut child: Child = ferry_cmd(site.home.path(), &site.args(&["push", sums.to_str().unwrap(), &site.url, "--json"]), &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    let partial = site.data_dir.join(format!("{artifact}.partial"));
    let on_server = || fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
    // Wait for bytes on the server's disk too, not only for ferry's reads: on a busy
    // machine 8 MiB can sit in loopback socket buffers before the server writes any.
    while read_by(pid) < 8 * MIB || (can_resume && on_server() < MIB) {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "[{label}] push ended before the server was killed ({} bytes read): {}{}",
                read_by(pid),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(Instant::now() < deadline, "[{label}] push did not start sending");
        std::thread::sleep(Duration::from_millis(1));
    }
    server.kill();
    let t0 = Instant::now();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "[{label}] server killed mid-push: exit {:?} after {:?}: {}",
        out.status.code(),
        t0.elapsed(),
        stderr.lines().find(|l| l.contains("error:")).unwrap_or("")
    );
    assert_eq!(out.status.code(), Some(4), "[{label}] a push to a killed server is a transport failure:\n{stderr}");
    let names = site.names();
    assert!(!names.contains(&artifact.to_string()), "[{label}] the artifact appeared under its final name: {names:?}");
    assert!(!names.contains(&"big.sha256".to_string()), "[{label}] {names:?}");
    let left = on_server();

    server.restart();
    let report = json(&site.ok(&["push", sums.to_str().unwrap(), &site.url, "--json"]).stdout);
    let f = report["files"].as_array().unwrap().iter().find(|f| f["name"] == artifact).unwrap().clone();
    let (sent, from) = (f["sent"].as_u64().unwrap(), f["resumed_from"].as_u64().unwrap());
    assert_eq!(f["size"].as_u64().unwrap(), size);
    assert_eq!(sent + from, size, "[{label}] {f}");
    if can_resume {
        assert!(left > 0, "[{label}] nothing of the first attempt reached the server");
        assert_eq!(from, left, "[{label}] resumed from what the server held: {f}");
        assert!(sent < size, "[{label}] {f}");
        eprintln!("[{label}] second push resumed at byte {from}: sent only {sent} of {size} bytes");
    } else {
        // WebDAV has no append: the second attempt starts over (and says so in --json).
        assert_eq!(from, 0, "[{label}] {f}");
        assert_eq!(sent, size, "[{label}] {f}");
        assert_eq!(report["resume_upload"], false, "[{label}] {report}");
        eprintln!("[{label}] second push restarted from byte 0 (WebDAV cannot append): sent {sent} bytes");
    }
    assert_eq!(report["files"].as_array().unwrap().last().unwrap()["name"], "big.sha256");
    let names = site.names();
    assert!(!names.iter().any(|n| n.ends_with(".partial")), "[{label}] {names:?}");
    sh(&format!("cd '{}' && sha256sum -c big.sha256", site.data_dir.display()));
}

#[test]
fn ftp_server_killed_mid_push_then_push_resumes() {
    let mut server = Vsftpd::anonymous();
    let site = ftp_site(&server);
    killed_then_push_resumes(&site, &mut server.proc, true);
}

#[test]
fn sftp_server_killed_mid_push_then_push_resumes() {
    let mut server = Sshd::start();
    let site = sftp_site(&server);
    killed_then_push_resumes(&site, &mut server.proc, true);
}

#[test]
fn http_server_killed_mid_push_then_push_restarts() {
    let mut server = Nginx::start();
    let site = http_site(&server);
    killed_then_push_resumes(&site, &mut server.proc, false);
}

/// `ferry pull` of a 256 MiB artifact; the server is killed once a few MiB have landed
/// locally. Nothing may appear under a final name in the output directory; the same
/// `pull` after a restart resumes from what is there (every backend can read from an
/// offset: FTP `REST`, SFTP seek, HTTP `Range`) and checks the whole file.
fn killed_then_pull_resumes(site: &Site, server: &mut servers::Proc) {
    let label = site.label;
    let work = servers::tempdir("ferry-e2e-killpull-");
    let size = 256 * MIB;
    big_bundle(&site.data_dir, "down", size);
    sh(&format!("chmod 644 '{}'/down.*", site.data_dir.display()));
    let out = work.path().join("pulled");
    let artifact = "down.tar.zst";
    let partial = out.join(format!("{artifact}.partial"));

    let mut child: Child =
        ferry_cmd(site.home.path(), &site.args(&["pull", &site.loc("down"), "-o", out.to_str().unwrap(), "--json"]), &[])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while fs::metadata(&partial).map(|m| m.len()).unwrap_or(0) < 8 * MIB {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            panic!("[{label}] pull ended before the server was killed: {}", String::from_utf8_lossy(&out.stderr));
        }
        assert!(Instant::now() < deadline, "[{label}] pull did not start receiving");
        std::thread::sleep(Duration::from_millis(1));
    }
    server.kill();
    let result = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    eprintln!(
        "[{label}] server killed mid-pull: exit {:?}: {}",
        result.status.code(),
        stderr.lines().find(|l| l.contains("error:")).unwrap_or("")
    );
    assert_eq!(result.status.code(), Some(4), "[{label}] a pull from a killed server is a transport failure:\n{stderr}");
    let names = files_in(&out);
    assert!(!names.contains(&artifact.to_string()) && !names.contains(&"down.sha256".to_string()), "[{label}] {names:?}");
    let left = fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
    assert!(left > 0, "[{label}] nothing kept locally");

    server.restart();
    let report = json(&site.ok(&["pull", &site.loc("down"), "-o", out.to_str().unwrap(), "--json"]).stdout);
    let f = report["files"].as_array().unwrap().iter().find(|f| f["name"] == artifact).unwrap().clone();
    let (sent, from) = (f["sent"].as_u64().unwrap(), f["resumed_from"].as_u64().unwrap());
    assert_eq!(from, left, "[{label}] resumed from what was kept: {f}");
    assert_eq!(sent + from, size, "[{label}] {f}");
    eprintln!("[{label}] second pull resumed at byte {from}: received only {sent} of {size} bytes");
    assert_eq!(files_in(&out), vec!["down.sha256".to_string(), artifact.to_string()]);
    sh(&format!("cd '{}' && sha256sum -c down.sha256", out.display()));
}

#[test]
fn ftp_server_killed_mid_pull_then_pull_resumes() {
    let mut server = Vsftpd::anonymous();
    let site = ftp_site(&server);
    killed_then_pull_resumes(&site, &mut server.proc);
}

#[test]
fn sftp_server_killed_mid_pull_then_pull_resumes() {
    let mut server = Sshd::start();
    let site = sftp_site(&server);
    killed_then_pull_resumes(&site, &mut server.proc);
}

#[test]
fn http_server_killed_mid_pull_then_pull_resumes() {
    let mut server = Nginx::start();
    let site = http_site(&server);
    fs::create_dir_all(&site.data_dir).unwrap();
    killed_then_pull_resumes(&site, &mut server.proc);
}

// ------------------------------------------------------------------ corrupted on the server

/// A byte flipped in the served artifact: `pull`, `load` and `verify` exit 3 and
/// nothing is committed locally.
fn corrupted_on_server(site: &Site) {
    let label = site.label;
    let work = servers::tempdir("ferry-e2e-corrupt-");
    let w = work.path();
    let image = format!("docker-archive:{}", fixture(FIXTURE).display());
    site.ok(&["save", &image, "-o", &site.url, "-n", "damaged"]);
    let served = site.data_dir.join("damaged.tar.zst");
    let len = fs::metadata(&served).unwrap().len();
    flip_byte(&served, len / 2);

    let pulled = w.join("pulled");
    let r = site.run(&["pull", &site.loc("damaged"), "-o", pulled.to_str().unwrap()]);
    assert_eq!(r.code, 3, "[{label}] pull of a corrupted file: exit {}\n{}", r.code, r.stderr);
    assert!(r.stderr.contains("checksum"), "[{label}] {}", r.stderr);
    assert_eq!(files_in(&pulled), Vec::<String>::new(), "[{label}] nothing may be committed (nor left) locally");

    let oci = w.join("oci");
    let into = format!("oci:{}", oci.display());
    let r = site.run(&["load", &site.loc("damaged"), "--into", &into, "--allow-unsigned"]);
    assert_eq!(r.code, 3, "[{label}] load of a corrupted file: exit {}\n{}", r.code, r.stderr);
    assert!(r.stderr.contains("checksum"), "[{label}] {}", r.stderr);
    assert!(!oci.exists() || files_in(&oci).is_empty(), "[{label}] load left {:?}", files_in(&oci));
    assert_eq!(files_in(w), vec!["pulled".to_string()], "[{label}] nothing else written: {:?}", files_in(w));

    let r = site.run(&["verify", &site.loc("damaged")]);
    assert_eq!(r.code, 3, "[{label}] verify: {}", r.stderr);
    eprintln!("[{label}] corrupted on the server: pull/load/verify exit 3: {}", r.stderr.lines().next().unwrap_or(""));
}

#[test]
fn ftp_corrupted_download_is_caught() {
    let server = Vsftpd::anonymous();
    corrupted_on_server(&ftp_site(&server));
}

#[test]
fn sftp_corrupted_download_is_caught() {
    let server = Sshd::start();
    corrupted_on_server(&sftp_site(&server));
}

#[test]
fn http_corrupted_download_is_caught() {
    let server = Nginx::start();
    corrupted_on_server(&http_site(&server));
}

// ------------------------------------------------------------------ host keys, passwords, down

#[test]
fn sftp_unknown_host_key_refused_then_accepted_with_flag() {
    let server = Sshd::start();
    let h = home();
    let kh = h.path().join("fresh_known_hosts");
    let key = server.key.display().to_string();
    let url = format!("{}/", server.url());
    let base = ["--ssh-key", key.as_str(), "--known-hosts", kh.to_str().unwrap()];

    let r = ferry_in(h.path(), &[&base[..], &["ls", &url]].concat(), &[]);
    assert_eq!(r.code, 4, "unknown host key must be refused with exit 4:\n{}", r.stderr);
    assert!(r.stderr.contains("SHA256:"), "the message shows the fingerprint: {}", r.stderr);
    assert!(!kh.exists(), "a refused key must not be recorded");
    eprintln!("unknown host key: {}", r.stderr.trim());

    let r = ferry_in(h.path(), &[&base[..], &["--accept-new-host-key", "ls", &url]].concat(), &[]);
    assert_eq!(r.code, 0, "--accept-new-host-key: {}", r.stderr);
    let recorded = fs::read_to_string(&kh).unwrap();
    assert!(recorded.contains(server.host_pub.split_whitespace().nth(1).unwrap()), "{recorded}");
    // Now known: the strict default connects.
    let r = ferry_in(h.path(), &[&base[..], &["ls", &url]].concat(), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    // A changed key is refused even with --accept-new-host-key.
    let other = h.path().join("other_host");
    servers::ssh_keygen(&other, "other");
    let other_pub = fs::read_to_string(other.with_extension("pub")).unwrap();
    let b64 = other_pub.split_whitespace().nth(1).unwrap();
    fs::write(&kh, format!("[127.0.0.1]:{} ssh-ed25519 {b64}\n", server.port)).unwrap();
    let r = ferry_in(h.path(), &[&base[..], &["--accept-new-host-key", "ls", &url]].concat(), &[]);
    assert_eq!(r.code, 4, "a changed host key must be refused:\n{}", r.stderr);
}

#[test]
fn wrong_password_fails_with_exit_4_and_no_password_in_output() {
    const WRONG: &str = "Wr0ng-pw-s3cr3t";
    let h = home();

    let ftp = Vsftpd::local_user();
    let t0 = Instant::now();
    let r = ferry_in(h.path(), &["ls", &ftp.url_with_password(WRONG)], &[]);
    assert_eq!(r.code, 4, "ftp wrong password: {}", r.stderr);
    assert!(!r.stderr.contains(WRONG) && !r.stdout.contains(WRONG), "password leaked: {}", r.stderr);
    assert!(r.stderr.contains("authentication"), "{}", r.stderr);
    eprintln!("ftp wrong password ({:?}): {}", t0.elapsed(), r.stderr.trim());
    // Right password from the environment instead of the URL works.
    let url = format!("ftp://{TEST_USER}@127.0.0.1:{}/", ftp.port);
    let r = ferry_in(h.path(), &["ls", &url], &[("FERRY_FTP_PASSWORD", TEST_PASSWORD)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = ferry_in(h.path(), &["ls", &url], &[("FERRY_FTP_PASSWORD", WRONG)]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(!r.stderr.contains(WRONG), "password leaked: {}", r.stderr);

    let sshd = Sshd::start();
    let kh = sshd.known_hosts.display().to_string();
    let wrong_url = sshd.user_url(WRONG);
    let r = ferry_in(h.path(), &["--known-hosts", &kh, "ls", &wrong_url], &[]);
    assert_eq!(r.code, 4, "sftp wrong password: {}", r.stderr);
    assert!(!r.stderr.contains(WRONG), "password leaked: {}", r.stderr);
    eprintln!("sftp wrong password: {}", r.stderr.trim());
    let no_pw = wrong_url.replace(&format!(":{WRONG}@"), "@");
    let r = ferry_in(h.path(), &["--known-hosts", &kh, "ls", &no_pw], &[("FERRY_SFTP_PASSWORD", WRONG)]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(!r.stderr.contains(WRONG), "password leaked: {}", r.stderr);
    let r = ferry_in(h.path(), &["--known-hosts", &kh, "ls", &no_pw], &[("FERRY_SFTP_PASSWORD", TEST_PASSWORD)]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    let nginx = Nginx::start();
    let url = format!("http://{TEST_USER}:{WRONG}@127.0.0.1:{}/private/", nginx.port);
    let r = ferry_in(h.path(), &["ls", &url], &[]);
    assert_eq!(r.code, 4, "http wrong password: {}", r.stderr);
    assert!(!r.stderr.contains(WRONG), "password leaked: {}", r.stderr);
    eprintln!("http wrong password: {}", r.stderr.trim());
    let r = ferry_in(h.path(), &["ls", &nginx.url("token/")], &[("FERRY_HTTP_TOKEN", WRONG)]);
    assert_eq!(r.code, 4, "http wrong token: {}", r.stderr);
    assert!(!r.stderr.contains(WRONG), "token leaked: {}", r.stderr);
}

#[test]
fn server_down_fails_fast_with_exit_4() {
    let h = home();
    let port = free_port(); // nothing listens there
    let work = servers::tempdir("ferry-e2e-down-");
    let sums = big_bundle(work.path(), "small", 4096);
    for url in [
        format!("ftp://127.0.0.1:{port}/pub/incoming/"),
        format!("sftp://root@127.0.0.1:{port}/tmp/"),
        format!("http://127.0.0.1:{port}/drop/"),
    ] {
        for args in [vec!["ls", url.as_str()], vec!["push", sums.to_str().unwrap(), url.as_str()]] {
            let t0 = Instant::now();
            let r = ferry_in(h.path(), &args, &[]);
            let took = t0.elapsed();
            assert_eq!(r.code, 4, "{args:?} to a server that is down: {}", r.stderr);
            assert!(took < Duration::from_secs(5), "{args:?} took {took:?}");
            eprintln!("{args:?}: exit 4 in {took:?}: {}", r.stderr.lines().next().unwrap_or(""));
        }
        let pulled = work.path().join("pulled");
        let r = ferry_in(h.path(), &["pull", &format!("{url}small"), "-o", pulled.to_str().unwrap()], &[]);
        assert_eq!(r.code, 4, "pull from a server that is down: {}", r.stderr);
        let r = ferry_in(h.path(), &["load", &format!("{url}small"), "--into", "oci:/nonexistent-ferry", "--allow-unsigned"], &[]);
        assert_eq!(r.code, 4, "load from a server that is down: {}", r.stderr);
    }
}

/// A temporary file left on the server by an earlier attempt is damaged (it does not
/// match the source): the resumed push notices the checksum mismatch and starts over
/// from byte 0 once — on an anonymous incoming folder, where ferry cannot delete it.
#[test]
fn ftp_push_over_a_damaged_partial_starts_over() {
    let server = Vsftpd::anonymous();
    let site = ftp_site(&server);
    let work = servers::tempdir("ferry-e2e-damaged-partial-");
    let sums = big_bundle(work.path(), "mended", 8 * MIB);
    let partial = site.data_dir.join("mended.tar.zst.partial");
    sh(&format!("head -c {} /dev/urandom > '{}' && chmod 666 '{}'", 3 * MIB, partial.display(), partial.display()));
    let report = json(&site.ok(&["push", sums.to_str().unwrap(), &site.url, "--json"]).stdout);
    let f = &report["files"][0];
    assert_eq!(f["name"], "mended.tar.zst");
    assert_eq!((f["sent"].as_u64().unwrap(), f["resumed_from"].as_u64().unwrap()), (8 * MIB, 0), "{report}");
    sh(&format!("cd '{}' && sha256sum -c mended.sha256", site.data_dir.display()));
    assert!(!partial.exists());
}

// ------------------------------------------------------------------ stalled servers

/// A server that goes silent (every process SIGSTOPped: the kernel still accepts and
/// acknowledges, nothing answers) must not hang ferry: each transfer gives up after
/// `--timeout` of silence with exit 4, leaves nothing under a final name, and its
/// memory stays bounded. Checked mid-download (`pull` and `load`) and before the
/// server's first word (`ls`).
fn stalled_server_ends_with_exit_4(site: &Site, server: &servers::Proc) {
    let label = site.label;
    // A 2 GiB artifact (more than a download moves before the server is frozen) that
    // `load` reads as far as a verifier would: documents, then one huge layer.
    let artifact = site.data_dir.join("stall.tar");
    fs::create_dir_all(&site.data_dir).unwrap();
    stalling_artifact(&artifact, 2048 * MIB);
    fs::write(site.data_dir.join("stall.sha256"), format!("{}  stall.tar\n", "0".repeat(64))).unwrap();
    sh(&format!("chmod 644 '{}' '{}'", artifact.display(), site.data_dir.join("stall.sha256").display()));
    let work = servers::tempdir("ferry-e2e-stall-");
    let out_dir = work.path().join("pulled");
    let oci = work.path().join("oci");
    let oci_target = format!("oci:{}", oci.display());
    let source = site.loc("stall");
    let timeout = 3;
    for (what, args) in [
        ("pull", vec!["--timeout", "3s", "pull", source.as_str(), "-o", out_dir.to_str().unwrap()]),
        ("load", vec!["--timeout", "3s", "load", source.as_str(), "--into", &oci_target, "--allow-unsigned"]),
    ] {
        let rss_file = work.path().join(format!("{what}.rss"));
        let mut cmd = Command::new("/usr/bin/time");
        cmd.arg("-f").arg("%M").arg("-o").arg(&rss_file);
        let inner = ferry_cmd(site.home.path(), &site.args(&args), &[]);
        cmd.arg(inner.get_program()).args(inner.get_args()).env("HOME", site.home.path()).stdin(Stdio::null());
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let time_pid = child.id();
        let ferry_pid = || servers::descendants(time_pid).first().copied();
        let deadline = Instant::now() + Duration::from_secs(60);
        // Freeze once ferry has received 8 MiB (it writes them, or hashes them for load).
        loop {
            let got = ferry_pid().map(|p| io_counter(p, "rchar:").max(io_counter(p, "wchar:"))).unwrap_or(0);
            if got >= 8 * MIB {
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                let out = child.wait_with_output().unwrap();
                panic!("[{label}] {what} ended ({status}) before the server was frozen: {}", String::from_utf8_lossy(&out.stderr));
            }
            assert!(Instant::now() < deadline, "[{label}] {what} did not start downloading");
            std::thread::sleep(Duration::from_millis(2));
        }
        let frozen = server.freeze();
        let t0 = Instant::now();
        let out = child.wait_with_output().unwrap();
        let took = t0.elapsed();
        server.thaw(&frozen);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let kib: u64 = fs::read_to_string(&rss_file).unwrap().lines().rev().find_map(|l| l.trim().parse().ok()).unwrap();
        eprintln!(
            "[{label}] server frozen mid-{what}: exit {:?} after {took:?}, peak RSS {kib} KiB: {}",
            out.status.code(),
            stderr.lines().find(|l| l.contains("error:")).unwrap_or("")
        );
        assert_eq!(out.status.code(), Some(4), "[{label}] a {what} from a stalled server is a transport failure:\n{stderr}");
        assert!(
            stderr.contains("nothing for 3 s") || stderr.to_lowercase().contains("timed out") || stderr.contains("timeout"),
            "[{label}] {what}: the message should say the server went silent:\n{stderr}"
        );
        assert!(took < Duration::from_secs(timeout + 20), "[{label}] {what} took {took:?} to give up on a silent server");
        assert!(kib < 100 * 1024, "[{label}] {what}: peak RSS {kib} KiB");
        assert!(!out_dir.join("stall.tar").exists() && !out_dir.join("stall.sha256").exists(), "[{label}] {what} left a final name");
        assert!(!oci.exists(), "[{label}] {what} created the target");
    }
    // Silent before its first word: the control connection times out as well.
    let frozen = server.freeze();
    let t0 = Instant::now();
    let r = site.run(&["--timeout", "2s", "ls", &site.url]);
    server.thaw(&frozen);
    eprintln!("[{label}] ls of a frozen server: exit {} after {:?}: {}", r.code, t0.elapsed(), r.stderr.lines().next().unwrap_or(""));
    assert_eq!(r.code, 4, "[{label}] ls of a stalled server:\n{}", r.stderr);
    assert!(t0.elapsed() < Duration::from_secs(2 + 20), "[{label}] ls took {:?}", t0.elapsed());
}

/// An uncompressed artifact of `size` bytes: oci-layout, index.json, a manifest and a
/// config, then a layer entry that runs (sparse zeros) to the end of the file.
fn stalling_artifact(path: &Path, size: u64) {
    let digest = |b: &[u8]| format!("sha256:{}", common::sha256_hex(b));
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let mut tar = common::RawTar::new();
    tar.entry("oci-layout", tar::EntryType::Regular, br#"{"imageLayoutVersion":"1.0.0"}"#, "");
    let layer_size = size - 16 * 1024;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": format!("sha256:{}", "1".repeat(64)), "size": layer_size}],
    }))
    .unwrap();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest(&manifest), "size": manifest.len()}],
        "annotations": {"dev.ferry.bundle.format": "1"},
    }))
    .unwrap();
    tar.entry("index.json", tar::EntryType::Regular, &index, "");
    tar.entry(&format!("blobs/sha256/{}", &digest(&manifest)[7..]), tar::EntryType::Regular, &manifest, "");
    tar.entry(&format!("blobs/sha256/{}", &digest(config)[7..]), tar::EntryType::Regular, config, "");
    tar.entry_sized(&format!("blobs/sha256/{}", "1".repeat(64)), tar::EntryType::Regular, &[], layer_size, "");
    let head = std::mem::take(&mut tar.0);
    assert!((head.len() as u64) < 16 * 1024);
    let f = fs::File::create(path).unwrap();
    (&f).write_all(&head).unwrap();
    f.set_len(size).unwrap();
}

/// A counter of /proc/PID/io (`rchar:`, `wchar:`): bytes a process has read or written.
fn io_counter(pid: u32, key: &str) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix(key).map(|v| v.trim().parse().unwrap_or(0))))
        .unwrap_or(0)
}

#[test]
fn ftp_server_stalled_mid_download_ends_with_exit_4() {
    let server = Vsftpd::anonymous();
    stalled_server_ends_with_exit_4(&ftp_site(&server), &server.proc);
}

#[test]
fn sftp_server_stalled_mid_download_ends_with_exit_4() {
    let server = Sshd::start();
    stalled_server_ends_with_exit_4(&sftp_site(&server), &server.proc);
}

#[test]
fn http_server_stalled_mid_download_ends_with_exit_4() {
    let server = Nginx::start();
    stalled_server_ends_with_exit_4(&http_site(&server), &server.proc);
}

/// A drop with more entries than ferry's listing bound (100 000): `ls` ends with
/// exit 4 naming the bound, within bounded memory, instead of collecting whatever
/// the server sends (suppaftp's LIST and ssh2's readdir read it all).
fn listing_past_the_bound_is_refused(site: &Site) {
    let bound = ferry_transports::MAX_LISTING_ENTRIES;
    fs::create_dir_all(&site.data_dir).unwrap();
    for n in 0..=bound {
        fs::File::create(site.data_dir.join(format!("f{n:06}"))).unwrap();
    }
    let args = site.args(&["ls", &site.url]);
    let home = site.home.path().to_str().unwrap();
    let t0 = Instant::now();
    let (r, kib) = common::ferry_rss_without(&args, &[("HOME", home)], &["SSH_AUTH_SOCK", "NETRC"]);
    let label = site.label;
    eprintln!("[{label}] ls of {} files: exit {} in {:?}, peak RSS {} KiB: {}", bound + 1, r.code, t0.elapsed(), kib, r.stderr.trim());
    assert_eq!(r.code, 4, "[{label}] ls of an oversized directory:\n{}", r.stderr);
    assert!(r.stderr.contains(&format!("more than {bound} entries")), "[{label}] the bound is named:\n{}", r.stderr);
    assert!(kib < common::HOSTILE_RSS_LIMIT_KIB, "[{label}] peak RSS {kib} KiB");
    // One entry fewer is an ordinary listing.
    fs::remove_file(site.data_dir.join(format!("f{bound:06}"))).unwrap();
    let r = site.run(&["ls", &site.url]);
    assert_eq!(r.code, 0, "[{label}] ls at the bound:\n{}", r.stderr);
}

#[test]
fn ftp_listing_past_the_bound_is_refused() {
    let server = Vsftpd::anonymous();
    listing_past_the_bound_is_refused(&ftp_site(&server));
}

#[test]
fn sftp_listing_past_the_bound_is_refused() {
    let server = Sshd::start();
    listing_past_the_bound_is_refused(&sftp_site(&server));
}

#[test]
fn http_listing_past_the_bound_is_refused() {
    let server = Nginx::start();
    listing_past_the_bound_is_refused(&http_site(&server));
}
