//! The bounded span queue in front of the batcher: producers never block, a full queue drops
//! the span and counts it.

use tokio::sync::mpsc;

use crate::metrics::{Counter, Gauge};
use crate::model::Span;

/// The producers' end of the span queue. Cheap to clone; `try_send` never blocks.
#[derive(Clone, Debug)]
pub struct SpanSender {
    tx: mpsc::Sender<Span>,
    /// Spans waiting in the queue.
    depth: Gauge,
    /// Spans accepted and not yet delivered, failed or dropped.
    in_flight: Gauge,
    dropped_full: Counter,
    dropped_closed: Counter,
}

impl SpanSender {
    pub(crate) fn new(
        tx: mpsc::Sender<Span>,
        depth: Gauge,
        in_flight: Gauge,
        dropped_full: Counter,
        dropped_closed: Counter,
    ) -> Self {
        SpanSender { tx, depth, in_flight, dropped_full, dropped_closed }
    }

    /// Queues a finished span. `false` when it was dropped: the queue was full
    /// (`reason="queue_full"`) or the pipeline has shut down (`reason="shutdown"`).
    pub fn try_send(&self, span: Span) -> bool {
        match self.tx.try_send(span) {
            Ok(()) => {
                self.depth.inc();
                self.in_flight.inc();
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped_full.inc();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.dropped_closed.inc();
                false
            }
        }
    }

    /// Spans the queue can take right now.
    pub fn free_capacity(&self) -> usize {
        self.tx.capacity()
    }
}
