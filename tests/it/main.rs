//! The integration tests, linked as one binary (one link instead of one per
//! file). Each module tests one part of the engine against a reference.

// Pair operations return nested tuples; spelling them out reads best.
#![allow(clippy::type_complexity)]

mod common;

mod actions;
mod approx;
mod checkpoint;
mod cluster;
mod event_time;
mod examples_smoke;
mod fallible;
mod fault_tolerance;
mod formats;
mod http;
mod interval_join;
mod layers;
mod lineage;
mod misuse;
mod narrow;
#[cfg(feature = "object-store")]
mod object_store;
mod observe;
mod properties;
mod scheduler;
mod spill;
mod storage;
mod streaming;
mod streaming_recovery;
mod streaming_sources;
mod text_io;
mod ui;
mod ui_browser;
mod wide;
