//! A private containerd 1.6 per test (Debian's package): its own root, state
//! and socket under a short /tmp dir, the CRI plugin disabled, stopped on
//! drop. `ctr` against it is the reference client.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Containerd {
    child: Child,
    pub socket: PathBuf,
    dir: tempfile::TempDir,
}

impl Containerd {
    /// Starts a fresh, empty containerd. Panics with the reason (missing
    /// binary, the log's tail) when it cannot: never skips.
    pub fn start() -> Containerd {
        for bin in ["containerd", "ctr", "runc", "containerd-shim-runc-v2"] {
            super::require(bin);
        }
        // Short path: unix socket paths are limited to 108 bytes.
        let dir = tempfile::Builder::new().prefix("fc").tempdir_in("/tmp").expect("create temp dir for containerd under /tmp");
        let d = dir.path();
        let socket = d.join("containerd.sock");
        let config = d.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{}\"\nstate = \"{}\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"{}\"\n[ttrpc]\n  address = \"{}\"\n",
                d.join("root").display(),
                d.join("state").display(),
                socket.display(),
                d.join("ttrpc.sock").display(),
            ),
        )
        .unwrap();
        let log = std::fs::File::create(d.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start containerd: {e}"));
        let ctd = Containerd { child, socket, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if ctd.socket.exists() && ctd.ctr(&["version"]).status.success() {
                return ctd;
            }
            if Instant::now() > deadline {
                panic!("containerd did not answer within 30 s; its log:\n{}", ctd.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// `ctr -a SOCKET ARGS` (the namespace is an argument: `-n k8s.io`).
    pub fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr").arg("-a").arg(&self.socket).args(args).stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("run ctr: {e}"))
    }

    /// `ctr ARGS` that must succeed; its stdout.
    pub fn ctr_ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args);
        if !out.status.success() {
            panic!(
                "ctr {} failed ({}):\nstdout: {}\nstderr: {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ctr -n NS images ls`: name → (media type, digest, platforms).
    pub fn images(&self, namespace: &str) -> Vec<(String, String, String, String)> {
        self.ctr_ok(&["-n", namespace, "images", "ls"])
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                // REF TYPE DIGEST SIZE(2 fields) PLATFORMS LABELS
                (f.len() >= 6).then(|| (f[0].to_string(), f[1].to_string(), f[2].to_string(), f[5].to_string()))
            })
            .collect()
    }

    /// `ctr run --rm --net-host IMAGE` in `namespace`: what the container prints.
    pub fn run(&self, namespace: &str, image: &str) -> String {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let id = format!("t{}-{}", std::process::id(), NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
        self.ctr_ok(&["-n", namespace, "run", "--rm", "--net-host", image, &id])
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // SIGTERM lets it close its databases; then wait so nothing outlives the test.
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
