//! The work a pipeline node does, independent of scheduling: the model
//! format (`spec`), and, as their issues land, bronze ingest, model
//! execution, data tests, the warehouse load and the event simulator.
//!
//! `jobs` knows nothing of the DAG or of schedules: the `dag` crate decides
//! what runs when and calls in here.

pub mod bronze;
pub mod datatest;
pub mod lake;
pub mod model;
pub mod produce;
pub mod spec;
pub mod warehouse;
