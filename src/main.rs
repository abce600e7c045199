//! The `ferry` command: argument parsing and output only; the work is in the library.
mod cli_progress;

use clap::{Args, CommandFactory, Parser, Subcommand};
use cli_progress::CliProgress;
use ferry::commands::{self, Context};
use ferry::error::{Error, Result};
use ferry::trust::TrustOptions;
use serde::Serialize;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "ferry", version, about = "Carry container images across air gaps: save, seal, ship, verify, load.")]
struct Cli {
    /// No progress or status output.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Print the command's report as one JSON object on stdout (errors as JSON on stderr).
    #[arg(long, global = true)]
    json: bool,
    #[command(flatten)]
    net: NetArgs,
    #[command(flatten)]
    containerd: ContainerdArgs,
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(subcommand)]
    command: Command,
}

/// Options of network locations (ftp://, ftps://, sftp://, http://, https://).
#[derive(Args)]
struct NetArgs {
    /// known_hosts file for SFTP (default ~/.ssh/known_hosts).
    #[arg(long, global = true, value_name = "FILE")]
    known_hosts: Option<std::path::PathBuf>,
    /// Accept and record the host key of an SFTP server not yet in known_hosts (a changed key is always refused).
    #[arg(long, global = true)]
    accept_new_host_key: bool,
    /// Extra CA certificate (PEM) to trust for FTPS, HTTPS and registries.
    #[arg(long, global = true, value_name = "FILE")]
    ca_cert: Option<std::path::PathBuf>,
    /// SSH private key for SFTP (default: the agent, then ~/.ssh/id_*); repeatable.
    #[arg(long = "ssh-key", global = true, value_name = "FILE")]
    ssh_keys: Vec<std::path::PathBuf>,
    /// Give up on a server that sends nothing for this long (FTP, SFTP, HTTP), e.g. 60s, 5m; 0 waits for ever.
    #[arg(long, global = true, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    timeout: std::time::Duration,
}

/// Options of `containerd:` sources and targets.
#[derive(Args)]
struct ContainerdArgs {
    /// containerd's socket (default /run/containerd/containerd.sock).
    #[arg(long, global = true, value_name = "SOCKET", env = "CONTAINERD_ADDRESS")]
    containerd_address: Option<std::path::PathBuf>,
    /// The snapshotter a containerd target unpacks into (overlayfs, native, ...).
    #[arg(long, global = true, value_name = "NAME", default_value = ferry::containerd::DEFAULT_SNAPSHOTTER)]
    snapshotter: String,
}

/// Options of `docker://` registries (SPEC §6); `--ca-cert` and `--timeout` apply too.
#[derive(Args)]
struct RegistryArgs {
    /// Client certificate (PEM) for registries that ask for one (mTLS); may hold its key too.
    #[arg(long, global = true, value_name = "FILE")]
    cert: Option<std::path::PathBuf>,
    /// The client certificate's private key (PKCS#8 PEM), if not in the --cert file.
    #[arg(long = "cert-key", global = true, value_name = "FILE")]
    cert_key: Option<std::path::PathBuf>,
    /// Talk to registries over plain HTTP (no TLS): only for a registry that has none.
    #[arg(long, global = true)]
    plain_http: bool,
    /// Registry credentials file (Docker config.json format); default $REGISTRY_AUTH_FILE, ~/.docker/config.json, $XDG_RUNTIME_DIR/containers/auth.json.
    #[arg(long, global = true, value_name = "FILE")]
    registry_auth: Option<std::path::PathBuf>,
    /// Blobs moved at once to or from a registry.
    #[arg(short = 'j', long, global = true, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,
    /// Further tries of a failed registry request (connection lost, 5xx), with backoff.
    #[arg(long, global = true, value_name = "N", default_value_t = 3)]
    retries: u32,
    /// Leave out signatures, attestations and SBOMs attached to images.
    #[arg(long, global = true)]
    no_referrers: bool,
}

