//! Secrets from the environment and $NETRC. One test in its own binary (its own
//! process), so that changing the environment races with nothing.
mod support;

use ferry_transports::{open_with, TransportOptions};
use support::suite::{get_all, put_all};
use support::*;

#[test]
fn secrets_from_environment_and_netrc_env() {
    let nginx = Nginx::start();
    let ftp = Vsftpd::local_user();
    let dir = tempdir("ferry-env-");
    let netrc = dir.path().join("netrc");
    std::fs::write(&netrc, format!("machine 127.0.0.1 login {TEST_USER} password {TEST_PASSWORD}\n")).unwrap();
    let opts = TransportOptions { use_env: true, ..isolated_options() };

    std::env::set_var("FERRY_HTTP_TOKEN", HTTP_TOKEN);
    let t = open_with(&nginx.url("token/"), &opts).unwrap();
    put_all(&*t, "env-token.txt", b"bearer from env").unwrap();
    assert_eq!(get_all(&*t, "env-token.txt", 0).unwrap(), b"bearer from env");
    std::env::remove_var("FERRY_HTTP_TOKEN");
    assert!(open_with(&nginx.url("token/"), &opts).unwrap().stat("env-token.txt").is_err());

    std::env::set_var("FERRY_FTP_PASSWORD", TEST_PASSWORD);
    let url = format!("ftp://{TEST_USER}@127.0.0.1:{}/drop/", ftp.port);
    let t = open_with(&url, &opts).unwrap();
    assert!(!t.describe().contains(TEST_PASSWORD));
    put_all(&*t, "env-password.txt", b"password from env").unwrap();
    std::env::remove_var("FERRY_FTP_PASSWORD");

    // $NETRC names the netrc file; the URL names no user at all.
    std::env::set_var("NETRC", &netrc);
    let opts = TransportOptions { use_env: true, use_netrc: true, ..isolated_options() };
    let t = open_with(&format!("ftp://127.0.0.1:{}/drop/", ftp.port), &opts).unwrap();
    assert_eq!(get_all(&*t, "env-password.txt", 0).unwrap(), b"password from env");
    std::env::remove_var("NETRC");
}
