//! Starts and stops the daemon: loads the probes, wires reader → processing, serves the admin
//! endpoint, and shuts down cleanly on SIGINT / SIGTERM.

use std::{path::PathBuf, sync::Arc};

use anyhow::Context;
use aya::maps::RingBuf;
use tokio::sync::{mpsc, watch};

use crate::{
    api::{self, Router},
    config::{CliOverrides, Config},
    metrics::Registry,
    pipeline,
    probes::{LoadOptions, Probes, env},
    reader,
};

#[derive(clap::Parser, Debug)]
#[command(name = "tracer-daemon", version, about = "Traces every TCP service on this host with eBPF and sends Jaeger traces")]
pub struct Cli {
    /// YAML configuration file; flags override its values.
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// Print each decoded kernel event as one JSON line on stdout (debug aid).
    #[arg(long)]
    pub print_events: bool,
    #[command(flatten)]
    pub overrides: CliOverrides,
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let cfg = Config::load(cli.config.as_deref())?.apply(&cli.overrides)?;
    let registry = Registry::new();
    let netns_inum = match &cfg.netns {
        Some(name) => env::netns_inode(name)?,
        None => 0,
    };
    let mut probes = Probes::load(&LoadOptions {
        hook: cfg.capture.syscall_hook,
        capture_bytes: cfg.capture.capture_bytes,
        ring_bytes: cfg.capture.ring_buffer_bytes,
        filters: cfg.filter.to_filters(),
        netns_inum,
    })?;
    for s in &probes.status {
        tracing::info!(probe = %s.probe, attached = s.attached, detail = %s.detail, "probe");
    }
    probes.register_metrics(&registry)?;
    let events = probes.take_events().context("the kernel object has no event ring buffer")?;
    let ring = RingBuf::try_from(events).context("opening the event ring buffer")?;

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    if !cfg.metrics_addr.is_empty() {
        let listener = tokio::net::TcpListener::bind(&cfg.metrics_addr)
            .await
            .with_context(|| format!("binding the admin endpoint on {}", cfg.metrics_addr))?;
        let router = Arc::new(Router::new().metrics(registry.clone()).route("GET", "/healthz", |_| api::Response::text(200, "ok\n")));
        tokio::spawn(api::serve(listener, router, shutdown_rx.clone()));
        tracing::info!(addr = %cfg.metrics_addr, "admin endpoint listening");
    }

    let (tx, rx) = mpsc::channel(cfg.capture.event_queue);
    let reader = tokio::spawn(reader::run(ring, tx, registry.clone()));
    let processing = tokio::spawn(pipeline::run(
        rx,
        pipeline::Options { print_events: cli.print_events, max_connections: cfg.capture.max_connections },
        registry.clone(),
    ));
    tracing::info!("tracing");
    // Lets a supervisor (or a test) know the probes are attached.
    eprintln!("tracer-daemon: ready");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        r = reader => match r {
            Ok(Ok(())) => tracing::warn!("ring buffer reader stopped"),
            Ok(Err(e)) => return Err(e).context("reading the event ring buffer"),
            Err(e) => return Err(e).context("ring buffer reader task"),
        },
    }
    let _ = shutdown_tx.send(true);
    drop(probes);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), processing).await;
    Ok(())
}
