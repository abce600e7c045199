//! Faults on real servers: killed mid-upload, host keys, wrong passwords, servers that
//! are down or hung, TLS trust, passive modes, credentials from netrc.
mod support;

use ferry_transports::{open_with, partial_name, FtpPassive, FtpTransport, PutMode, Transport, TransportError, TransportOptions};
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::data;
use support::suite::{get_all, put_all};
use support::*;

const MIB: u64 = 1024 * 1024;

fn open(location: &str, opts: &TransportOptions) -> Box<dyn Transport> {
    open_with(location, opts).unwrap_or_else(|e| panic!("opening {location}: {e}"))
}

/// Kill the server (and its session processes) in the middle of an upload, check that
/// nothing appears under the final name, restart it and finish with `put(Resume)`.
fn killed_mid_upload(label: &str, open: &dyn Fn() -> Box<dyn Transport>, server: &mut Proc, data_dir: &Path) {
    const NAME: &str = "killed.bin";
    let total = 48 * MIB;
    let first = 16 * MIB;
    let seed = 77;
    let t = open();
    let mut up = t.put(NAME, PutMode::Fresh).unwrap();
    data::write_stream(&mut up, seed, 0, first).unwrap();
    up.flush().unwrap();
    let partial = data_dir.join(partial_name(NAME));
    if t.capabilities().resume_upload {
        // Let the server write some of it to disk before it dies.
        let deadline = Instant::now() + Duration::from_secs(5);
        while fs::metadata(&partial).map(|m| m.len()).unwrap_or(0) < MIB && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    server.kill();
    let mut failed = None;
    let mut sent = first;
    while sent < total {
        if let Err(e) = data::write_stream(&mut up, seed, sent, MIB) {
            failed = Some(e.to_string());
            break;
        }
        sent += MIB;
    }
    let outcome = match failed {
        Some(e) => {
            drop(up);
            format!("write failed: {e}")
        }
        None => match up.commit() {
            Err(e) => format!("commit failed: {e}"),
            Ok(()) => panic!("[{label}] upload to a killed server succeeded"),
        },
    };
    eprintln!("[{label}] server killed mid-upload: {outcome}");
    assert!(!data_dir.join(NAME).exists(), "[{label}] a file appeared under its final name");

    server.restart();
    let t = open();
    assert_eq!(t.stat(NAME).unwrap(), None);
    let on_server = fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
    let mut up = t.put(NAME, PutMode::Resume).unwrap();
    let from = up.resumed_from();
    if t.capabilities().resume_upload {
        assert!(on_server > 0, "[{label}] nothing of the first attempt reached the server");
        assert_eq!(from, on_server, "[{label}] resumed_from must be what the server holds");
    } else {
        assert_eq!(from, 0);
    }
    data::write_stream(&mut up, seed, from, total - from).unwrap();
    up.commit().unwrap();
    let (n, h) = data::read_sha(&mut *t.get(NAME, 0).unwrap()).unwrap();
    assert_eq!((n, h), (total, data::stream_sha(seed, 0, total)), "[{label}] content after resume");
    eprintln!("[{label}] after restart: resumed at byte {from} of {total}; content verified");
}

#[test]
fn ftp_server_killed_mid_upload() {
    let mut server = Vsftpd::local_user();
    let url = server.url();
    let data_dir = server.data_dir.clone();
    killed_mid_upload("ftp", &|| open(&url, &isolated_options()), &mut server.proc, &data_dir);
}

#[test]
fn sftp_server_killed_mid_upload() {
    let mut server = Sshd::start();
    let url = server.url();
    let opts =
        TransportOptions { known_hosts: Some(server.known_hosts.clone()), identity_files: vec![server.key.clone()], ..isolated_options() };
    let data_dir = server.data_dir.clone();
    killed_mid_upload("sftp", &|| open(&url, &opts), &mut server.proc, &data_dir);
}

#[test]
fn http_server_killed_mid_upload() {
    let mut server = Nginx::start();
    let url = server.url("drop/");
    let data_dir = server.www.join("drop");
    killed_mid_upload("http", &|| open(&url, &isolated_options()), &mut server.proc, &data_dir);
}

fn sftp_opts(server: &Sshd, known_hosts: PathBuf, accept_new: bool) -> TransportOptions {
    TransportOptions {
        known_hosts: Some(known_hosts),
        accept_new_host_key: accept_new,
        identity_files: vec![server.key.clone()],
        ..isolated_options()
    }
}

#[test]
fn sftp_unknown_host_key_refused_then_accepted_with_accept_new() {
    let server = Sshd::start();
    let kh = server.dir.path().join("fresh").join("known_hosts");
    let err = open(&server.url(), &sftp_opts(&server, kh.clone(), false)).stat("x").unwrap_err();
    eprintln!("unknown host key: {err}");
    assert!(matches!(err, TransportError::HostKey { .. }), "{err:?}");
    assert!(err.to_string().contains("SHA256:"), "the message should show the fingerprint: {err}");
    assert!(!kh.exists(), "a refused key must not be recorded");

    assert_eq!(open(&server.url(), &sftp_opts(&server, kh.clone(), true)).stat("x").unwrap(), None);
    let recorded = fs::read_to_string(&kh).unwrap();
    let key_b64 = server.host_pub.split_whitespace().nth(1).unwrap();
    assert_eq!(recorded.trim(), format!("[127.0.0.1]:{} ssh-ed25519 {key_b64}", server.port));
    // Now known: a strict client connects.
    assert_eq!(open(&server.url(), &sftp_opts(&server, kh.clone(), false)).stat("x").unwrap(), None);
    // Also with the entry among other hosts on its line, after a line libssh2 cannot
    // parse, and hashed (Debian's ssh hashes known_hosts by default).
    let multi = server.dir.path().join("multi_known_hosts");
    fs::write(&multi, format!("@cert-authority *.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBogus\nother.example,{}", recorded)).unwrap();
    assert_eq!(open(&server.url(), &sftp_opts(&server, multi, false)).stat("x").unwrap(), None);
    let hashed = server.dir.path().join("hashed_known_hosts");
    fs::write(&hashed, &recorded).unwrap();
    let keygen = require("ssh-keygen", "openssh-client");
    let out = std::process::Command::new(&keygen).arg("-H").arg("-f").arg(&hashed).output().unwrap();
    assert!(out.status.success(), "ssh-keygen -H: {}", String::from_utf8_lossy(&out.stderr));
    assert!(fs::read_to_string(&hashed).unwrap().starts_with("|1|"), "not hashed");
    assert_eq!(open(&server.url(), &sftp_opts(&server, hashed, false)).stat("x").unwrap(), None);
    // OpenSSH's own client agrees with what was recorded.
    let ssh_keygen = require("ssh-keygen", "openssh-client");
    let out = std::process::Command::new(ssh_keygen).args(["-F", &format!("[127.0.0.1]:{}", server.port), "-f"]).arg(&kh).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(key_b64), "ssh-keygen -F does not find the recorded key");
}

