//! Checks the test harness itself: two private Docker daemons side by side.
mod support;

use support::dockerd::Dockerd;

#[test]
fn two_daemons_run_side_by_side() {
    let a = std::thread::spawn(Dockerd::start);
    let b = std::thread::spawn(Dockerd::start);
    let producer = a.join().expect("start producer dockerd");
    let consumer = b.join().expect("start consumer dockerd");
    assert_ne!(producer.host, consumer.host);

    producer.import_busybox("ferry-test/busybox:1");
    let out = producer.docker_ok(&["run", "--rm", "--pull=never", "--network", "none", "ferry-test/busybox:1", "echo", "hi"]);
    assert_eq!(out, "hi\n");

    // The consumer is a separate, empty daemon.
    let images = consumer.docker_ok(&["images", "-q"]);
    assert_eq!(images.trim(), "", "consumer daemon should start empty");
    let missing = consumer.docker(&["run", "--rm", "--pull=never", "--network", "none", "ferry-test/busybox:1", "true"]);
    assert!(!missing.status.success(), "image must not exist on the consumer");
}

#[test]
fn require_names_the_missing_binary() {
    support::require("sh");
    let err = std::panic::catch_unwind(|| support::require("no-such-binary-ferry-xyz")).expect_err("require must panic");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("missing no-such-binary-ferry-xyz"), "{msg}");
    assert!(msg.contains("scripts/install-deps.sh"), "{msg}");
}
