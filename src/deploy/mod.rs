//! `hoist deploy`: put an exact image digest into a running service.

pub mod ecs;
