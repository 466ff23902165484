//! Integration tests: hoist against real servers the harness starts (see harness/).

mod harness;

mod auth;
mod bad_input;
mod build;
mod build_cache;
mod build_diff;
mod build_golden;
mod build_run;
mod ci;
mod ci_pipeline;
mod commands;
mod copy;
mod corpus;
mod deploy;
mod ecr;
mod endpoints;
mod mirror;
mod multiplatform;
mod reference_selftest;
mod release;
mod reliability;
mod retries;
mod secrets;
mod soak;
