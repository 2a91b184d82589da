//! The channel from the ring-buffer reader to the processing loop, bounded twice: by count
//! (slots) and by the bytes of the events it holds (payloads and records), so that a burst of
//! large payloads cannot queue hundreds of MiB. Both ends share one atomic event count and one
//! atomic byte count, raised on send and lowered on receive. The reader never blocks: an event
//! that would pass either bound is refused and the caller counts it with the reason.
//!
//! Events travel in batches: the sender gathers what one drain of the ring took (up to `BATCH`)
//! and hands it over with `flush`, so the processing loop is woken once per batch, not once per
//! event. The bounds still apply per event, at `try_send`.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use tokio::sync::mpsc;

use super::decode::Event;

/// Why an event did not enter the queue (`tracer_events_dropped_total{reason}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueDrop {
    /// Every slot was taken.
    Full,
    /// The events queued already held the byte bound.
    Bytes,
}

impl QueueDrop {
    pub const ALL: [QueueDrop; 2] = [QueueDrop::Full, QueueDrop::Bytes];

    pub fn as_str(self) -> &'static str {
        match self {
            QueueDrop::Full => "pipeline_full",
            QueueDrop::Bytes => "pipeline_bytes",
        }
    }
}

/// A send that did not happen.
#[derive(Debug, PartialEq, Eq)]
pub enum SendError {
    Dropped(QueueDrop),
    /// The receiver is gone.
    Closed,
}

/// Bytes an event holds while queued: the record itself and what it owns on the heap.
pub fn event_bytes(e: &Event) -> usize {
    let heap = match e {
        Event::Data(d) => d.payload.capacity(),
        Event::Lib(l) => l.payload.capacity(),
        Event::Conn(c) => c.comm.capacity(),
        Event::State(_) | Event::Exit { .. } | Event::Option(_) | Event::GoStream(_) => 0,
    };
    std::mem::size_of::<Event>() + heap
}

/// Events gathered before the sender hands them over on its own.
const BATCH: usize = 256;

/// What both ends share: events and bytes queued, counted from `try_send` to `recv`.
#[derive(Default)]
struct Queued {
    events: AtomicUsize,
    bytes: AtomicUsize,
}

type Batch = Vec<(Event, usize)>;

pub struct EventSender {
    tx: mpsc::UnboundedSender<Batch>,
    batch: Batch,
    queued: Arc<Queued>,
    slots: usize,
    max_bytes: usize,
}

pub struct EventReceiver {
    rx: mpsc::UnboundedReceiver<Batch>,
    batch: std::vec::IntoIter<(Event, usize)>,
    queued: Arc<Queued>,
}

/// A queue of `slots` events holding at most `max_bytes` (at least one event always fits).
pub fn channel(slots: usize, max_bytes: usize) -> (EventSender, EventReceiver) {
    // Unbounded in batches: every batch holds at least one event, and events are bounded.
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(Queued::default());
    (
        EventSender { tx, batch: Vec::new(), queued: queued.clone(), slots: slots.max(1), max_bytes },
        EventReceiver { rx, batch: Vec::new().into_iter(), queued },
    )
}

/// Bytes queued now, shared by both ends (for the memory gauge).
#[derive(Clone)]
pub struct QueuedBytes(Arc<Queued>);

impl QueuedBytes {
    pub fn get(&self) -> usize {
        self.0.bytes.load(Ordering::Relaxed)
    }
}

impl EventSender {
    /// Queues `event` unless a bound is reached. It reaches the receiver at the next `flush`
    /// (or once a batch is full).
    pub fn try_send(&mut self, event: Event) -> Result<(), SendError> {
        if self.queued.events.fetch_add(1, Ordering::Relaxed) >= self.slots {
            self.queued.events.fetch_sub(1, Ordering::Relaxed);
            return Err(SendError::Dropped(QueueDrop::Full));
        }
        let n = event_bytes(&event);
        let before = self.queued.bytes.fetch_add(n, Ordering::Relaxed);
        if before > 0 && before + n > self.max_bytes {
            self.queued.bytes.fetch_sub(n, Ordering::Relaxed);
            self.queued.events.fetch_sub(1, Ordering::Relaxed);
            return Err(SendError::Dropped(QueueDrop::Bytes));
        }
        self.batch.push((event, n));
        if self.batch.len() >= BATCH {
            return self.flush();
        }
        Ok(())
    }

