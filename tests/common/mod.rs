//! Helpers for ferry's integration tests: run the real binary, read fixtures,
//! craft and damage bundles.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(name: &str) -> PathBuf {
    repo().join("fixtures").join(name)
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Run the ferry binary built for this test run.
pub fn ferry(args: &[&str]) -> Run {
    ferry_env(args, &[])
}

pub fn ferry_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out: Output = cmd.output().expect("run ferry");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// How long a hostile case may run before the test calls it a hang.
pub const HANG_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Run ferry under `/usr/bin/time` and return its outcome with its peak RSS
/// in KiB (the bound a hostile input must stay under). A run that outlives
/// [`HANG_LIMIT`] fails the test instead of waiting for ever: ferry (and
/// /usr/bin/time) run in their own process group, killed then.
pub fn ferry_rss(args: &[&str], env: &[(&str, &str)]) -> (Run, u64) {
    ferry_rss_without(args, env, &[])
}

/// [`ferry_rss`] with the variables in `remove` taken out of ferry's environment.
pub fn ferry_rss_without(args: &[&str], env: &[(&str, &str)], remove: &[&str]) -> (Run, u64) {
    use std::os::unix::process::CommandExt;
    require("/usr/bin/time");
    let report = tempfile::NamedTempFile::new().expect("temp file");
    let (mut out, mut err) = (tempfile::tempfile().unwrap(), tempfile::tempfile().unwrap());
    let mut cmd = Command::new("/usr/bin/time");
    cmd.arg("-f").arg("%M").arg("-o").arg(report.path()).arg(env!("CARGO_BIN_EXE_ferry")).args(args);
    cmd.stdin(Stdio::null()).stdout(out.try_clone().unwrap()).stderr(err.try_clone().unwrap()).process_group(0);
    for var in remove {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run ferry under /usr/bin/time");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > HANG_LIMIT {
            // SAFETY: signalling the process group this test started.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            panic!("ferry {args:?} did not finish within {HANG_LIMIT:?}: it hangs (on a FIFO? a silent server?)");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let text = std::fs::read_to_string(report.path()).expect("read /usr/bin/time's report");
    // The last line is %M; a signal or exit status line may come before it.
    let kib = text.lines().rev().find_map(|l| l.trim().parse::<u64>().ok()).expect("peak RSS in /usr/bin/time's report");
    let read = |f: &mut std::fs::File| {
        use std::io::Seek;
        let mut s = String::new();
        f.rewind().unwrap();
        f.read_to_string(&mut s).unwrap();
        s
    };
    let run = Run { code: status.code().unwrap_or(-1), stdout: read(&mut out), stderr: read(&mut err) };
    log_rss(args, &run, kib);
    (run, kib)
}

/// With `FERRY_TEST_RSS_LOG=FILE`, each [`ferry_rss`] run appends a line
/// (test thread, exit code, peak RSS, ferry's arguments, first line of its
/// message) to FILE: the table issue 14's closing note asks for.
fn log_rss(args: &[&str], run: &Run, kib: u64) {
    let Some(path) = std::env::var_os("FERRY_TEST_RSS_LOG") else { return };
    let test = std::thread::current().name().unwrap_or("?").to_string();
    let message = run.stderr.lines().next().unwrap_or("").to_string();
    let line = format!("{test}\texit {}\t{:.1} MiB\t{}\t{message}\n", run.code, kib as f64 / 1024.0, args.join(" "));
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = f.write_all(line.as_bytes());
    }
}

/// Peak RSS every hostile input must stay under (issue 14, docs/SECURITY.md).
pub const HOSTILE_RSS_LIMIT_KIB: u64 = 100 * 1024;

/// Run ferry and insist it succeeds.
pub fn ferry_ok(args: &[&str]) -> Run {
    let r = ferry(args);
    assert_eq!(r.code, 0, "ferry {args:?} failed:\n{}", r.stderr);
    r
}

/// Flip one byte of a file in place (same size, so only a checksum can tell).
pub fn flip_byte(path: &Path, at: u64) {
    use std::io::{Seek, SeekFrom};
    let mut f = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(at)).unwrap();
    f.read_exact(&mut b).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&[b[0] ^ 0x5a]).unwrap();
    f.sync_all().unwrap();
}

/// Run a shell command, insist it succeeds, return stdout.
pub fn sh(script: &str) -> String {
    let out = Command::new("bash").arg("-c").arg(script).stdin(Stdio::null()).output().expect("run bash");
    assert!(out.status.success(), "`{script}` failed:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn require(bin: &str) {
    let found = std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file())).unwrap_or(false);
    assert!(found || Path::new(bin).is_file(), "missing {bin}: run scripts/install-deps.sh");
}

