//! Where images are written other than registries: OCI layouts and docker-archives.

pub mod archive;
pub mod layout;

pub use layout::Layout;
