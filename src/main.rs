//! The devenv binary: build the runtime, run, and render an error for a human.

use std::process::ExitCode;

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            devenv::errln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(devenv::run()) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(err) => {
            devenv::errln!("error: {err}");
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                devenv::errln!("  caused by: {cause}");
                source = cause.source();
            }
            if let Some(help) = err.help() {
                devenv::errln!("help: {help}");
            }
            let code = devenv::diagnostic::Diagnostic::code(&err);
            devenv::errln!("code: {code} ({})", devenv::diagnostic::url(code));
            ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(1))
        }
    }
}
