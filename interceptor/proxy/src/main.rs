use std::process::ExitCode;

use clap::Parser;
use modelmon_proxy::{Args, RunError};

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let setup = match args.into_setup() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("modelmon-proxy: error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut builder = match setup.threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("modelmon-proxy: error: {}", RunError::Runtime(e));
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(modelmon_proxy::run(setup)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("modelmon-proxy: error: {e}");
            ExitCode::from(1)
        }
    }
}
