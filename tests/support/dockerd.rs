//! A private Docker Engine (Debian docker.io 20.10) per test, started through
//! scripts/dockerd.sh: own data root, exec root and socket under a short /tmp dir,
//! no network (`--bridge=none`). Several can run at once (producer + consumer).
//! Always run containers with `--pull=never --network none`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The real Docker 20.10 client; /usr/local/bin/docker may be a different one.
pub const DOCKER: &str = "/usr/bin/docker";
pub const DOCKERD: &str = "/usr/sbin/dockerd";

pub struct Dockerd {
    /// `unix:///tmp/fdXXXXXX/docker.sock`, for DOCKER_HOST.
    pub host: String,
    dir: tempfile::TempDir,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/dockerd.sh")
}

impl Dockerd {
    /// Starts a fresh, empty daemon. Panics with the reason (missing binary,
    /// daemon log tail) when it cannot: never skips.
    pub fn start() -> Dockerd {
        for bin in [DOCKERD, DOCKER, "containerd", "runc"] {
            super::require(bin);
        }
        // Short path: unix socket paths are limited to 108 bytes.
        let dir = tempfile::Builder::new().prefix("fd").tempdir_in("/tmp").expect("create temp dir for dockerd under /tmp");
        let out = Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", script().display()));
        if !out.status.success() {
            panic!(
                "scripts/dockerd.sh start {} failed ({}):\n{}{}",
                dir.path().display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let host = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(host.starts_with("unix://"), "scripts/dockerd.sh printed {host:?}, expected unix://...");
        Dockerd { host, dir }
    }

    /// The daemon's directory (data root, exec root, socket, dockerd.log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A `docker` command (Docker 20.10 client) aimed at this daemon.
    pub fn command(&self) -> Command {
        let mut c = Command::new(DOCKER);
        c.env("DOCKER_HOST", &self.host).stdin(Stdio::null());
        c
    }

    /// Runs `/usr/bin/docker ARGS` against this daemon.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap_or_else(|e| panic!("run {DOCKER}: {e}"))
    }

    /// Runs `docker ARGS`, panics unless it succeeds, returns its stdout.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        if !out.status.success() {
            panic!(
                "docker {} failed ({}):\nstdout: {}\nstderr: {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Imports a minimal busybox image (busybox-static's /bin/busybox plus applet
    /// links) as `name`, with `CMD ["/bin/sh"]`.
    pub fn import_busybox(&self, name: &str) {
        let tar = self.dir().join("busybox-rootfs.tar");
        if !tar.exists() {
            busybox_rootfs_tar(&tar);
        }
        self.docker_ok(&["import", "--change", "CMD [\"/bin/sh\"]", tar.to_str().unwrap(), name]);
    }
}

/// Writes a tarball of a tiny root filesystem: /bin/busybox (package
/// busybox-static) with symlinks for common applets, /tmp, /etc.
pub fn busybox_rootfs_tar(out: &Path) {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or_else(|| panic!("missing busybox (package busybox-static): run scripts/install-deps.sh"));
    let root = tempfile::Builder::new().prefix("bbroot").tempdir().expect("temp dir for busybox rootfs");
    let r = root.path();
    for d in ["bin", "tmp", "etc", "root"] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    std::fs::copy(busybox, r.join("bin/busybox")).expect("copy busybox");
    for applet in [
        "sh",
        "echo",
        "cat",
        "ls",
        "rm",
        "ln",
        "mkdir",
        "printf",
        "cp",
        "mv",
        "touch",
        "test",
        "true",
        "false",
        "sleep",
        "env",
        "id",
        "wc",
        "head",
        "tail",
        "grep",
        "sed",
        "sha256sum",
        "find",
        "stat",
        "readlink",
    ] {
        std::os::unix::fs::symlink("busybox", r.join("bin").join(applet)).unwrap();
    }
    std::fs::write(r.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(r.join("etc/group"), "root:x:0:\n").unwrap();
    let st = Command::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
        .arg(r)
        .arg("-cf")
        .arg(out)
        .arg(".")
        .status()
        .expect("run tar");
    assert!(st.success(), "tar of busybox rootfs failed");
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let out = Command::new("bash").arg(script()).arg("stop").arg(self.dir.path()).stdin(Stdio::null()).output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                eprintln!("warning: scripts/dockerd.sh stop {} failed: {}", self.dir.path().display(), String::from_utf8_lossy(&o.stderr))
            }
            Err(e) => eprintln!("warning: run scripts/dockerd.sh stop: {e}"),
        }
    }
}
