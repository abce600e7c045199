//! Test harness: real servers (vsftpd, OpenSSH sshd with internal-sftp, nginx WebDAV,
//! ssh-agent) on 127.0.0.1, on free ports, each in its own temporary directory, stopped
//! (with every process they forked) on Drop.
//!
//! A missing server binary FAILS the test, naming the binary and `scripts/install-deps.sh`.
#![allow(dead_code)]

pub mod data;
pub mod suite;

use std::fs;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const TEST_USER: &str = "ferrytest";
pub const TEST_PASSWORD: &str = "ferry-Test-pw-7431";

/// Find a server/tool binary or fail the test with what to install.
pub fn require(bin: &str, package: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> =
        ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin", "/usr/local/bin"].iter().map(PathBuf::from).collect();
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    for d in dirs {
        let p = d.join(bin);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "required test binary `{bin}` was not found (Debian package `{package}`): \
         run scripts/install-deps.sh to install the test servers"
    );
}

pub fn must_be_root() {
    if unsafe { libc::geteuid() } != 0 {
        panic!("the transport tests start vsftpd/sshd/nginx and create the `{TEST_USER}` user: run them as root");
    }
}

/// A temporary directory that other users (server workers) can traverse.
pub fn tempdir(prefix: &str) -> tempfile::TempDir {
    let d = tempfile::Builder::new().prefix(prefix).tempdir().expect("tempdir");
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).unwrap();
    d
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    if !out.status.success() {
        panic!("{cmd:?} failed: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The local user `ferrytest` with password `TEST_PASSWORD` (created if missing).
pub fn test_user() -> (&'static str, &'static str) {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        must_be_root();
        let exists = Command::new("id").arg("-u").arg(TEST_USER).output().map(|o| o.status.success()).unwrap_or(false);
        if !exists {
            let useradd = require("useradd", "passwd");
            let out = Command::new(useradd)
                .args(["--system", "--create-home", "--home-dir", "/var/lib/ferrytest", "--shell", "/bin/sh", TEST_USER])
                .output()
                .unwrap();
            let exists = Command::new("id").arg("-u").arg(TEST_USER).output().map(|o| o.status.success()).unwrap_or(false);
            assert!(exists, "useradd {TEST_USER} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        fs::create_dir_all("/var/lib/ferrytest").unwrap();
        let chpasswd = require("chpasswd", "passwd");
        let mut child = Command::new(chpasswd).stdin(Stdio::piped()).spawn().unwrap();
        writeln!(child.stdin.take().unwrap(), "{TEST_USER}:{TEST_PASSWORD}").unwrap();
        assert!(child.wait().unwrap().success(), "chpasswd failed");
    });
    (TEST_USER, TEST_PASSWORD)
}

fn user_ids(user: &str) -> (u32, u32) {
    let uid = run(Command::new("id").arg("-u").arg(user)).trim().parse().unwrap();
    let gid = run(Command::new("id").arg("-g").arg(user)).trim().parse().unwrap();
    (uid, gid)
}

pub fn chown(path: &Path, user: &str) {
    let (uid, gid) = user_ids(user);
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
}

/// Every descendant of `pid` (children first in the list is not needed: all get SIGKILL).
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(rd) = fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
            if let Ok(stat) = fs::read_to_string(format!("/proc/{p}/stat")) {
                // pid (comm) state ppid ...
                if let Some(close) = stat.rfind(')') {
                    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
                    if let Some(ppid) = fields.get(1).and_then(|s| s.parse::<u32>().ok()) {
                        parent_of.push((p, ppid));
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for &(child, parent) in &parent_of {
            if parent == p && !out.contains(&child) {
                out.push(child);
                frontier.push(child);
            }
        }
    }
    out
}

/// A server process; Drop kills it and everything it forked.
pub struct Proc {
    pub name: String,
    cmd_line: Vec<String>,
    child: Option<Child>,
    pub log: PathBuf,
    port: u16,
}

impl Proc {
    fn spawn(name: &str, program: &Path, args: &[String], log: &Path, port: u16) -> Proc {
        let mut p = Proc {
            name: name.to_string(),
            cmd_line: std::iter::once(program.display().to_string()).chain(args.iter().cloned()).collect(),
            child: None,
            log: log.to_path_buf(),
            port,
        };
        p.start();
        p
    }

    fn start(&mut self) {
        let out = fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let err = out.try_clone().unwrap();
        let mut cmd = Command::new(&self.cmd_line[0]);
        cmd.args(&self.cmd_line[1..]).stdin(Stdio::null()).stdout(out).stderr(err).process_group(0);
        unsafe {
            cmd.pre_exec(|| {
                // Die with the test thread that started us.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("starting {}: {e}", self.name));
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if TcpStream::connect_timeout(&([127, 0, 0, 1], self.port).into(), Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "{} exited ({status}) before listening on port {}; log {}:\n{}",
                    self.name,
                    self.port,
                    self.log.display(),
                    fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "{} did not listen on port {} within 15 s; log:\n{}",
                    self.name,
                    self.port,
                    fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kill the server and every process it forked (SIGKILL: no clean shutdown).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id();
            // Freeze the tree first (a master such as nginx's would respawn a killed
            // worker), until no new process appears, then kill everything.
            let mut all = vec![pid];
            unsafe {
                libc::kill(pid as i32, libc::SIGSTOP);
            }
            loop {
                let found = descendants(pid);
                let new: Vec<u32> = found.into_iter().filter(|p| !all.contains(p)).collect();
                if new.is_empty() {
                    break;
                }
                for p in &new {
                    unsafe {
                        libc::kill(*p as i32, libc::SIGSTOP);
                    }
                }
                all.extend(new);
            }
            for p in &all {
                unsafe {
                    libc::kill(*p as i32, libc::SIGKILL);
                }
            }
            let _ = child.wait();
            // Wait for forked session processes to be gone.
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && all.iter().any(|p| Path::new(&format!("/proc/{p}")).exists() && !is_zombie(*p)) {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Stop the server and everything it forked with SIGSTOP: connections stay open
    /// and the kernel still accepts and acknowledges, but nothing answers (a stalled
    /// server). Returns the frozen processes for [`Proc::thaw`].
    pub fn freeze(&self) -> Vec<u32> {
        let pid = self.child.as_ref().expect("running").id();
        let mut all = vec![];
        loop {
            let found: Vec<u32> = std::iter::once(pid).chain(descendants(pid)).filter(|p| !all.contains(p)).collect();
            if found.is_empty() {
                return all;
            }
            for p in &found {
                unsafe {
                    libc::kill(*p as i32, libc::SIGSTOP);
                }
            }
            all.extend(found);
        }
    }

    pub fn thaw(&self, frozen: &[u32]) {
        for p in frozen {
            unsafe {
                libc::kill(*p as i32, libc::SIGCONT);
            }
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        self.start();
    }
}

fn is_zombie(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rfind(')').map(|i| s[i + 1..].trim_start().starts_with('Z')).unwrap_or(true))
        .unwrap_or(true)
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A self-signed certificate for 127.0.0.1 (PEM cert, PEM key).
pub fn self_signed_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let openssl = require("openssl", "openssl");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    run(Command::new(openssl).args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
    ]));
    (cert, key)
}

// ---------------------------------------------------------------- vsftpd

pub struct Vsftpd {
    pub port: u16,
    /// Where uploaded files land on disk.
    pub data_dir: PathBuf,
    pub anonymous: bool,
    pub tls_cert: Option<PathBuf>,
    pub proc: Proc,
    _dir: tempfile::TempDir,
}

impl Vsftpd {
    /// Anonymous login, upload into `pub/incoming` (root not writable).
    pub fn anonymous() -> Vsftpd {
        Self::start(true, false)
    }

    /// Local user `ferrytest` with a password; uploads into `drop/` of its FTP root.
    pub fn local_user() -> Vsftpd {
        Self::start(false, false)
    }

    /// Local user over explicit FTPS (AUTH TLS), self-signed certificate.
    pub fn local_user_tls() -> Vsftpd {
        Self::start(false, true)
    }

    fn start(anonymous: bool, tls: bool) -> Vsftpd {
        must_be_root();
        let vsftpd = require("vsftpd", "vsftpd");
        let (user, _) = test_user();
        let dir = tempdir("ferry-vsftpd-");
        let root = dir.path().join("root");
        fs::create_dir_all(&root).unwrap();
        let data_dir = if anonymous {
            let incoming = root.join("pub").join("incoming");
            fs::create_dir_all(&incoming).unwrap();
            fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
            fs::set_permissions(root.join("pub"), fs::Permissions::from_mode(0o755)).unwrap();
            fs::set_permissions(&incoming, fs::Permissions::from_mode(0o777)).unwrap();
            incoming
        } else {
            chown(&root, user);
            root.join("drop")
        };
        fs::create_dir_all("/var/run/vsftpd/empty").unwrap();
        let port = free_port();
        let mut conf = format!(
            "listen=YES\nlisten_ipv6=NO\nlisten_address=127.0.0.1\nlisten_port={port}\nbackground=NO\n\
             seccomp_sandbox=NO\nisolate=NO\nisolate_network=NO\n\
             pasv_enable=YES\npasv_address=127.0.0.1\n\
             secure_chroot_dir=/var/run/vsftpd/empty\nwrite_enable=YES\nconnect_from_port_20=NO\n\
             xferlog_enable=YES\nxferlog_std_format=NO\nlog_ftp_protocol=YES\nvsftpd_log_file={log}\n\
             ftp_username={user}\n",
            log = dir.path().join("vsftpd.log").display()
        );
        if anonymous {
            conf += &format!(
                "anonymous_enable=YES\nlocal_enable=NO\nanon_root={}\nanon_upload_enable=YES\n\
                 anon_mkdir_write_enable=YES\nanon_other_write_enable=YES\nanon_world_readable_only=NO\n\
                 anon_umask=022\nno_anon_password=YES\n",
                root.display()
            );
        } else {
            conf += &format!(
                "anonymous_enable=NO\nlocal_enable=YES\nlocal_root={}\nlocal_umask=022\nchroot_local_user=NO\n\
                 pam_service_name=vsftpd\n",
                root.display()
            );
        }
        let mut tls_cert = None;
        if tls {
            let (cert, key) = self_signed_cert(dir.path());
            conf += &format!(
                "ssl_enable=YES\nrsa_cert_file={}\nrsa_private_key_file={}\nallow_anon_ssl=YES\n\
                 force_local_logins_ssl=YES\nforce_local_data_ssl=YES\nrequire_ssl_reuse=NO\n\
                 ssl_sslv2=NO\nssl_sslv3=NO\nssl_tlsv1=YES\nssl_ciphers=HIGH\n",
                cert.display(),
                key.display()
            );
            tls_cert = Some(cert);
        }
        let conf_path = dir.path().join("vsftpd.conf");
        fs::write(&conf_path, conf).unwrap();
        let log = dir.path().join("vsftpd.out");
        let proc = Proc::spawn("vsftpd", &vsftpd, &[conf_path.display().to_string()], &log, port);
        Vsftpd { port, data_dir, anonymous, tls_cert, proc, _dir: dir }
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls_cert.is_some() { "ftps" } else { "ftp" };
        if self.anonymous {
            format!("{scheme}://127.0.0.1:{}/pub/incoming/", self.port)
        } else {
            format!("{scheme}://{TEST_USER}:{TEST_PASSWORD}@127.0.0.1:{}/drop/", self.port)
        }
    }

    pub fn url_with_password(&self, password: &str) -> String {
        let scheme = if self.tls_cert.is_some() { "ftps" } else { "ftp" };
        format!("{scheme}://{TEST_USER}:{password}@127.0.0.1:{}/drop/", self.port)
    }
}

// ---------------------------------------------------------------- sshd + ssh-agent

pub struct Sshd {
    pub port: u16,
    /// Absolute directory the SFTP URL points at.
    pub data_dir: PathBuf,
    /// Authorized client key (private key file).
    pub key: PathBuf,
    /// A client key that is NOT authorized.
    pub unauthorized_key: PathBuf,
    /// known_hosts holding this server's key.
    pub known_hosts: PathBuf,
    pub host_pub: String,
    pub proc: Proc,
    pub dir: tempfile::TempDir,
}

pub fn ssh_keygen(path: &Path, comment: &str) {
    let keygen = require("ssh-keygen", "openssh-client");
    run(Command::new(keygen).args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path.to_str().unwrap()]));
}

impl Sshd {
    pub fn start() -> Sshd {
        must_be_root();
        let sshd = require("sshd", "openssh-server");
        test_user();
        let dir = tempdir("ferry-sshd-");
        let d = dir.path();
        fs::create_dir_all("/run/sshd").unwrap();
        ssh_keygen(&d.join("host_ed25519"), "ferry-test-host");
        ssh_keygen(&d.join("client_ok"), "authorized");
        ssh_keygen(&d.join("client_other"), "not-authorized");
        fs::copy(d.join("client_ok.pub"), d.join("authorized_keys")).unwrap();
        let port = free_port();
        let host_pub = fs::read_to_string(d.join("host_ed25519.pub")).unwrap();
        let mut fields = host_pub.split_whitespace();
        let (kt, kb) = (fields.next().unwrap(), fields.next().unwrap());
        let known_hosts = d.join("known_hosts");
        fs::write(&known_hosts, format!("[127.0.0.1]:{port} {kt} {kb}\n")).unwrap();
        let data_dir = d.join("store");
        fs::create_dir_all(&data_dir).unwrap();
        let conf = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {ak}\n\
             PasswordAuthentication yes\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
             PermitRootLogin prohibit-password\nPidFile {pid}\nSubsystem sftp internal-sftp\n\
             LogLevel VERBOSE\nMaxAuthTries 10\nMaxStartups 50\n",
            hk = d.join("host_ed25519").display(),
            ak = d.join("authorized_keys").display(),
            pid = d.join("sshd.pid").display(),
        );
        let conf_path = d.join("sshd_config");
        fs::write(&conf_path, conf).unwrap();
        let log = d.join("sshd.log");
        let args = vec!["-D".to_string(), "-f".into(), conf_path.display().to_string(), "-E".into(), log.display().to_string()];
        let proc = Proc::spawn("sshd", &sshd, &args, &log, port);
        Sshd {
            port,
            data_dir,
            key: d.join("client_ok"),
            unauthorized_key: d.join("client_other"),
            known_hosts,
            host_pub: host_pub.trim().to_string(),
            proc,
            dir,
        }
    }

    /// `sftp://root@127.0.0.1:PORT/<abs data dir>`
    pub fn url(&self) -> String {
        format!("sftp://root@127.0.0.1:{}{}", self.port, self.data_dir.display())
    }

    /// A directory writable by `ferrytest`, for password logins.
    pub fn user_url(&self, password: &str) -> String {
        let d = self.dir.path().join("userstore");
        fs::create_dir_all(&d).unwrap();
        chown(&d, TEST_USER);
        format!("sftp://{TEST_USER}:{password}@127.0.0.1:{}{}", self.port, d.display())
    }
}

/// A real ssh-agent on its own socket.
pub struct Agent {
    pub socket: PathBuf,
    proc: Child,
    _dir: tempfile::TempDir,
}

impl Agent {
    /// Start an agent holding `keys`, in this order.
    pub fn with_keys(keys: &[&Path]) -> Agent {
        let agent = require("ssh-agent", "openssh-client");
        let add = require("ssh-add", "openssh-client");
        let dir = tempdir("ferry-agent-");
        let socket = dir.path().join("agent.sock");
        let mut cmd = Command::new(agent);
        cmd.arg("-D").arg("-a").arg(&socket).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let proc = cmd.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "ssh-agent did not create {}", socket.display());
            std::thread::sleep(Duration::from_millis(10));
        }
        for k in keys {
            run(Command::new(&add).env("SSH_AUTH_SOCK", &socket).arg(k));
        }
        let listed = run(Command::new(&add).env("SSH_AUTH_SOCK", &socket).arg("-l"));
        assert_eq!(listed.lines().count(), keys.len(), "agent keys: {listed}");
        Agent { socket, proc, _dir: dir }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.proc.kill();
        let _ = self.proc.wait();
    }
}

// ---------------------------------------------------------------- nginx

pub struct Nginx {
    pub port: u16,
    pub tls_port: u16,
    pub www: PathBuf,
    pub cert: PathBuf,
    pub proc: Proc,
    _dir: tempfile::TempDir,
}

pub const HTTP_TOKEN: &str = "ferry-test-token-5521";

impl Nginx {
    /// WebDAV on `/` (open), `/private/` (basic auth ferrytest), `/token/` (bearer
    /// HTTP_TOKEN), `/noindex/` (no autoindex); plain HTTP on `port`, HTTPS on `tls_port`.
    pub fn start() -> Nginx {
        must_be_root();
        let nginx = require("nginx", "nginx-light");
        let dir = tempdir("ferry-nginx-");
        let d = dir.path();
        let www = d.join("www");
        for sub in ["", "private", "token", "noindex"] {
            fs::create_dir_all(www.join(sub)).unwrap();
        }
        fs::write(d.join("htpasswd"), format!("{TEST_USER}:{{PLAIN}}{TEST_PASSWORD}\n")).unwrap();
        let (cert, key) = self_signed_cert(d);
        let port = free_port();
        let tls_port = free_port();
        let dav = "dav_methods PUT DELETE MKCOL COPY MOVE; create_full_put_path on; dav_access user:rw group:r all:r;";
        let conf = format!(
            "daemon off;\nmaster_process on;\nworker_processes 1;\nuser root;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\nevents {{ worker_connections 128; }}\n\
             http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               types {{ text/html html; }}\n  default_type application/octet-stream;\n\
               server {{\n    listen 127.0.0.1:{port};\n    listen 127.0.0.1:{tls_port} ssl;\n\
                 ssl_certificate {cert};\n    ssl_certificate_key {key};\n    client_max_body_size 0;\n\
                 root {www};\n    charset utf-8;\n\
                 location / {{ {dav} autoindex on; autoindex_exact_size on; }}\n\
                 location /private/ {{ auth_basic \"ferry\"; auth_basic_user_file {d}/htpasswd; {dav} autoindex on; }}\n\
                 location /token/ {{ if ($http_authorization != \"Bearer {HTTP_TOKEN}\") {{ return 401; }} {dav} autoindex on; }}\n\
                 location /noindex/ {{ {dav} autoindex off; }}\n\
               }}\n}}\n",
            d = d.display(),
            cert = cert.display(),
            key = key.display(),
            www = www.display(),
        );
        let conf_path = d.join("nginx.conf");
        fs::write(&conf_path, conf).unwrap();
        let log = d.join("nginx.out");
        let args = vec![
            "-e".to_string(),
            d.join("error.log").display().to_string(),
            "-p".into(),
            d.display().to_string(),
            "-c".into(),
            conf_path.display().to_string(),
        ];
        let proc = Proc::spawn("nginx", &nginx, &args, &log, port);
        Nginx { port, tls_port, www, cert, proc, _dir: dir }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    pub fn tls_url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}/{path}", self.tls_port)
    }
}

/// Options that ignore the environment and the user's files (tests must not depend on them).
pub fn isolated_options() -> ferry_transports::TransportOptions {
    ferry_transports::TransportOptions {
        use_env: false,
        use_netrc: false,
        ssh_agent: ferry_transports::SshAgent::Off,
        known_hosts: Some(PathBuf::from("/nonexistent/known_hosts")),
        identity_files: vec![PathBuf::from("/nonexistent/id")],
        ..Default::default()
    }
}
