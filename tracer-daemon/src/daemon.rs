//! Starts and stops the daemon: loads the probes, wires reader → assembly → export, starts the
//! agent listeners, serves the admin endpoint, and on SIGINT / SIGTERM stops intake and flushes
//! what it holds within the deadline.

use std::{collections::HashSet, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context;
use aya::maps::RingBuf;
use clap::{CommandFactory, FromArgMatches, parser::ValueSource};
use tokio::sync::watch;

use crate::{
    agent,
    api::{self, Router},
    assemble::{AssembleCounters, Assembler},
    config::{CliOverrides, Config},
    deps::{self, SharedGraph, fleet::FleetArgs},
    export::{self, ExportConfig},
    metrics::Registry,
    pipeline,
    probes::{LoadOptions, Probes, env},
    process::ProcessResolver,
    protocol::Redaction,
    reader::{self, clock::WallClock},
    stitch::{StitchConfig, Stitcher},
    store,
    supervise::Stages,
};

#[derive(clap::Parser, Debug)]
#[command(
    name = "tracer-daemon",
    version,
    about = "Traces every TCP service on this host with eBPF and sends Jaeger traces",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// YAML configuration file; flags override its values.
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// Print each decoded kernel event as one JSON line on stdout (debug aid; raw payloads).
    #[arg(long)]
    pub print_events: bool,
    #[command(flatten)]
    pub overrides: CliOverrides,
    #[command(flatten)]
    pub export: ExportConfig,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Fetch several daemons' dependency graphs, merge them into one and print it (DOT or JSON).
    #[command(visible_alias = "deps")]
    Fleet(FleetArgs),
}

/// The parsed command line and the ids of the arguments given on it (not defaulted).
pub struct Invocation {
    pub cli: Cli,
    pub explicit: HashSet<String>,
}

/// Parses the process's arguments (exits with usage on error, as clap does).
pub fn parse_args() -> Invocation {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let explicit = matches
        .ids()
        .filter(|id| matches.value_source(id.as_str()) == Some(ValueSource::CommandLine))
        .map(|id| id.as_str().to_owned())
        .collect();
    Invocation { cli, explicit }
}