/// Decompress any of none/gzip/zstd by magic bytes.
pub fn decompress(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        zstd::stream::read::Decoder::new(data).unwrap().read_to_end(&mut out).unwrap();
    } else if data.starts_with(&[0x1f, 0x8b]) {
        flate2::read::MultiGzDecoder::new(data).read_to_end(&mut out).unwrap();
    } else {
        out = data.to_vec();
    }
    out
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// Entries (path → bytes) of a tar held in memory, links resolved naively.
pub fn tar_files(tar_bytes: &[u8]) -> Vec<(String, tar::EntryType, Vec<u8>, String)> {
    let mut out = Vec::new();
    let mut a = tar::Archive::new(tar_bytes);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let path = String::from_utf8_lossy(&e.path_bytes()).trim_start_matches("./").to_string();
        let kind = e.header().entry_type();
        let link = e.link_name_bytes().map(|l| String::from_utf8_lossy(&l).into_owned()).unwrap_or_default();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.push((path, kind, data, link));
    }
    out
}

/// The digests a source image must keep through the trip, computed without
/// ferry: for OCI layouts every blob reachable from index.json; for legacy
/// docker-archives each config's sha256 and its diff_ids.
pub fn source_digests(path: &Path) -> Vec<String> {
    let files: Vec<(String, Vec<u8>)> = if path.is_dir() {
        walkdir::WalkDir::new(path)
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_file())
            .map(|e| (e.path().strip_prefix(path).unwrap().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
            .collect()
    } else {
        let raw = decompress(&std::fs::read(path).unwrap());
        let entries = tar_files(&raw);
        let find = |p: &str| entries.iter().find(|(n, ..)| n == p).map(|(_, _, d, _)| d.clone());
        entries
            .iter()
            .map(|(n, k, d, link)| {
                if k.is_symlink() {
                    let base = n.rsplit_once('/').map(|(b, _)| b).unwrap_or("");
                    let target = link.trim_start_matches("../");
                    let _ = base;
                    (n.clone(), find(target).unwrap_or_default())
                } else {
                    (n.clone(), d.clone())
                }
            })
            .collect()
    };
    let get = |p: &str| files.iter().find(|(n, _)| n == p).map(|(_, d)| d.clone());
    let mut digests = Vec::new();
    if let Some(index) = get("index.json") {
        let mut queue: Vec<serde_json::Value> =
            serde_json::from_slice::<serde_json::Value>(&index).unwrap()["manifests"].as_array().unwrap().clone();
        while let Some(d) = queue.pop() {
            let digest = d["digest"].as_str().unwrap().to_string();
            let doc = get(&format!("blobs/sha256/{}", &digest[7..])).expect("blob present in source");
            digests.push(digest);
            let v: serde_json::Value = serde_json::from_slice(&doc).unwrap();
            if let Some(m) = v["manifests"].as_array() {
                queue.extend(m.iter().cloned());
            }
            if v.get("config").is_some() {
                digests.push(v["config"]["digest"].as_str().unwrap().to_string());
                for l in v["layers"].as_array().unwrap() {
                    digests.push(l["digest"].as_str().unwrap().to_string());
                }
            }
        }
    } else {
        let manifest: serde_json::Value = serde_json::from_slice(&get("manifest.json").unwrap()).unwrap();
        for e in manifest.as_array().unwrap() {
            let config = get(e["Config"].as_str().unwrap()).unwrap();
            digests.push(format!("sha256:{}", sha256_hex(&config)));
            let v: serde_json::Value = serde_json::from_slice(&config).unwrap();
            for d in v["rootfs"]["diff_ids"].as_array().unwrap() {
                digests.push(d.as_str().unwrap().to_string());
            }
        }
    }
    digests.sort();
    digests.dedup();
    digests
}

/// A fixture as listed in fixtures/fixtures.json.
pub struct Fixture {
    pub file: String,
    pub format: String,
    pub refs: Vec<(String, Option<String>)>,
    pub docker20_loadable: bool,
    pub platforms: Vec<String>,
}

impl Fixture {
    pub fn image_ref(&self) -> String {
        format!("{}:{}", self.format, fixture(&self.file).display())
    }
}

pub fn fixtures() -> Vec<Fixture> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(repo().join("fixtures/fixtures.json")).unwrap()).unwrap();
    v["fixtures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| Fixture {
            file: f["file"].as_str().unwrap().into(),
            format: match f["format"].as_str().unwrap() {
                "oci-dir" => "oci".into(),
                other => other.to_string(),
            },
            refs: f["images"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| (i["ref"].as_str().unwrap().to_string(), i["run_output"].as_str().map(str::to_string)))
                .collect(),
            docker20_loadable: f["docker20_loadable"].as_bool().unwrap_or(false),
            platforms: f["platforms"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect(),
        })
        .collect()
}

