//! The processing stage after the reader: keeps the connection table current and, with
//! `--print-events`, prints each decoded event as one JSON line on stdout.

use std::{io::Write, sync::Arc};

use tokio::sync::mpsc;

use crate::{
    conn::{ConnTable, listen::ListenTable},
    metrics::Registry,
    reader::decode::Event,
};

pub struct Options {
    pub print_events: bool,
    pub max_connections: usize,
}

/// Consumes events until the channel closes.
pub async fn run(mut rx: mpsc::Receiver<Event>, opts: Options, registry: Arc<Registry>) {
    let tracked = registry.gauge("tracer_connections_tracked", "Connections in the connection table", &[]);
    let evicted = registry.counter(
        "tracer_connections_evicted_total",
        "Connections evicted from the full connection table (least recently used first)",
        &[],
    );
    let mut table: ConnTable<()> = ConnTable::new(opts.max_connections);
    let mut listen = ListenTable::default();
    let stdout = std::io::stdout();
    while let Some(event) = rx.recv().await {
        if opts.print_events {
            let mut out = stdout.lock();
            if serde_json::to_writer(&mut out, &event).is_ok() {
                let _ = out.write_all(b"\n");
                let _ = out.flush();
            }
        }
        let before = table.evicted_total;
        match &event {
            Event::Conn(c) => {
                table.on_conn(c);
            }
            Event::Data(d) => {
                let mut gone = Vec::new();
                table.on_data(d, |pid, port| listen.is_listening(pid, port), &mut gone);
            }
            Event::State(s) => {
                if s.new_state == tracer_common::TCP_CLOSE {
                    table.on_final_state(s.conn_id);
                }
            }
            Event::Exit { pid, .. } => {
                table.on_exit(*pid);
            }
        }
        evicted.add(table.evicted_total - before);
        tracked.set(table.len() as i64);
    }
}