pub async fn run(inv: Invocation) -> anyhow::Result<()> {
    let Invocation { cli, explicit } = inv;
    if let Some(Command::Fleet(args)) = cli.command {
        return deps::fleet::fleet_main(args).await;
    }
    let cfg = Config::load(cli.config.as_deref())?
        .apply(&cli.overrides)?
        .apply_export(&cli.export, &|id| explicit.contains(id));
    let registry = Registry::new();
    // Every long-running task is a stage: its panic or error is logged with the cause, shown
    // by /healthz and ends the daemon with a non-zero status.
    let stages = Stages::from_env();
    register_stage_metrics(&registry, &stages);
    let graph = SharedGraph::new(cfg.deps.clone());
    deps::metrics::register(&registry, graph.clone());
    let netns_inum = match &cfg.netns {
        Some(name) => env::netns_inode(name)?,
        None => 0,
    };

    let host = export::HostInfo::detect().with_tags(cfg.export.parsed_host_tags()?);
    let exporter = export::Pipeline::spawn_supervised(&cfg.export, host.clone(), registry.clone(), &stages)?;
    let (trace_store, feed) = start_store(&cfg.store, &host, &registry, &stages);
    let app_graph = graph.clone();
    let app_feed = feed.clone();
    let observer: agent::SpanObserver = Arc::new(move |span| {
        app_graph.observe_app(span);
        if let Some(f) = &app_feed {
            f.offer(span);
        }
    });
    let agent =
        agent::spawn_supervised(&cfg.export, &host, exporter.sender.clone(), registry.clone(), Some(observer), &stages)
            .await
            .context("starting the agent listeners")?;

    let mut probes = Probes::load(&LoadOptions {
        hook: cfg.capture.syscall_hook,
        capture_bytes: cfg.capture.capture_bytes,
        ring_bytes: cfg.capture.ring_buffer_bytes,
        filters: cfg.filter.clone(),
        netns_inum,
        propagate: cfg.propagate,
        floor: cfg.capture.probe_floor,
    })?;
    if let Some(f) = cfg.capture.probe_floor {
        tracing::warn!(floor = ?f, "benchmark floor loaded: nothing is traced");
    }
    for s in &probes.status {
        tracing::info!(probe = %s.probe, attached = s.attached, detail = %s.detail, "probe");
    }
    // Client-library probes are optional: without them, spans still come from the wire.
    let _uprobes = if cfg.uprobes && cfg.capture.probe_floor.is_none() {
        match crate::uprobes::start(&mut probes.ebpf, &registry, &stages) {
            Ok(u) => Some(u),
            Err(e) => {
                tracing::warn!(error = %e, "client-library uprobes unavailable: spans come from socket traffic only");
                None
            }
        }
    } else {
        tracing::info!("client-library uprobes turned off");
        None
    };
    probes.register_metrics(&registry)?;
    // Held for the daemon's lifetime: the kernel accounts program run time while it is open.
    let _bpf_stats = if cfg.capture.bpf_stats {
        match aya::sys::enable_stats(aya::sys::Stats::RunTime) {
            Ok(fd) => Some(fd),
            Err(e) => {
                tracing::warn!(error = %e, "bpf run-time statistics unavailable");
                None
            }
        }
    } else {
        None
    };
    let events = probes.take_events().context("the kernel object has no event ring buffer")?;
    let ring = RingBuf::try_from(events).context("opening the event ring buffer")?;

    // Process metadata (service names, container and pod tags), with the pod sync running in
    // the background when inside Kubernetes.
    let resolver = ProcessResolver::spawn(&cfg.kubernetes, host.clone()).context("process metadata")?;
    resolver.register_metrics(&registry);
    resolver.start_worker(&stages).context("starting the process metadata worker")?;
    match resolver.pod_source() {
        Some(s) => tracing::info!(source = ?s.source, url = %s.url, node = %s.node_name, "pod metadata"),
        None => tracing::info!("pod metadata off (not in Kubernetes)"),
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut admin_addr = None;
    if !cfg.metrics_addr.is_empty() {
        let listener = tokio::net::TcpListener::bind(&cfg.metrics_addr)
            .await
            .with_context(|| format!("binding the admin endpoint on {}", cfg.metrics_addr))?;
        admin_addr = listener.local_addr().ok();
        let ready = resolver.clone();
        let (live_stages, ready_stages) = (stages.clone(), stages.clone());
        let router = Router::new()
            .metrics(registry.clone())
            .route("GET", "/healthz", move |_| api::health::healthz(&live_stages))
            .route("GET", "/readyz", move |_| api::health::readyz(&ready_stages, waiting(&ready)));
        let mut router = deps::api::routes(router, graph.clone());
        if let Some(s) = &trace_store {
            router = store::v3::routes(store::api::routes(router, s.clone()), s.clone());
        }
        let router = Arc::new(router);
        let limits = api::Limits {
            max_connections: cfg.admin_max_connections,
            max_body_bytes: cfg.admin_max_body_bytes,
            request_timeout: Duration::from_millis(cfg.admin_request_timeout_ms),
            idle_timeout: api::Limits::ADMIN.idle_timeout,
        };
        let drops = api::DropCounters::register(&registry, "admin");
        stages.spawn("admin server", api::serve_with(listener, router, stop_rx.clone(), limits, drops));
        tracing::info!(addr = %cfg.metrics_addr, "admin endpoint listening");
    }

    let (tx, rx) = reader::queue::channel(cfg.capture.event_queue, cfg.capture.event_queue_bytes);
    stages.spawn("reader", reader::run(ring, tx, registry.clone()));
    let mut asm = Assembler::new(
        Redaction { enabled: cfg.redact },
        WallClock::new(),
        resolver.resolve_fn(),
        AssembleCounters::register(&registry),
    );
    let stitch = StitchConfig::from(&cfg.stitch);
    let stitcher = Stitcher::registered(stitch, &registry);
    for addr in [admin_addr, agent.sampling_addr].into_iter().flatten() {
        asm.own_listener(addr);
    }
    let sender = exporter.sender.clone();
    let span_graph = graph.clone();
    let sampler = if cfg.export.sample_own_spans {
        let doc =
            agent::sampling::read_config(cfg.export.sampling_strategies_file.as_deref(), cfg.export.sampling.as_ref())?;
        // Refuses what the sampling endpoint would refuse.
        agent::sampling::Strategies::from_config(&doc)?;
        tracing::info!("the sampling strategies apply to the daemon's own spans");
        Some(agent::own_sampling::OwnSampler::new(&doc, &registry))
    } else {
        None
    };
    let processing = pipeline::run(
        rx,
        pipeline::Options {
            print_events: cli.print_events,
            max_connections: cfg.capture.max_connections,
            on_exit: Some({
                let r = resolver.clone();
                Box::new(move |pid| r.forget(pid))
            }),
            on_seen: Some({
                let r = resolver.clone();
                Box::new(move |pid, comm| r.seen(pid, comm))
            }),
        },
        asm,
        stitcher,
        pipeline::SpanFanout { graph: span_graph, feed, sender, sampler }.into_sink(),
        registry.clone(),
        stop_rx.clone(),
    );
    let processing = stages.spawn("processing", processing);
    tracing::info!("tracing");
    // One JSON line on stderr tells a supervisor (or a test) that the probes are attached and
    // where each listener is bound (useful with port 0).
    let show = |a: Option<std::net::SocketAddr>| a.map(|a| a.to_string());
    eprintln!(
        "{}",
        serde_json::json!({"ready": {
            "compact": show(agent.compact_addr),
            "binary": show(agent.binary_addr),
            "sampling": show(agent.sampling_addr),
            "otlp_grpc": show(agent.otlp_grpc_addr),
            "otlp_http": show(agent.otlp_http_addr),
            "zipkin": show(agent.zipkin_addr),
            "metrics": show(admin_addr),
        }})
    );

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let failure = tokio::select! {
        _ = tokio::signal::ctrl_c() => { tracing::info!("SIGINT: shutting down"); None }
        _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); None }
        death = stages.first_death() => {
            tracing::error!(stage = %death.stage, cause = %death.cause, "a stage died: shutting down");
            Some(anyhow::anyhow!("stage {} died: {}", death.stage, death.cause))
        }
    };
    // Stop intake, let assembly release what it holds, then flush the exporters.
    stages.stopping();
    let _ = stop_tx.send(true);
    drop(_uprobes);
    drop(probes);
    let _ = tokio::time::timeout(Duration::from_secs(2), processing).await;
    agent.shutdown().await;
    let deadline = Duration::from_millis(cfg.export.flush_deadline_ms);
    if !exporter.shutdown(deadline).await {
        tracing::warn!(?deadline, "not every span was delivered before the flush deadline");
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The trace store and the queue feeding it, unless its budget is 0.
fn start_store(
    cfg: &crate::config::store::StoreConfig,
    host: &export::HostInfo,
    registry: &Registry,
    stages: &Stages,
) -> (Option<store::SharedStore>, Option<store::Feed>) {
    if cfg.max_bytes == 0 {
        tracing::info!("trace store off");
        return (None, None);
    }
    let counters = store::StoreCounters::register(registry, cfg.max_bytes);
    let store_bytes = counters.bytes.clone();
    registry.add_collector(move |out| {
        use crate::metrics::{Kind, Sample, Structure};
        let labels = [("structure", Structure::Store.as_str())];
        out.push(Sample::new(Structure::METRIC, Structure::HELP, Kind::Gauge, &labels, store_bytes.get() as f64));
    });
    let shared =
        store::SharedStore::new(store::TraceStore::new(cfg.max_bytes, counters.clone())).with_host(host.clone());
    let feed = store::spawn_supervised(shared.clone(), cfg.queue, &counters, stages);
    tracing::info!(max_bytes = cfg.max_bytes, "trace store on");
    (Some(shared), Some(feed))
}

/// What `/readyz` still waits for: the probes are attached (the endpoint starts after them);
/// with pod lookup on, this node's pod list must have been received.
fn waiting(resolver: &ProcessResolver) -> Option<&'static str> {
    match resolver.pods() {
        Some(store) if !store.synced() => Some("waiting for the node's pod list"),
        _ => None,
    }
}

