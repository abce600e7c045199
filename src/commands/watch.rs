//! `ferry watch LOCATION --into TARGET`: poll a drop, verify, load, never twice
//! (the work is in src/watch/).
use super::Context;
use crate::error::Result;
use crate::reference::ImageRef;
use crate::trust::TrustOptions;
use crate::watch::{After, Event, Watch, WatchSummary};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub struct WatchOptions {
    pub location: String,
    pub into: String,
    pub trust: TrustOptions,
    pub interval: Duration,
    pub once: bool,
    /// Default: [`crate::watch::default_state_dir`].
    pub state: Option<PathBuf>,
    pub after: String,
}

pub fn run(opts: &WatchOptions, cx: &Context, on_event: &mut dyn FnMut(&Event)) -> Result<WatchSummary> {
    let into = ImageRef::parse_target(&opts.into)?;
    let after = After::parse(&opts.after)?;
    if opts.interval.is_zero() && !opts.once {
        return Err(crate::Error::usage("--interval 0 would poll without a pause: give e.g. 30s or 5m (or --once)"));
    }
    if opts.trust.keys.is_empty() {
        return Err(crate::Error::usage("ferry watch loads only signed bundles: give the publisher's public key with -k ferry.pub"));
    }
    let state = opts.state.clone().unwrap_or_else(|| crate::watch::default_state_dir(&opts.location, &opts.into));
    let transport: Arc<dyn ferry_transports::Transport> = Arc::from(cx.open(&opts.location)?);
    if after == After::Delete && !transport.capabilities().delete {
        return Err(crate::Error::usage(format!(
            "--after delete: {} does not allow deleting files (an anonymous FTP incoming folder): use --after keep or move:DIR, or a login that may delete",
            transport.describe()
        )));
    }
    let watch = Watch {
        transport,
        into,
        target: opts.into.clone(),
        trust: opts.trust.clone(),
        state,
        interval: opts.interval,
        once: opts.once,
        after,
    };
    let summary = crate::watch::run(&watch, cx.progress, on_event)?;
    if opts.once {
        return summary.into_result(&watch.state.join(crate::watch::journal::FILE_NAME));
    }
    Ok(summary)
}
