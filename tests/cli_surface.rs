//! The command line's own surface: shell completions, the man page, image lists
//! and a reader that closes stdout early.
mod common;
use common::*;
use std::io::Read;
use std::process::{Command, Stdio};

#[test]
fn bash_completions_parse_and_zsh_fish_are_written() {
    let tmp = tempfile::tempdir().unwrap();
    let r = ferry_ok(&["completions", "bash"]);
    assert!(r.stdout.contains("complete -F") && r.stdout.contains("ferry"), "{}", &r.stdout[..r.stdout.len().min(400)]);
    for sub in ["save", "load", "verify", "inspect", "push", "pull", "ls", "flatten", "keygen"] {
        assert!(r.stdout.contains(sub), "bash completion lacks {sub}");
    }
    let script = tmp.path().join("ferry.bash");
    std::fs::write(&script, &r.stdout).unwrap();
    sh(&format!("bash -n '{}'", script.display()));
    // The script, sourced, registers a completion for ferry.
    let registered = sh(&format!("bash -c 'source {} && complete -p ferry'", script.display()));
    assert!(registered.contains("ferry"), "{registered}");
    let zsh = ferry_ok(&["completions", "zsh"]);
    assert!(zsh.stdout.starts_with("#compdef ferry"), "{}", &zsh.stdout[..zsh.stdout.len().min(200)]);
    let fish = ferry_ok(&["completions", "fish"]);
    assert!(fish.stdout.contains("complete -c ferry"), "{}", &fish.stdout[..fish.stdout.len().min(200)]);
    let r = ferry(&["completions", "tcsh"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}

#[test]
fn man_page_renders() {
    let r = ferry_ok(&["man"]);
    assert!(r.stdout.starts_with(".ie") || r.stdout.contains(".TH ferry"), "{}", &r.stdout[..r.stdout.len().min(300)]);
    assert!(r.stdout.contains("air gaps"), "the man page carries the description");
    for sub in ["save", "load", "verify", "completions"] {
        assert!(r.stdout.contains(sub), "man page lacks {sub}");
    }
}

#[test]
fn save_images_from_a_list_file() {
    let tmp = tempfile::tempdir().unwrap();
    let list = tmp.path().join("images.txt");
    std::fs::write(
        &list,
        format!(
            "# release 42\n\ndocker-archive:{}   # the small one\n  oci-archive:{}\n#docker-archive:/nonexistent.tar\n",
            fixture("docker20-whiteout.docker.tar.gz").display(),
            fixture("podman-links.oci.tar.zst").display()
        ),
    )
    .unwrap();
    let out = tmp.path().join("usb");
    ferry_ok(&["save", "--images-from", list.to_str().unwrap(), "-o", out.to_str().unwrap(), "-n", "listed"]);
    let info = ferry_ok(&["inspect", out.join("listed.sha256").to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&info.stdout).unwrap();
    assert_eq!(v["images"].as_array().map(|a| a.len()), Some(2), "{}", info.stdout);

    std::fs::write(&list, "# nothing\n\n").unwrap();
    let r = ferry(&["save", "--images-from", list.to_str().unwrap(), "-o", out.to_str().unwrap(), "-n", "none"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("lists no images"), "{}", r.stderr);
    let r = ferry(&["save", "-o", out.to_str().unwrap()]);
    assert_eq!(r.code, 2, "save needs images or --images-from: {}", r.stderr);
}

#[test]
fn a_closed_stdout_is_success_not_a_panic() {
    // The reader is gone before ferry writes (`ferry completions bash | true`).
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["completions", "bash"])
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn level_help_matches_what_is_accepted() {
    let help = ferry_ok(&["save", "--help"]).stdout;
    assert!(help.contains("zstd 1-22") && help.contains("gzip 0-9"), "{help}");
    let tmp = tempfile::tempdir().unwrap();
    let image = format!("docker-archive:{}", fixture("docker20-whiteout.docker.tar.gz").display());
    let out = tmp.path().to_str().unwrap();
    ferry_ok(&["save", &image, "-o", out, "-n", "z22", "--level", "22"]);
    ferry_ok(&["save", &image, "-o", out, "-n", "g0", "--compress", "gzip", "--level", "0"]);
    assert_eq!(ferry(&["save", &image, "-o", out, "-n", "z23", "--level", "23"]).code, 2);
}