#[test]
fn sftp_changed_host_key_refused_even_with_accept_new() {
    let server = Sshd::start();
    let other = server.dir.path().join("other_host_key");
    ssh_keygen(&other, "impostor");
    let other_pub = fs::read_to_string(other.with_extension("pub")).unwrap();
    let mut f = other_pub.split_whitespace();
    let kh = server.dir.path().join("changed_known_hosts");
    let line = format!("[127.0.0.1]:{} {} {}\n", server.port, f.next().unwrap(), f.next().unwrap());
    fs::write(&kh, &line).unwrap();
    for accept_new in [false, true] {
        let err = open(&server.url(), &sftp_opts(&server, kh.clone(), accept_new)).stat("x").unwrap_err();
        eprintln!("changed host key (accept_new={accept_new}): {err}");
        assert!(matches!(err, TransportError::HostKey { .. }), "{err:?}");
        assert!(err.to_string().contains("does NOT match"), "{err}");
    }
    assert_eq!(fs::read_to_string(&kh).unwrap(), line, "known_hosts must not change");
}

fn assert_auth_error(label: &str, err: &TransportError, secret: &str) {
    eprintln!("[{label}] wrong password: {err}");
    assert!(matches!(err, TransportError::Auth { .. }), "[{label}] expected Auth, got {err:?}");
    for text in [err.to_string(), format!("{err:?}"), format!("{err:#?}")] {
        assert!(!text.contains(secret), "[{label}] the password leaks: {text}");
    }
}

#[test]
fn ftp_wrong_password_is_auth_error_without_the_password() {
    let server = Vsftpd::local_user();
    let secret = "wrong-Secret-8812";
    let url = server.url_with_password(secret);
    let t = FtpTransport::open(&url, &isolated_options()).unwrap();
    assert!(!t.describe().contains(secret) && !format!("{t:?}").contains(secret));
    assert_auth_error("ftp stat", &t.stat("x").unwrap_err(), secret);
    assert_auth_error("ftp put", &t.put("x", PutMode::Fresh).err().unwrap(), secret);
    // A password that is also a common word must not leak from the server's reply either.
    let opts = TransportOptions { password: Some(secret.into()), ..isolated_options() };
    assert!(!format!("{opts:?}").contains(secret));
    let t = open(&format!("ftp://{TEST_USER}@127.0.0.1:{}/drop/", server.port), &opts);
    assert_auth_error("ftp password option", &t.stat("x").unwrap_err(), secret);
}