fn registry_options(r: &RegistryArgs, net: &NetArgs) -> ferry::registry::RegistryOptions {
    ferry::registry::RegistryOptions {
        ca_cert: net.ca_cert.clone(),
        cert: r.cert.clone(),
        key: r.cert_key.clone(),
        plain_http: r.plain_http,
        auth_file: r.registry_auth.clone(),
        jobs: r.jobs.into(),
        retries: r.retries,
        no_referrers: r.no_referrers,
        io_timeout: net.timeout,
        ..Default::default()
    }
}

fn parse_duration(s: &str) -> std::result::Result<std::time::Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (e.g. 30s, 5m)"))
}

#[derive(Subcommand)]
enum Command {
    /// Save images into a bundle at a location.
    Save(SaveArgs),
    /// Verify a bundle, then load its images into a target.
    Load(LoadArgs),
    /// Check a bundle's checksums, signature and every blob; write nothing.
    Verify(VerifyArgs),
    /// Show what a bundle holds.
    Inspect(InspectArgs),
    /// Copy a bundle to a location (atomic, resumable).
    Push(PushArgs),
    /// Download a bundle (resumable; checksums verified).
    Pull(PullArgs),
    /// List the complete bundles at a location.
    Ls(LsArgs),
    /// Rewrite the missing or damaged parts of a bundle saved with --parity (rebuilt from its good parts).
    Repair(RepairArgs),
    /// Print a shell completion script (e.g. `ferry completions bash > /etc/bash_completion.d/ferry`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print ferry's man page (roff) on stdout: `ferry man | man -l -`.
    Man,
    /// Make a minisign key pair (ferry.key, ferry.pub) and an age identity (ferry.age).
    Keygen(KeygenArgs),
    /// Squash an image's layers into one (the filesystem a container sees) and write it to a target.
    Flatten(FlattenArgs),
    /// Write a have-list of what a consumer holds, for `ferry save --have` (SPEC §6).
    Have(HaveArgs),
    /// Poll a location; verify and load each new bundle once (see docs/WATCH.md).
    Watch(WatchArgs),
}

#[derive(Args)]
struct WatchArgs {
    /// The drop to poll: a directory or a URL (ftp://, ftps://, sftp://, http://, https://).
    location: String,
    /// Target: oci:DIR[:REF], oci-archive:PATH, docker-archive:PATH, docker-daemon:, ...
    #[arg(long)]
    into: String,
    #[command(flatten)]
    trust: TrustArgs,
    /// Time between polls, e.g. 30s, 5m.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    interval: std::time::Duration,
    /// Process what is there, then exit: 0 all new loaded, 3 one refused, 4 transport failure.
    #[arg(long)]
    once: bool,
    /// State directory (journal, lock, incoming/); default /var/lib/ferry/watch/HASH (root) or ~/.local/state/ferry/watch/HASH.
    #[arg(long, value_name = "DIR")]
    state: Option<std::path::PathBuf>,
    /// What to do with a loaded bundle at the location: keep, delete or move:DIR (DIR relative to the location).
    #[arg(long, default_value = "keep", value_name = "keep|delete|move:DIR")]
    after: String,
}

#[derive(Args)]
struct HaveArgs {
    /// What the consumer holds: oci:DIR[:REF], docker-daemon:[NAME] (all images when no name), containerd:[NAMESPACE], or a bundle (LOCATION/STEM, its .sha256, ...).
    #[arg(required = true)]
    targets: Vec<String>,
    /// The have-list file to write (`-` for stdout).
    #[arg(short, long)]
    output: std::path::PathBuf,
    #[command(flatten)]
    trust: TrustArgs,
    /// Read a bundle target that is unsigned or whose signer is not checked.
    #[arg(long)]
    allow_unsigned: bool,
}

