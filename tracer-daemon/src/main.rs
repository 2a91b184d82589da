//! The `tracer-daemon` command line: parses flags and hands over to the library.

// Span assembly and export allocate many small, short-lived objects per request; mimalloc's
// thread-local free lists keep that cheap (the system allocator spent about a third of the
// daemon's time in malloc and free under load).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("TRACER_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let invocation = tracer_daemon::daemon::parse_args();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tracer-daemon: starting the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(tracer_daemon::daemon::run(invocation)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tracer-daemon: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
