//! Issue 14, classes 2, 4 and 5 (tar, zstd, JSON): hostile bundles cost
//! bounded memory and are refused with exit 3 and a message saying what was
//! wrong; nothing reaches the target. Each case crafts its input from a real
//! bundle and runs the real ferry binary under /usr/bin/time.
mod common;
use common::*;
use std::path::PathBuf;
use std::sync::OnceLock;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

struct Case {
    _dir: tempfile::TempDir,
    bundle: PathBuf,
    target: PathBuf,
}

/// The inner tar of a bundle ferry saved from a real `docker save` (made once).
fn good_tar() -> &'static [u8] {
    static TAR: OnceLock<Vec<u8>> = OnceLock::new();
    TAR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("usb");
        ferry_ok(&[
            "save",
            &format!("docker-archive:{}", fixture("docker20-whiteout.docker.tar.gz").display()),
            "-o",
            out.to_str().unwrap(),
            "-n",
            "g",
        ]);
        let tar = decompress(&std::fs::read(out.join("g.tar.zst")).unwrap());
        assert!(tar.ends_with(&[0u8; 1024]), "ferry's tar ends with its end-of-archive marker");
        tar
    })
}

/// A bundle whose artifact file `name` holds `artifact`, with a matching STEM.sha256.
fn bundle_with_artifact(name: &str, artifact: &[u8]) -> Case {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("usb");
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::write(bundle.join(name), artifact).unwrap();
    std::fs::write(bundle.join("h.sha256"), format!("{}  {name}\n", sha256_hex(artifact))).unwrap();
    let target = dir.path().join("target-oci");
    Case { _dir: dir, bundle, target }
}

/// A bundle whose (zstd) artifact decompresses to `tar`.
fn bundle_with_tar(tar: &[u8]) -> Case {
    bundle_with_artifact("h.tar.zst", &zstd_bytes(tar))
}

/// Each entry of a tar: its name and the byte range of its header, data and padding.
fn entry_ranges(tar: &[u8]) -> Vec<(String, std::ops::Range<usize>)> {
    let mut out = Vec::new();
    let mut a = tar::Archive::new(tar);
    for e in a.entries().unwrap() {
        let e = e.unwrap();
        let start = e.raw_header_position() as usize;
        let end = e.raw_file_position() as usize + (e.size() as usize).div_ceil(512) * 512;
        out.push((String::from_utf8_lossy(&e.path_bytes()).into_owned(), start..end));
    }
    out
}

fn range_of(tar: &[u8], name: &str) -> std::ops::Range<usize> {
    entry_ranges(tar).into_iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no {name} in the tar")).1
}

/// The bytes of every entry (without the end-of-archive marker).
fn entries_only(tar: &[u8]) -> &[u8] {
    &tar[..entry_ranges(tar).last().unwrap().1.end]
}

/// `tar` with `extra` inserted at byte `at`.
fn spliced(tar: &[u8], at: usize, extra: &[u8]) -> Vec<u8> {
    let mut v = tar[..at].to_vec();
    v.extend_from_slice(extra);
    v.extend_from_slice(&tar[at..]);
    v
}

/// One raw tar entry (GNU header; the data is written as given, padded).
fn raw_entry(name: &str, kind: tar::EntryType, data: &[u8], size: u64) -> Vec<u8> {
    let mut t = RawTar::new();
    t.entry_sized(name, kind, data, size, "");
    t.0
}

/// A PAX record "LEN key=value\n" whose whole length is `len` bytes.
fn pax_record(key: &str, len: usize) -> Vec<u8> {
    let fixed = key.len() + 3; // ' ', '=', '\n'
    let digits = len.to_string().len();
    let value = "x".repeat(len - fixed - digits);
    let rec = format!("{len} {key}={value}\n");
    assert_eq!(rec.len(), len);
    rec.into_bytes()
}

