//! hoist: build, copy and push container images without a daemon.
//!
//! The library returns typed errors and reports progress through [`progress::Reporter`]; only
//! the binary prints.

pub mod aws;
pub mod build;
pub mod ci;
pub mod compress;
pub mod copy;
pub mod deploy;
pub mod digest;
pub mod error;
pub mod fsutil;
pub mod inspect;
#[cfg(any(target_env = "musl", test))]
mod libc_mem;
pub mod merge;
pub mod mirror;
pub mod oci;
pub mod progress;
pub mod reference;
pub mod registry;
pub mod sink;
pub mod source;
pub mod time;

#[cfg(test)]
mod proptests;

pub use error::{Error, Result};
