//! The `ferry` command: argument parsing and output only; the work is in the library.
mod cli_progress;

use clap::{Args, CommandFactory, Parser, Subcommand};
use cli_progress::CliProgress;
use ferry::bundle::{self, SaveOptions};
use ferry::compress::Compression;
use ferry::error::{Error, Result};
use ferry::image::{PlatformFilter, SourceOptions};
use ferry::reference::ImageRef;
use ferry_transports::Transport;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "ferry", version, about = "Carry container images across air gaps: save, seal, ship, verify, load.")]
struct Cli {
    /// No progress or status output.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(flatten)]
    net: NetArgs,
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
    /// Extra CA certificate (PEM) to trust for FTPS and HTTPS.
    #[arg(long, global = true, value_name = "FILE")]
    ca_cert: Option<std::path::PathBuf>,
    /// SSH private key for SFTP (default: the agent, then ~/.ssh/id_*); repeatable.
    #[arg(long = "ssh-key", global = true, value_name = "FILE")]
    ssh_keys: Vec<std::path::PathBuf>,
    /// Give up on a server that sends nothing for this long (FTP, SFTP, HTTP), e.g. 60s, 5m; 0 waits for ever.
    #[arg(long, global = true, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    timeout: std::time::Duration,
}

fn parse_duration(s: &str) -> std::result::Result<std::time::Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (e.g. 30s, 5m)"))
}

static TRANSPORT_OPTIONS: std::sync::OnceLock<ferry_transports::TransportOptions> = std::sync::OnceLock::new();

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
}