fn print_rss(case: &str, kib: u64) {
    println!("peak RSS {case}: {kib} KiB");
}

/// `ferry verify` and `ferry load --into oci:` both fail with exit 3, say
/// `expect` (with a hint), stay under the memory bound, and leave no target
/// and no staging area. Returns the larger peak RSS.
fn refused(case: &Case, expect: &str) -> u64 {
    let mut peak = 0;
    for args in [
        vec!["verify".to_string(), case.bundle.display().to_string()],
        vec![
            "load".to_string(),
            "--allow-unsigned".into(),
            case.bundle.display().to_string(),
            "--into".into(),
            format!("oci:{}", case.target.display()),
        ],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (r, kib) = ferry_rss(&args, &[]);
        let error = r.stderr.lines().find(|l| l.starts_with("ferry: error")).unwrap_or_default();
        println!("ferry {}: exit {}, peak RSS {kib} KiB, {error}", args[0], r.code);
        assert_eq!(r.code, 3, "ferry {args:?} should fail with exit 3; stderr:\n{}", r.stderr);
        assert!(r.stderr.contains(expect), "ferry {args:?}: expected {expect:?} in:\n{}", r.stderr);
        assert!(r.stderr.contains("hint:"), "no hint in:\n{}", r.stderr);
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
        assert!(kib < HOSTILE_RSS_LIMIT_KIB, "ferry {args:?} peaked at {kib} KiB");
        peak = peak.max(kib);
    }
    assert!(!case.target.exists(), "the target was created despite the failure");
    let names: Vec<String> =
        std::fs::read_dir(case.target.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names, vec!["usb".to_string()], "only the bundle may be left next to the target");
    peak
}

// ---- class 2: tar extension headers are capped before they are read --------

#[test]
fn pax_header_claiming_4_gib_is_refused_at_its_header() {
    // The header claims 4 GiB; 256 MiB of it follow (a few KiB compressed).
    let mut tar = raw_entry("././@PaxHeader", tar::EntryType::XHeader, &vec![0u8; 256 << 20], 4 << 30);
    tar.extend_from_slice(good_tar());
    let case = bundle_with_tar(&tar);
    let kib = refused(&case, "a PAX extended header of 4294967296 bytes, more than the 65536 bytes ferry accepts");
    print_rss("PAX header of 4 GiB", kib);
}

#[test]
fn pax_header_of_200_kib_is_refused() {
    // A well-formed PAX header (one long comment record) before a good bundle's entries.
    let record = pax_record("comment", 200 << 10);
    let tar = spliced(good_tar(), 0, &raw_entry("././@PaxHeader", tar::EntryType::XHeader, &record, record.len() as u64));
    let case = bundle_with_tar(&tar);
    let kib = refused(&case, "a PAX extended header of 204800 bytes, more than the 65536 bytes ferry accepts");
    print_rss("PAX header of 200 KiB", kib);
}

#[test]
fn gnu_long_name_of_1_gib_is_refused_at_its_header() {
    let mut tar = raw_entry("././@LongLink", tar::EntryType::GNULongName, &vec![b'a'; 256 << 20], 1 << 30);
    tar.extend_from_slice(good_tar());
    let case = bundle_with_tar(&tar);
    let kib = refused(&case, "a GNU long name of 1073741824 bytes, more than the 65536 bytes ferry accepts");
    print_rss("GNU long name of 1 GiB", kib);
}

