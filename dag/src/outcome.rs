//! How a command ended, and the errors that map to exit codes: 0 success;
//! 1 the work ran and failed (a failing run or test); 2 bad input
//! (configuration, pipeline files, selectors, arguments), or (`dag test`)
//! a test that could not run. Every command module returns these; they
//! live apart from `commands.rs` (which calls those modules) so that no
//! module imports its caller.

use crate::config::ConfigError;
use jobs::decl::Diagnostics;
use std::path::PathBuf;

/// How a command that ran to its end went.
#[derive(Debug, PartialEq, Eq)]
pub enum CommandOutcome {
    Success,
    Failed,
    /// The work could not run (`dag test`: a test could not be evaluated).
    Unrunnable,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("pipeline {} has {} problem(s):\n{diags}", path.display(), diags.len())]
    Pipeline { path: PathBuf, diags: Diagnostics },
    #[error("selector: {0}")]
    Selector(String),
    /// A command-line argument that names something that is not there.
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Config(_)
            | CliError::Pipeline { .. }
            | CliError::Selector(_)
            | CliError::Usage(_) => 2,
            CliError::Other(_) => 1,
        }
    }
}
