//! End-to-end and integration tests of the workspace, in one test binary.
//! Services (PostgreSQL, S3, the broker) come from `testkit`.

mod alerts;
mod bronze;
mod chain;
mod compose;
mod config;
mod datatest;
mod declared;
mod demo;
mod events;
mod executor;
mod faults;
mod files;
mod fixtures;
mod gold_sql;
mod init;
mod json_schema;
mod lake;
mod loader;
mod models;
mod races;
mod readme;
mod retail;
mod s3_faults;
mod scheduler;
mod selectors;
mod services;
mod templates;
mod ui;
mod warehouse;
mod warehouse_schema;
