//! The registry client (Distribution API v2 / OCI distribution) and its auth.

pub mod auth;
pub mod client;
pub mod ecr;
pub mod error;
pub mod retry;
pub mod upload;

pub use client::{Access, ByteStream, MountOutcome, RegistryClient, Repository, Settings};
pub use ecr::PutOutcome;