#[test]
fn docker_archive_source_with_1_gib_pax_header_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("hostile.docker.tar");
    // A PAX header claiming 1 GiB, then 300 MiB of it (a hole on disk) and the end of the file.
    let header = raw_entry("././@PaxHeader", tar::EntryType::XHeader, &[], 1 << 30);
    std::fs::write(&source, &header).unwrap();
    std::fs::OpenOptions::new().write(true).open(&source).unwrap().set_len(header.len() as u64 + (300 << 20)).unwrap();
    let out = dir.path().join("usb");
    let (r, kib) = ferry_rss(&["save", &format!("docker-archive:{}", source.display()), "-o", out.to_str().unwrap(), "-n", "s"], &[]);
    println!(
        "ferry save: exit {}, peak RSS {kib} KiB, {}",
        r.code,
        r.stderr.lines().find(|l| l.starts_with("ferry: error")).unwrap_or_default()
    );
    assert_eq!(r.code, 1, "a hostile source is a format error (exit 1):\n{}", r.stderr);
    assert!(r.stderr.contains("is not a valid tar archive"), "{}", r.stderr);
    assert!(r.stderr.contains("a PAX extended header of 1073741824 bytes, more than the 65536 bytes ferry accepts"), "{}", r.stderr);
    assert!(kib < HOSTILE_RSS_LIMIT_KIB, "ferry save peaked at {kib} KiB");
    let left: Vec<_> = std::fs::read_dir(&out).map(|d| d.map(|e| e.unwrap().file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "nothing may be published: {left:?}");
    print_rss("save of a docker-archive with a 1 GiB PAX header", kib);
}

#[test]
fn gnu_sparse_entry_with_a_bad_map_is_refused() {
    // Blocks out of order: the tar crate rejects the map while reading the header.
    let mut h = tar::Header::new_gnu();
    h.set_path("blobs/sha256/sparse").unwrap();
    h.set_entry_type(tar::EntryType::GNUSparse);
    h.set_mode(0o644);
    h.set_size(1024);
    {
        let gnu = h.as_gnu_mut().unwrap();
        gnu.sparse[0].set_offset(4096);
        gnu.sparse[0].set_length(512);
        gnu.sparse[1].set_offset(0);
        gnu.sparse[1].set_length(512);
        gnu.set_real_size(4608);
    }
    h.set_cksum();
    let mut entry = h.as_bytes().to_vec();
    entry.extend_from_slice(&[7u8; 1024]);
    let at = range_of(good_tar(), "oci-layout").end;
    let case = bundle_with_tar(&spliced(good_tar(), at, &entry));
    let kib = refused(&case, "the artifact's tar stream is invalid: out of order or overlapping sparse blocks");
    print_rss("GNU sparse entry with a bad map", kib);
}

#[test]
fn gnu_sparse_map_longer_than_64_kib_is_refused() {
    // A sparse header followed by 128 Ki extension blocks (64 MiB of map): the
    // tar crate would keep two readers per listed block in memory.
    let blocks = 128 << 10;
    let size = 1u64 << 60;
    let mut h = tar::Header::new_gnu();
    h.set_path("blobs/sha256/sparse").unwrap();
    h.set_entry_type(tar::EntryType::GNUSparse);
    h.set_mode(0o644);
    h.set_size(size);
    let mut offset = 0u64;
    let mut next = |s: &mut tar::GnuSparseHeader| {
        offset += 1024;
        s.set_offset(offset);
        s.set_length(512);
    };
    {
        let gnu = h.as_gnu_mut().unwrap();
        for s in gnu.sparse.iter_mut() {
            next(s);
        }
        gnu.set_is_extended(true);
        gnu.set_real_size(size);
    }
    h.set_cksum();
    let mut entry = h.as_bytes().to_vec();
    for i in 0..blocks {
        let mut ext = tar::GnuExtSparseHeader::new();
        for s in ext.sparse_mut().iter_mut() {
            next(s);
        }
        ext.set_is_extended(i + 1 < blocks);
        entry.extend_from_slice(ext.as_bytes());
    }
    let at = range_of(good_tar(), "oci-layout").end;
    let case = bundle_with_tar(&spliced(good_tar(), at, &entry));
    let kib = refused(&case, "a GNU sparse map of more than 128 extension blocks (64 KiB)");
    print_rss("GNU sparse map of 64 MiB", kib);
}

// ---- class 2: the zstd window is capped --------------------------------------

