//! `hoist build`: Dockerfile → image, without a daemon.

pub mod baseindex;
pub mod fsview;
pub mod gofmt;
pub mod image;
pub mod layer;
pub mod shell;
