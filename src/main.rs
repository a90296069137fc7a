//! The `sluice` binary: flags, logging, runtime, signals. `anyhow` lives only here.

mod cli;
mod demo;

use std::future::Future;
use std::pin::Pin;

use anyhow::{Context, Result};
use clap::Parser;
use tokio::signal::unix::{signal, SignalKind};

use cli::{CheckOutput, Cli, Command, LogFormat, RunArgs};

fn main() -> Result<()> {
    let cli = Cli::parse();
    init_logging(cli.run.log_format);
    if let Some(Command::Check { output, timeout }) = cli.command {
        std::process::exit(check(&cli.run, output, timeout));
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    // The per-core data plane runs on its own threads; this runtime then only
    // carries the control plane (provider, compiler, admin).
    let control_only = cli.run.data_plane == cli::DataPlaneMode::PerCore && cli.command.is_none();
    runtime.worker_threads(if control_only {
        1
    } else {
        cli.run.worker_count()
    });
    let runtime = runtime.build().context("starting the async runtime")?;
    let result = runtime.block_on(async move {
        match cli.command {
            Some(Command::Whoami { addr, name }) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr}"))?;
                tracing::info!(%addr, %name, "whoami listening");
                sluice::whoami::serve(listener, name, terminated()?)
                    .await
                    .context("whoami failed")
            }
            Some(Command::Demo) => demo::run(cli.run).await,
            Some(Command::Check { .. }) => unreachable!("handled before the runtime starts"),
            None => run(cli.run).await,
        }
    });
    // Blocking work such as a DNS lookup must not hold the exit up.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

/// `sluice check`: loads the objects the server would read, prints the report
/// and returns the exit status (0 nothing would change, 1 something would,
/// 2 the objects could not be loaded). Opens no listener.
fn check(args: &RunArgs, output: CheckOutput, timeout: std::time::Duration) -> i32 {
    let run = || -> Result<sluice::check::Report> {
        let settings = args.settings()?;
        let options = sluice::check::compile_options(&settings)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        let loaded = runtime.block_on(sluice::check::load(&settings.source, timeout))?;
        let report = runtime.block_on(async { sluice::check::check(&loaded, &options) });
        runtime.shutdown_timeout(std::time::Duration::from_secs(1));
        Ok(report)
    };
    match run() {
        Ok(report) => {
            let text = match output {
                CheckOutput::Text => report.to_text(),
                CheckOutput::Json => report.to_json() + "\n",
            };
            use std::io::Write as _;
            let mut stdout = std::io::stdout().lock();
            if stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
                .is_err()
            {
                return 2;
            }
            report.exit_code()
        }
        Err(e) => {
            eprintln!("sluice check: {e:#}");
            2
        }
    }
}

/// Runs the ingress controller until SIGTERM or SIGINT, then shuts down gracefully.
async fn run(args: RunArgs) -> Result<()> {
    serve_until_signal(args.settings()?).await
}

/// Starts sluice with `settings` and stops it gracefully on SIGTERM or SIGINT.
async fn serve_until_signal(settings: sluice::app::Settings) -> Result<()> {
    let running = sluice::app::start(settings).await?;
    terminated()?.await;
    tracing::info!(
        "shutting down: no new connections, draining in-flight requests (signal again to exit now)"
    );
    running.stop();
    tokio::select! {
        () = running.wait() => {}
        () = terminated()? => {
            tracing::warn!("second signal: exiting without waiting for in-flight requests");
            std::process::exit(1);
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT; SIGHUP is logged and otherwise ignored so it
/// never kills us; SIGUSR1 reopens the access log (logrotate).
fn terminated() -> Result<Pin<Box<dyn Future<Output = ()> + Send>>> {
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let mut usr1 = signal(SignalKind::user_defined1()).context("installing the SIGUSR1 handler")?;
    Ok(Box::pin(async move {
        loop {
            tokio::select! {
                _ = term.recv() => return,
                _ = int.recv() => return,
                _ = hup.recv() => tracing::info!("SIGHUP received and ignored: manifests reload on change by themselves"),
                _ = usr1.recv() => {
                    tracing::info!("SIGUSR1: reopening the access log");
                    sluice::accesslog::request_reopen();
                }
            }
        }
    }))
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
