//! The one conformance suite (tests/support/suite.rs) against every backend, each on a
//! real server started by the harness (tests/support/mod.rs).
mod support;

use ferry_transports::{open_with, SshAgent, Transport, TransportOptions};
use std::sync::Arc;
use support::suite::{big_size, run, Backend};
use support::*;

fn backend(label: &'static str, location: String, opts: TransportOptions) -> Backend {
    let opts = Arc::new(opts);
    Backend {
        label,
        open: Box::new(move || -> Box<dyn Transport> { open_with(&location, &opts).unwrap_or_else(|e| panic!("opening {location}: {e}")) }),
        big: big_size(),
    }
}

#[test]
fn memory() {
    let name = format!("conformance-{}", std::process::id());
    run(&Backend {
        label: "memory",
        open: Box::new(move || -> Box<dyn Transport> { Box::new(ferry_transports::MemoryTransport::named(&name)) }),
        big: big_size(),
    });
}

#[test]
fn dir() {
    let d = tempdir("ferry-dir-");
    let location = d.path().join("usb key").display().to_string();
    run(&backend("dir", location.clone(), isolated_options()));
    assert_moved(&std::path::Path::new(&location).join("done/set aside"));
}

#[test]
fn ftp_anonymous_incoming() {
    let server = Vsftpd::anonymous();
    let b = backend("ftp-anonymous", server.url(), isolated_options());
    let caps = (b.open)().capabilities();
    assert!(!caps.overwrite && !caps.delete, "anonymous FTP must declare no overwrite/delete: {caps:?}");
    run(&b);
    assert_moved(&server.data_dir.join("done/set aside"));
}

#[test]
fn ftp_local_user() {
    let server = Vsftpd::local_user();
    run(&backend("ftp-user", server.url(), isolated_options()));
    assert_moved(&server.data_dir.join("done/set aside"));
    assert!(server.data_dir.join("hello.txt").exists() || server.data_dir.join("binary.bin").exists());
}

#[test]
fn ftps_local_user() {
    let server = Vsftpd::local_user_tls();
    let opts = TransportOptions { ca_cert: server.tls_cert.clone(), ..isolated_options() };
    run(&backend("ftps-user", server.url(), opts));
}

#[test]
fn sftp_key_file() {
    let server = Sshd::start();
    let opts =
        TransportOptions { known_hosts: Some(server.known_hosts.clone()), identity_files: vec![server.key.clone()], ..isolated_options() };
    run(&backend("sftp-keyfile", server.url(), opts));
    assert_moved(&server.data_dir.join("done/set aside"));
    assert!(server.data_dir.join("binary.bin").exists());
}

#[test]
fn sftp_agent_second_key() {
    let server = Sshd::start();
    // The first agent key is not authorized: ssh2's userauth_agent alone would fail.
    let agent = Agent::with_keys(&[&server.unauthorized_key, &server.key]);
    let opts = TransportOptions {
        known_hosts: Some(server.known_hosts.clone()),
        ssh_agent: ferry_transports::SshAgent::Socket(agent.socket.clone()),
        ..isolated_options()
    };
    assert!(matches!(opts.ssh_agent, SshAgent::Socket(_)));
    run(&backend("sftp-agent", server.url(), opts));
}

#[test]
fn http_webdav() {
    let server = Nginx::start();
    run(&backend("http-webdav", server.url("drop/"), isolated_options()));
    assert_moved(&server.www.join("drop/done/set aside"));
    assert!(server.www.join("drop").join("binary.bin").exists());
}

/// What the suite's move step set aside, on the server's disk.
fn assert_moved(folder: &std::path::Path) {
    for name in ["moved-1.txt", "moved 2.txt"] {
        let got = std::fs::read(folder.join(name)).unwrap_or_else(|e| panic!("{}: {e}", folder.join(name).display()));
        assert_eq!(got, b"set aside");
    }
}