#[test]
fn ftp_credentials_from_netrc() {
    let server = Vsftpd::local_user();
    let dir = tempdir("ferry-netrc-");
    let netrc = dir.path().join("netrc");
    fs::write(&netrc, format!("machine 127.0.0.1\n  login {TEST_USER}\n  password {TEST_PASSWORD}\n")).unwrap();
    let opts = TransportOptions { netrc: Some(netrc), use_netrc: true, ..isolated_options() };
    let url = format!("ftp://127.0.0.1:{}/drop/", server.port);
    let t = open(&url, &opts);
    assert!(t.capabilities().delete, "a netrc login is not anonymous");
    put_all(&*t, "netrc.txt", b"from netrc").unwrap();
    assert_eq!(get_all(&*t, "netrc.txt", 0).unwrap(), b"from netrc");
    assert!(server.data_dir.join("netrc.txt").exists());
}

#[test]
fn sftp_password_login_and_wrong_password() {
    let server = Sshd::start();
    let opts = TransportOptions { known_hosts: Some(server.known_hosts.clone()), ..isolated_options() };
    let t = open(&server.user_url(TEST_PASSWORD), &opts);
    put_all(&*t, "pw.txt", b"password login").unwrap();
    assert_eq!(get_all(&*t, "pw.txt", 0).unwrap(), b"password login");
    let secret = "wrong-Secret-4471";
    let t = open(&server.user_url(secret), &opts);
    assert!(!t.describe().contains(secret));
    assert_auth_error("sftp", &t.stat("x").unwrap_err(), secret);
    // No usable key and no password: an Auth error that says what was tried.
    let opts = TransportOptions { identity_files: vec![server.unauthorized_key.clone()], ..opts };
    let err = open(&server.url(), &opts).stat("x").unwrap_err();
    eprintln!("[sftp] unauthorized key: {err}");
    assert!(matches!(err, TransportError::Auth { .. }) && err.to_string().contains("client_other"), "{err}");
}

#[test]
fn http_basic_auth_bearer_token_and_wrong_password() {
    let server = Nginx::start();
    let opts = isolated_options();
    let good = format!("http://{TEST_USER}:{TEST_PASSWORD}@127.0.0.1:{}/private/", server.port);
    let t = open(&good, &opts);
    put_all(&*t, "basic.txt", b"basic auth").unwrap();
    assert_eq!(get_all(&*t, "basic.txt", 0).unwrap(), b"basic auth");
    assert_eq!(t.list().unwrap().len(), 1);

    let secret = "wrong-Secret-9034";
    let t = open(&format!("http://{TEST_USER}:{secret}@127.0.0.1:{}/private/", server.port), &opts);
    assert_auth_error("http stat", &t.stat("basic.txt").unwrap_err(), secret);
    assert_auth_error("http put", &t.put("y.txt", PutMode::Fresh).err().unwrap(), secret);
    assert_auth_error("http get", &t.get("basic.txt", 0).err().unwrap(), secret);
    let anon = open(&server.url("private/"), &opts);
    assert!(matches!(anon.stat("basic.txt").unwrap_err(), TransportError::Auth { .. }));

    let token_url = server.url("token/");
    let with_token = TransportOptions { http_token: Some(HTTP_TOKEN.into()), ..isolated_options() };
    let t = open(&token_url, &with_token);
    put_all(&*t, "bearer.txt", b"bearer").unwrap();
    assert_eq!(get_all(&*t, "bearer.txt", 0).unwrap(), b"bearer");
    let wrong_token = TransportOptions { http_token: Some("not-the-token".into()), ..isolated_options() };
    assert_auth_error("http bearer", &open(&token_url, &wrong_token).stat("bearer.txt").unwrap_err(), "not-the-token");

    // A location without a directory index says plainly that listing is unsupported.
    let t = open(&server.url("noindex/"), &opts);
    put_all(&*t, "a.txt", b"a").unwrap();
    match t.list() {
        Err(e @ TransportError::Unsupported { .. }) => eprintln!("[http] no index: {e}"),
        other => panic!("list without autoindex: {other:?}"),
    }
}

