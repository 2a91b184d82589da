//! The processing stage after the reader: keeps the connection table current, assembles spans
//! and hands them to the exporters. With `--print-events`, it also prints each decoded event as
//! one JSON line on stdout.

use std::{io::Write, sync::Arc, time::Duration};

use tokio::sync::{mpsc, watch};

use crate::{
    assemble::{Assembler, ConnSpans},
    conn::{Conn, ConnTable, listen::ListenTable},
    metrics::Registry,
    model::Span,
    reader::{clock::WallClock, decode::Event},
};

pub struct Options {
    pub print_events: bool,
    pub max_connections: usize,
    /// Told each process exit (thread group id), e.g. to age out its cached metadata.
    pub on_exit: Option<Box<dyn Fn(u32) + Send>>,
    /// Told each process that opens a connection (thread group id, kernel command name), so its
    /// metadata is read while it is alive.
    pub on_seen: Option<Box<dyn Fn(u32, &str) + Send>>,
}

/// Where finished spans go (the export pipeline's queue; must not block).
pub type SpanSink = Box<dyn FnMut(Span) + Send>;

/// How often held spans are checked for release.
const TICK: Duration = Duration::from_millis(50);

/// Consumes events until the channel closes or `stop` turns true, then flushes held spans.
pub async fn run(
    mut rx: mpsc::Receiver<Event>,
    opts: Options,
    mut asm: Assembler,
    mut sink: SpanSink,
    registry: Arc<Registry>,
    mut stop: watch::Receiver<bool>,
) {
    let tracked = registry.gauge("tracer_connections_tracked", "Connections in the connection table", &[]);
    let evicted = registry.counter(
        "tracer_connections_evicted_total",
        "Connections evicted from the full connection table (least recently used first)",
        &[],
    );
    let spans_total = registry.counter("tracer_spans_assembled_total", "Spans assembled from captured traffic", &[]);
    let unknown = registry.counter(
        "tracer_connections_unparsed_total",
        "Connections whose protocol is not one the daemon parses (no spans)",
        &[],
    );
    let lib_merged = registry.counter(
        "tracer_library_calls_total",
        "Client-library calls (uprobes) by outcome: merged into the wire span of the same request, or a span of their own (encrypted traffic)",
        &[("outcome", "merged")],
    );
    let lib_alone = registry.counter(
        "tracer_library_calls_total",
        "Client-library calls (uprobes) by outcome: merged into the wire span of the same request, or a span of their own (encrypted traffic)",
        &[("outcome", "alone")],
    );
    const OPTIONS_HELP: &str = "Peers' trace-context options by outcome: matched to the server request that begins at the packet's first byte, or dropped (no request began there, or the connection ended first)";
    let options_matched = registry.counter("tracer_propagation_options_total", OPTIONS_HELP, &[("outcome", "matched")]);
    let options_unmatched = registry.counter("tracer_propagation_options_total", OPTIONS_HELP, &[("outcome", "unmatched")]);
    let joins = registry.gauge("tracer_stitch_pending_joins", "Requests waiting for their other side on this host", &[]);
    let mut table: ConnTable<ConnSpans> = ConnTable::new(opts.max_connections);
    let mut listen = ListenTable::default();
    let stdout = std::io::stdout();
    let mut tick = tokio::time::interval(TICK);
    let mut ready = Vec::new();
    let own_pid = std::process::id();
    loop {
        let event = tokio::select! {
            e = rx.recv() => match e {
                Some(e) => e,
                None => break,
            },
            _ = tick.tick() => {
                asm.drain(WallClock::monotonic_now_ns(), false, &mut ready);
                ready.drain(..).for_each(&mut sink);
                joins.set(asm.stitcher.pending_joins() as i64);
                continue;
            }
            _ = stop.changed() => break,
        };
        if let Event::Conn(c) = &event {
            if c.pid == own_pid {
                asm.own_endpoint(c.tuple.local, c.kind != crate::model::conn::ConnKind::Close);
                continue;
            }
            if c.kind != crate::model::conn::ConnKind::Close {
                match &opts.on_seen {
                    Some(f) => f(c.pid, &c.comm),
                    None => asm.process_seen(c.pid),
                }
            }
        }
        if opts.print_events {
            let mut out = stdout.lock();
            if serde_json::to_writer(&mut out, &event).is_ok() {
                let _ = out.write_all(b"\n");
                let _ = out.flush();
            }
        }
        let before = (table.evicted_total, asm.stats.spans, asm.stats.unknown_protocol, asm.stats.lib_merged, asm.stats.lib_alone);
        let options_before = (asm.stats.options_matched, asm.stats.options_unmatched);
        let mut gone: Vec<Conn<ConnSpans>> = Vec::new();
        match &event {
            Event::Conn(c) => gone.extend(table.on_conn(c).into_iter().map(|(c, _)| c)),
            Event::Data(d) => {
                let mut evicted_now = Vec::new();
                let conn = table.on_data(d, |pid, port| listen.is_listening(pid, port), &mut evicted_now);
                asm.on_data(conn, d);
                gone.extend(evicted_now.into_iter().map(|(c, _)| c));
            }
            Event::State(s) => {
                if s.new_state == tracer_common::TCP_CLOSE {
                    gone.extend(table.on_final_state(s.conn_id));
                    asm.forget_options(s.conn_id);
                }
            }
            Event::Option(o) => asm.on_option(o),
            Event::Exit { pid, .. } => {
                gone.extend(table.on_exit(*pid));
                if let Some(f) = &opts.on_exit {
                    f(*pid);
                }
            }
            Event::Lib(l) => asm.on_lib(l),
        }
        let ts = match &event {
            Event::Conn(c) => c.ts_exit_ns,
            Event::Data(d) => d.ts_exit_ns,
            Event::State(s) => s.ts_ns,
            Event::Exit { ts_ns, .. } => *ts_ns,
            Event::Lib(l) => l.ts_ns,
            Event::Option(o) => o.ts_ns,
        };
        for conn in gone {
            asm.on_close(conn, ts);
        }
        evicted.add(table.evicted_total - before.0);
        spans_total.add(asm.stats.spans - before.1);
        unknown.add(asm.stats.unknown_protocol - before.2);
        lib_merged.add(asm.stats.lib_merged - before.3);
        lib_alone.add(asm.stats.lib_alone - before.4);
        options_matched.add(asm.stats.options_matched - options_before.0);
        options_unmatched.add(asm.stats.options_unmatched - options_before.1);
        tracked.set(table.len() as i64);
    }
    asm.drain(WallClock::monotonic_now_ns(), true, &mut ready);
    ready.drain(..).for_each(&mut sink);
}