/// `tracer_stage_up{stage}`: 1 while a stage runs, 0 once it stopped or died.
fn register_stage_metrics(registry: &Registry, stages: &Stages) {
    let stages = stages.clone();
    registry.add_collector(move |out| {
        for s in stages.snapshot() {
            let up = if s.state == crate::supervise::State::Running { 1.0 } else { 0.0 };
            out.push(crate::metrics::Sample::new(
                "tracer_stage_up",
                "Whether each long-running stage of the daemon is running (1) or stopped or dead (0).",
                crate::metrics::Kind::Gauge,
                &[("stage", &s.name)],
                up,
            ));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fleet_subcommand_parses_daemons_and_format() {
        use clap::Parser;
        let argv =
            ["tracer-daemon", "fleet", "--daemon", "a:14271", "--from", "tracer.obs.svc:14271", "--format", "json"];
        let cli = Cli::try_parse_from(argv).unwrap();
        let Some(Command::Fleet(args)) = cli.command else { panic!("no fleet subcommand") };
        assert_eq!(args.daemons, ["a:14271", "tracer.obs.svc:14271"]);
        assert_eq!(args.format, deps::fleet::FleetFormat::Json);
        assert!(Cli::try_parse_from(["tracer-daemon", "deps", "--from", "a:1"]).is_ok(), "`deps` is an alias");
        assert!(Cli::try_parse_from(["tracer-daemon", "fleet"]).is_err(), "at least one daemon");
        let daemon = Cli::try_parse_from(["tracer-daemon", "--output", "json"]).unwrap();
        assert!(daemon.command.is_none(), "without a subcommand the daemon runs");
    }

    #[test]
    fn fleet_trace_parses_its_id_and_daemons() {
        use clap::Parser;
        use deps::fleet::FleetQuery;
        let argv = ["tracer-daemon", "fleet", "trace", "00ab", "--daemon", "a:14271", "--from", "b:14271", "--strict"];
        let Some(Command::Fleet(args)) = Cli::try_parse_from(argv).unwrap().command else { panic!("no fleet") };
        let Some(FleetQuery::Trace(t)) = args.query else { panic!("no trace query") };
        assert_eq!(
            (t.id.as_str(), t.from.daemons.as_slice(), t.from.strict),
            ("00ab", &["a:14271".to_string(), "b:14271".into()][..], true)
        );
        assert!(Cli::try_parse_from(["tracer-daemon", "fleet", "trace", "00ab"]).is_err(), "at least one daemon");
        assert!(Cli::try_parse_from(["tracer-daemon", "fleet", "trace", "--daemon", "a:1"]).is_err(), "an id");
        let argv = ["tracer-daemon", "fleet", "search", "--service", "svc", "--tag", "error:true", "--from", "a:1"];
        let Some(Command::Fleet(args)) = Cli::try_parse_from(argv).unwrap().command else { panic!("no fleet") };
        let Some(FleetQuery::Search(q)) = args.query else { panic!("no search") };
        assert_eq!(
            (q.service.as_deref(), q.tags.as_slice(), q.limit),
            (Some("svc"), &["error:true".to_string()][..], 20)
        );
        assert!(Cli::try_parse_from(["tracer-daemon", "fleet", "search", "--service", "x"]).is_err(), "a daemon");
    }
}
