//! `sluice`: the binary that wires storage, HTTP and tools together.

mod backend;
mod bench;
mod cli;
mod offline;
mod serve;
mod settings;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    let result = match args.command {
        cli::Command::Serve(flags) => serve::run(*flags),
        cli::Command::Tenants(cmd) => offline::tenants(cmd),
        cli::Command::Keys(cmd) => offline::keys(cmd),
        cli::Command::Check(dir) => offline::check(dir),
        cli::Command::Inspect(dir) => offline::inspect(dir),
        cli::Command::Bench(flags) => bench::run(*flags),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