/// `data` as one zstd frame declaring a window of 2^`window_log` bytes, in raw
/// (stored) blocks: valid zstd for any decoder that allows such a window.
fn zstd_frame_with_window(data: &[u8], window_log: u8) -> Vec<u8> {
    let mut f = vec![0x28, 0xb5, 0x2f, 0xfd];
    f.push(0x00); // no content size, not single-segment, no checksum, no dictionary
    f.push((window_log - 10) << 3);
    let chunks: Vec<&[u8]> = data.chunks(128 << 10).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let last = (i + 1 == chunks.len()) as u32;
        let header = last | (chunk.len() as u32) << 3; // block type 0: raw
        f.extend_from_slice(&header.to_le_bytes()[..3]);
        f.extend_from_slice(chunk);
    }
    f
}

#[test]
fn zstd_frame_asking_for_a_2_gib_window_is_refused() {
    let case = bundle_with_artifact("h.tar.zst", &zstd_frame_with_window(good_tar(), 31));
    let kib = refused(&case, "decompressing the artifact (zstd) failed: the zstd frame at byte 0 asks for a 2048 MiB window, more than the 128 MiB ferry accepts");
    print_rss("zstd frame with a 2 GiB window", kib);
}

#[test]
fn zstd_frame_within_the_window_cap_is_read() {
    // The same hand-made frame with a 128 MiB window: accepted (the cap is not too tight).
    let case = bundle_with_artifact("h.tar.zst", &zstd_frame_with_window(good_tar(), 27));
    ferry_ok(&["verify", case.bundle.to_str().unwrap()]);
}

#[test]
fn garbage_between_zstd_frames_is_refused() {
    let tar = good_tar();
    let half = tar.len() / 2;
    let mut artifact = zstd_bytes(&tar[..half]);
    let at = artifact.len();
    artifact.extend_from_slice(b"GARBAGE!");
    artifact.extend_from_slice(&zstd_bytes(&tar[half..]));
    let case = bundle_with_artifact("h.tar.zst", &artifact);
    let kib = refused(&case, &format!("decompressing the artifact (zstd) failed: the data at byte {at} is not a zstd frame"));
    print_rss("garbage between zstd frames", kib);
}

#[test]
fn garbage_after_the_last_zstd_frame_is_refused() {
    let mut artifact = zstd_bytes(good_tar());
    let at = artifact.len();
    artifact.extend_from_slice(b"trailing garbage");
    let case = bundle_with_artifact("h.tar.zst", &artifact);
    let kib = refused(&case, &format!("decompressing the artifact (zstd) failed: the data at byte {at} is not a zstd frame"));
    print_rss("garbage after the last zstd frame", kib);
}

#[test]
fn truncated_zstd_frame_is_refused() {
    // Cut inside the frame's last block; STEM.sha256 matches the cut file.
    let artifact = zstd_bytes(good_tar());
    let case = bundle_with_artifact("h.tar.zst", &artifact[..artifact.len() - 10]);
    let kib = refused(&case, "decompressing the artifact (zstd) failed: the zstd stream ends in the middle of a frame");
    print_rss("truncated zstd frame", kib);
}

#[test]
fn bad_gzip_stream_is_refused() {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(good_tar()).unwrap();
    let mut artifact = gz.finish().unwrap();
    // Bytes after the gzip member that are not another member.
    artifact.extend_from_slice(b"not a gzip member");
    let case = bundle_with_artifact("h.tar.gz", &artifact);
    let kib = refused(&case, "decompressing the artifact (gzip) failed");
    print_rss("bad gzip stream", kib);
}

// ---- class 2/5: JSON documents are bounded in depth --------------------------

/// A good tar whose index.json is `index`.
fn with_index_json(index: &[u8]) -> Case {
    let tar = good_tar();
    let r = range_of(tar, "index.json");
    let mut edited = tar[..r.start].to_vec();
    edited.extend_from_slice(&raw_entry("index.json", tar::EntryType::Regular, index, index.len() as u64));
    edited.extend_from_slice(&tar[r.end..]);
    bundle_with_tar(&edited)
}

