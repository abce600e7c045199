//! Already-compressed layers (gzip, zstd) go into a zstd bundle as stored
//! (raw-block) zstd frames, not compressed again: the artifact stays a plain
//! zstd stream that sha256sum, zstd, tar and ferry read.
mod common;
use common::*;
use std::io::Write;
use std::path::Path;

/// Bytes in the raw blocks of stored frames as ferry writes them (frame
/// header descriptor 0x00: no checksum, no content size; window 128 KiB), and
/// in all raw blocks, of a zstd stream (RFC 8878 §3.1.1; skippable frames
/// skipped). zstd itself writes raw blocks where a block does not shrink, but
/// in its own frames (ferry's, with a checksum).
fn raw_bytes(mut s: &[u8]) -> (u64, u64) {
    let (mut stored, mut raw) = (0u64, 0u64);
    while !s.is_empty() {
        let magic = u32::from_le_bytes(s[..4].try_into().unwrap());
        if magic & 0xFFFF_FFF0 == 0x184D_2A50 {
            let len = u32::from_le_bytes(s[4..8].try_into().unwrap()) as usize;
            s = &s[8 + len..];
            continue;
        }
        assert_eq!(magic, 0xFD2F_B528, "not a zstd frame");
        let fhd = s[4];
        let ferry_stored = fhd == 0x00 && s[5] == 0x38;
        let single = fhd & 0x20 != 0;
        let fcs = match (fhd >> 6, single) {
            (0, true) => 1,
            (0, false) => 0,
            (1, _) => 2,
            (2, _) => 4,
            _ => 8,
        };
        let dict = [0, 1, 2, 4][(fhd & 3) as usize];
        s = &s[5 + usize::from(!single) + dict + fcs..];
        loop {
            let h = u32::from_le_bytes([s[0], s[1], s[2], 0]);
            let (last, kind, size) = (h & 1 == 1, (h >> 1) & 3, (h >> 3) as usize);
            if kind == 0 {
                raw += size as u64;
                if ferry_stored {
                    stored += size as u64;
                }
            }
            s = &s[3 + if kind == 1 { 1 } else { size }..];
            if last {
                break;
            }
        }
        if fhd & 4 != 0 {
            s = &s[4..];
        }
    }
    (stored, raw)
}

/// The layers of every manifest of an OCI layout: (media type, digest, size).
fn layers(layout: &Path) -> Vec<(String, String, u64)> {
    let blob = |d: &str| std::fs::read(layout.join("blobs/sha256").join(d.trim_start_matches("sha256:"))).unwrap();
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mut out = Vec::new();
    for m in index["manifests"].as_array().unwrap() {
        let manifest: serde_json::Value = serde_json::from_slice(&blob(m["digest"].as_str().unwrap())).unwrap();
        for l in manifest["layers"].as_array().unwrap() {
            out.push((l["mediaType"].as_str().unwrap().into(), l["digest"].as_str().unwrap().into(), l["size"].as_u64().unwrap()));
        }
    }
    out
}

/// save → sha256sum -c, zstd -t, `zstd -dc | tar -t`, verify, load into
/// oci:; returns the artifact's bytes.
fn save_and_check(source: &str, layout: &Path, work: &Path, stem: &str) -> Vec<u8> {
    let out = work.join(stem);
    ferry_ok(&["save", source, "-o", out.to_str().unwrap(), "-n", stem]);
    let artifact = out.join(format!("{stem}.tar.zst"));
    sh(&format!("cd {} && sha256sum -c {stem}.sha256 && zstd -tq {stem}.tar.zst", out.display()));
    let listed = sh(&format!("zstd -dc {} | tar -t", artifact.display()));
    for (_, digest, _) in layers(layout) {
        let path = format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
        assert!(listed.lines().any(|l| l == path), "{path} not in `tar -t`:\n{listed}");
    }
    let sums = out.join(format!("{stem}.sha256"));
    ferry_ok(&["verify", sums.to_str().unwrap()]);
    let loaded = work.join(format!("{stem}-oci"));
    ferry_ok(&["load", "--allow-unsigned", sums.to_str().unwrap(), "--into", &format!("oci:{}", loaded.display())]);
    let have = layout_blobs(&loaded);
    for d in source_digests(layout) {
        assert!(have.contains(&d), "{source}: {d} missing after the trip");
    }
    std::fs::read(artifact).unwrap()
}