#[derive(Args)]
struct SaveArgs {
    /// Images: docker-archive:PATH[:REF], oci-archive:PATH[:REF], oci:DIR[:REF], docker-daemon:NAME[:TAG], containerd:NAME.
    #[arg(required_unless_present = "images_from")]
    images: Vec<String>,
    /// Also save the images listed in FILE: one reference per line, `#` comments.
    #[arg(long, value_name = "FILE")]
    images_from: Option<std::path::PathBuf>,
    /// Where to write the bundle: a directory or a URL.
    #[arg(short, long)]
    output: String,
    /// Bundle name (file stem); default derived from the image name.
    #[arg(short = 'n', long = "name")]
    stem: Option<String>,
    #[arg(long, default_value = "zstd", value_parser = ["zstd", "gzip", "none"])]
    compress: String,
    /// Compression level (zstd 1-22, default 3; gzip 0-9, default 6).
    #[arg(long)]
    level: Option<i32>,
    /// Keep only these platforms (OS/ARCH[/VARIANT]); default keeps all.
    #[arg(long = "platform")]
    platforms: Vec<String>,
    /// Split the artifact into parts of SIZE bytes (K, M, G, T suffixes) or `fat32`.
    #[arg(long)]
    split: Option<String>,
    /// With --split: add N Reed-Solomon parity parts (STEM.parity.000...); any N lost or damaged parts can be rebuilt.
    #[arg(long, value_name = "N")]
    parity: Option<usize>,
    /// Sign STEM.sha256 with this minisign secret key (password: prompt or FERRY_KEY_PASSWORD).
    #[arg(long = "sign", value_name = "SECRET_KEY")]
    sign: Option<std::path::PathBuf>,
    /// Encrypt to this age recipient (age1..., ssh-ed25519 ..., ssh-rsa ...); repeatable.
    #[arg(short = 'r', long = "recipient")]
    recipients: Vec<String>,
    /// Encrypt to the recipients listed in this file; repeatable.
    #[arg(short = 'R', long = "recipients-file")]
    recipient_files: Vec<std::path::PathBuf>,
    /// Encrypt with a passphrase (prompt, or FERRY_PASSPHRASE).
    #[arg(long)]
    passphrase: bool,
    /// Flatten each image to one layer (see docs/FLATTEN.md).
    #[arg(long)]
    flatten: bool,
    /// A have-list of the target (from `ferry have`): leave out the layers it proves the target holds; repeatable.
    #[arg(long = "have", value_name = "FILE")]
    have: Vec<std::path::PathBuf>,
}

#[derive(Args)]
struct FlattenArgs {
    /// Image to flatten: docker-archive:PATH[:REF], oci-archive:PATH[:REF], oci:DIR[:REF], docker-daemon:NAME[:TAG].
    source: String,
    /// Where to write it: docker-archive:PATH[:NAME], oci-archive:PATH[:REF], oci:DIR[:REF], docker-daemon:[NAME[:TAG]].
    target: String,
    /// Keep only these platforms of a multi-platform image (OS/ARCH[/VARIANT]); default keeps all.
    #[arg(long = "platform")]
    platforms: Vec<String>,
}

#[derive(Args, Default)]
struct TrustArgs {
    /// Trusted minisign public key (file or base64 string); repeatable.
    #[arg(short = 'k', long = "key")]
    keys: Vec<String>,
    /// age identity file or SSH private key to decrypt with; repeatable.
    #[arg(short = 'i', long = "identity")]
    identities: Vec<std::path::PathBuf>,
}

impl TrustArgs {
    fn options(&self, allow_unsigned: bool) -> TrustOptions {
        TrustOptions { keys: self.keys.clone(), identities: self.identities.clone(), allow_unsigned, prompt_allowed: prompt_allowed() }
    }
}

fn prompt_allowed() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal()
}

#[derive(Args)]
struct SourceArgs {
    /// The bundle: its .sha256 file, its artifact, a directory holding one bundle, or LOCATION/STEM.
    source: String,
}

