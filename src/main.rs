//! The `gatewatch` binary: parse the command line, run it, map the outcome to an exit code
//! (0 ok, 1 operational error with the message on stderr, 2 usage — clap's own).
#![forbid(unsafe_code)]

use clap::Parser;

fn main() {
    let cli = gatewatch::cli::Cli::parse();
    if let Err(error) = gatewatch::cli::run(cli) {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}
