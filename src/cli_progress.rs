//! Progress output: a bar (bytes, rate, ETA) on a terminal, one status line per
//! phase otherwise, nothing with `-q`.
use ferry::bundle::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;

pub struct CliProgress {
    quiet: bool,
    tty: bool,
    bar: Mutex<Option<ProgressBar>>,
}

impl CliProgress {
    pub fn new(quiet: bool) -> Self {
        CliProgress { quiet, tty: std::io::stderr().is_terminal(), bar: Mutex::new(None) }
    }

    /// A result line (stderr, so stdout stays clean for --json).
    pub fn say(&self, line: &str) {
        self.clear();
        if !self.quiet {
            eprintln!("{line}");
        }
    }

    pub fn clear(&self) {
        if let Some(bar) = self.bar.lock().unwrap().take() {
            bar.finish_and_clear();
        }
    }
}

impl Progress for CliProgress {
    fn start(&self, label: &str, total: Option<u64>) {
        if self.quiet {
            return;
        }
        self.clear();
        if !self.tty {
            eprintln!("{label}...");
            return;
        }
        let bar = match total {
            Some(t) => ProgressBar::new(t),
            None => ProgressBar::no_length(),
        };
        bar.set_draw_target(ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_message(label.to_string());
        *self.bar.lock().unwrap() = Some(bar);
    }

    fn advance(&self, n: u64) {
        if let Some(bar) = self.bar.lock().unwrap().as_ref() {
            bar.inc(n);
        }
    }

    fn finish(&self) {
        self.clear();
    }

    fn note(&self, message: &str) {
        self.say(message);
    }
}