#[derive(Args)]
struct LoadArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Target: oci:DIR[:REF], oci-archive:PATH, docker-archive:PATH, containerd:[NAMESPACE] (default docker-daemon:).
    #[arg(long, default_value = "docker-daemon:")]
    into: String,
    /// For containerd:, keep and unpack only these platforms of multi-platform images (default: all kept, the host's unpacked).
    #[arg(long = "platform")]
    platforms: Vec<String>,
    #[command(flatten)]
    trust: TrustArgs,
    /// Load a bundle that is unsigned or whose signer is not checked.
    #[arg(long)]
    allow_unsigned: bool,
    /// For a delta into oci:DIR: also hash every left-out layer the layout holds (not only its size).
    #[arg(long)]
    deep: bool,
}

#[derive(Args)]
struct VerifyArgs {
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    trust: TrustArgs,
}

#[derive(Args)]
struct InspectArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Identity to open an encrypted bundle's content with.
    #[arg(short = 'i', long = "identity")]
    identities: Vec<std::path::PathBuf>,
}

#[derive(Args)]
struct KeygenArgs {
    /// Directory for ferry.key, ferry.pub and ferry.age.
    #[arg(short, long, default_value = ".")]
    output: std::path::PathBuf,
    /// Do not protect the secret key with a password (unattended use).
    #[arg(long)]
    no_password: bool,
}

#[derive(Args)]
struct PushArgs {
    /// The local (or remote) bundle to copy.
    bundle: String,
    /// Destination location: a directory or a URL.
    location: String,
}

#[derive(Args)]
struct PullArgs {
    /// LOCATION/STEM
    source: String,
    /// Directory to download into.
    #[arg(short, long, default_value = ".")]
    output: String,
}

#[derive(Args)]
struct RepairArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Directory to write the repaired bundle into (the bundle's own directory: only the bad parts are rewritten).
    #[arg(short, long)]
    output: std::path::PathBuf,
    /// Trusted minisign public key (file or base64 string) to check the signature with first; repeatable.
    #[arg(short = 'k', long = "key")]
    keys: Vec<String>,
}

#[derive(Args)]
struct LsArgs {
    location: String,
}

/// `println!` that treats a closed stdout as the end of the job (see [`print_bytes`]).
macro_rules! println {
    () => { print_bytes(b"\n") };
    ($($arg:tt)*) => {{
        let mut line = format!($($arg)*);
        line.push('\n');
        print_bytes(line.as_bytes());
    }};
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // With --json, stderr carries only an error object: no progress or status lines.
    let progress = CliProgress::new(cli.quiet || cli.json);
    let containerd = ferry::containerd::Endpoint::new(cli.containerd.containerd_address.clone(), Some(cli.containerd.snapshotter.clone()));
    let cx = Context {
        net: transport_options(&cli.net),
        progress: &progress,
        prompt_allowed: prompt_allowed(),
        containerd,
        registry: registry_options(&cli.registry, &cli.net),
    };
    let out = Output { json: cli.json, progress: &progress };
    match run(cli.command, &cx, &out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            progress.clear();
            let code = e.kind().exit_code();
            if cli.json {
                let report = serde_json::json!({"error": e.to_string(), "exit": code, "hint": e.hint()});
                eprintln!("{report}");
            } else {
                eprintln!("ferry: error: {e}");
                if let Some(hint) = e.hint() {
                    eprintln!("  hint: {hint}");
                }
            }
            ExitCode::from(code as u8)
        }
    }
}

fn transport_options(a: &NetArgs) -> ferry_transports::TransportOptions {
    let mut net = ferry_transports::TransportOptions::default();
    net.known_hosts = a.known_hosts.clone().or(net.known_hosts);
    net.accept_new_host_key = a.accept_new_host_key;
    net.ca_cert = a.ca_cert.clone();
    net.io_timeout = a.timeout;
    if !a.ssh_keys.is_empty() {
        net.identity_files = a.ssh_keys.clone();
    }
    net
}

/// How a report is shown: `--json` prints it whole on stdout; otherwise the
/// command's own text (listings on stdout, status lines on stderr).
struct Output<'a> {
    json: bool,
    progress: &'a CliProgress,
}