#[test]
fn tls_trust_ftps_and_https() {
    let ftps = Vsftpd::local_user_tls();
    let trusted = TransportOptions { ca_cert: ftps.tls_cert.clone(), ..isolated_options() };
    let t = open(&ftps.url(), &trusted);
    put_all(&*t, "tls.txt", b"over TLS").unwrap();
    assert_eq!(get_all(&*t, "tls.txt", 0).unwrap(), b"over TLS");
    let err = open(&ftps.url(), &isolated_options()).stat("tls.txt").unwrap_err();
    eprintln!("[ftps] untrusted certificate: {err}");
    assert!(err.to_string().contains("certificate"), "{err}");
    // Plain FTP to a server that requires TLS for logins is refused by the server.
    let plain = ftps.url().replacen("ftps://", "ftp://", 1);
    assert!(open(&plain, &isolated_options()).stat("tls.txt").is_err());

    let nginx = Nginx::start();
    let trusted = TransportOptions { ca_cert: Some(nginx.cert.clone()), ..isolated_options() };
    let t = open(&nginx.tls_url("secure/"), &trusted);
    put_all(&*t, "tls.txt", b"over HTTPS").unwrap();
    assert_eq!(get_all(&*t, "tls.txt", 3).unwrap(), b"r HTTPS");
    let err = open(&nginx.tls_url("secure/"), &isolated_options()).stat("tls.txt").unwrap_err();
    eprintln!("[https] untrusted certificate: {err}");
    assert!(err.to_string().to_lowercase().contains("certificate"), "{err}");
}

#[test]
fn ftp_pasv_and_epsv() {
    let server = Vsftpd::local_user();
    for mode in [FtpPassive::Pasv, FtpPassive::Epsv] {
        let opts = TransportOptions { ftp_passive: mode, ..isolated_options() };
        let t = open(&server.url(), &opts);
        let name = format!("{mode:?}.bin");
        let content = data::bytes(1, 0, 300_000);
        put_all(&*t, &name, &content).unwrap();
        assert!(get_all(&*t, &name, 0).unwrap() == content, "{mode:?}");
        assert!(t.list().unwrap().iter().any(|e| e.name == name));
    }
}

#[test]
fn server_down_fails_fast() {
    let port = free_port(); // nothing listens there
    for url in [
        format!("ftp://127.0.0.1:{port}/x/"),
        format!("ftps://127.0.0.1:{port}/x/"),
        format!("sftp://root@127.0.0.1:{port}/x"),
        format!("http://127.0.0.1:{port}/x/"),
        format!("https://127.0.0.1:{port}/x/"),
    ] {
        let start = Instant::now();
        let err = open(&url, &isolated_options()).stat("f").unwrap_err();
        let took = start.elapsed();
        eprintln!("[down] {url}: {err} ({took:?})");
        assert!(took < Duration::from_secs(10), "{url}: took {took:?}");
        match &err {
            TransportError::Io { source, .. } => {
                assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused, "{url}: {err}")
            }
            other => panic!("{url}: expected an I/O error, got {other:?}"),
        }
        assert!(err.to_string().contains(&format!("127.0.0.1:{port}")), "{err}");
    }
}

#[test]
fn hung_server_times_out() {
    // Accepts TCP connections (the kernel does) but never says anything.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let opts = TransportOptions { io_timeout: Duration::from_secs(2), ..isolated_options() };
    for url in [format!("ftp://127.0.0.1:{port}/x/"), format!("sftp://root@127.0.0.1:{port}/x"), format!("http://127.0.0.1:{port}/x/")] {
        let start = Instant::now();
        let err = open(&url, &opts).stat("f").unwrap_err();
        let took = start.elapsed();
        eprintln!("[hung] {url}: {err} ({took:?})");
        assert!(took < Duration::from_secs(8), "{url}: took {took:?}");
    }
    drop(listener);
}

#[test]
fn passwords_never_in_describe_or_errors() {
    // describe() of URLs with passwords never shows them.
    for url in ["ftp://u:topsecret@127.0.0.1:1/x/", "sftp://u:topsecret@127.0.0.1:1/x", "https://u:topsecret@127.0.0.1:1/x/"] {
        let t = open(url, &isolated_options());
        assert!(!t.describe().contains("topsecret"), "{}", t.describe());
        let err = t.stat("f").unwrap_err();
        assert!(!format!("{err} {err:?}").contains("topsecret"));
    }
    let err = open_with("gopher://u:topsecret@h/x", &isolated_options()).err().unwrap();
    eprintln!("[invalid] {err}");
    assert!(!format!("{err} {err:?}").contains("topsecret"));
}
