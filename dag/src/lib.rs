//! The `dag` crate: configuration, the pipeline loader and its DAG,
//! selectors, rendering, and the CLI commands. The work each node does
//! lives in the `jobs` crate; this crate decides what runs when.

pub mod alerts;
pub mod broker;
pub mod cli;
pub mod commands;
pub mod config;
pub mod datatest;
pub mod demo;
pub mod events;
pub mod examples;
pub mod executor;
pub mod ingest;
pub mod logging;
pub mod outcome;
pub mod pipeline;
pub mod produce;
pub mod project;
pub mod render;
pub mod run;
pub mod scaffold;
pub mod scheduler;
pub mod select;
pub mod trigger;
pub mod ui;
pub mod warehouse;
