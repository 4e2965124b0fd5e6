//! The `hmmtrace` command line: parses arguments, runs one subcommand, and maps errors to exit
//! codes (`hmmtrace::error`: 0 success, 1 failure, 2 bad input, 3 not privileged enough; 4 is
//! `report --fail-if`'s), each printed as one message with its whole chain.

// The binary sees every dependency of the package; the library, where the code is, is where
// unused ones are caught.
#![allow(unused_crate_dependencies)]

use std::process::ExitCode;

use clap::Parser as _;
use hmmtrace::cli;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        // A reader that went away (`hmmtrace export f | head`) is not an error worth a message.
        Err(err)
            if err.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("hmmtrace: {err:#}");
            ExitCode::from(hmmtrace::error::exit_code(&err))
        }
    }
}