#[test]
fn index_json_of_100000_nested_brackets_is_refused() {
    let kib = refused(&with_index_json(&[b'['; 100_000]), "index.json in the artifact is not valid JSON: invalid type: sequence");
    print_rss("index.json of 100000 '['", kib);
}

#[test]
fn deeply_nested_value_in_index_json_is_refused() {
    // The nesting sits where any JSON value is allowed (a descriptor's extra field).
    let mut index =
        br#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:"#.to_vec();
    index.extend_from_slice(format!("{:064x}\",\"size\":1,\"x\":", 1).as_bytes());
    index.extend(std::iter::repeat_n(b'[', 100_000));
    index.extend(std::iter::repeat_n(b']', 100_000));
    index.extend_from_slice(br#"}],"annotations":{"dev.ferry.bundle.format":"1"}}"#);
    let kib = refused(&with_index_json(&index), "index.json in the artifact is not valid JSON: recursion limit exceeded");
    print_rss("index.json with a value nested 100000 deep", kib);
}

#[test]
fn index_json_of_8_million_tiny_values_is_refused() {
    // 16 MiB of `0,` in a descriptor's extra field: parsed whole, some 900 MiB.
    let mut index =
        br#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:"#.to_vec();
    index.extend_from_slice(format!("{:064x}\",\"size\":1,\"x\":[", 1).as_bytes());
    while index.len() < (16 << 20) - 64 {
        index.extend_from_slice(b"0,");
    }
    index.extend_from_slice(br#"0]}],"annotations":{"dev.ferry.bundle.format":"1"}}"#);
    let kib =
        refused(&with_index_json(&index), "index.json in the artifact is not valid JSON: more than 65536 JSON values in one document");
    print_rss("index.json of 8 million values", kib);
}

#[test]
fn many_manifests_past_the_documents_budget_are_refused() {
    // 200 manifests of 5000 layers each (a million descriptors kept in memory), 1 MiB compressed.
    let layers: Vec<serde_json::Value> = (0..5000)
        .map(|i| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": format!("sha256:{:064x}", i), "size": 1}))
        .collect();
    let config = serde_json::json!({"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{:064x}", 9_999_999), "size": 2});
    let manifests: Vec<Vec<u8>> = (0..200)
        .map(|n| serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers, "annotations": {"n": n.to_string()}})).unwrap())
        .collect();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests.iter().map(|m| descriptor(OCI_MANIFEST, m)).collect::<Vec<_>>(),
        "annotations": {"dev.ferry.bundle.format": "1"},
    }))
    .unwrap();
    let mut out = RawTar::new();
    out.entry("oci-layout", tar::EntryType::Regular, br#"{"imageLayoutVersion":"1.0.0"}"#, "");
    out.entry("index.json", tar::EntryType::Regular, &index, "");
    out.entry("manifest.json", tar::EntryType::Regular, b"[]", "");
    for m in &manifests {
        out.entry(&format!("blobs/sha256/{}", sha256_hex(m)), tar::EntryType::Regular, m, "");
    }
    let case = bundle_with_tar(&out.finish());
    let kib = refused(&case, "the artifact's documents hold more than 32 MiB or 131072 JSON values in all");
    print_rss("200 manifests of 5000 layers", kib);
}

// ---- class 4: one document set -----------------------------------------------

/// A good tar with a second copy of entry `name` after manifest.json.
fn with_second(name: &str) -> Case {
    let tar = good_tar();
    let copy = tar[range_of(tar, name)].to_vec();
    let at = range_of(tar, "manifest.json").end;
    bundle_with_tar(&spliced(tar, at, &copy))
}