impl Output<'_> {
    fn show<R: Serialize>(&self, report: &R, text: impl FnOnce(&R, &CliProgress)) {
        if self.json {
            println!("{}", serde_json::to_string_pretty(report).expect("reports serialize"));
        } else {
            text(report, self.progress);
        }
    }
}

fn run(command: Command, cx: &Context, out: &Output) -> Result<()> {
    match command {
        Command::Save(a) => {
            let cmd = commands::save::SaveCommand {
                images: a.images,
                images_from: a.images_from,
                output: a.output,
                stem: a.stem,
                compression: a.compress,
                level: a.level,
                platforms: a.platforms,
                split: a.split,
                parity: a.parity,
                seal: ferry::save::SealOptions {
                    sign_key: a.sign,
                    recipients: a.recipients,
                    recipient_files: a.recipient_files,
                    passphrase: a.passphrase,
                    prompt_allowed: false,
                },
                flatten: a.flatten,
                have: a.have,
            };
            out.show(&commands::save::run(&cmd, cx)?, print_save);
        }
        Command::Flatten(a) => {
            let opts = commands::flatten::FlattenOptions { source: a.source, target: a.target, platforms: a.platforms };
            out.show(&commands::flatten::run(&opts, cx)?, |r, p| {
                p.say(&format!("flattened {} into {}", r.report.summary(), r.target));
                for note in &r.report.dropped {
                    p.say(&format!("note: left out {note} (it describes the unflattened image)"));
                }
            });
        }
        Command::Load(a) => {
            let opts = commands::load::LoadOptions {
                source: a.source.source,
                into: a.into,
                trust: a.trust.options(a.allow_unsigned),
                deep: a.deep,
                platforms: a.platforms,
            };
            out.show(&commands::load::run(&opts, cx)?, |r, p| {
                p.say(&format!("loaded {} into {} ({} blobs verified; {})", shown_list(&r.images), r.target, r.blobs, r.signature));
                print_bad_parts(&r.bad_parts, p, true);
            });
        }
        Command::Verify(a) => {
            let opts = commands::verify::VerifyOptions { source: a.source.source, trust: a.trust.options(false) };
            out.show(&commands::verify::run(&opts, cx)?, print_verify);
        }
        Command::Inspect(a) => {
            let trust = TrustOptions { identities: a.identities, prompt_allowed: prompt_allowed(), ..Default::default() };
            let opts = commands::inspect::InspectOptions { source: a.source.source, trust };
            out.show(&commands::inspect::run(&opts, cx)?, |info, _| print_info(info));
        }
        Command::Have(a) => {
            if out.json && a.output.as_os_str() == "-" {
                return Err(Error::usage("--json and -o - would both write to stdout: give the have-list a file with -o FILE"));
            }
            let opts = commands::have::HaveOptions { targets: a.targets, output: a.output, trust: a.trust.options(a.allow_unsigned) };
            let report = commands::have::run(&opts, cx)?;
            out.show(&report, |r, p| {
                p.say(&format!("wrote {}: {} blob(s), {} layer chain(s) from {} target(s)", r.output, r.blobs, r.chains, r.targets.len()));
            });
        }
        Command::Watch(a) => {
            let opts = commands::watch::WatchOptions {
                location: a.location,
                into: a.into,
                trust: a.trust.options(false),
                interval: a.interval,
                once: a.once,
                state: a.state,
                after: a.after,
            };
            commands::watch::run(&opts, cx, &mut |event| print_watch_event(event, out))?;
        }
        Command::Push(a) => {
            let opts = commands::push::PushOptions { bundle: a.bundle, location: a.location };
            out.show(&commands::push::run(&opts, cx)?, print_copy);
        }
        Command::Pull(a) => {
            let opts = commands::pull::PullOptions { source: a.source, output: a.output };
            out.show(&commands::pull::run(&opts, cx)?, print_copy);
        }
        Command::Repair(a) => {
            let trust = TrustOptions { keys: a.keys, ..Default::default() };
            let opts = commands::repair::RepairOptions { source: a.source.source, output: a.output, trust };
            out.show(&commands::repair::run(&opts, cx)?, |r, p| {
                let list: Vec<String> = r.rebuilt.iter().map(|b| format!("{} ({})", shown(&b.name), b.problem)).collect();
                match list.is_empty() {
                    true => p.say(&format!("{}: every part is good; nothing to rebuild ({})", r.bundle, r.signature)),
                    false => p.say(&format!("repaired {} into {}: rebuilt {} ({})", r.bundle, r.output, list.join(", "), r.signature)),
                }
            });
        }
        Command::Keygen(a) => {
            let opts = commands::keygen::KeygenOptions { output: a.output, no_password: a.no_password };
            out.show(&commands::keygen::run(&opts, cx)?, |k, _| {
                println!("minisign key id: {}", k.key_id);
                println!("public key:      {} (give it to consumers: -k)", k.public_key_path.display());
                println!(
                    "secret key:      {} ({})",
                    k.secret_key_path.display(),
                    if k.password_protected { "password-protected" } else { "no password" }
                );
                println!("age identity:    {} (consumers decrypt with -i)", k.age_identity_path.display());
                println!("age recipient:   {}", k.age_recipient);
            });
        }
        Command::Ls(a) => {
            let listing = commands::ls::run(&commands::ls::LsOptions { location: a.location }, cx)?;
            for name in &listing.skipped {
                out.progress.say(&format!("note: skipped {name}: not a valid bundle name"));
            }
            // `--json` keeps its shape: an array of the bundles found.
            out.show(&listing.bundles, |bundles, _| {
                for b in bundles {
                    let mut flags = vec![];
                    if b.signed {
                        flags.push("signed");
                    }
                    if b.encrypted {
                        flags.push("encrypted");
                    }
                    println!("{}\t{}\t{} file(s)\t{}", b.stem, human(b.size), b.files.len(), flags.join(","));
                }
            });
        }
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "ferry", &mut script);
            print_bytes(&script);
        }
        Command::Man => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut page).map_err(|e| Error::io("writing the man page", e))?;
            print_bytes(&page);
        }
    }
    Ok(())
}