/// Blob digests present in an OCI layout directory.
pub fn layout_blobs(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join("blobs/sha256"))
        .unwrap()
        .map(|e| format!("sha256:{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    v.sort();
    v
}

/// Write `tar` entries with raw names (no sanitising: for hostile inputs).
pub struct RawTar(pub Vec<u8>);

impl RawTar {
    pub fn new() -> Self {
        RawTar(Vec::new())
    }
    pub fn entry(&mut self, name: &str, kind: tar::EntryType, data: &[u8], link: &str) -> &mut Self {
        self.entry_sized(name, kind, data, data.len() as u64, link)
    }
    /// An entry whose header claims `size` (data is written as given, padded).
    pub fn entry_sized(&mut self, name: &str, kind: tar::EntryType, data: &[u8], size: u64, link: &str) -> &mut Self {
        let mut h = tar::Header::new_gnu();
        {
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_size(size);
        h.set_mode(0o644);
        h.set_entry_type(kind);
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.0.extend(std::iter::repeat_n(0, pad));
        self
    }
    pub fn finish(&mut self) -> Vec<u8> {
        let mut v = std::mem::take(&mut self.0);
        v.extend_from_slice(&[0u8; 1024]);
        v
    }
}

pub fn zstd_bytes(data: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(data, 3).unwrap()
}

/// Write a bundle by hand: artifact + STEM.sha256 (for crafted inputs).
pub fn write_bundle(dir: &Path, stem: &str, artifact: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    let name = format!("{stem}.tar.zst");
    std::fs::write(dir.join(&name), artifact).unwrap();
    let mut f = std::fs::File::create(dir.join(format!("{stem}.sha256"))).unwrap();
    writeln!(f, "{}  {name}", sha256_hex(artifact)).unwrap();
}

/// A blob entry of an artifact: name, data offset, size.
pub type BlobEntry = (String, usize, usize);
pub type Picker = Box<dyn Fn(&[BlobEntry]) -> usize>;

/// Flip one byte in the middle of blob `pick` of a bundle's artifact and
/// rewrite STEM.sha256 so that only the blob digest gives it away.
pub fn corrupt_blob(dir: &Path, stem: &str, pick: impl Fn(&[BlobEntry]) -> usize) {
    let artifact = dir.join(format!("{stem}.tar.zst"));
    let mut tar = decompress(&std::fs::read(&artifact).unwrap());
    let mut blobs = Vec::new();
    {
        let mut a = tar::Archive::new(&tar[..]);
        for e in a.entries().unwrap() {
            let e = e.unwrap();
            let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            if name.starts_with("blobs/sha256/") {
                blobs.push((name, e.raw_file_position() as usize, e.size() as usize));
            }
        }
    }
    let (_, offset, size) = blobs[pick(&blobs)].clone();
    tar[offset + size / 2] ^= 0x01;
    let packed = zstd_bytes(&tar);
    std::fs::write(&artifact, &packed).unwrap();
    std::fs::write(dir.join(format!("{stem}.sha256")), format!("{}  {stem}.tar.zst\n", sha256_hex(&packed))).unwrap();
}

/// An OCI layout holding one image of `layers` layers, each a tar of one file
/// of `mib` MiB of random bytes (nothing compresses, nothing is shared).
pub fn random_image(dir: &Path, layers: usize, mib: usize) -> Vec<(String, u64)> {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let mut made = Vec::new();
    for n in 0..layers {
        sh(&format!(
            "cd {d} && head -c {size} /dev/urandom > big{n}.bin && tar cf layer.tar big{n}.bin && rm big{n}.bin",
            d = dir.display(),
            size = mib << 20
        ));
        let layer = dir.join("layer.tar");
        let hex = sh(&format!("sha256sum {} | cut -d' ' -f1", layer.display())).trim().to_string();
        made.push((hex.clone(), layer.metadata().unwrap().len()));
        std::fs::rename(&layer, blobs.join(&hex)).unwrap();
    }
    let diff_ids: Vec<String> = made.iter().map(|(h, _)| format!("\"sha256:{h}\"")).collect();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
        diff_ids.join(",")
    );
    let config_hex = sha256_hex(config.as_bytes());
    std::fs::write(blobs.join(&config_hex), &config).unwrap();
    let layer_descs: Vec<String> = made
        .iter()
        .map(|(h, size)| format!(r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:{h}","size":{size}}}"#))
        .collect();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{config_hex}","size":{}}},"layers":[{}]}}"#,
        config.len(),
        layer_descs.join(",")
    );
    let manifest_hex = sha256_hex(manifest.as_bytes());
    std::fs::write(blobs.join(&manifest_hex), &manifest).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        dir.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{manifest_hex}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"big","io.containerd.image.name":"docker.io/ferry/big:v1"}}}}]}}"#,
            manifest.len()
        ),
    )
    .unwrap();
    made
}
