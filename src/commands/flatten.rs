//! `ferry flatten SOURCE TARGET`: squash each image's layers into one.
use super::Context;
use crate::error::Result;
use crate::flatten::image::FlattenReport;
use crate::image::PlatformFilter;
use crate::reference::ImageRef;
use serde::Serialize;

pub struct FlattenOptions {
    pub source: String,
    pub target: String,
    pub platforms: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FlattenSummary {
    pub target: String,
    #[serde(flatten)]
    pub report: FlattenReport,
}

pub fn run(opts: &FlattenOptions, cx: &Context) -> Result<FlattenSummary> {
    let source = ImageRef::parse(&opts.source)?;
    let target = ImageRef::parse_target(&opts.target)?;
    let platforms = PlatformFilter::parse(&opts.platforms)?;
    let report = crate::flatten::image::flatten_command(&source, &target, platforms, &cx.registry, cx.progress)?;
    Ok(FlattenSummary { target: crate::flatten::output::describe_target(&target), report })
}