fn print_save(r: &commands::save::SaveSummary, progress: &CliProgress) {
    progress.say(&format!(
        "saved {} to {}/{}.sha256: {} image(s), {} blobs, {} in {} file(s) ({} uncompressed){}{}",
        shown_list(&r.images),
        r.location,
        r.stem,
        r.images.len(),
        r.blobs,
        human(r.size),
        r.files.len(),
        human(r.tar_bytes),
        if r.signed { ", signed" } else { "" },
        if r.encrypted { ", encrypted" } else { "" }
    ));
    if let Some(g) = &r.parity {
        progress.say(&format!("parity: {} data + {} parity parts; any {} may be lost or damaged", g.data, g.parity, g.parity));
    }
    if r.have_lists > 0 {
        progress.say(&format!("delta: {} layers left out, {:.1} MiB saved", r.left_out, r.saved_bytes as f64 / (1024.0 * 1024.0)));
    }
}

fn print_verify(r: &commands::verify::VerifyReport, progress: &CliProgress) {
    if r.checksums_only {
        progress.say(&format!(
            "verified {}: {}; checksums of {} file(s) ({} bytes) match; the content is encrypted and was not opened (give -i to check every blob)",
            r.bundle, r.signature, r.files, r.bytes
        ));
    } else {
        progress.say(&format!(
            "verified {}: {}; checksums, {} blobs ({} bytes) and every reference; images: {}",
            r.bundle,
            r.signature,
            r.blobs,
            r.bytes,
            shown_list(&r.images)
        ));
    }
    print_left_out(&r.left_out, progress);
    print_bad_parts(&r.bad_parts, progress, true);
}

