//! The `drgw` binary: parses arguments, builds the runtime, and calls the library.

use std::io::IsTerminal;

use clap::Parser;

/// mimalloc rather than the C library's allocator: a proxy allocates and frees small
/// buffers, headers and JSON values on every request, from several threads. Measured with
/// the mirror benchmark (`tests/benches/README.md`): 35–45% less process CPU per proxied create.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let huge_pages_off = drgw::allocator::disable_transparent_huge_pages();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colour only on a terminal: journald and log files get plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    if let Err(e) = huge_pages_off {
        tracing::warn!(error = %e, "cannot turn transparent huge pages off; memory churn costs more CPU");
    }
    let cli = drgw::cli::Cli::parse();
    // The main thread's runtime: worker 0 of `serve` (which starts the other workers, each
    // with a current-thread runtime of its own: see `drgw::worker`), and every other
    // subcommand.
    let mut runtime = tokio::runtime::Builder::new_current_thread();
    runtime.enable_all();
    let runtime = match runtime.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("drgw: cannot start the runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    match runtime.block_on(drgw::cli::run(cli)) {
        Ok(code) => std::process::ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("drgw: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