#[derive(Args)]
struct SaveArgs {
    /// Images: docker-archive:PATH[:REF], oci-archive:PATH[:REF], oci:DIR[:REF], docker-daemon:NAME[:TAG].
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
    /// Print what was flattened as JSON on stdout.
    #[arg(long)]
    json: bool,
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
    fn options(&self, allow_unsigned: bool) -> ferry::trust::TrustOptions {
        ferry::trust::TrustOptions {
            keys: self.keys.clone(),
            identities: self.identities.clone(),
            allow_unsigned,
            prompt_allowed: prompt_allowed(),
        }
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
    /// Target: oci:DIR[:REF], oci-archive:PATH, docker-archive:PATH (default docker-daemon:).
    #[arg(long, default_value = "docker-daemon:")]
    into: String,
    #[arg(long = "platform")]
    platforms: Vec<String>,
    #[command(flatten)]
    trust: TrustArgs,
    /// Load a bundle that is unsigned or whose signer is not checked.
    #[arg(long)]
    allow_unsigned: bool,
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
    #[arg(long)]
    json: bool,
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
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct PullArgs {
    /// LOCATION/STEM
    source: String,
    /// Directory to download into.
    #[arg(short, long, default_value = ".")]
    output: String,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct LsArgs {
    location: String,
    #[arg(long)]
    json: bool,
}

fn open_transport(location: &str) -> Result<Box<dyn Transport>> {
    Ok(ferry_transports::open_with(location, TRANSPORT_OPTIONS.get_or_init(Default::default))?)
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
    let mut net = ferry_transports::TransportOptions::default();
    net.known_hosts = cli.net.known_hosts.clone().or(net.known_hosts);
    net.accept_new_host_key = cli.net.accept_new_host_key;
    net.ca_cert = cli.net.ca_cert.clone();
    net.io_timeout = cli.net.timeout;
    if !cli.net.ssh_keys.is_empty() {
        net.identity_files = cli.net.ssh_keys.clone();
    }
    let _ = TRANSPORT_OPTIONS.set(net);
    let progress = CliProgress::new(cli.quiet);
    match run(cli.command, &progress) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            progress.clear();
            eprintln!("ferry: error: {e}");
            if let Some(hint) = e.hint() {
                eprintln!("  hint: {hint}");
            }
            ExitCode::from(e.kind().exit_code() as u8)
        }
    }
}

fn run(command: Command, progress: &CliProgress) -> Result<()> {
    match command {
        Command::Save(a) => save(a, progress),
        Command::Flatten(a) => flatten(a, progress),
        Command::Load(a) => load(a, progress),
        Command::Verify(a) => {
            let bundle = bundle::locate(&a.source.source, &open_transport)?;
            let trust = a.trust.options(false);
            let signature = trust.check_signature(&bundle, false)?;
            if bundle.is_encrypted_by_name() && a.trust.identities.is_empty() {
                let size = ferry::load::verify_checksums(&bundle, progress)?;
                progress.say(&format!(
                    "verified {}: {}; checksums of {} file(s) ({size} bytes) match; the content is encrypted and was not opened (give -i to check every blob)",
                    bundle.describe(),
                    signature.describe(),
                    bundle.checksums.lines.len()
                ));
                return Ok(());
            }
            let decryptor = if bundle.is_encrypted_by_name() { Some(trust.decryptor()?) } else { None };
            let report = ferry::load::verify(&bundle, decryptor, progress)?;
            progress.say(&format!(
                "verified {}: {}; checksums, {} blobs ({} bytes) and every reference; images: {}",
                bundle.describe(),
                signature.describe(),
                report.blobs,
                report.content_bytes,
                shown_list(&report.images)
            ));
            Ok(())
        }
        Command::Inspect(a) => {
            let bundle = bundle::locate(&a.source.source, &open_transport)?;
            let trust = ferry::trust::TrustOptions { identities: a.identities.clone(), prompt_allowed: prompt_allowed(), ..Default::default() };
            let decryptor = if a.identities.is_empty() { None } else { Some(trust.decryptor()?) };
            let info = ferry::inspect::inspect(&bundle, decryptor)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&info).expect("json serializes"));
            } else {
                print_info(&info);
            }
            Ok(())
        }
        Command::Push(a) => {
            let bundle = bundle::locate(&a.bundle, &open_transport)?;
            let dest = open_transport(&a.location)?;
            let report = ferry::transfer::copy_bundle(&bundle, &*dest, progress)?;
            print_copy(&report, a.json, progress);
            Ok(())
        }
        Command::Pull(a) => {
            let bundle = bundle::locate(&a.source, &open_transport)?;
            std::fs::create_dir_all(&a.output).map_err(|e| Error::io(format!("creating {}", a.output), e))?;
            let dest = ferry_transports::DirTransport::new(&a.output);
            let report = ferry::transfer::copy_bundle(&bundle, &dest, progress)?;
            print_copy(&report, a.json, progress);
            Ok(())
        }
        Command::Keygen(a) => {
            let password = if a.no_password { None } else { ferry::seal::new_key_password(prompt_allowed())? };
            if !a.no_password && password.is_none() {
                return Err(Error::usage(
                    "no password for the secret key: set FERRY_KEY_PASSWORD, run on a terminal, or pass --no-password",
                ));
            }
            std::fs::create_dir_all(&a.output).map_err(|e| Error::io(format!("creating {}", a.output.display()), e))?;
            let k = ferry::seal::generate(&a.output, password.as_ref())?;
            println!("minisign key id: {}", k.key_id);
            println!("public key:      {} (give it to consumers: -k)", k.public_key_path.display());
            println!("secret key:      {} ({})", k.secret_key_path.display(), if k.password_protected { "password-protected" } else { "no password" });
            println!("age identity:    {} (consumers decrypt with -i)", k.age_identity_path.display());
            println!("age recipient:   {}", k.age_recipient);
            Ok(())
        }
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "ferry", &mut script);
            print_bytes(&script);
            Ok(())
        }
        Command::Man => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut page).map_err(|e| Error::io("writing the man page", e))?;
            print_bytes(&page);
            Ok(())
        }
        Command::Ls(a) => {
            let t = open_transport(&a.location)?;
            let listing = ferry::transfer::list_bundles(&*t)?;
            for name in &listing.skipped {
                progress.say(&format!("note: skipped {name}: not a valid bundle name"));
            }
            let list = listing.bundles;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&list).expect("json serializes"));
            } else {
                for b in list {
                    let mut flags = vec![];
                    if b.signed {
                        flags.push("signed");
                    }
                    if b.encrypted {
                        flags.push("encrypted");
                    }
                    println!("{}\t{}\t{} file(s)\t{}", b.stem, human(b.size), b.files.len(), flags.join(","));
                }
            }
            Ok(())
        }
    }
}

