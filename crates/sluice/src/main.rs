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
        cli::Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut cli::Cli::command(),
                "sluice",
                &mut std::io::stdout(),
            );
            Ok(std::process::ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
