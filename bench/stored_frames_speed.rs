//! MB/s of the ways to put already-compressed data (gzip layers) into a zstd
//! stream, for the choice in src/compress.rs (`StoredFrames`):
//!
//!   cargo run --release --example stored_frames_speed FILE          # levels, raw blocks
//!   PROBE=1 cargo run --release --example stored_frames_speed FILE  # per-segment probes
//!
//! FILE: e.g. 256 MiB of the bench image's gzip layers (skopeo copy
//! --dest-compress docker-archive:IMG oci:DIR, then cat the layer blobs).
use std::io::Read;
use std::time::Instant;
use zstd::stream::raw::{CParameter, Encoder, InBuffer, Operation, OutBuffer};
use zstd::zstd_safe::Strategy;

fn run(name: &str, data: &[u8], setup: impl Fn(&mut Encoder<'static>)) {
    let mut enc = Encoder::new(0).unwrap();
    setup(&mut enc);
    let mut out = vec![0u8; 2 << 20];
    let t = Instant::now();
    let cpu0 = cpu();
    let mut total = 0usize;
    for chunk in data.chunks(256 << 10) {
        let mut src = InBuffer::around(chunk);
        loop {
            let mut dst = OutBuffer::around(&mut out[..]);
            enc.run(&mut src, &mut dst).unwrap();
            total += dst.pos();
            if src.pos() == chunk.len() && dst.pos() < out.len() {
                break;
            }
        }
    }
    loop {
        let mut dst = OutBuffer::around(&mut out[..]);
        let left = enc.finish(&mut dst, true).unwrap();
        total += dst.pos();
        if left == 0 {
            break;
        }
    }
    let s = t.elapsed().as_secs_f64();
    let c = cpu() - cpu0;
    let mb = data.len() as f64 / 1e6;
    println!("{name:<44} wall {:>7.0} MB/s  cpu {:>7.0} MB/s  size {:.4}", mb / s, mb / c, total as f64 / data.len() as f64);
}

fn cpu() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let f: Vec<&str> = s.rsplit(')').next().unwrap().split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

fn stored(data: &[u8]) {
    let t = Instant::now();
    let mut out: Vec<u8> = Vec::with_capacity(4 << 20);
    let mut total = 0usize;
    for chunk in data.chunks(256 << 10) {
        out.clear();
        for block in chunk.chunks(128 << 10) {
            out.extend_from_slice(&((block.len() as u32) << 3).to_le_bytes()[..3]);
            out.extend_from_slice(block);
        }
        total += out.len();
        std::hint::black_box(&out);
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "{:<44} wall {:>7.0} MB/s  size {:.4}",
        "raw blocks (copy + 3-byte headers)",
        data.len() as f64 / 1e6 / s,
        total as f64 / data.len() as f64
    );
}

fn main() {
    let path = std::env::args().nth(1).expect("FILE");
    let mut data = Vec::new();
    std::fs::File::open(path).unwrap().read_to_end(&mut data).unwrap();
    let workers: u32 = std::env::var("WORKERS").ok().and_then(|w| w.parse().ok()).unwrap_or(2);
    let level = |l: i32, w: u32| {
        move |e: &mut Encoder<'static>| {
            e.set_parameter(CParameter::CompressionLevel(l)).unwrap();
            e.set_parameter(CParameter::NbWorkers(w)).unwrap();
            e.set_parameter(CParameter::ChecksumFlag(true)).unwrap();
        }
    };
    if std::env::var("PROBE").is_ok() {
        for seg in [1usize << 20, 4 << 20] {
            for l in [-1, 1] {
                probe(&data, seg, l);
            }
        }
        return;
    }
    stored(&data);
    run(&format!("level 3, {workers} workers (ferry today)"), &data, level(3, workers));
    run("level 3, 1 thread", &data, level(3, 0));
    run("level 1, 1 thread", &data, level(1, 0));
    run("level -5, 1 thread", &data, level(-5, 0));
    run(&format!("level min ({}), 1 thread", zstd::zstd_safe::min_c_level()), &data, level(zstd::zstd_safe::min_c_level(), 0));
    run("level min, no checksum, fast, hashLog 6, minMatch 7", &data, |e| {
        e.set_parameter(CParameter::CompressionLevel(zstd::zstd_safe::min_c_level())).unwrap();
        e.set_parameter(CParameter::Strategy(Strategy::ZSTD_fast)).unwrap();
        e.set_parameter(CParameter::HashLog(6)).unwrap();
        e.set_parameter(CParameter::MinMatch(7)).unwrap();
    });
}

/// Per segment: level `level` into a buffer, kept if it saves at least 2 %, else raw blocks.
fn probe(data: &[u8], segment: usize, level: i32) {
    let mut c = zstd::bulk::Compressor::new(level).unwrap();
    c.set_parameter(CParameter::WindowLog(segment.ilog2())).unwrap();
    let mut out = vec![0u8; zstd::zstd_safe::compress_bound(segment)];
    let t = Instant::now();
    let cpu0 = cpu();
    let (mut total, mut kept) = (0usize, 0usize);
    for chunk in data.chunks(segment) {
        let n = c.compress_to_buffer(chunk, &mut out[..]).unwrap();
        if n < chunk.len() * 98 / 100 {
            total += n;
            kept += 1;
        } else {
            total += chunk.len() + 3 * chunk.len().div_ceil(128 << 10) + 6;
        }
    }
    let s = t.elapsed().as_secs_f64();
    let c = cpu() - cpu0;
    let mb = data.len() as f64 / 1e6;
    println!(
        "probe level {level:>3} per {:>4} KiB        wall {:>7.0} MB/s  cpu {:>7.0} MB/s  size {:.4}  compressed segments {kept}/{}",
        segment >> 10,
        mb / s,
        mb / c,
        total as f64 / data.len() as f64,
        data.len().div_ceil(segment)
    );
}
