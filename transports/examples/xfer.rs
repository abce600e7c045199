//! Copy one file to or from a location through the `Transport` trait alone: no bundle,
//! no checksum. bench/transports.sh uses it to time the transports apart from what
//! `ferry push`/`pull` add on top (SHA-256 of every byte, stats, the sidecar files).
//!
//!   xfer put LOCATION LOCAL_FILE NAME     (NAME.partial, then commit)
//!   xfer get LOCATION NAME LOCAL_FILE
//!
//! Options (before the command): --known-hosts FILE, --ssh-key FILE. Prints
//! `bytes seconds` on stdout.
use ferry_transports::{open_with, PutMode, TransportOptions};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Instant;

const BLOCK: usize = 1024 * 1024;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut opts = TransportOptions::default();
    while args.first().is_some_and(|a| a.starts_with("--")) {
        let flag = args.remove(0);
        let value = PathBuf::from(args.remove(0));
        match flag.as_str() {
            "--known-hosts" => opts.known_hosts = Some(value),
            "--ssh-key" => opts.identity_files.push(value),
            other => die(&format!("unknown option {other}")),
        }
    }
    let [cmd, location, a, b] = <[String; 4]>::try_from(args).unwrap_or_else(|_| die("usage: xfer [opts] put|get LOCATION A B"));
    let t = open_with(&location, &opts).unwrap_or_else(|e| die(&e.to_string()));
    let mut buf = vec![0u8; BLOCK];
    let start = Instant::now();
    let mut total = 0u64;
    match cmd.as_str() {
        "put" => {
            let mut file = std::fs::File::open(&a).unwrap_or_else(|e| die(&format!("{a}: {e}")));
            let mut up = t.put(&b, PutMode::Fresh).unwrap_or_else(|e| die(&e.to_string()));
            loop {
                let n = file.read(&mut buf).unwrap_or_else(|e| die(&e.to_string()));
                if n == 0 {
                    break;
                }
                up.write_all(&buf[..n]).unwrap_or_else(|e| die(&e.to_string()));
                total += n as u64;
            }
            up.commit().unwrap_or_else(|e| die(&e.to_string()));
        }
        "get" => {
            let mut r = t.get(&a, 0).unwrap_or_else(|e| die(&e.to_string()));
            let mut file = std::fs::File::create(&b).unwrap_or_else(|e| die(&format!("{b}: {e}")));
            loop {
                let n = r.read(&mut buf).unwrap_or_else(|e| die(&e.to_string()));
                if n == 0 {
                    break;
                }
                file.write_all(&buf[..n]).unwrap_or_else(|e| die(&e.to_string()));
                total += n as u64;
            }
        }
        other => die(&format!("unknown command {other}")),
    }
    println!("{total} {:.3}", start.elapsed().as_secs_f64());
}

fn die(msg: &str) -> ! {
    eprintln!("xfer: {msg}");
    std::process::exit(1)
}