    /// Hands the gathered events to the receiver.
    pub fn flush(&mut self) -> Result<(), SendError> {
        if self.batch.is_empty() {
            return if self.tx.is_closed() { Err(SendError::Closed) } else { Ok(()) };
        }
        // The next batch starts with room for as many as this one took: no regrowth under a
        // steady load, and no full-size allocation per drain when it is light.
        let room = self.batch.len();
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(room));
        self.tx.send(batch).map_err(|lost| {
            let bytes: usize = lost.0.iter().map(|(_, n)| n).sum();
            self.queued.bytes.fetch_sub(bytes, Ordering::Relaxed);
            self.queued.events.fetch_sub(lost.0.len(), Ordering::Relaxed);
            SendError::Closed
        })
    }

    pub fn queued_bytes(&self) -> QueuedBytes {
        QueuedBytes(self.queued.clone())
    }
}

impl EventReceiver {
    /// The next event; None once every sender is gone and the queue is empty. Cancel-safe: an
    /// event is taken only when it is returned.
    pub async fn recv(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.ready() {
                return Some(e);
            }
            self.batch = self.rx.recv().await?.into_iter();
        }
    }

    /// The next event of the batch being received, without waiting for another batch.
    pub fn ready(&mut self) -> Option<Event> {
        let (e, n) = self.batch.next()?;
        self.queued.bytes.fetch_sub(n, Ordering::Relaxed);
        self.queued.events.fetch_sub(1, Ordering::Relaxed);
        Some(e)
    }

    pub fn queued_bytes(&self) -> QueuedBytes {
        QueuedBytes(self.queued.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::conn::{Direction, Tuple};
    use crate::reader::decode::{DataRecord, Syscall};

    fn data(len: usize) -> Event {
        Event::Data(DataRecord {
            pid: 1,
            tid: 1,
            ts_enter_ns: 1,
            ts_exit_ns: 2,
            conn_id: 1,
            fd: 3,
            syscall: Syscall::Read,
            direction: Direction::Ingress,
            ret: len as i64,
            truncated: false,
            seq: None,
            goid: None,
            netns: 0,
            context: None,
            tuple: Tuple { local: "127.0.0.1:1".parse().unwrap(), remote: "127.0.0.1:2".parse().unwrap() },
            lost_before: Default::default(),
            degraded: false,
            payload: vec![0; len],
        })
    }

    #[tokio::test]
    async fn the_queue_holds_at_most_its_bytes_and_frees_them_on_receive() {
        let one = event_bytes(&data(4096));
        let (mut tx, mut rx) = channel(1000, 10 * one);
        let sent = (0..20).filter(|_| tx.try_send(data(4096)).is_ok()).count();
        assert_eq!(sent, 10, "the byte bound, not the 1000 slots, stopped the burst");
        assert_eq!(tx.try_send(data(4096)), Err(SendError::Dropped(QueueDrop::Bytes)));
        assert_eq!(tx.queued_bytes().get(), 10 * one);
        tx.flush().unwrap();
        assert!(rx.recv().await.is_some());
        assert_eq!(rx.queued_bytes().get(), 9 * one);
        assert!(tx.try_send(data(4096)).is_ok(), "a received event frees its bytes");
        tx.flush().unwrap();
        while tx.queued_bytes().get() > 0 {
            rx.recv().await.expect("queued");
        }
        // One event larger than the bound still passes an empty queue.
        assert!(tx.try_send(data(20 * 4096)).is_ok());
    }

    #[tokio::test]
    async fn the_slot_bound_still_applies_and_says_so() {
        let (mut tx, mut rx) = channel(2, usize::MAX);
        assert!(tx.try_send(data(1)).is_ok() && tx.try_send(data(1)).is_ok());
        assert_eq!(tx.try_send(data(1)), Err(SendError::Dropped(QueueDrop::Full)));
        assert_eq!(tx.queued_bytes().get(), 2 * event_bytes(&data(1)));
        tx.flush().unwrap();
        assert!(rx.recv().await.is_some());
        assert!(tx.try_send(data(1)).is_ok(), "a received event frees its slot");
    }

    #[tokio::test]
    async fn events_arrive_in_order_in_batches_and_a_gone_receiver_is_reported() {
        let (mut tx, mut rx) = channel(10 * BATCH, usize::MAX);
        for len in 1..=BATCH + 3 {
            tx.try_send(data(len)).unwrap();
        }
        // A full batch went on its own; the rest waits for the flush.
        assert_eq!(rx.rx.len(), 1);
        tx.flush().unwrap();
        for len in 1..=BATCH + 3 {
            match rx.recv().await {
                Some(Event::Data(d)) => assert_eq!(d.payload.len(), len),
                other => panic!("event {len}: {other:?}"),
            }
        }
        assert_eq!(rx.queued_bytes().get(), 0);
        drop(rx);
        tx.try_send(data(1)).unwrap();
        assert_eq!(tx.flush(), Err(SendError::Closed));
        assert_eq!(tx.queued_bytes().get(), 0, "what could not be handed over is not counted as queued");
    }
}