fn save(a: SaveArgs, progress: &CliProgress) -> Result<()> {
    let mut names = a.images.clone();
    if let Some(list) = &a.images_from {
        let listed = ferry::reference::read_image_list(list)?;
        if listed.is_empty() {
            return Err(Error::usage(format!("{}: lists no images", list.display())));
        }
        names.extend(listed);
    }
    let images = names.iter().map(|s| ImageRef::parse(s)).collect::<Result<Vec<_>>>()?;
    let compression = Compression::parse(&a.compress)?;
    let level = a.level.unwrap_or(compression.default_level());
    if compression == Compression::Zstd && !(1..=22).contains(&level) || compression == Compression::Gzip && !(0..=9).contains(&level) {
        return Err(Error::usage(format!("--level {level} is out of range for {}", compression.name())));
    }
    let split = a.split.as_deref().map(ferry::size::parse_size).transpose()?;
    let seal = ferry::save::SealOptions {
        sign_key: a.sign.clone(),
        recipients: a.recipients.clone(),
        recipient_files: a.recipient_files.clone(),
        passphrase: a.passphrase,
        prompt_allowed: prompt_allowed(),
    };
    let (encryptor, signer) = seal.prepare()?;
    // Flattening reads the layers again; keep them uncompressed for it.
    let spool_zstd_level = (compression == Compression::Zstd && !a.flatten).then_some(level);
    let spool_dir = ferry::save::spool_dir_for(&a.output);
    let source = SourceOptions {
        platforms: PlatformFilter::parse(&a.platforms)?,
        spool_in_place: spool_zstd_level.is_some() && spool_dir.is_some() && split.is_none() && encryptor.is_none(),
        spool_dir,
        spool_zstd_level,
    };
    let output: Arc<dyn Transport> = Arc::from(open_transport(&a.output)?);
    let report = ferry::save::save(
        &images,
        output,
        a.stem,
        &source,
        |stem| {
            let mut o = SaveOptions::new(stem);
            o.compression = compression;
            o.level = level;
            o.split = split;
            o.encryptor = encryptor;
            o.signer = signer;
            o.flattened = a.flatten;
            o
        },
        progress,
    )?;
    let size: u64 = report.parts.iter().map(|p| p.size).sum();
    progress.say(&format!(
        "saved {} to {}/{}.sha256: {} image(s), {} blobs, {} in {} file(s) ({} uncompressed){}{}",
        shown_list(&report.images),
        report.location.trim_end_matches('/'),
        report.stem,
        report.images.len(),
        report.blobs,
        human(size),
        report.parts.len(),
        human(report.tar_bytes),
        if report.signed { ", signed" } else { "" },
        if report.encrypted { ", encrypted" } else { "" }
    ));
    Ok(())
}

fn flatten(a: FlattenArgs, progress: &CliProgress) -> Result<()> {
    let source = ImageRef::parse(&a.source)?;
    let target = ImageRef::parse_target(&a.target)?;
    let platforms = PlatformFilter::parse(&a.platforms)?;
    let report = ferry::flatten::image::flatten_command(&source, &target, platforms, progress)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("json serializes"));
    }
    progress.say(&format!("flattened {} into {}", report.summary(), ferry::flatten::output::describe_target(&target)));
    for note in &report.dropped {
        progress.say(&format!("note: left out {note} (it describes the unflattened image)"));
    }
    Ok(())
}

fn load(a: LoadArgs, progress: &CliProgress) -> Result<()> {
    let into = ImageRef::parse_target(&a.into)?;
    let bundle = bundle::locate(&a.source.source, &open_transport)?;
    let trust = a.trust.options(a.allow_unsigned);
    // The signature over STEM.sha256 is checked before any artifact byte is read.
    let signature = trust.check_signature(&bundle, true)?;
    let decryptor = Some(trust.decryptor()?);
    let report = ferry::load::load(&bundle, &into, decryptor, progress)?;
    progress.say(&format!(
        "loaded {} into {} ({} blobs verified; {})",
        shown_list(&report.images),
        report.target,
        report.blobs,
        signature.describe()
    ));
    Ok(())
}

fn print_copy(report: &ferry::transfer::CopyReport, json: bool, progress: &CliProgress) {
    if json {
        println!("{}", serde_json::to_string_pretty(report).expect("json serializes"));
        return;
    }
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
    println!("files:");
    for p in &info.parts {
        println!("  {}  {}", shown(&p.name), p.size.map(human).unwrap_or_else(|| "?".into()));
    }
    for img in info.images.iter().flatten() {
        println!("image {} ({})", shown(img.name.as_deref().or(img.ref_name.as_deref()).unwrap_or("<untagged>")), img.digest);
        for m in &img.manifests {
            println!("  {} manifest {} config {} — {} layer(s), {}", shown(m.platform.as_deref().unwrap_or("?")), m.digest.short(), m.config.short(), m.layers.len(), human(m.size));
            for l in &m.layers {
                println!("    {}  {:>10}  {}", l.digest.short(), human(l.size), shown(&l.media_type));
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
