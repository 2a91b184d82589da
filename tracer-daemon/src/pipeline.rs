//! The processing stage after the reader: keeps the connection table current, feeds span
//! assembly and its sibling, the stitcher, and hands finished spans to the exporters. With `--print-events`, it also prints each decoded event as
//! one JSON line on stdout.

use std::{
    io::Write,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::watch;

use crate::{
    agent::own_sampling::OwnSampler,
    assemble::{Assembler, ConnSpans},
    conn::{Conn, ConnTable, listen::ListenTable},
    deps::SharedGraph,
    export::SpanSender,
    metrics::{Registry, Structure},
    model::Span,
    reader::{clock::WallClock, decode::Event, queue::EventReceiver},
    stitch::{IdSource, Stitcher},
    store,
};

pub struct Options {
    pub print_events: bool,
    pub max_connections: usize,
    /// Told each process exit (thread group id), e.g. to age out its cached metadata.
    pub on_exit: Option<Box<dyn Fn(u32) + Send>>,
    /// Told each process that opens a connection (thread group id, kernel command name), so its
    /// metadata is read while it is alive.
    pub on_seen: Option<SeenHook>,
}

/// Told a thread group id and the kernel's command name of a process.
pub type SeenHook = Box<dyn Fn(u32, &str) + Send>;

/// Where finished spans go (the export pipeline's queue; must not block).
pub type SpanSink = Box<dyn FnMut(Span) + Send>;

/// The daemon's span sinks: every finished span is counted in the service graph, kept in the
/// trace store (when it is on) and queued for each export destination. None of them blocks.
pub struct SpanFanout {
    pub graph: SharedGraph,
    pub feed: Option<store::Feed>,
    pub sender: SpanSender,
    /// With `--sample-own-spans`: which spans go on past the service graph.
    pub sampler: Option<OwnSampler>,
}

impl SpanFanout {
    pub fn deliver(&mut self, span: Span) {
        self.graph.observe(&span);
        if let Some(s) = &mut self.sampler
            && !s.keep(&span, Instant::now())
        {
            return;
        }
        // One span, shared: the store and each destination render it for themselves.
        let span = Arc::new(span);
        if let Some(f) = &self.feed {
            f.offer(&span);
        }
        // A full queue drops and counts inside the sender.
        self.sender.try_send_shared(span);
    }

    pub fn into_sink(mut self) -> SpanSink {
        Box::new(move |span| self.deliver(span))
    }
}

/// How often held spans are checked for release.
const TICK: Duration = Duration::from_millis(50);

/// Ticks between two estimates of the connection table's and stitcher's memory (a walk over
/// every connection): about once a second.
const MEMORY_EVERY: u64 = 20;

/// `tracer_memory_bytes` of the structures this loop owns.
struct Memory {
    conns: crate::metrics::Gauge,
    listen: crate::metrics::Gauge,
    stitcher: crate::metrics::Gauge,
    queue: crate::metrics::Gauge,
}

/// Consumes events until the channel closes or `stop` turns true, then flushes held spans.
pub async fn run(
    mut rx: EventReceiver,
    opts: Options,
    mut asm: Assembler,
    mut stitcher: Stitcher,
    mut sink: SpanSink,
    registry: Arc<Registry>,
    mut stop: watch::Receiver<bool>,
) {
    let joins =
        registry.gauge("tracer_stitch_pending_joins", "Requests waiting for their other side on this host", &[]);
    let tracked = registry.gauge("tracer_connections_tracked", "Connections in the connection table", &[]);
    let evicted = registry.counter(
        "tracer_connections_evicted_total",
        "Connections evicted from the full connection table (least recently used first)",
        &[],
    );
    let mut table: ConnTable<ConnSpans> = ConnTable::counting(opts.max_connections, evicted, tracked);
    let mut listen = ListenTable::counting(registry.counter(
        "tracer_listen_namespaces_evicted_total",
        "Network namespaces whose listening-port lists were evicted from the full listen table (oldest first)",
        &[],
    ));
    let memory = Memory {
        conns: Structure::ConnectionTable.gauge(&registry),
        listen: Structure::ListenTable.gauge(&registry),
        stitcher: Structure::Stitcher.gauge(&registry),
        queue: Structure::EventQueue.gauge(&registry),
    };
    let queued = rx.queued_bytes();
    let mut ticks = 0u64;
    let stdout = std::io::stdout();
    let mut tick = tokio::time::interval(TICK);
    let mut ready = Vec::new();
    let own_pid = std::process::id();
    loop {
        let first = tokio::select! {
            e = rx.recv() => match e {
                Some(e) => e,
                None => break,
            },
            _ = tick.tick() => {
                asm.drain(WallClock::monotonic_now_ns(), false, &mut stitcher, &mut ready);
                ready.drain(..).for_each(&mut sink);
                joins.set(stitcher.pending_joins() as i64);
                memory.queue.set(queued.get() as i64);
                ticks += 1;
                if ticks.is_multiple_of(MEMORY_EVERY) {
                    memory.conns.set(table.heap_bytes(ConnSpans::heap_bytes) as i64);
                    memory.listen.set(listen.heap_bytes() as i64);
                    memory.stitcher.set(stitcher.heap_bytes() as i64);
                }
                continue;
            }
            _ = stop.changed() => break,
        };
        // The rest of the batch `first` came in, without a pass through `select!` per event.
        let mut first = Some(first);
        while let Some(event) = first.take().or_else(|| rx.ready()) {
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
            apply(&event, &mut table, &mut listen, &mut asm, &mut stitcher, &opts);
        }
    }
    asm.drain(WallClock::monotonic_now_ns(), true, &mut stitcher, &mut ready);
    ready.drain(..).for_each(&mut sink);
}

/// What the loop does with an event that is not the daemon's own: keeps the connection table
/// current, feeds assembly (and through it the stitcher), and hands assembly the connections
/// the event ended. Finished spans wait in assembly and the stitcher for the next `drain`.
pub fn apply<I: IdSource>(
    event: &Event,
    table: &mut ConnTable<ConnSpans>,
    listen: &mut ListenTable,
    asm: &mut Assembler,
    stitcher: &mut Stitcher<I>,
    opts: &Options,
) {
    let mut gone: Vec<Conn<ConnSpans>> = Vec::new();
    match event {
        Event::Conn(c) => gone.extend(table.on_conn(c).into_iter().map(|(c, _)| c)),
        Event::Data(d) => {
            if table.get(d.conn_id).is_none() {
                // A connection first seen mid-stream (opened before the daemon started):
                // its process is read now, during the spans' hold.
                match &opts.on_seen {
                    Some(f) => f(d.pid, ""),
                    None => asm.process_seen(d.pid),
                }
            }
            let mut evicted_now = Vec::new();
            let conn = table.on_data(d, |pid, port| listen.is_listening(pid, port), &mut evicted_now);
            asm.on_data(conn, d, stitcher);
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
        Event::Lib(l) => asm.on_lib(l, stitcher),
        Event::GoStream(g) => asm.on_go_stream(table.get_mut(g.conn_id), g, stitcher),
    }
    let ts = match event {
        Event::Conn(c) => c.ts_exit_ns,
        Event::Data(d) => d.ts_exit_ns,
        Event::State(s) => s.ts_ns,
        Event::Exit { ts_ns, .. } => *ts_ns,
        Event::Lib(l) => l.ts_ns,
        Event::Option(o) => o.ts_ns,
        Event::GoStream(g) => g.ts_ns,
    };
    for conn in gone {
        asm.on_close(conn, ts, stitcher);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        assemble::AssembleCounters,
        metrics::Structure,
        model::{
            Process,
            conn::{Direction, Tuple},
        },
        protocol::Redaction,
        reader::{
            decode::{DataRecord, Syscall},
            queue,
        },
        stitch::StitchConfig,
    };

    fn gauge(text: &str, structure: &str) -> Option<f64> {
        let prefix = format!("tracer_memory_bytes{{structure=\"{structure}\"}} ");
        text.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.parse().ok())
    }

    #[tokio::test]
    async fn the_loop_reports_the_memory_of_the_structures_it_owns() {
        let registry = Registry::new();
        let (mut tx, rx) = queue::channel(16, 1 << 20);
        let asm = Assembler::new(
            Redaction::default(),
            WallClock::with_offset(0),
            Box::new(|_| Arc::new(Process { service_name: "s".into(), tags: vec![] })),
            AssembleCounters::detached(),
        );
        let opts = Options { print_events: false, max_connections: 16, on_exit: None, on_seen: None };
        let (stop_tx, stop_rx) = watch::channel(false);
        let run = tokio::spawn(run(
            rx,
            opts,
            asm,
            Stitcher::new(StitchConfig::default()),
            Box::new(|_| {}),
            registry.clone(),
            stop_rx,
        ));
        let get = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec();
        let rec = DataRecord {
            pid: 4_000_000,
            tid: 4_000_000,
            ts_enter_ns: 1,
            ts_exit_ns: 2,
            conn_id: 9,
            fd: 3,
            syscall: Syscall::Read,
            direction: Direction::Ingress,
            ret: get.len() as i64,
            truncated: false,
            seq: None,
            goid: None,
            netns: 0,
            context: None,
            tuple: Tuple { local: "127.0.0.1:8080".parse().unwrap(), remote: "127.0.0.1:40000".parse().unwrap() },
            lost_before: Default::default(),
            degraded: false,
            payload: get,
        };
        tx.try_send(Event::Data(rec)).expect("queued");
        tx.flush().expect("handed over");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let text = registry.render();
            if gauge(&text, "connection_table").is_some_and(|v| v > 0.0) {
                for s in
                    [Structure::ConnectionTable, Structure::ListenTable, Structure::Stitcher, Structure::EventQueue]
                {
                    assert!(gauge(&text, s.as_str()).is_some(), "{} missing:\n{text}", s.as_str());
                }
                assert_eq!(gauge(&text, "event_queue"), Some(0.0), "the event was received");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "no connection table estimate:\n{text}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop_tx.send(true).unwrap();
        run.await.unwrap();
    }
}
