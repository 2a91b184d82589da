//! The bounded span queue in front of the batcher: producers never block, a full queue drops
//! the span and counts it.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::metrics::{Counter, Gauge};
use crate::model::Span;

/// The producers' end of the span queues, one per destination. Cheap to clone; `try_send`
/// never blocks.
#[derive(Clone, Debug)]
pub struct SpanSender {
    lanes: Vec<LaneSender>,
}

/// One destination's span queue.
#[derive(Clone, Debug)]
pub(crate) struct LaneSender {
    tx: mpsc::Sender<Arc<Span>>,
    /// Spans waiting in the queue.
    depth: Gauge,
    /// Spans accepted and not yet delivered, failed or dropped.
    in_flight: Gauge,
    dropped_full: Counter,
    dropped_closed: Counter,
}

impl SpanSender {
    /// Sends to each of `lanes`.
    pub(crate) fn fan_out(lanes: Vec<LaneSender>) -> Self {
        SpanSender { lanes }
    }

    /// Queues a finished span for every destination. `false` when some destination dropped
    /// it: its queue was full (`reason="queue_full"`) or the pipeline has shut down
    /// (`reason="shutdown"`).
    pub fn try_send(&self, span: Span) -> bool {
        self.try_send_shared(Arc::new(span))
    }

    /// Queues a span other stages share: every destination renders the same one.
    pub fn try_send_shared(&self, span: Arc<Span>) -> bool {
        let Some((last, rest)) = self.lanes.split_last() else { return false };
        let mut all = true;
        for lane in rest {
            all &= lane.try_send(span.clone());
        }
        last.try_send(span) && all
    }

    /// Spans every destination's queue can take right now.
    pub fn free_capacity(&self) -> usize {
        self.lanes.iter().map(LaneSender::free_capacity).min().unwrap_or(0)
    }
}

impl LaneSender {
    pub(crate) fn new(
        tx: mpsc::Sender<Arc<Span>>,
        depth: Gauge,
        in_flight: Gauge,
        dropped_full: Counter,
        dropped_closed: Counter,
    ) -> Self {
        LaneSender { tx, depth, in_flight, dropped_full, dropped_closed }
    }

    fn try_send(&self, span: Arc<Span>) -> bool {
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

    fn free_capacity(&self) -> usize {
        self.tx.capacity()
    }
}
