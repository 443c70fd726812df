//! The `dag` binary: parse the command line, set up logging, run the
//! command, map its outcome to an exit code. Everything else is in the
//! library.

use clap::Parser;
use dag::cli::Cli;
use dag::commands::{self, Outcome};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    dag::logging::init(cli.log_format, cli.verbose);
    match commands::run(cli).await {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Failed) => ExitCode::from(1),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(err.exit_code())
        }
    }
}