/// Parts a reader found missing or damaged: data parts were rebuilt from parity.
fn print_bad_parts(bad: &[ferry::parity::BadPart], progress: &CliProgress, left_bad: bool) {
    let list = |parity: bool| -> Vec<String> {
        bad.iter().filter(|b| b.parity == parity).map(|b| format!("{} ({})", shown(&b.name), b.problem)).collect()
    };
    let (data, parity) = (list(false), list(true));
    if !data.is_empty() {
        progress.say(&format!("rebuilt from parity: {}", data.join(", ")));
    }
    if !parity.is_empty() {
        progress.say(&format!("parity part(s) not usable: {}", parity.join(", ")));
    }
    if left_bad && !bad.is_empty() {
        progress.say("run `ferry repair SOURCE -o DIR` to write the bad parts back");
    }
}

/// A delta's left-out layers: what the target must already hold.
fn print_left_out(left_out: &[ferry::delta::LeftOut], progress: &CliProgress) {
    if left_out.is_empty() {
        return;
    }
    let bytes: u64 = left_out.iter().map(|l| l.size).sum();
    progress.say(&format!("delta: {} layer(s) ({}) left out; the target must hold:", left_out.len(), human(bytes)));
    for l in left_out {
        progress.say(&format!(
            "  {}  {}  chain {}",
            l.digest,
            human(l.size),
            l.chain_ids.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(",")
        ));
    }
}

/// One line per event: a JSON object with `--json`, text otherwise (both on stdout, for the service's log).
fn print_watch_event(event: &ferry::watch::Event, out: &Output) {
    use ferry::watch::Event;
    if out.json {
        println!("{}", serde_json::to_string(event).expect("events serialize"));
        return;
    }
    out.progress.clear();
    match event {
        Event::Started { location, target, state, pid, once, damaged_journal_lines } => {
            if *damaged_journal_lines > 0 {
                println!("note: {damaged_journal_lines} journal line(s) did not parse and were skipped");
            }
            println!(
                "watching {} into {} (state {}, pid {pid}{})",
                shown(location),
                shown(target),
                shown(state),
                if *once { ", once" } else { "" }
            )
        }
        Event::Pulling { stem, size, .. } => {
            println!("pulling {}{}", shown(stem), size.map(|s| format!(" ({})", human(s))).unwrap_or_default())
        }
        Event::Bundle(e) => {
            let outcome = match e.outcome {
                ferry::watch::journal::Outcome::Loaded => format!("loaded {}", shown_list(&e.images)),
                ferry::watch::journal::Outcome::Refused => "refused".into(),
                ferry::watch::journal::Outcome::Failed => "failed".into(),
            };
            let reason = e.reason.as_deref().map(|r| format!(": {}", shown(r))).unwrap_or_default();
            println!("{} {} {outcome}{reason}", e.time, shown(&e.stem));
        }
        Event::Loading { stem } => println!("loading {}", shown(stem)),
        Event::After { stem, action } => println!("{} {}", shown(stem), shown(action)),
        Event::AfterFailed { stem, reason } => println!("{}: --after failed: {}", shown(stem), shown(reason)),
        Event::PollFailed { reason, .. } => println!("poll failed: {}", shown(reason)),
        Event::Backoff { stem, seconds } => println!("{}: next attempt in {seconds} s", shown(stem)),
        Event::Stopped { reason } => println!("stopped ({reason})"),
        Event::Done(s) => println!(
            "done: {} poll(s), {} loaded, {} refused, {} failed{}",
            s.polls,
            s.loaded,
            s.refused,
            s.failed,
            if s.stopped { ", stopped by a signal" } else { "" }
        ),
    }
}

