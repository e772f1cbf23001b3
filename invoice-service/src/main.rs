//! `invoice-service`: `serve`, `keygen`, `token inspect|verify|mint`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    invoice_service::cli::main(invoice_service::cli::Cli::parse())
}