#[test]
fn second_index_json_is_refused() {
    let kib = refused(&with_second("index.json"), "the artifact holds a second index.json");
    print_rss("second index.json", kib);
}

#[test]
fn second_manifest_json_is_refused() {
    let kib = refused(&with_second("manifest.json"), "the artifact holds a second manifest.json");
    print_rss("second manifest.json", kib);
}

#[test]
fn second_oci_layout_is_refused() {
    let kib = refused(&with_second("oci-layout"), "the artifact holds a second oci-layout");
    print_rss("second oci-layout", kib);
}

#[test]
fn non_zero_data_after_the_end_marker_is_refused() {
    let mut tar = good_tar().to_vec();
    tar.extend_from_slice(b"hidden after the end of the archive");
    let case = bundle_with_tar(&tar);
    let kib = refused(&case, "the artifact has data after the end of its tar archive");
    print_rss("data after the end marker", kib);
}

#[test]
fn tar_stream_without_its_end_marker_is_refused() {
    // The stream stops cleanly at an entry boundary: not a complete archive.
    let case = bundle_with_tar(entries_only(good_tar()));
    let kib = refused(&case, "the artifact's tar stream ends without its end-of-archive marker");
    print_rss("no end marker", kib);
}

/// A good tar whose index.json's first descriptor is replaced by `top`, with
/// `blobs` (name → bytes) inserted before the original blobs and manifest.json
/// replaced by `docker_manifest` when given.
fn with_new_top(top: serde_json::Value, blobs: &[&[u8]], docker_manifest: Option<&[u8]>, keep_blobs: bool) -> Case {
    let tar = good_tar();
    let files = tar_files(tar);
    let get = |n: &str| files.iter().find(|(p, ..)| p == n).unwrap().2.clone();
    let mut index: serde_json::Value = serde_json::from_slice(&get("index.json")).unwrap();
    let annotations = index["manifests"][0]["annotations"].clone();
    index["manifests"][0] = top;
    index["manifests"][0]["annotations"] = annotations;
    let index = serde_json::to_vec(&index).unwrap();
    let mut out = RawTar::new();
    out.entry("oci-layout", tar::EntryType::Regular, &get("oci-layout"), "");
    out.entry("index.json", tar::EntryType::Regular, &index, "");
    let docker = docker_manifest.map(<[u8]>::to_vec).unwrap_or_else(|| get("manifest.json"));
    out.entry("manifest.json", tar::EntryType::Regular, &docker, "");
    out.entry("blobs/", tar::EntryType::Directory, &[], "");
    out.entry("blobs/sha256/", tar::EntryType::Directory, &[], "");
    for b in blobs {
        out.entry(&format!("blobs/sha256/{}", sha256_hex(b)), tar::EntryType::Regular, b, "");
    }
    if keep_blobs {
        for (p, k, d, _) in &files {
            if p.starts_with("blobs/sha256/") && k.is_file() {
                out.entry(p, *k, d, "");
            }
        }
    }
    bundle_with_tar(&out.finish())
}

fn descriptor(media_type: &str, bytes: &[u8]) -> serde_json::Value {
    serde_json::json!({"mediaType": media_type, "digest": format!("sha256:{}", sha256_hex(bytes)), "size": bytes.len()})
}

fn first_descriptor() -> serde_json::Value {
    let files = tar_files(good_tar());
    let index: serde_json::Value = serde_json::from_slice(&files.iter().find(|(p, ..)| p == "index.json").unwrap().2).unwrap();
    let mut d = index["manifests"][0].clone();
    d.as_object_mut().unwrap().remove("annotations");
    d
}

#[test]
fn manifest_descriptor_pointing_at_an_index_is_refused() {
    // A valid index (listing the real manifest), described as a manifest.
    let index =
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [first_descriptor()]})).unwrap();
    let case = with_new_top(descriptor(OCI_MANIFEST, &index), &[&index], None, true);
    let kib = refused(&case, &format!("blob sha256:{} is described as a manifest but its content is an index", sha256_hex(&index)));
    print_rss("manifest descriptor pointing at an index", kib);
}

