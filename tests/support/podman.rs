//! `podman system service` on a private socket and storage, stopped on drop:
//! a Docker-compatible engine whose images carry RepoDigests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Stdio};

pub struct PodmanService {
    child: std::process::Child,
    /// `unix:///tmp/fpXXXXXX/podman.sock`, for DOCKER_HOST.
    pub host: String,
    conf: PathBuf,
    _dir: tempfile::TempDir,
}

impl PodmanService {
    pub fn start() -> PodmanService {
        super::require("podman");
        let dir = tempfile::Builder::new().prefix("fp").tempdir_in("/tmp").unwrap();
        let p = dir.path();
        let conf = p.join("storage.conf");
        std::fs::write(
            &conf,
            format!(
                "[storage]\ndriver = \"vfs\"\nrunroot = \"{}\"\ngraphroot = \"{}\"\n",
                p.join("run").display(),
                p.join("graph").display()
            ),
        )
        .unwrap();
        let sock = p.join("podman.sock");
        let host = format!("unix://{}", sock.display());
        let child = Command::new("podman")
            .args(["system", "service", "--time=0", &host])
            .env("CONTAINERS_STORAGE_CONF", &conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start podman system service");
        let mut service = PodmanService { child, host, conf, _dir: dir };
        for _ in 0..150 {
            if sock.exists() {
                return service;
            }
            if let Ok(Some(status)) = service.child.try_wait() {
                panic!("podman system service exited: {status}");
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("podman system service did not create {}", sock.display());
    }

    /// Run the podman CLI on the service's storage; stdout, or a panic with stderr.
    pub fn podman(&self, args: &str) -> String {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!("podman {args}"))
            .env("CONTAINERS_STORAGE_CONF", &self.conf)
            .stdin(Stdio::null())
            .output()
            .expect("run podman");
        assert!(out.status.success(), "`podman {args}` failed:\n{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for PodmanService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
