//! The work a pipeline node does, independent of scheduling: the model
//! declarations (`decl`: what a model file says, read and checked), the
//! lake and its Delta table layer (`lake`), bronze ingest (`bronze`),
//! silver and gold models (`model`), data tests (`datatest`), the
//! warehouse load (`warehouse`) and the event simulator (`produce`);
//! `cores` splits the few whole-batch passes over the machine's cores;
//! `stall` holds a step when a test asks (fault tests only).
//!
//! `jobs` knows nothing of the DAG or of schedules: the `dag` crate decides
//! what runs when and calls in here.

pub mod bronze;
pub mod cores;
pub mod datatest;
pub mod decl;
pub mod lake;
pub mod model;
pub mod produce;
pub mod stall;
pub mod warehouse;
