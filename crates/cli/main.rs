//! `mnist`: train, evaluate and checkpoint handwritten-digit recognizers on MNIST, and read
//! digits and numbers from people's image files.
//!
//! The binary owns the command line, device choice and everything printed; the work itself
//! lives in the `mnist-data`, `mnist-image`, `mnist-model` and `mnist-train` crates. Results go
//! to stdout, progress and logs to stderr, and every error ends the process with one line and
//! exit code 1.

mod cli;
mod created_dirs;
mod data;
mod device;
mod eval;
mod export;
mod images;
mod predict;
mod progress;
mod read;
mod report;
mod runtime;
mod serve;
mod summary;
mod train;
mod weights;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Train(args) => train::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Read(args) => read::run(args),
        Command::Export(args) => export::run(args),
        Command::Report(args) => report::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Summary(args) => summary::run(args),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        // The server has its own async runtime and must not hold a pool worker for its lifetime;
        // its blocking tasks share the same global pool.
        Command::Serve(args) => {
            runtime::configure_process();
            serve::run(args)
        }
        command => runtime::run_on_worker_pool(move || run(command)),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            // The whole context chain on one line: "while doing X: file Y: what is wrong".
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
