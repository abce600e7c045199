//! `ferry ls LOCATION`: the complete bundles at a location.
use super::Context;
use crate::error::Result;
use crate::transfer::Listing;

pub struct LsOptions {
    pub location: String,
}

pub fn run(opts: &LsOptions, cx: &Context) -> Result<Listing> {
    let transport = cx.open(&opts.location)?;
    crate::transfer::list_bundles(&*transport)
}