#[test]
fn gzip_and_zstd_layer_fixtures_are_stored_not_recompressed() {
    require("zstd");
    let work = tempfile::tempdir().unwrap();
    let zstd_layout = work.path().join("skopeo-zstd");
    std::fs::create_dir(&zstd_layout).unwrap();
    sh(&format!("tar -xf {} -C {}", fixture("skopeo-zstd.oci.tar").display(), zstd_layout.display()));
    for (source, layout, stem, suffix) in [
        (format!("oci:{}", fixture("skopeo-gzip.oci").display()), fixture("skopeo-gzip.oci"), "gz", "+gzip"),
        (format!("oci-archive:{}", fixture("skopeo-zstd.oci.tar").display()), zstd_layout, "zst", "+zstd"),
    ] {
        let artifact = save_and_check(&source, &layout, work.path(), stem);
        let compressed: u64 = layers(&layout).iter().filter(|(mt, ..)| mt.ends_with(suffix)).map(|l| l.2).sum();
        assert!(compressed > 1_000_000, "{stem}: the fixture has {compressed} bytes of {suffix} layers");
        let (stored, _) = raw_bytes(&artifact);
        assert!(stored >= compressed, "{stem}: {stored} bytes in stored frames, fewer than the {compressed} of {suffix} layers");
        assert!(artifact.len() as u64 >= compressed, "{stem}: the artifact ({}) is smaller than its compressed layers", artifact.len());
    }
}

/// A layout of three layers: `noise` gzip-compressed (more than two 4 MiB
/// segments), a layer whose media type says gzip but whose bytes are a plain
/// tar, and a plain tar layer.
fn write_layout(dir: &Path, noise: &[u8], text: &[u8]) -> (u64, u64) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let hex = sha256_hex(bytes);
        std::fs::write(blobs.join(&hex), bytes).unwrap();
        serde_json::json!({"digest": format!("sha256:{hex}"), "size": bytes.len()})
    };
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&RawTar::new().entry("noise.bin", tar::EntryType::Regular, noise, "").finish()).unwrap();
    let gzip_layer = gz.finish().unwrap();
    let mislabelled = RawTar::new().entry("text.txt", tar::EntryType::Regular, text, "").finish();
    let plain = RawTar::new().entry("again.txt", tar::EntryType::Regular, text, "").finish();
    let with_type = |mut d: serde_json::Value, mt: &str| {
        d["mediaType"] = mt.into();
        d
    };
    let layers = [
        with_type(put(&gzip_layer), "application/vnd.oci.image.layer.v1.tar+gzip"),
        with_type(put(&mislabelled), "application/vnd.oci.image.layer.v1.tar+gzip"),
        with_type(put(&plain), "application/vnd.oci.image.layer.v1.tar"),
    ];
    let diff_ids: Vec<String> = [
        sha256_hex(&RawTar::new().entry("noise.bin", tar::EntryType::Regular, noise, "").finish()),
        sha256_hex(&mislabelled),
        sha256_hex(&plain),
    ]
    .iter()
    .map(|h| format!("sha256:{h}"))
    .collect();
    let config =
        serde_json::json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}, "config": {}});
    let config = with_type(put(&serde_json::to_vec(&config).unwrap()), "application/vnd.oci.image.config.v1+json");
    let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": config, "layers": layers});
    let mut manifest = with_type(put(&serde_json::to_vec(&manifest).unwrap()), "application/vnd.oci.image.manifest.v1+json");
    manifest["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "stored:v1"});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [manifest]})).unwrap())
        .unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    (gzip_layer.len() as u64, mislabelled.len() as u64)
}

#[test]
fn large_gzip_layers_are_stored_and_mislabelled_ones_compressed() {
    require("zstd");
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    // Incompressible, as a gzip layer's contents are; xorshift.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let noise: Vec<u8> = (0..9 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let text = "a line of text that zstd shrinks a lot\n".repeat(100_000).into_bytes();
    let (gzip_len, mislabelled_len) = write_layout(&layout, &noise, &text);
    let artifact = save_and_check(&format!("oci:{}", layout.display()), &layout, work.path(), "big");
    let (stored, raw) = raw_bytes(&artifact);
    assert_eq!(stored, gzip_len, "bytes in stored frames: the gzip layer, nothing else");
    assert!(raw < gzip_len + (1 << 20), "{raw} bytes in raw blocks for a {gzip_len}-byte gzip layer");
    // The tar layers (mislabelled or not) were compressed: the artifact is
    // barely larger than the gzip layer.
    assert!((artifact.len() as u64) < gzip_len + mislabelled_len / 20, "artifact {} bytes, gzip layer {gzip_len}", artifact.len());

    // Other bundle compressions take the blobs as they are.
    for compress in ["none", "gzip"] {
        let out = work.path().join(compress);
        ferry_ok(&["save", &format!("oci:{}", layout.display()), "-o", out.to_str().unwrap(), "-n", "b", "--compress", compress]);
        ferry_ok(&["verify", out.join("b.sha256").to_str().unwrap()]);
    }
}