#[test]
fn config_that_is_a_manifest_is_refused() {
    // A manifest whose config descriptor points at the real manifest's bytes.
    let real = first_descriptor();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": real["digest"], "size": real["size"]},
        "layers": [],
    }))
    .unwrap();
    let files = tar_files(good_tar());
    let real_bytes =
        files.iter().find(|(p, ..)| *p == format!("blobs/sha256/{}", &real["digest"].as_str().unwrap()[7..])).unwrap().2.clone();
    let case = with_new_top(descriptor(OCI_MANIFEST, &manifest), &[&manifest, &real_bytes], Some(b"[]"), false);
    let kib = refused(&case, &format!("blob {} is described as a config but its content is a manifest", real["digest"].as_str().unwrap()));
    print_rss("config that is a manifest", kib);
}

#[test]
fn archive_target_holds_exactly_the_verified_entries() {
    // A good bundle whose tar is padded to a 10 KiB record after its end marker (as GNU tar does).
    let mut padded = good_tar().to_vec();
    padded.resize(padded.len().div_ceil(10240) * 10240 + 10240, 0);
    let case = bundle_with_tar(&padded);
    for kind in ["oci-archive", "docker-archive"] {
        let out = case.target.with_file_name(format!("out-{kind}.tar"));
        ferry_ok(&["load", "--allow-unsigned", case.bundle.to_str().unwrap(), "--into", &format!("{kind}:{}", out.display())]);
        let written = std::fs::read(&out).unwrap();
        let mut expected = entries_only(good_tar()).to_vec();
        expected.extend_from_slice(&[0u8; 1024]);
        assert_eq!(written.len(), expected.len(), "{kind}: the archive must end right after its 1024-byte end marker");
        assert!(written == expected, "{kind}: the archive must hold exactly the verified entries");
    }
}

// ---- class 5: size arithmetic is checked -------------------------------------

#[test]
fn declared_sizes_summing_past_u64_max_are_refused() {
    let files = tar_files(good_tar());
    let real: serde_json::Value = {
        let d = first_descriptor();
        serde_json::from_slice(
            &files.iter().find(|(p, ..)| *p == format!("blobs/sha256/{}", &d["digest"].as_str().unwrap()[7..])).unwrap().2,
        )
        .unwrap()
    };
    let huge = u64::MAX / 2;
    let layers: Vec<serde_json::Value> = (1..=3)
        .map(|i| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": format!("sha256:{:064x}", i), "size": huge}))
        .collect();
    let manifest =
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": real["config"], "layers": layers}))
            .unwrap();
    let config =
        files.iter().find(|(p, ..)| *p == format!("blobs/sha256/{}", &real["config"]["digest"].as_str().unwrap()[7..])).unwrap().2.clone();
    let case = with_new_top(descriptor(OCI_MANIFEST, &manifest), &[&manifest, &config], Some(b"[]"), false);
    // The first layer's header claims its (huge) declared size; no data follows.
    let tar = decompress(&std::fs::read(case.bundle.join("h.tar.zst")).unwrap());
    let mut tar = entries_only(&tar).to_vec();
    tar.extend_from_slice(&raw_entry(&format!("blobs/sha256/{:064x}", 1), tar::EntryType::Regular, &[], huge));
    std::fs::write(case.bundle.join("h.tar.zst"), zstd_bytes(&tar)).unwrap();
    let artifact = std::fs::read(case.bundle.join("h.tar.zst")).unwrap();
    std::fs::write(case.bundle.join("h.sha256"), format!("{}  h.tar.zst\n", sha256_hex(&artifact))).unwrap();
    let kib = refused(&case, "declares more than 2^64 bytes of blobs: refused");
    print_rss("declared sizes past u64::MAX", kib);
}
