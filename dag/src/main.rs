//! The `dag` binary: parse the command line, set up logging, run the
//! command, map its outcome to an exit code. Everything else is in the
//! library.

use clap::Parser;
use dag::cli::Cli;
use dag::commands::{self, CommandOutcome};
use std::process::ExitCode;

fn main() -> ExitCode {
    // polars frees and reallocates large buffers from many threads, and
    // glibc gives each thread an arena that keeps freed memory: silver over
    // 10M events peaked at 2.94 GB with the default (8 per core), 2.29 GB
    // with 2 arenas, and was not slower (mimalloc: 2.75 GB). Set before any
    // thread starts. The environment's MALLOC_ARENA_MAX still wins.
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only tunes the allocator; called before threads.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => {
            let code = rt.block_on(run());
            // A scheduler that handed its tasks back may leave their
            // blocking work running: do not wait for it (its commits are
            // atomic, and the task runs again elsewhere).
            rt.shutdown_timeout(std::time::Duration::from_millis(500));
            code
        }
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run() -> ExitCode {
    let cli = Cli::parse();
    dag::logging::init(cli.log_format, cli.verbose);
    match commands::run(cli).await {
        Ok(CommandOutcome::Success) => ExitCode::SUCCESS,
        Ok(CommandOutcome::Failed) => ExitCode::from(1),
        Ok(CommandOutcome::Unrunnable) => ExitCode::from(2),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(err.exit_code())
        }
    }
}
