//! The daemon's cost per span, without the kernel: decoded events of HTTP requests whose
//! handler calls Redis from the serving thread go through the processing stage (connection
//! table, assembly, stitching) and the span sinks the daemon runs (service graph, trace store,
//! one Jaeger UDP destination), exactly as `daemon.rs` wires them.
//!
//! Prints the process CPU time per span. `cargo xtask bench --daemon` runs it; under
//! `valgrind --tool=callgrind` it shows where the instructions go.
//!
//! Usage: `span_path [REQUESTS [SPANS_PER_SEC]]` (defaults 50,000 requests, two spans each,
//! offered at 50,000 spans/s; 0 offers them as fast as the processing stage takes them).

use std::{
    net::UdpSocket,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::watch;
use tracer_daemon::{
    assemble::{AssembleCounters, Assembler},
    config::{deps::GraphConfig, export::ExportConfig},
    deps::SharedGraph,
    export::{HostInfo, Pipeline},
    metrics::Registry,
    model::{
        Process,
        conn::{ConnKind, Direction, Tuple},
    },
    pipeline::{self, SpanFanout},
    protocol::Redaction,
    reader::{
        clock::WallClock,
        decode::{ConnRecord, DataRecord, Event, Syscall},
    },
    stitch::{StitchConfig, Stitcher},
    store,
};

// The daemon's allocator.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Keep-alive requests per server connection.
const PER_CONN: usize = 100;
/// Server threads (each with its own Redis connection).
const THREADS: u32 = 8;
const SERVER_PID: u32 = 4000;

struct Gen {
    ts: u64,
    next_conn: u64,
    events: Vec<Event>,
}

impl Gen {
    fn tick(&mut self) -> u64 {
        self.ts += 2_000;
        self.ts
    }

    fn conn(&mut self, kind: ConnKind, tid: u32, tuple: Tuple) -> u64 {
        self.next_conn += 1;
        let ts = self.tick();
        self.events.push(Event::Conn(ConnRecord {
            kind,
            pid: SERVER_PID,
            tid,
            ts_enter_ns: ts - 1_000,
            ts_exit_ns: ts,
            conn_id: self.next_conn,
            fd: 10,
            ret: 0,
            syscall: if kind == ConnKind::Accept { Syscall::Accept4 } else { Syscall::Connect },
            tuple,
            comm: "api".into(),
        }));
        self.next_conn
    }

    fn data(&mut self, conn_id: u64, tid: u32, tuple: Tuple, direction: Direction, payload: &[u8]) {
        let ts = self.tick();
        self.events.push(Event::Data(DataRecord {
            pid: SERVER_PID,
            tid,
            ts_enter_ns: ts - 1_000,
            ts_exit_ns: ts,
            conn_id,
            fd: 11,
            syscall: if direction == Direction::Egress { Syscall::Write } else { Syscall::Read },
            direction,
            ret: payload.len() as i64,
            truncated: false,
            tuple,
            context: None,
            seq: None,
            goid: None,
            netns: 0,
            lost_before: Default::default(),
            degraded: false,
            payload: payload.to_vec(),
        }));
    }
}

fn tuple(local: &str, remote: &str) -> Tuple {
    Tuple { local: local.parse().expect("address"), remote: remote.parse().expect("address") }
}

/// The events of `requests` requests, starting at monotonic time `start_ns`.
fn events(requests: usize, start_ns: u64) -> Vec<Event> {
    let mut g = Gen { ts: start_ns, next_conn: 0, events: Vec::with_capacity(requests * 4 + 64) };
    let redis: Vec<(u64, Tuple)> = (0..THREADS)
        .map(|t| {
            let tup = tuple(&format!("127.0.0.1:{}", 50_000 + t), "127.0.0.1:6379");
            (g.conn(ConnKind::Connect, SERVER_PID + t, tup), tup)
        })
        .collect();
    let mut done = 0;
    let mut port = 30_000u32;
    while done < requests {
        port += 1;
        let tid_ix = port % THREADS;
        let tid = SERVER_PID + tid_ix;
        let server = tuple("10.0.0.1:8080", &format!("10.0.0.9:{}", 1024 + port % 60_000));
        let id = g.conn(ConnKind::Accept, tid, server);
        for _ in 0..PER_CONN.min(requests - done) {
            let n = done;
            let req = format!(
                "GET /api/item/{n}?view=full HTTP/1.1\r\nHost: api.internal\r\nUser-Agent: load/1.0\r\nAccept: */*\r\n\r\n"
            );
            g.data(id, tid, server, Direction::Ingress, req.as_bytes());
            let (rid, rtup) = redis[tid_ix as usize];
            let cmd = format!("*2\r\n$3\r\nGET\r\n${}\r\nitem:{n}\r\n", format!("item:{n}").len());
            g.data(rid, tid, rtup, Direction::Egress, cmd.as_bytes());
            g.data(rid, tid, rtup, Direction::Ingress, b"$5\r\nhello\r\n");
            g.data(
                id,
                tid,
                server,
                Direction::Egress,
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"ok\":\"yes\"}\n",
            );
            done += 1;
        }
        let ts = g.tick();
        g.events.push(Event::Conn(ConnRecord {
            kind: ConnKind::Close,
            pid: SERVER_PID,
            tid,
            ts_enter_ns: ts - 1_000,
            ts_exit_ns: ts,
            conn_id: id,
            fd: 11,
            ret: 0,
            syscall: Syscall::Close,
            tuple: server,
            comm: "api".into(),
        }));
    }
    g.events
}

fn cpu_secs() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_SELF covers every thread of the process.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

fn main() {
    let arg = |i: usize, default: usize| std::env::args().nth(i).map_or(default, |a| a.parse().expect("a number"));
    let (requests, rate) = (arg(1, 50_000), arg(2, 50_000));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(run(requests, rate));
}

/// The producer waits while the event queue holds more than this.
const QUEUE_HIGH_BYTES: usize = 8 << 20;

/// How often paced events are handed over.
const PACE: Duration = Duration::from_millis(5);

async fn run(requests: usize, rate: usize) {
    let registry = Registry::new();
    let udp_sink = UdpSocket::bind("127.0.0.1:0").expect("udp sink");
    let cfg = ExportConfig { agent_udp: Some(udp_sink.local_addr().expect("addr").to_string()), ..Default::default() };
    let host = HostInfo::detect();
    let exporter = Pipeline::spawn(&cfg, host, registry.clone()).expect("export pipeline");
    let graph = SharedGraph::new(GraphConfig::default());
    let counters = store::StoreCounters::register(&registry, 64 << 20);
    let shared = store::SharedStore::new(store::TraceStore::new(64 << 20, counters.clone()));
    let feed = store::spawn(shared.clone(), 8192, &counters);
    let sink = SpanFanout { graph: graph.clone(), feed: Some(feed), sender: exporter.sender.clone(), sampler: None };

    let process = Arc::new(Process { service_name: "api".into(), tags: vec![] });
    let asm = Assembler::new(
        Redaction::default(),
        WallClock::new(),
        Box::new(move |_| process.clone()),
        AssembleCounters::register(&registry),
    );
    let stitcher = Stitcher::registered(StitchConfig::default(), &registry);
    let evs = events(requests, WallClock::monotonic_now_ns());
    let (mut tx, rx) = tracer_daemon::reader::queue::channel(65_536, 64 << 20);
    let queued = tx.queued_bytes();
    let (_stop_tx, stop_rx) = watch::channel(false);
    let opts = pipeline::Options { print_events: false, max_connections: 65_536, on_exit: None, on_seen: None };

    let (cpu0, wall0) = (cpu_secs(), Instant::now());
    let processing = tokio::spawn(pipeline::run(rx, opts, asm, stitcher, sink.into_sink(), registry.clone(), stop_rx));
    // Events per request: four data calls plus a share of the connection events.
    let per_tick = if rate == 0 { usize::MAX } else { (rate / 2 * 4 * PACE.as_micros() as usize / 1_000_000).max(1) };
    let mut tick = tokio::time::interval(PACE);
    let mut evs = evs.into_iter().peekable();
    while evs.peek().is_some() {
        if rate > 0 {
            tick.tick().await;
        }
        for e in evs.by_ref().take(per_tick) {
            // The reader never waits; this producer does, so that no event is dropped here.
            while queued.get() > QUEUE_HIGH_BYTES {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            if tx.try_send(e).is_err() {
                eprintln!("span_path: the event queue refused an event");
            }
        }
        // As the reader does after each drain of the ring.
        if tx.flush().is_err() {
            eprintln!("span_path: the processing stage is gone");
        }
    }
    drop(tx);
    processing.await.expect("processing");
    exporter.shutdown(Duration::from_secs(30)).await;
    let (cpu, wall) = (cpu_secs() - cpu0, wall0.elapsed().as_secs_f64());
    let spans = registry_value(&registry, "tracer_export_spans_sent_total");
    let made = (requests * 2) as f64;
    println!(
        "span_path: {requests} requests, {made} spans made, {spans} sent; {:.3} s CPU, {:.3} s wall; {:.2} µs CPU per span; {:.0} spans/s",
        cpu,
        wall,
        cpu / made * 1e6,
        made / wall
    );
    let (stored, store_bytes) =
        (registry_value(&registry, "tracer_store_spans"), registry_value(&registry, "tracer_store_bytes"));
    println!("  trace store: {stored} spans, {store_bytes} bytes, {:.0} bytes per span", store_bytes / stored.max(1.0));
    for line in registry.render().lines().filter(|l| l.contains("dropped") && !l.starts_with('#') && !l.ends_with(" 0"))
    {
        println!("  {line}");
    }
}

/// The sum of a counter's series in the registry's text exposition.
fn registry_value(registry: &Registry, name: &str) -> f64 {
    registry
        .render()
        .lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
