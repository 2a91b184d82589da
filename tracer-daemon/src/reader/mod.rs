//! Reads the kernel's event ring buffer through `AsyncFd` and hands decoded events to the next
//! stage over a channel bounded by count and bytes (`queue`). The reader never blocks: when the
//! channel is full the event is dropped and counted
//! (`tracer_events_dropped_total{reason="pipeline_full"|"pipeline_bytes"}`).

pub mod clock;
pub mod decode;
pub mod queue;

use std::{sync::Arc, time::Duration};

use aya::maps::{MapData, RingBuf};
use tokio::io::{Interest, unix::AsyncFd};

use crate::metrics::{Counter, Registry};
use queue::{EventSender, QueueDrop, SendError};

struct ReaderMetrics {
    decode_errors: Vec<(&'static str, Counter)>,
    by_kind: Vec<(&'static str, Counter)>,
    /// By [`QueueDrop`].
    dropped: [Counter; QueueDrop::ALL.len()],
    /// Records of a benchmark floor (`--probe-floor minimal`), counted and discarded.
    floor: Counter,
}

impl ReaderMetrics {
    fn new(r: &Registry) -> Self {
        let decode_errors = decode::DecodeError::REASONS
            .into_iter()
            .map(|reason| {
                (
                    reason,
                    r.counter(
                        "tracer_decode_errors_total",
                        "Kernel records that failed to decode",
                        &[("reason", reason)],
                    ),
                )
            })
            .collect();
        let by_kind = decode::Event::KIND_LABELS
            .into_iter()
            .map(|kind| (kind, r.counter("tracer_events_total", "Kernel events decoded, by kind", &[("kind", kind)])))
            .collect();
        let dropped = QueueDrop::ALL.map(|q| {
            r.counter(
                "tracer_events_dropped_total",
                "Events dropped in the daemon, by reason",
                &[("reason", q.as_str())],
            )
        });
        let floor = r.counter(
            "tracer_floor_records_total",
            "Records of the minimal-capture benchmark floor (--probe-floor minimal), read and discarded",
            &[],
        );
        ReaderMetrics { decode_errors, by_kind, dropped, floor }
    }

    fn find<'a>(list: &'a [(&'static str, Counter)], key: &str) -> Option<&'a Counter> {
        list.iter().find(|(k, _)| *k == key).map(|(_, c)| c)
    }
}

/// How often the ring buffer is drained without a wakeup. The kernel wakes the reader only when
/// an eighth of the ring is waiting (see `maps::wakeup` in tracer-ebpf), so quiet periods and
/// light load are served by this timer: it bounds how long an event waits in the ring.
const DRAIN_EVERY: Duration = Duration::from_millis(10);

/// Reads until the ring buffer's fd fails or the receiver is gone.
pub async fn run(ring: RingBuf<MapData>, mut tx: EventSender, registry: Arc<Registry>) -> std::io::Result<()> {
    let m = ReaderMetrics::new(&registry);
    // SAFETY: the ring buffer owns its map fd, which stays open and unchanged until the
    // AsyncFd (which owns the ring buffer) is dropped.
    let mut fd = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }.map_err(std::io::Error::from)?;
    let mut tick = tokio::time::interval(DRAIN_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let open = tokio::select! {
            ready = fd.readable_mut() => {
                let mut guard = ready?;
                let open = drain(guard.get_inner_mut(), &mut tx, &m);
                guard.clear_ready();
                open
            }
            _ = tick.tick() => drain(fd.get_mut(), &mut tx, &m),
        };
        if !open {
            return Ok(());
        }
    }
}

/// Hands every record waiting in the ring to the next stage, in batches; false when the
/// receiver is gone.
fn drain(ring: &mut RingBuf<MapData>, tx: &mut EventSender, m: &ReaderMetrics) -> bool {
    while let Some(item) = ring.next() {
        if decode::is_floor(&item) {
            m.floor.inc();
            continue;
        }
        match decode::decode(&item) {
            Ok(event) => {
                if let Some(c) = ReaderMetrics::find(&m.by_kind, event.kind_label()) {
                    c.inc();
                }
                match tx.try_send(event) {
                    Ok(()) => {}
                    Err(SendError::Dropped(reason)) => m.dropped[reason as usize].inc(),
                    Err(SendError::Closed) => return false,
                }
            }
            Err(e) => {
                if let Some(c) = ReaderMetrics::find(&m.decode_errors, e.reason()) {
                    c.inc();
                }
                tracing::debug!(error = %e, "undecodable kernel record");
            }
        }
    }
    tx.flush().is_ok()
}