fn print_copy(report: &ferry::transfer::CopyReport, progress: &CliProgress) {
    let sent: u64 = report.files.iter().map(|f| f.sent).sum();
    let resumed = report.files.iter().filter(|f| f.resumed_from > 0).count();
    progress.say(&format!(
        "copied {} to {} ({} file(s), {} sent{})",
        report.stem,
        report.destination,
        report.files.len(),
        human(sent),
        if resumed > 0 { format!(", {resumed} resumed") } else { String::new() }
    ));
    print_bad_parts(&report.rebuilt, progress, false);
}
fn print_info(info: &ferry::inspect::BundleInfo) {
    println!("bundle:      {}", shown(&info.bundle));
    println!("format:      {}", shown(info.format.as_deref().unwrap_or("?")));
    if let Some(c) = &info.created {
        println!("created:     {} by {}", shown(c), shown(info.tool.as_deref().unwrap_or("?")));
    }
    println!("compression: {}", info.compression);
    match &info.recipients {
        Some(r) => println!("encrypted:   yes (age: {r})"),
        None => println!("encrypted:   {}", if info.encrypted { "yes (age)" } else { "no" }),
    }
    match &info.signer {
        Some(k) => println!("signed:      yes (minisign key {k}; check with verify -k)"),
        None => println!("signed:      {}", if info.signed { "yes (minisign)" } else { "no" }),
    }
    if let Some(c) = &info.trusted_comment {
        println!("comment:     {}", shown(c));
    }
    if let Some(f) = info.flattened {
        println!("flattened:   {}", if f { "yes" } else { "no" });
    }
    if !info.left_out.is_empty() {
        let bytes: u64 = info.left_out.iter().fold(0u64, |sum, l| sum.saturating_add(l.size));
        println!(
            "delta:       yes, against have-list(s) {}: {} layer(s) ({}) left out",
            info.delta_base.as_deref().unwrap_or("?"),
            info.left_out.len(),
            human(bytes)
        );
        println!("the target must hold:");
        for l in &info.left_out {
            println!("  {}  {}  (diff_id {})", l.digest, human(l.size), l.diff_id);
        }
    }
    if let Some(p) = &info.parity {
        println!(
            "parity:      {} data + {} parity parts of {} ({}); any {} may be lost or damaged",
            p.data_parts,
            p.parity_parts,
            human(p.part_size),
            p.code,
            p.may_lose
        );
        for b in &p.bad_parts {
            println!("  bad now:   {} ({})", shown(&b.name), b.problem);
        }
    }
    println!("files:");
    for p in &info.parts {
        println!("  {}  {}", shown(&p.name), p.size.map(human).unwrap_or_else(|| "?".into()));
    }
    for img in info.images.iter().flatten() {
        if let Some(r) = &img.referrer {
            println!(
                "{} {} ({}) attached to {}",
                shown(&r.kind),
                shown(img.ref_name.as_deref().unwrap_or("<untagged>")),
                img.digest,
                shown(&r.subject)
            );
            continue;
        }
        println!("image {} ({})", shown(img.name.as_deref().or(img.ref_name.as_deref()).unwrap_or("<untagged>")), img.digest);
        for m in &img.manifests {
            println!(
                "  {} manifest {} config {} — {} layer(s), {}",
                shown(m.platform.as_deref().unwrap_or("?")),
                m.digest.short(),
                m.config.short(),
                m.layers.len(),
                human(m.size)
            );
            for l in &m.layers {
                println!(
                    "    {}  {:>10}  {}{}",
                    l.digest.short(),
                    human(l.size),
                    shown(&l.media_type),
                    if l.left_out { "  (left out)" } else { "" }
                );
            }
        }
    }
    for n in &info.notes {
        println!("note: {}", shown(n));
    }
}

/// Write to stdout; a reader that went away (`ferry ls | head`) ends ferry quietly
/// with success, as `cat` does, instead of a panic.
fn print_bytes(bytes: &[u8]) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|_| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("ferry: error: writing to stdout: {e}");
        std::process::exit(1);
    }
}

/// Names from a server or a bundle, escaped for the terminal.
fn shown(s: &str) -> std::borrow::Cow<'_, str> {
    ferry::untrusted::shown(s)
}

fn shown_list(names: &[String]) -> String {
    names.iter().map(|n| shown(n)).collect::<Vec<_>>().join(", ")
}

fn human(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}
